"""``power_monitor``: the device's real battery and temperature, read from Linux sysfs.

Publishes ``sensor_msgs/BatteryState`` (one battery) and ``sensor_msgs/Temperature``
(the hottest selected thermal zone, ``header.frame_id`` = the zone's type) for
``budget_manager``, and its own ``/diagnostics`` status with whatever sysfs got
wrong and the device power its counters measure (``power.counters``: RAPL,
hwmon/INA3221, battery power_now), one ``power_w_<kind>`` value per kind. What
exists is decided once at start: a machine with no battery, thermal zone or power
counter (a container, most CI runners) gets one clear message and a clean exit, so
a launch file can include this node everywhere.
"""

import math
import time

from rclpy.node import Node
from sensor_msgs.msg import BatteryState, Temperature
from std_msgs.msg import Header

from adaptive_perception.power.counters import PowerCounters
from adaptive_perception.power.sysfs import hottest, read_power_supplies, read_thermal_zones
from adaptive_perception.ros import diagnostics
from adaptive_perception.ros.interfaces import (
    BATTERY_TOPIC,
    DIAGNOSTICS_QOS,
    DIAGNOSTICS_TOPIC,
    POWER_QOS,
    TEMPERATURE_TOPIC,
)
from adaptive_perception.ros.params import Param, declare, on_change
from adaptive_perception.ros.run import run_node, set_timer_period

ALL_ZONES = 'all'
MAX_PROBLEMS_IN_MESSAGE = 3


def zone_types(values) -> tuple:
    """Turn the ``thermal_zone_types`` parameter into a filter; () selects every zone."""
    values = list(values)
    if not values or values == [ALL_ZONES]:
        return ()
    if ALL_ZONES in values:
        raise ValueError(f"thermal_zone_types: '{ALL_ZONES}' cannot be combined with types")
    if any(not v.strip() for v in values):
        raise ValueError('thermal_zone_types must not contain empty strings')
    return tuple(values)


def _nan(value) -> float:
    return math.nan if value is None else float(value)


