"""Real power and energy counters read from Linux sysfs, where the machine has them (no rclpy).

Three kinds, as the kernel documents them:

* Intel RAPL (``<root>/class/powercap/intel-rapl:N/energy_uj``): a cumulative
  energy counter in µJ per domain, which wraps at ``max_energy_range_uj``; power
  is the difference of two readings over the time between them. ``psys`` (the
  whole platform) is used when present, else the sum of the package domains
  (their subdomains ``intel-rapl:N:M`` are parts of them and never added).
* hwmon (``<root>/class/hwmon/hwmon*/``): ``power*_input`` in µW
  (Documentation/hwmon/sysfs-interface); the INA3221 monitors on Jetson boards
  give ``in*_input`` (mV) and ``curr*_input`` (mA) per rail with ``in*_label``
  (power = V x I), older Jetson kernels ``in_power*_input`` in mW. A rail labelled
  ``VDD_IN`` is the board's input and is used alone when present.
* power_supply batteries: ``power_now`` (µW), else ``current_now`` (µA) x
  ``voltage_now`` (µV).

Nothing here raises: what cannot be read is skipped and said in ``problems``.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path

TOTAL_RAIL = 'VDD_IN'


@dataclass(frozen=True)
class PowerReading:
    """One measured power: which counter, watts, and what it covers."""

    source: str  # 'rapl' | 'hwmon' | 'power_supply'
    watts: float
    detail: str


def _number(path: Path, problems: list):
    try:
        return int(path.read_text().strip())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, UnicodeDecodeError) as error:
        problems.append(f'{path}: unreadable ({error})')
        return None


def _text(path: Path):
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _sorted(paths):
    return sorted(paths, key=lambda p: [int(t) if t.isdigit() else t
                                        for t in re.split(r'(\d+)', p.name)])


@dataclass
class RaplCounter:
    """Top-level RAPL domains; ``read`` turns two energy readings into watts."""

    domains: list  # (name, directory, max_range_uj)
    _last: dict = field(default_factory=dict)  # directory -> (time_s, energy_uj)

    @classmethod
    def find(cls, root: Path, problems: list):
        """Find the domains to use under ``root``; None when there is no RAPL."""
        found = []
        for directory in _sorted((root / 'class' / 'powercap').glob('intel-rapl:*')):
            if directory.name.count(':') != 1:  # a subdomain (core, uncore, dram)
                continue
            name = _text(directory / 'name') or directory.name
            max_range = _number(directory / 'max_energy_range_uj', problems)
            if _number(directory / 'energy_uj', problems) is None:
                continue
            found.append((name, directory, max_range))
        psys = [d for d in found if d[0] == 'psys']
        return cls(psys or found) if found else None

    def read(self, now_s: float, problems: list):
        """Power over the time since the previous call; None on the first call."""
        total, parts, complete = 0.0, [], True
        for name, directory, max_range in self.domains:
            energy = _number(directory / 'energy_uj', problems)
            last = self._last.get(directory)
            if energy is None:
                complete = False
                continue
            self._last[directory] = (now_s, energy)
            if last is None or now_s <= last[0]:
                complete = False
                continue
            delta = energy - last[1]
            if delta < 0:  # the counter wrapped
                if not max_range:
                    problems.append(f'{directory}: energy went backwards and no '
                                    'max_energy_range_uj to unwrap it')
                    complete = False
                    continue
                delta += max_range
            total += delta * 1e-6 / (now_s - last[0])
            parts.append(name)
        if not complete or not parts:
            return None
        return PowerReading('rapl', total, '+'.join(parts))


def read_hwmon(root: Path, problems: list) -> PowerReading | None:
    """Board power from hwmon power sensors; None when there are none."""
    rails = []  # (label, watts)
    for directory in _sorted((root / 'class' / 'hwmon').glob('hwmon*')):
        chip = _text(directory / 'name') or directory.name
        for path in _sorted(directory.glob('power*_input')):
            microwatts = _number(path, problems)
            if microwatts is not None:
                index = path.name[len('power'):-len('_input')]
                label = _text(directory / f'power{index}_label') or f'{chip}/{path.name}'
                rails.append((label, microwatts * 1e-6))
        for path in _sorted(directory.glob('in_power*_input')):
            milliwatts = _number(path, problems)
            if milliwatts is not None:
                index = path.name[len('in_power'):-len('_input')]
                label = _text(directory / f'rail_name_{index}') or f'{chip}/{path.name}'
                rails.append((label, milliwatts * 1e-3))
        for path in _sorted(directory.glob('curr*_input')):
            index = path.name[len('curr'):-len('_input')]
            milliamps = _number(path, problems)
            millivolts = _number(directory / f'in{index}_input', problems)
            if milliamps is not None and millivolts is not None:
                label = (_text(directory / f'in{index}_label')
                         or _text(directory / f'curr{index}_label') or f'{chip}/{index}')
                rails.append((label, millivolts * milliamps * 1e-6))
    if not rails:
        return None
    total = [r for r in rails if r[0] == TOTAL_RAIL]
    if total:
        return PowerReading('hwmon', total[0][1], TOTAL_RAIL)
    return PowerReading('hwmon', sum(w for _, w in rails), '+'.join(label for label, _ in rails))


def read_power_supply(root: Path, problems: list) -> PowerReading | None:
    """Battery power from power_now or current_now x voltage_now; None when neither."""
    for directory in _sorted((root / 'class' / 'power_supply').glob('*')):
        if _text(directory / 'type') != 'Battery':
            continue
        microwatts = _number(directory / 'power_now', problems)
        if microwatts is not None:
            return PowerReading('power_supply', abs(microwatts) * 1e-6,
                                f'{directory.name} power_now')
        microamps = _number(directory / 'current_now', problems)
        microvolts = _number(directory / 'voltage_now', problems)
        if microamps is not None and microvolts is not None:
            return PowerReading('power_supply', abs(microamps) * microvolts * 1e-12,
                                f'{directory.name} current_now x voltage_now')
    return None


class PowerCounters:
    """Every power counter found under a sysfs root, read together."""

    def __init__(self, root: str | Path = '/sys'):
        self.root = Path(root)
        self.problems = []
        self._rapl = RaplCounter.find(self.root, self.problems)
        self.kinds = ((['rapl'] if self._rapl else [])
                      + (['hwmon'] if read_hwmon(self.root, []) else [])
                      + (['power_supply'] if read_power_supply(self.root, []) else []))

    def read(self, now_s: float) -> list:
        """Read what is available now (RAPL needs a previous call); update ``problems``."""
        self.problems = []
        readings = []
        if self._rapl is not None:
            rapl = self._rapl.read(now_s, self.problems)
            if rapl is not None:
                readings.append(rapl)
        for reader in (read_hwmon, read_power_supply):
            reading = reader(self.root, self.problems)
            if reading is not None:
                readings.append(reading)
        return readings
