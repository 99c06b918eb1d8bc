"""Battery and thermal state read from Linux sysfs (no rclpy).

Reads ``<root>/class/power_supply/*`` and ``<root>/class/thermal/thermal_zone*``
as the kernel documents them (``Documentation/ABI/testing/sysfs-class-power``):
energies in µWh, charges in µAh, voltages in µV, currents in µA, battery
temperature in tenths of °C, zone temperature in millidegrees C. Drivers differ in
which files they provide and some return garbage or errors, so nothing here
raises: a value that cannot be read is None and the reason is added to a list of
problems that the caller can show in ``/diagnostics``.
"""

import re
from dataclasses import dataclass
from pathlib import Path

from adaptive_perception.interfaces import (
    STATUS_CHARGING,
    STATUS_DISCHARGING,
    STATUS_FULL,
    STATUS_NOT_CHARGING,
    STATUS_UNKNOWN,
)

# sensor_msgs/BatteryState.power_supply_technology values
(TECHNOLOGY_UNKNOWN, TECHNOLOGY_NIMH, TECHNOLOGY_LION, TECHNOLOGY_LIPO, TECHNOLOGY_LIFE,
 TECHNOLOGY_NICD, TECHNOLOGY_LIMN) = range(7)

STATUS_CODES = {'Charging': STATUS_CHARGING, 'Discharging': STATUS_DISCHARGING,
                'Not charging': STATUS_NOT_CHARGING, 'Full': STATUS_FULL,
                'Unknown': STATUS_UNKNOWN}
TECHNOLOGY_CODES = {'Unknown': TECHNOLOGY_UNKNOWN, 'NiMH': TECHNOLOGY_NIMH,
                    'Li-ion': TECHNOLOGY_LION, 'Li-poly': TECHNOLOGY_LIPO,
                    'LiFe': TECHNOLOGY_LIFE, 'NiCd': TECHNOLOGY_NICD, 'LiMn': TECHNOLOGY_LIMN}

# Gauges often report *_now a little above *_full; beyond this the pair is garbage.
_OVERFULL_TOLERANCE = 1.1


@dataclass(frozen=True)
class Battery:
    """One ``type == Battery`` power supply; None where sysfs gave no usable value.

    ``current_a`` follows the ROS sign convention (negative while discharging):
    drivers disagree on the sign of ``current_now``, so its magnitude is signed by
    ``status``. ``fraction_source`` says which files gave ``fraction``.
    """

    name: str
    fraction: float | None
    fraction_source: str | None  # 'energy' | 'charge' | 'capacity'
    status: int
    voltage_v: float | None
    current_a: float | None
    charge_ah: float | None
    capacity_ah: float | None
    design_capacity_ah: float | None
    temperature_c: float | None
    present: bool | None
    technology: int
    problems: list


@dataclass(frozen=True)
class PowerSupplies:
    """The batteries found, whether a Mains supply is online, and scan-level problems.

    ``mains_online`` is None when there is no Mains supply at all. Problems of a
    battery's own files are in that battery's ``problems``.
    """

    batteries: list
    mains_online: bool | None
    problems: list


@dataclass(frozen=True)
class ThermalZone:
    """One thermal zone: sysfs name (``thermal_zone0``), its ``type`` and temperature."""

    name: str
    type: str | None
    celsius: float | None


@dataclass(frozen=True)
class ThermalZones:
    """The zones selected by a type filter and the problems met reading them."""

    zones: list
    problems: list


class _Files:
    """Reads the attribute files of one sysfs directory, noting every problem."""

    def __init__(self, directory: Path, problems: list):
        self.directory = directory
        self.problems = problems

    def text(self, name: str) -> str | None:
        """Return the stripped content; None (a problem unless absent) on failure."""
        path = self.directory / name
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as error:
            self.problems.append(f'{path}: unreadable ({error})')
            return None

    def number(self, name: str, scale: float = 1.0) -> float | None:
        """Return an integer attribute times ``scale``; None if absent or not an integer."""
        text = self.text(name)
        if text is None:
            return None
        try:
            return int(text) * scale
        except ValueError:
            self.problems.append(f'{self.directory / name}: not an integer: {text[:40]!r}')
            return None

    def code(self, name: str, codes: dict, unknown):
        """Map a text attribute through ``codes``; ``unknown`` if absent or unexpected."""
        text = self.text(name)
        if text is None:
            return unknown
        if text not in codes:
            self.problems.append(f'{self.directory / name}: unexpected value {text[:40]!r}')
            return unknown
        return codes[text]


