"""power_monitor and power_simulator over DDS, as separate processes."""

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import BatteryState, Temperature

from adaptive_perception.ros.diagnostics import as_float, values_of
from adaptive_perception.ros.interfaces import (
    BATTERY_TOPIC,
    DIAGNOSTICS_QOS,
    DIAGNOSTICS_TOPIC,
    POWER_QOS,
    TEMPERATURE_TOPIC,
)

TIMEOUT_S = 15.0
VOLTS = 7.4


def write(directory, **files):
    """Create a fake sysfs directory with one attribute file per keyword."""
    directory.mkdir(parents=True, exist_ok=True)
    for key, value in files.items():
        (directory / key).write_text(f'{value}\n')


def laptop_tree(root):
    """Build a battery at 42 %, an unplugged adapter and two thermal zones."""
    supplies, thermal = root / 'class' / 'power_supply', root / 'class' / 'thermal'
    write(supplies / 'BAT0', type='Battery', capacity=42, status='Discharging', present=1,
          voltage_now=11_400_000, current_now=900_000, technology='Li-ion')
    write(supplies / 'AC', type='Mains', online=0)
    write(thermal / 'thermal_zone0', type='acpitz', temp=45_000)
    write(thermal / 'thermal_zone1', type='x86_pkg_temp', temp=71_500)
    return root


def stamp_s(msg) -> float:
    """Header stamp in seconds."""
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def last_status(arrays, node_name):
    """Return the newest DiagnosticStatus that ``node_name`` published, or None."""
    for array in reversed(arrays):
        for status in array.status:
            if status.name.endswith(node_name):
                return status
    return None


def fraction_rate(probe, received, seconds=1.0) -> float:
    """Change of percentage per wall second over the next ``seconds`` of messages."""
    start = len(received)
    probe.spin_until(lambda: len(received) > start + 1 and
                     stamp_s(received[-1]) - stamp_s(received[start]) >= seconds,
                     TIMEOUT_S, f'{seconds} s of BatteryState messages')
    first, last = received[start], received[-1]
    return (last.percentage - first.percentage) / (stamp_s(last) - stamp_s(first))


def test_monitor_publishes_battery_and_hottest_zone(probe, launch, tmp_path):
    """The sysfs battery and the hottest zone arrive as ROS messages, re-read every tick."""
    root = laptop_tree(tmp_path / 'sys')
    batteries = probe.subscribe(BatteryState, BATTERY_TOPIC, POWER_QOS)
    temperatures = probe.subscribe(Temperature, TEMPERATURE_TOPIC, POWER_QOS)
    arrays = probe.subscribe(DiagnosticArray, DIAGNOSTICS_TOPIC, DIAGNOSTICS_QOS)
    node = launch('power_monitor', params={'sysfs_root': str(root), 'publish_rate_hz': 10.0})

    probe.spin_until(lambda: batteries and temperatures, TIMEOUT_S, 'battery and temperature')
    battery = batteries[-1]
    assert battery.percentage == pytest.approx(0.42)
    assert battery.power_supply_status == BatteryState.POWER_SUPPLY_STATUS_DISCHARGING
    assert battery.power_supply_technology == BatteryState.POWER_SUPPLY_TECHNOLOGY_LION
    assert battery.present and battery.location == 'BAT0'
    assert battery.voltage == pytest.approx(11.4)
    assert battery.current == pytest.approx(-0.9)
    assert battery.header.frame_id == 'battery'
    temperature = temperatures[-1]
    assert temperature.temperature == pytest.approx(71.5)
    assert temperature.header.frame_id == 'x86_pkg_temp'

    write(root / 'class' / 'power_supply' / 'BAT0', capacity=41)
    probe.spin_until(lambda: batteries[-1].percentage == pytest.approx(0.41), TIMEOUT_S,
                     'the new capacity')
    status = probe.spin_until(lambda: last_status(arrays, 'power_monitor'), TIMEOUT_S,
                              'power_monitor diagnostics')
    assert status.level == status.OK
    assert values_of(status)['mains_online'] == 'False'
    assert node.stop() == 0  # Ctrl-C is a clean exit


def test_monitor_zone_filter_is_settable_and_checked(probe, launch, tmp_path):
    """thermal_zone_types takes effect at run time; a filter that selects nothing is refused."""
    root = laptop_tree(tmp_path / 'sys')
    temperatures = probe.subscribe(Temperature, TEMPERATURE_TOPIC, POWER_QOS)
    launch('power_monitor', params={'sysfs_root': str(root), 'publish_rate_hz': 10.0})
    probe.spin_until(lambda: temperatures, TIMEOUT_S, 'a temperature')

    [result] = probe.set_parameters('power_monitor', {'thermal_zone_types': ['acpitz']})
    assert result.successful
    probe.spin_until(lambda: temperatures[-1].header.frame_id == 'acpitz', TIMEOUT_S,
                     'the acpitz zone')
    assert temperatures[-1].temperature == pytest.approx(45.0)

    [result] = probe.set_parameters('power_monitor', {'thermal_zone_types': ['gpu']})
    assert not result.successful
    assert 'selects no zone' in result.reason and 'x86_pkg_temp' in result.reason


