"""Turning CPU time into watts: a documented device model with presets (no rclpy).

Most machines expose no energy counter a node can read (this one has none), so
the power a perception node costs is modelled from what the OS measures exactly,
the CPU time it spends:

    P = idle_w + busy_core_w * min(cores, cpu_s_per_s * cpu_time_scale)

``cpu_s_per_s`` is CPU seconds per wall second measured where the nodes ran;
``cpu_time_scale`` converts them into busy core-seconds of the target device (the
ratio of the measuring machine's clock to the device's, assuming equal work per
clock: a slower core is busy longer for the same frame). Where a real counter
exists (``power.counters``) it replaces the model.

Presets (values from public documents; what each number rests on is given):

* ``jetson_orin_nano``: NVIDIA Jetson Orin Nano 8GB module. 6x Arm Cortex-A78AE
  at up to 1.5 GHz and a 7-15 W module power range (NVIDIA Jetson Orin Nano Series
  Data Sheet, DS-11105-001). Idle 2.2 W: VDD_IN measured by tegrastats at idle on
  an Orin Nano 8GB (NVIDIA developer forum, "Jetson Orin Nano 8GB - Lowest
  Theoretical Operating Power Consumption"). 1.0 W per busy core: the CPU cluster's
  share of the 15 W mode, about 6 W for 6 cores under load.
* ``laptop_cpu``: Intel Core i7-1165G7 (Intel ARK: 4 cores, 2.8 GHz base, 28 W
  TDP-up / 12 W TDP-down). Idle 1.5 W for the package (an assumption: the data
  sheet gives no idle figure; package C-state residency puts it near 1-2 W);
  (28 W - 1.5 W) / 4 = 6.6 W per core busy at base clock.
"""

import math
from dataclasses import dataclass, replace
from pathlib import Path


@dataclass(frozen=True)
class DeviceModel:
    """Idle power, power per busy core, core count and clock of one device."""

    name: str
    idle_w: float
    busy_core_w: float
    cores: int
    clock_mhz: float
    source: str = ''
    cpu_time_scale: float = 1.0

    def validate(self) -> None:
        """Raise ValueError naming the first value that makes no sense."""
        for field in ('idle_w', 'busy_core_w', 'clock_mhz', 'cpu_time_scale'):
            value = getattr(self, field)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f'device {self.name}: {field} must be finite and >= 0, '
                                 f'got {value}')
        if self.cores < 1:
            raise ValueError(f'device {self.name}: cores must be >= 1, got {self.cores}')

    def busy_cores(self, cpu_s_per_s: float) -> float:
        """Device cores kept busy by ``cpu_s_per_s`` measured on the reference machine."""
        return min(float(self.cores), max(cpu_s_per_s, 0.0) * self.cpu_time_scale)

    def load_w(self, cpu_s_per_s: float) -> float:
        """Power (W) above idle drawn by that CPU time."""
        return self.busy_core_w * self.busy_cores(cpu_s_per_s)

    def power_w(self, cpu_s_per_s: float) -> float:
        """Total device power (W) with that CPU time."""
        return self.idle_w + self.load_w(cpu_s_per_s)


PRESETS = {
    'jetson_orin_nano': DeviceModel(
        'jetson_orin_nano', idle_w=2.2, busy_core_w=1.0, cores=6, clock_mhz=1500.0,
        source='NVIDIA Jetson Orin Nano Series Data Sheet DS-11105-001; idle VDD_IN from '
               'tegrastats (NVIDIA developer forum)'),
    'laptop_cpu': DeviceModel(
        'laptop_cpu', idle_w=1.5, busy_core_w=6.6, cores=4, clock_mhz=2800.0,
        source='Intel ARK, Core i7-1165G7 (28 W TDP-up, 4 cores, 2.8 GHz base); idle '
               'assumed'),
}


def machine_clock_mhz(cpuinfo: str | Path = '/proc/cpuinfo') -> float:
    """Return this machine's nominal core clock (MHz) from /proc/cpuinfo; NaN if unknown."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return math.nan
    values = []
    for line in text.splitlines():
        key, _, value = line.partition(':')
        if key.strip() == 'cpu MHz':
            try:
                values.append(float(value))
            except ValueError:
                pass
    return max(values) if values else math.nan


def device(name: str, cpu_time_scale: float | None = None,
           reference_mhz: float | None = None) -> DeviceModel:
    """Return the preset ``name`` with its CPU-time scale.

    ``cpu_time_scale`` given (> 0) is taken as is; else it is the measuring
    machine's clock (``reference_mhz``, default /proc/cpuinfo) over the device's,
    or 1 when the clock is unknown. Raises ValueError for an unknown preset.
    """
    if name not in PRESETS:
        raise ValueError(f'unknown device preset {name!r}; known: {", ".join(sorted(PRESETS))}')
    preset = PRESETS[name]
    if cpu_time_scale is None or cpu_time_scale <= 0:
        mhz = machine_clock_mhz() if reference_mhz is None else reference_mhz
        cpu_time_scale = mhz / preset.clock_mhz if math.isfinite(mhz) and mhz > 0 else 1.0
    model = replace(preset, cpu_time_scale=float(cpu_time_scale))
    model.validate()
    return model