def read_power_supplies(root: str | Path = '/sys') -> PowerSupplies:
    """Scan ``<root>/class/power_supply``: batteries, and whether Mains power is online."""
    problems, batteries, mains = [], [], []
    for directory in _entries(Path(root) / 'class' / 'power_supply', '*'):
        files = _Files(directory, problems)
        kind = files.text('type')
        if kind is None:
            problems.append(f'{directory}: no readable type, skipped')
        elif kind == 'Battery':
            batteries.append(read_battery(directory))
        elif kind == 'Mains':
            online = files.text('online')
            if online not in ('0', '1'):
                problems.append(f'{directory / "online"}: expected 0 or 1, got {online!r}')
            mains.append(online == '1')
    return PowerSupplies(batteries, any(mains) if mains else None, problems)


def read_battery(directory: str | Path) -> Battery:
    """Read one battery directory; see ``Battery`` for units and conventions."""
    directory = Path(directory)
    problems = []
    files = _Files(directory, problems)
    voltage = files.number('voltage_now', 1e-6)
    design_voltage = files.number('voltage_min_design', 1e-6)
    volts = next((v for v in (voltage, design_voltage) if v is not None and v > 0), None)
    energy = [files.number(f'energy_{n}', 1e-6) for n in ('now', 'full', 'full_design')]
    charge = [files.number(f'charge_{n}', 1e-6) for n in ('now', 'full', 'full_design')]
    percent = files.number('capacity')
    status = files.code('status', STATUS_CODES, STATUS_UNKNOWN)

    fraction, source = _ratio(energy[0], energy[1], 'energy', directory, problems), 'energy'
    if fraction is None:
        fraction, source = _ratio(charge[0], charge[1], 'charge', directory, problems), 'charge'
    if fraction is None and percent is not None:
        if 0 <= percent <= 100:
            fraction, source = percent / 100.0, 'capacity'
        else:
            problems.append(f'{directory / "capacity"}: {percent:g} % is outside 0..100')
    if fraction is None:
        source = None
        problems.append(f'{directory}: no valid energy_*, charge_* or capacity for the charge '
                        'fraction')

    # Ah from µAh when the driver gives charges, else from µWh through the voltage.
    ah = [c if c is not None else (e / volts if e is not None and volts else None)
          for c, e in zip(charge, energy, strict=True)]
    current = files.number('current_now', 1e-6)
    power = files.number('power_now', 1e-6)
    if current is None and power is not None and volts:
        current = power / volts
    if current is not None and status == STATUS_CHARGING:
        current = abs(current)
    elif current is not None and status == STATUS_DISCHARGING:
        current = -abs(current)
    temperature = files.number('temp', 0.1)
    present = files.code('present', {'1': True, '0': False}, None)
    technology = files.code('technology', TECHNOLOGY_CODES, TECHNOLOGY_UNKNOWN)
    return Battery(directory.name, fraction, source, status, voltage, current, ah[0], ah[1],
                   ah[2], temperature, present, technology, problems)


def _ratio(now, full, what, directory, problems) -> float | None:
    """``now / full`` clamped to 1, or None when a file is missing or the pair is invalid."""
    if now is None or full is None:
        return None
    if full <= 0 or now < 0 or now > full * _OVERFULL_TOLERANCE:
        problems.append(f'{directory}: {what}_now={now * 1e6:g} / {what}_full={full * 1e6:g} '
                        'is not a valid fraction')
        return None
    return min(now / full, 1.0)


def read_thermal_zones(root: str | Path = '/sys', types=()) -> ThermalZones:
    """Zones under ``<root>/class/thermal`` whose type is in ``types`` (empty: all)."""
    problems, zones = [], []
    for directory in _entries(Path(root) / 'class' / 'thermal', 'thermal_zone*'):
        files = _Files(directory, problems)
        kind = files.text('type')
        if types and kind not in types:
            continue
        millidegrees = files.number('temp')
        if millidegrees is None and not (directory / 'temp').exists():
            problems.append(f'{directory}: no temp file')
        celsius = None if millidegrees is None else millidegrees / 1000.0
        zones.append(ThermalZone(directory.name, kind, celsius))
    return ThermalZones(zones, problems)


def hottest(zones) -> ThermalZone | None:
    """Return the zone with the highest temperature; None if no zone has one."""
    readable = [z for z in zones if z.celsius is not None]
    return max(readable, key=lambda z: z.celsius, default=None)


def _entries(directory: Path, pattern: str) -> list:
    """Entries of a sysfs class directory (none if it is absent), zone2 before zone10."""
    return sorted(directory.glob(pattern), key=lambda p: [int(t) if t.isdigit() else t
                                                          for t in re.split(r'(\d+)', p.name)])
