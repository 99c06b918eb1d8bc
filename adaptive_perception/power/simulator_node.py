"""``power_simulator``: a battery and SoC temperature that respond to the execution level.

It closes the budget loop without hardware: it follows the execution level like
any adaptive node (``level_power_w`` maps a level to the extra power the device
draws there), runs ``power.model`` in simulated time (``time_scale`` simulated
seconds per wall second) and publishes ``sensor_msgs/BatteryState`` and
``sensor_msgs/Temperature`` as ``power_monitor`` does from sysfs. Every physical
parameter can be changed at run time (``charging`` plugs the charger in or out);
a change that ``PowerConfig.validate`` rejects keeps the old values.

For the statistics in ``/diagnostics`` a "frame" is one simulation step (advance
the model and publish), so rate and latency describe the simulator itself.
"""

import math
import time
from dataclasses import fields

from rclpy.node import Node
from sensor_msgs.msg import BatteryState, Temperature
from std_msgs.msg import Header

from adaptive_perception.power.model import PowerConfig, PowerModel
from adaptive_perception.ros.interfaces import BATTERY_TOPIC, POWER_QOS, TEMPERATURE_TOPIC
from adaptive_perception.ros.level_following import LevelFollowing
from adaptive_perception.ros.params import Param, declare, on_change
from adaptive_perception.ros.run import run_node, set_timer_period

DEFAULTS = PowerConfig()
CONFIG_FIELDS = [f.name for f in fields(PowerConfig)]


def _parse_watts(entry) -> float:
    watts = float(entry)
    if not (math.isfinite(watts) and watts >= 0):
        raise ValueError(f'level_power_w entries must be finite and >= 0 W, got {entry!r}')
    return watts


def _config(values: dict) -> PowerConfig:
    """Build and validate the model config from parameter values."""
    kwargs = {name: values[name] for name in CONFIG_FIELDS}
    kwargs['level_power_w'] = tuple(kwargs['level_power_w'])
    config = PowerConfig(**kwargs)
    config.validate()
    return config


class PowerSimulator(Node):
    """Publishes the simulated battery and temperature at ``publish_rate_hz``."""

    def __init__(self):
        super().__init__('power_simulator')
        self._load_w = 0.0
        self.following = LevelFollowing(
            self, profile_param='level_power_w', profile_default=DEFAULTS.level_power_w,
            profile_description='Extra power (W) the device draws at each level (index = '
                                'level); a shorter list repeats its last entry.',
            parse_entry=_parse_watts, apply=self._apply, extra_values=self._diagnostic_values)
        d = DEFAULTS
        values = declare(self, [
            Param('capacity_wh', d.capacity_wh, 'Battery energy when full (Wh).'),
            Param('initial_fraction', d.initial_fraction,
                  'Charge fraction (0..1) at start; read once.', read_only=True),
            Param('base_power_w', d.base_power_w, 'Power (W) drawn at every level.'),
            Param('ambient_c', d.ambient_c, 'Ambient temperature (C).'),
            Param('thermal_resistance_c_per_w', d.thermal_resistance_c_per_w,
                  'Thermal resistance to ambient (C/W): steady rise = power x this.'),
            Param('thermal_capacitance_j_per_c', d.thermal_capacitance_j_per_c,
                  'Thermal mass (J/C); time constant = resistance x capacitance.'),
            Param('charging', d.charging, 'Charger plugged in (settable at run time).'),
            Param('charge_power_w', d.charge_power_w, 'Power (W) the charger delivers.'),
            Param('voltage_v', d.voltage_v, 'Battery voltage (V), for current and Ah.'),
            Param('time_scale', 1.0, 'Simulated seconds per wall-clock second; 0 pauses.',
                  0.0, 1e6),
            Param('publish_rate_hz', 10.0, 'Simulation steps (and messages) per second.',
                  0.1, 1000.0),
            Param('battery_topic', BATTERY_TOPIC, 'BatteryState output topic.',
                  read_only=True),
            Param('temperature_topic', TEMPERATURE_TOPIC, 'Temperature output topic.',
                  read_only=True),
            Param('frame_id', 'battery', 'header.frame_id of BatteryState.'),
            Param('temperature_frame_id', 'soc', 'header.frame_id of Temperature.'),
        ])
        values['level_power_w'] = self.get_parameter('level_power_w').value
        self.model = PowerModel(_config(values))
        self._time_scale = values['time_scale']
        self._rate_hz = values['publish_rate_hz']
        self._frame_id = values['frame_id']
        self._temperature_frame_id = values['temperature_frame_id']
        self._battery_pub = self.create_publisher(BatteryState, values['battery_topic'],
                                                  POWER_QOS)
        self._temperature_pub = self.create_publisher(Temperature, values['temperature_topic'],
                                                      POWER_QOS)
        self._last_tick = time.monotonic()
        self._timer = self.create_timer(1.0 / self._rate_hz, self._tick)
        on_change(self, list(values), _config, self._on_params)

    def _apply(self, watts: float, applied) -> None:
        self._load_w = watts

    def _on_params(self, candidate: dict) -> None:
        self.model.config = _config(candidate)
        self._time_scale = candidate['time_scale']
        self._frame_id = candidate['frame_id']
        self._temperature_frame_id = candidate['temperature_frame_id']
        if candidate['publish_rate_hz'] != self._rate_hz:
            self._rate_hz = candidate['publish_rate_hz']
            set_timer_period(self._timer, 1.0 / self._rate_hz)

    def _tick(self) -> None:
        start = time.perf_counter()
        now = time.monotonic()
        self.model.step((now - self._last_tick) * self._time_scale, self._load_w)
        self._last_tick = now
        stamp = self.get_clock().now().to_msg()
        self._battery_pub.publish(self._battery_state(Header(stamp=stamp,
                                                             frame_id=self._frame_id)))
        self._temperature_pub.publish(Temperature(
            header=Header(stamp=stamp, frame_id=self._temperature_frame_id),
            temperature=self.model.temperature_c, variance=0.0))
        self.following.record_frame(time.perf_counter() - start)

    def _battery_state(self, header: Header) -> BatteryState:
        model, config = self.model, self.model.config
        volts = config.voltage_v
        capacity_ah = config.capacity_wh / volts
        return BatteryState(
            header=header, voltage=volts, temperature=math.nan,
            current=model.battery_power_w / volts, charge=model.fraction * capacity_ah,
            capacity=capacity_ah, design_capacity=capacity_ah, percentage=model.fraction,
            power_supply_status=model.status,
            power_supply_health=BatteryState.POWER_SUPPLY_HEALTH_GOOD,
            power_supply_technology=BatteryState.POWER_SUPPLY_TECHNOLOGY_LION,
            present=True, location='simulated')

    def _diagnostic_values(self) -> dict:
        model = self.model
        return {'battery_fraction': model.fraction, 'temperature_c': model.temperature_c,
                'power_w': model.power_w, 'sim_time_s': model.sim_time_s,
                'steady_state_c': model.config.steady_state_c(self._load_w),
                'charging': model.config.charging, 'time_scale': self._time_scale}


def main(args=None):
    """Run ``power_simulator`` until Ctrl-C or shutdown."""
    return run_node(PowerSimulator, args)


if __name__ == '__main__':
    raise SystemExit(main())
