"""``power_simulator``: a battery and SoC temperature that respond to the execution level.

It closes the budget loop without hardware: it follows the execution level like
any adaptive node (``level_power_w`` maps a level to the extra power the device
draws there), runs ``power.model`` in simulated time (``time_scale`` simulated
seconds per wall second) and publishes ``sensor_msgs/BatteryState`` and
``sensor_msgs/Temperature`` as ``power_monitor`` does from sysfs. Every physical
parameter can be changed at run time (``charging`` plugs the charger in or out);
a change that ``PowerConfig.validate`` rejects keeps the old values.

With ``load_source: measured`` the load is instead what the perception nodes
really spend: the sum of the ``cpu_demand_s_per_s`` each reports in ``/diagnostics``
(process CPU time per second, counting the inputs a saturated node dropped at its
cost per frame; ``runtime.stats.CpuMeter``), or, for the nodes listed in
``frame_rates_hz``, their CPU time per frame times the rate their input runs at on
the device (on a shared host the camera itself may fall behind), turned into watts
by a device model (``power.device``: ``device_preset``, ``cpu_time_scale``). A knob that really
computes less then drains the battery more slowly, and one that does not, does not.

For the statistics in ``/diagnostics`` a "frame" is one simulation step (advance
the model and publish), so rate and latency describe the simulator itself.
"""

import math
import time
from dataclasses import fields

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import BatteryState, Temperature
from std_msgs.msg import Header

from adaptive_perception.power.device import PRESETS, device
from adaptive_perception.power.model import PowerConfig, PowerModel
from adaptive_perception.ros import diagnostics
from adaptive_perception.ros.interfaces import (
    BATTERY_TOPIC,
    DIAGNOSTICS_QOS,
    DIAGNOSTICS_TOPIC,
    POWER_QOS,
    TEMPERATURE_TOPIC,
)
from adaptive_perception.ros.level_following import LevelFollowing
from adaptive_perception.ros.params import Param, declare, on_change
from adaptive_perception.ros.run import run_node, set_timer_period

DEFAULTS = PowerConfig()
CONFIG_FIELDS = [f.name for f in fields(PowerConfig)]
LOAD_SOURCES = ('levels', 'measured')


def frame_rates(entries) -> dict:
    """Parse ``frame_rates_hz`` entries ``'<node>=<Hz>'``; '' entries are ignored."""
    rates = {}
    for entry in entries:
        if not entry.strip():
            continue
        name, eq, hz = entry.partition('=')
        try:
            rate = float(hz)
        except ValueError:
            rate = math.nan
        if not eq or not name.strip() or not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"frame_rates_hz entry {entry!r}: expected '<node>=<Hz>' with "
                             'Hz > 0')
        rates['/' + name.strip().lstrip('/')] = rate
    return rates


def _check_load(values: dict):
    """Validate the load settings; return the device model (None for level_power_w)."""
    frame_rates(values['frame_rates_hz'])
    if values['load_source'] not in LOAD_SOURCES:
        raise ValueError(f'load_source must be one of {LOAD_SOURCES}, got '
                         f'{values["load_source"]!r}')
    model = device(values['device_preset'], values['cpu_time_scale'] or None)
    return model if values['load_source'] == 'measured' else None


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
        load = declare(self, [
            Param('load_source', 'levels',
                  "'levels': the load is level_power_w at the applied level; 'measured': "
                  "the nodes' CPU time from /diagnostics through the device model."),
            Param('device_preset', 'laptop_cpu',
                  f'Device model for measured load: {", ".join(sorted(PRESETS))}.'),
            Param('cpu_time_scale', 0.0,
                  'Device core-seconds per measured CPU second; 0 = this machine\'s clock '
                  'over the device\'s.', 0.0, 1000.0),
            Param('measured_nodes', [''],
                  'Nodes whose CPU time counts (fully qualified names); [\'\'] = every node '
                  'that reports it, except this one.'),
            Param('frame_rates_hz', [''],
                  "'<node>=<Hz>' entries: that node's load is its CPU time per frame x Hz "
                  '(the rate its input runs at on the device) instead of its CPU time per '
                  'second.'),
            Param('measured_timeout_s', 5.0,
                  'A node silent this long no longer counts.', 0.1, 3600.0),
        ])
        self._load = load
        self._device = _check_load(load)
        self._node_cpu = {}  # node name -> (monotonic time, cpu_s_per_s)
        self.create_subscription(DiagnosticArray, DIAGNOSTICS_TOPIC, self._on_diagnostics,
                                 DIAGNOSTICS_QOS)
        on_change(self, list(load), _check_load, self._on_load_params)
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

    def _on_load_params(self, candidate: dict) -> None:
        self._device = _check_load(candidate)
        self._load = candidate

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        me = self.get_fully_qualified_name()
        wanted = [n for n in self._load['measured_nodes'] if n]
        for status in msg.status:
            if status.name == me or (wanted and status.name not in wanted):
                continue
            values = diagnostics.values_of(status)
            rate = frame_rates(self._load['frame_rates_hz']).get(status.name)
            if rate is not None:
                cpu = diagnostics.as_float(values.get('cpu_ms_per_frame')) * rate / 1e3
            else:
                cpu = diagnostics.as_float(values.get('cpu_demand_s_per_s',
                                                      values.get('cpu_s_per_s')))
            if math.isfinite(cpu):
                self._node_cpu[status.name] = (time.monotonic(), cpu)

    def measured_cpu(self) -> float:
        """CPU seconds per second of the nodes heard within ``measured_timeout_s``."""
        now = time.monotonic()
        return sum(cpu for t, cpu in self._node_cpu.values()
                   if now - t <= self._load['measured_timeout_s'])

    def load_w(self) -> float:
        """Return the load on top of the base power now: measured or per level."""
        if self._device is None:
            return self._load_w
        return self._device.load_w(self.measured_cpu())

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
        self.model.step((now - self._last_tick) * self._time_scale, self.load_w())
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
                'steady_state_c': model.config.steady_state_c(self.load_w()),
                'charging': model.config.charging, 'time_scale': self._time_scale,
                'load_source': self._load['load_source'], 'load_w': self.load_w(),
                'measured_cpu_s_per_s': self.measured_cpu(),
                'measured_node_count': len(self._node_cpu)}


def main(args=None):
    """Run ``power_simulator`` until Ctrl-C or shutdown."""
    return run_node(PowerSimulator, args)


if __name__ == '__main__':
    raise SystemExit(main())
