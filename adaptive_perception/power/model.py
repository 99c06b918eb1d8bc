"""A closed-loop battery and thermal model of a device whose load follows the level.

Pure Python (no rclpy): ``power_simulator`` wraps it so the whole budget loop
(level -> power -> battery and heat -> level) runs without hardware, and tests
check its physics directly.

* Battery: an energy store of ``capacity_wh``. It loses the total draw (base plus
  the level's extra power); while charging it gains ``charge_power_w`` as well.
  The charge fraction is clamped to 0..1. Voltage is constant.
* Heat: one thermal mass with capacitance C (J/°C) and resistance R (°C/W) to the
  ambient, heated by the total draw: ``C dT/dt = P - (T - T_amb) / R``. Steps use
  the exact solution for constant P, so a huge step (high time scale) converges
  on ``T_amb + P R`` instead of overshooting. Charging heat is not modelled.
"""

import math
from dataclasses import dataclass

from adaptive_perception.interfaces import STATUS_CHARGING, STATUS_DISCHARGING, STATUS_FULL
from adaptive_perception.levels import profile_entry


@dataclass(frozen=True)
class PowerConfig:
    """The device: battery, base and per-level power, thermal path, charger."""

    capacity_wh: float = 20.0
    initial_fraction: float = 1.0
    base_power_w: float = 2.0
    level_power_w: tuple = (7.0, 4.0, 2.0, 1.0)
    ambient_c: float = 25.0
    thermal_resistance_c_per_w: float = 5.0
    thermal_capacitance_j_per_c: float = 60.0
    charging: bool = False
    charge_power_w: float = 15.0
    voltage_v: float = 7.4

    def validate(self) -> None:
        """Raise ValueError naming the first value that makes no physical sense."""
        for name in ('capacity_wh', 'thermal_resistance_c_per_w',
                     'thermal_capacitance_j_per_c', 'voltage_v'):
            _check(name, getattr(self, name), 'must be > 0', lambda v: v > 0)
        for name in ('base_power_w', 'charge_power_w'):
            _check(name, getattr(self, name), 'must be >= 0', lambda v: v >= 0)
        _check('initial_fraction', self.initial_fraction, 'must be within 0..1',
               lambda v: 0 <= v <= 1)
        _check('ambient_c', self.ambient_c, 'must be above absolute zero', lambda v: v > -273.15)
        if not self.level_power_w:
            raise ValueError('level_power_w needs at least one entry (W at level 0)')
        for i, watts in enumerate(self.level_power_w):
            _check(f'level_power_w[{i}]', watts, 'must be >= 0', lambda v: v >= 0)

    def level_power(self, level: int) -> float:
        """Extra power (W) drawn at ``level``; a short profile repeats its last entry."""
        return profile_entry(self.level_power_w, level)

    def steady_state_c(self, load_power_w: float) -> float:
        """Temperature the device settles at with ``load_power_w`` on top of the base."""
        return self.ambient_c + (self.base_power_w + load_power_w) * \
            self.thermal_resistance_c_per_w


def _check(name, value, requirement, ok) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f'{name} must be a number, got {value!r}')
    if not math.isfinite(value) or not ok(value):
        raise ValueError(f'{name} {requirement}, got {value:g}')


class PowerModel:
    """Battery fraction and device temperature, advanced in simulated time.

    ``config`` may be replaced between steps (e.g. a parameter changed at run time):
    the state carries over, so a new capacity keeps the charge fraction.
    """

    def __init__(self, config: PowerConfig):
        config.validate()
        self.config = config
        self.fraction = config.initial_fraction
        self.temperature_c = config.ambient_c
        self.power_w = config.base_power_w
        self.sim_time_s = 0.0

    @property
    def battery_power_w(self) -> float:
        """Power into the battery (W): negative while it discharges, 0 once full."""
        c = self.config
        net = (c.charge_power_w if c.charging else 0.0) - self.power_w
        if (net > 0 and self.fraction >= 1.0) or (net < 0 and self.fraction <= 0.0):
            return 0.0
        return net

    @property
    def status(self) -> int:
        """BatteryState power_supply_status; DISCHARGING whenever the battery loses energy."""
        if self.battery_power_w < 0 or not self.config.charging:
            return STATUS_DISCHARGING
        return STATUS_FULL if self.fraction >= 1.0 else STATUS_CHARGING

    def step(self, dt_s: float, load_power_w: float) -> None:
        """Advance ``dt_s`` simulated seconds with ``load_power_w`` on top of the base draw."""
        if not dt_s >= 0:
            raise ValueError(f'dt_s must be >= 0, got {dt_s}')
        c = self.config
        self.power_w = c.base_power_w + load_power_w
        charge_w = c.charge_power_w if c.charging else 0.0
        energy_wh = self.fraction * c.capacity_wh + (charge_w - self.power_w) * dt_s / 3600.0
        self.fraction = min(max(energy_wh / c.capacity_wh, 0.0), 1.0)
        settled_c = c.ambient_c + self.power_w * c.thermal_resistance_c_per_w
        decay = math.exp(-dt_s / (c.thermal_resistance_c_per_w * c.thermal_capacitance_j_per_c))
        self.temperature_c = settled_c + (self.temperature_c - settled_c) * decay
        self.sim_time_s += dt_s