def test_monitor_with_only_a_thermal_zone_says_so_once(probe, launch, tmp_path):
    """Without a battery it publishes temperature only, and tells why once."""
    root = tmp_path / 'sys'
    write(root / 'class' / 'thermal' / 'thermal_zone0', type='soc', temp=38_000)
    temperatures = probe.subscribe(Temperature, TEMPERATURE_TOPIC, POWER_QOS)
    node = launch('power_monitor', params={'sysfs_root': str(root), 'publish_rate_hz': 10.0})
    probe.spin_until(lambda: len(temperatures) >= 3, TIMEOUT_S, 'temperatures')
    assert temperatures[-1].temperature == pytest.approx(38.0)
    assert probe.node.count_publishers(BATTERY_TOPIC) == 0
    assert node.log().count('no battery') == 1


def test_monitor_on_empty_sysfs_exits_cleanly(launch, tmp_path):
    """Nothing to publish: one clear message and exit code 0, not a crash or a silent node."""
    root = tmp_path / 'sys'
    root.mkdir()
    node = launch('power_monitor', params={'sysfs_root': str(root)})
    assert node.proc.wait(TIMEOUT_S) == 0
    log = node.log()
    assert log.count('nothing to publish') == 1
    assert f'no battery and no thermal zone under {root}' in log


def test_simulator_drains_the_battery(probe, launch):
    """At a high time scale the percentage falls from message to message."""
    batteries = probe.subscribe(BatteryState, BATTERY_TOPIC, POWER_QOS)
    node = launch('power_simulator', params={'time_scale': 300.0, 'publish_rate_hz': 20.0})
    probe.spin_until(lambda: len(batteries) >= 10, TIMEOUT_S, '10 BatteryState messages')
    levels = [m.percentage for m in batteries]
    assert all(b < a for a, b in zip(levels, levels[1:], strict=False))
    last = batteries[-1]
    assert 0.0 < last.percentage < 1.0
    assert last.power_supply_status == BatteryState.POWER_SUPPLY_STATUS_DISCHARGING
    assert last.current < 0.0 and last.present
    assert last.capacity == pytest.approx(20.0 / VOLTS)
    assert node.stop() == 0  # Ctrl-C is a clean exit


def test_simulator_frugal_level_draws_less(probe, launch):
    """Overriding to the most frugal level lowers the reported power and slows the drain."""
    batteries = probe.subscribe(BatteryState, BATTERY_TOPIC, POWER_QOS)
    arrays = probe.subscribe(DiagnosticArray, DIAGNOSTICS_TOPIC, DIAGNOSTICS_QOS)
    launch('power_simulator', params={'time_scale': 300.0, 'publish_rate_hz': 20.0})
    status = probe.spin_until(lambda: last_status(arrays, 'power_simulator'), TIMEOUT_S,
                              'power_simulator diagnostics')
    before_w = as_float(values_of(status)['power_w'])
    assert before_w == pytest.approx(2.0 + 4.0)  # fallback level 1 without a manager
    before = fraction_rate(probe, batteries)

    [result] = probe.set_parameters('power_simulator', {'level_override': 3})
    assert result.successful
    status = probe.spin_until(
        lambda: (s := last_status(arrays, 'power_simulator')) and
        values_of(s)['applied_level'] == '3' and s, TIMEOUT_S, 'level 3 in diagnostics')
    assert as_float(values_of(status)['power_w']) == pytest.approx(2.0 + 1.0)
    probe.spin_until(lambda: batteries[-1].current == pytest.approx(-3.0 / VOLTS), TIMEOUT_S,
                     'the lower current')
    after = fraction_rate(probe, batteries)
    assert before < after < 0.0
    assert after / before == pytest.approx(0.5, abs=0.15)


def test_simulator_charges_when_plugged_in_at_run_time(probe, launch):
    """Setting ``charging`` at run time turns the drain into a charge."""
    batteries = probe.subscribe(BatteryState, BATTERY_TOPIC, POWER_QOS)
    launch('power_simulator', params={'time_scale': 300.0, 'publish_rate_hz': 20.0,
                                      'initial_fraction': 0.5})
    assert fraction_rate(probe, batteries, 0.5) < 0.0
    [result] = probe.set_parameters('power_simulator', {'charging': True})
    assert result.successful
    probe.spin_until(lambda: batteries[-1].power_supply_status ==
                     BatteryState.POWER_SUPPLY_STATUS_CHARGING, TIMEOUT_S, 'CHARGING')
    assert fraction_rate(probe, batteries, 0.5) > 0.0
    assert batteries[-1].current > 0.0


def test_simulator_rejects_nonsense_and_keeps_old_values(probe, launch):
    """capacity_wh = -1 is refused with the reason; the battery keeps its capacity."""
    batteries = probe.subscribe(BatteryState, BATTERY_TOPIC, POWER_QOS)
    node = launch('power_simulator', params={'publish_rate_hz': 20.0})
    probe.spin_until(lambda: batteries, TIMEOUT_S, 'a BatteryState')
    [result] = probe.set_parameters('power_simulator', {'capacity_wh': -1.0})
    assert not result.successful
    assert 'capacity_wh must be > 0' in result.reason
    [result] = probe.set_parameters('power_simulator', {'level_power_w': [5.0, -2.0]})
    assert not result.successful and 'level_power_w' in result.reason
    count = len(batteries)
    probe.spin_until(lambda: len(batteries) > count + 2, TIMEOUT_S, 'more BatteryState')
    assert batteries[-1].capacity == pytest.approx(20.0 / VOLTS)
    assert 'rejected parameter change' in node.log()