class PowerMonitor(Node):
    """Reads sysfs at ``publish_rate_hz`` and publishes what it found at start.

    ``active`` is False when there was nothing to publish; ``main`` then exits.
    """

    def __init__(self):
        super().__init__('power_monitor')
        values = declare(self, [
            Param('sysfs_root', '/sys', 'Where sysfs is mounted (a fake tree in tests).',
                  read_only=True),
            Param('publish_rate_hz', 1.0, 'How often sysfs is read and published (Hz).',
                  0.01, 100.0),
            Param('battery_topic', BATTERY_TOPIC, 'BatteryState output topic.',
                  read_only=True),
            Param('temperature_topic', TEMPERATURE_TOPIC, 'Temperature output topic.',
                  read_only=True),
            Param('battery_name', '',
                  'power_supply entry to publish (e.g. BAT0); empty = the first battery.',
                  read_only=True),
            Param('thermal_zone_types', [ALL_ZONES],
                  "Thermal zone types to watch, e.g. ['x86_pkg_temp', 'acpitz']; "
                  f"['{ALL_ZONES}'] = every zone. The hottest one is published."),
            Param('frame_id', 'battery', 'header.frame_id of BatteryState.'),
        ])
        self._root = values['sysfs_root']
        self._types = zone_types(values['thermal_zone_types'])
        self._frame_id = values['frame_id']
        self._rate_hz = values['publish_rate_hz']
        self._temperature_topic = values['temperature_topic']
        self._battery_pub = self._temperature_pub = None
        self._battery = self._zone = self._mains_online = None
        self._problems, self._logged_problems = [], []

        batteries = read_power_supplies(self._root).batteries
        wanted = values['battery_name']
        self._battery_name = next((b.name for b in batteries if b.name == wanted or not wanted),
                                  None)
        has_zone = bool(read_thermal_zones(self._root, self._types).zones)
        self._counters = PowerCounters(self._root)
        self._power = []  # the last PowerReadings
        zones_text = (f'no thermal zone of type {list(self._types)}' if self._types
                      else 'no thermal zone')
        battery_text = f'no battery {wanted!r}' if wanted else 'no battery'
        self.active = self._battery_name is not None or has_zone or bool(self._counters.kinds)
        if not self.active:
            self.get_logger().warning(f'{battery_text} and {zones_text} under {self._root}, '
                                      'no power counter: nothing to publish, exiting')
            return
        if self._counters.kinds:
            self.get_logger().info(f'power counters: {", ".join(self._counters.kinds)}')
        if self._battery_name is None:
            self.get_logger().info(f'{battery_text} under {self._root}: publishing temperature '
                                   'only')
        else:
            self._battery_pub = self.create_publisher(BatteryState, values['battery_topic'],
                                                      POWER_QOS)
        if has_zone:
            self._temperature_pub = self.create_publisher(
                Temperature, values['temperature_topic'], POWER_QOS)
        else:
            self.get_logger().info(f'{zones_text} under {self._root}: publishing the battery '
                                   'only')
        self._diagnostics = self.create_publisher(diagnostics.DiagnosticArray,
                                                  DIAGNOSTICS_TOPIC, DIAGNOSTICS_QOS)
        self._timer = self.create_timer(1.0 / self._rate_hz, self._tick)
        self.create_timer(1.0, self._publish_diagnostics)
        on_change(self, ['publish_rate_hz', 'thermal_zone_types', 'frame_id'],
                  self._check_params, self._on_params)
        self._tick()

    def _check_params(self, candidate: dict) -> None:
        types = zone_types(candidate['thermal_zone_types'])
        if types != self._types and not read_thermal_zones(self._root, types).zones:
            here = sorted({z.type for z in read_thermal_zones(self._root).zones if z.type})
            raise ValueError(f'thermal_zone_types {list(types)} selects no zone under '
                             f'{self._root} (types here: {here})')

    def _on_params(self, candidate: dict) -> None:
        types = zone_types(candidate['thermal_zone_types'])
        if types != self._types:
            if self._temperature_pub is None:
                self._temperature_pub = self.create_publisher(
                    Temperature, self._temperature_topic, POWER_QOS)
            self._types = types
        self._frame_id = candidate['frame_id']
        if candidate['publish_rate_hz'] != self._rate_hz:
            self._rate_hz = candidate['publish_rate_hz']
            set_timer_period(self._timer, 1.0 / self._rate_hz)

    def _tick(self) -> None:
        stamp = self.get_clock().now().to_msg()
        problems = []
        if self._battery_pub is not None:
            supplies = read_power_supplies(self._root)
            problems += supplies.problems
            self._mains_online = supplies.mains_online
            self._battery = next((b for b in supplies.batteries
                                  if b.name == self._battery_name), None)
            if self._battery is None:
                problems.append(f'battery {self._battery_name} is gone')
            else:
                problems += self._battery.problems
                self._battery_pub.publish(self._battery_state(
                    Header(stamp=stamp, frame_id=self._frame_id)))
        if self._temperature_pub is not None:
            thermal = read_thermal_zones(self._root, self._types)
            problems += thermal.problems
            self._zone = hottest(thermal.zones)
            if self._zone is None:
                problems.append('no selected thermal zone has a readable temperature')
            else:
                self._temperature_pub.publish(Temperature(
                    header=Header(stamp=stamp, frame_id=self._zone.type or self._zone.name),
                    temperature=self._zone.celsius, variance=0.0))
        self._power = self._counters.read(time.monotonic())
        problems += self._counters.problems
        self._problems = problems
        if problems != self._logged_problems:
            if problems:
                self.get_logger().warning('sysfs: ' + '; '.join(problems))
            self._logged_problems = problems

    def _battery_state(self, header: Header) -> BatteryState:
        b = self._battery
        return BatteryState(
            header=header, voltage=_nan(b.voltage_v), temperature=_nan(b.temperature_c),
            current=_nan(b.current_a), charge=_nan(b.charge_ah), capacity=_nan(b.capacity_ah),
            design_capacity=_nan(b.design_capacity_ah), percentage=_nan(b.fraction),
            power_supply_status=b.status, power_supply_technology=b.technology,
            power_supply_health=BatteryState.POWER_SUPPLY_HEALTH_UNKNOWN,
            present=b.present is not False, location=b.name)

    def _publish_diagnostics(self) -> None:
        name = self.get_fully_qualified_name()
        mains = 'no Mains supply' if self._mains_online is None else self._mains_online
        values = {'sysfs_root': self._root, 'mains_online': mains}
        if self._battery is not None:
            values.update(battery=self._battery.name, percentage=_nan(self._battery.fraction),
                          fraction_source=self._battery.fraction_source,
                          power_supply_status=self._battery.status)
        if self._zone is not None:
            values.update(hottest_zone=f'{self._zone.name} ({self._zone.type})',
                          temperature_c=self._zone.celsius)
        for reading in self._power:
            values[f'power_w_{reading.source}'] = reading.watts
            values[f'power_detail_{reading.source}'] = reading.detail
        values['problems'] = len(self._problems)
        shown = self._problems[:MAX_PROBLEMS_IN_MESSAGE]
        more = len(self._problems) - len(shown)
        message = '; '.join(shown) + (f' (+{more} more)' if more else '') or 'ok'
        level = 1 if self._problems else 0
        self._diagnostics.publish(diagnostics.array(self, [
            diagnostics.status(name, self._root, level, message, values)]))


def main(args=None):
    """Run ``power_monitor`` until Ctrl-C or shutdown; return at once if sysfs has nothing."""
    return run_node(PowerMonitor, args)


if __name__ == '__main__':
    raise SystemExit(main())
