"""Reading batteries and thermal zones from fake sysfs trees."""

import pytest

from adaptive_perception.interfaces import (
    STATUS_CHARGING,
    STATUS_DISCHARGING,
    STATUS_FULL,
    STATUS_NOT_CHARGING,
    STATUS_UNKNOWN,
)
from adaptive_perception.power import sysfs
from adaptive_perception.power.sysfs import (
    hottest,
    read_battery,
    read_power_supplies,
    read_thermal_zones,
)


def supply(root, name, **files):
    """Create ``<root>/class/power_supply/<name>`` with one file per keyword."""
    directory = root / 'class' / 'power_supply' / name
    directory.mkdir(parents=True)
    for key, value in files.items():
        (directory / key).write_text(f'{value}\n')
    return directory


def zone(root, index, kind, millidegrees):
    """Create ``<root>/class/thermal/thermal_zone<index>``."""
    directory = root / 'class' / 'thermal' / f'thermal_zone{index}'
    directory.mkdir(parents=True)
    if kind is not None:
        (directory / 'type').write_text(f'{kind}\n')
    if millidegrees is not None:
        (directory / 'temp').write_text(f'{millidegrees}\n')
    return directory


def test_capacity_only_battery(tmp_path):
    """Most simple drivers give only a percentage: it becomes the fraction."""
    supply(tmp_path, 'BAT0', type='Battery', capacity=57, status='Discharging', present=1)
    supplies = read_power_supplies(tmp_path)
    assert supplies.problems == [] and supplies.mains_online is None
    [battery] = supplies.batteries
    assert battery.name == 'BAT0'
    assert battery.fraction == pytest.approx(0.57)
    assert battery.fraction_source == 'capacity'
    assert battery.status == STATUS_DISCHARGING
    assert battery.present is True
    assert battery.voltage_v is None and battery.current_a is None
    assert battery.charge_ah is None and battery.capacity_ah is None
    assert battery.temperature_c is None
    assert battery.technology == sysfs.TECHNOLOGY_UNKNOWN
    assert battery.problems == []


def test_energy_battery_prefers_energy_ratio_and_converts_through_voltage(tmp_path):
    """energy_now/energy_full beats the rounded capacity; Ah come from Wh through the voltage."""
    directory = supply(tmp_path, 'BAT1', type='Battery', energy_now=30_000_000,
                       energy_full=40_000_000, energy_full_design=50_000_000, capacity=70,
                       voltage_now=12_000_000, power_now=10_000_000, status='Discharging',
                       technology='Li-ion')
    battery = read_battery(directory)
    assert battery.fraction == pytest.approx(0.75)
    assert battery.fraction_source == 'energy'
    assert battery.voltage_v == pytest.approx(12.0)
    assert battery.charge_ah == pytest.approx(2.5)
    assert battery.capacity_ah == pytest.approx(40 / 12)
    assert battery.design_capacity_ah == pytest.approx(50 / 12)
    assert battery.current_a == pytest.approx(-10 / 12)  # ROS: negative while discharging
    assert battery.technology == sysfs.TECHNOLOGY_LION
    assert battery.problems == []


def test_charge_battery(tmp_path):
    """charge_* are µAh, so no voltage is needed; temp is in tenths of a degree."""
    directory = supply(tmp_path, 'BAT0', type='Battery', charge_now=2_000_000,
                       charge_full=4_000_000, capacity=49, current_now=1_500_000,
                       voltage_now=7_400_000, status='Charging', temp=312,
                       technology='Li-poly')
    battery = read_battery(directory)
    assert battery.fraction == pytest.approx(0.5)
    assert battery.fraction_source == 'charge'
    assert battery.charge_ah == pytest.approx(2.0)
    assert battery.capacity_ah == pytest.approx(4.0)
    assert battery.current_a == pytest.approx(1.5)
    assert battery.temperature_c == pytest.approx(31.2)
    assert battery.status == STATUS_CHARGING
    assert battery.technology == sysfs.TECHNOLOGY_LIPO


@pytest.mark.parametrize('raw', [1_500_000, -1_500_000])
def test_current_is_negative_while_discharging_whatever_the_driver_sign(tmp_path, raw):
    """Drivers disagree on the sign of current_now; the message must not."""
    directory = supply(tmp_path, 'BAT0', type='Battery', capacity=50, current_now=raw,
                       status='Discharging')
    assert read_battery(directory).current_a == pytest.approx(-1.5)


@pytest.mark.parametrize('text, code', [('Charging', STATUS_CHARGING),
                                        ('Discharging', STATUS_DISCHARGING),
                                        ('Not charging', STATUS_NOT_CHARGING),
                                        ('Full', STATUS_FULL), ('Unknown', STATUS_UNKNOWN)])
def test_status_texts(tmp_path, text, code):
    """Every kernel status text maps to its BatteryState code without a problem."""
    directory = supply(tmp_path, 'BAT0', type='Battery', capacity=50, status=text)
    battery = read_battery(directory)
    assert battery.status == code and battery.problems == []


@pytest.mark.parametrize('online, expected', [(1, True), (0, False)])
def test_mains_adapter_is_reported_but_not_a_battery(tmp_path, online, expected):
    """Mains and USB supplies are not batteries; an online Mains supply is reported."""
    supply(tmp_path, 'AC', type='Mains', online=online)
    supply(tmp_path, 'ucsi-source-psy-USBC000:001', type='USB', online=1)
    supply(tmp_path, 'BAT0', type='Battery', capacity=80)
    supplies = read_power_supplies(tmp_path)
    assert [b.name for b in supplies.batteries] == ['BAT0']
    assert supplies.mains_online is expected
    assert supplies.problems == []


def test_any_online_mains_counts(tmp_path):
    """One online adapter among several means charging power is there."""
    supply(tmp_path, 'AC0', type='Mains', online=0)
    supply(tmp_path, 'AC1', type='Mains', online=1)
    assert read_power_supplies(tmp_path).mains_online is True


def test_garbage_files_give_none_and_problems(tmp_path):
    """Garbage and unreadable files become None plus a named problem, never an exception."""
    directory = supply(tmp_path, 'BAT0', type='Battery', capacity='abc', voltage_now='n/a',
                       status='Exploding', present=7, technology='Plutonium')
    (directory / 'temp').mkdir()  # reading it fails with an OSError
    battery = read_battery(directory)
    assert battery.fraction is None and battery.fraction_source is None
    assert battery.voltage_v is None and battery.temperature_c is None
    assert battery.status == STATUS_UNKNOWN
    assert battery.present is None
    assert battery.technology == sysfs.TECHNOLOGY_UNKNOWN
    text = '\n'.join(battery.problems)
    for name in ('capacity', 'voltage_now', 'status', 'present', 'technology', 'temp',
                 'charge fraction'):
        assert name in text


def test_invalid_energy_ratio_falls_back_to_capacity(tmp_path):
    """A zero energy_full is garbage: say so and use the percentage."""
    directory = supply(tmp_path, 'BAT0', type='Battery', energy_now=5_000_000, energy_full=0,
                       capacity=42)
    battery = read_battery(directory)
    assert battery.fraction == pytest.approx(0.42)
    assert battery.fraction_source == 'capacity'
    assert any('energy_full' in p for p in battery.problems)


def test_slightly_overfull_gauge_is_clamped(tmp_path):
    """Gauges report *_now a bit above *_full: that is full."""
    directory = supply(tmp_path, 'BAT0', type='Battery', charge_now=4_100_000,
                       charge_full=4_000_000)
    battery = read_battery(directory)
    assert battery.fraction == 1.0 and battery.problems == []


def test_capacity_out_of_range_is_a_problem(tmp_path):
    """A percentage above 100 is not trusted."""
    directory = supply(tmp_path, 'BAT0', type='Battery', capacity=180)
    battery = read_battery(directory)
    assert battery.fraction is None
    assert any('outside 0..100' in p for p in battery.problems)


def test_supply_without_type_is_skipped_with_a_problem(tmp_path):
    """Without a type the entry cannot be classified; it is skipped, not guessed."""
    supply(tmp_path, 'mystery', capacity=50)
    supplies = read_power_supplies(tmp_path)
    assert supplies.batteries == []
    assert any('mystery' in p and 'type' in p for p in supplies.problems)


def test_thermal_zones_filter_and_hottest(tmp_path):
    """Zones come in natural order, the filter keeps the listed types, hottest picks the max."""
    zone(tmp_path, 0, 'acpitz', 45_000)
    zone(tmp_path, 2, 'x86_pkg_temp', 71_500)
    zone(tmp_path, 10, 'iwlwifi_1', 80_000)
    zone(tmp_path, 3, 'x86_pkg_temp', 'garbage')
    everything = read_thermal_zones(tmp_path)
    assert [z.name for z in everything.zones] == ['thermal_zone0', 'thermal_zone2',
                                                  'thermal_zone3', 'thermal_zone10']
    assert hottest(everything.zones).type == 'iwlwifi_1'
    assert any('thermal_zone3' in p for p in everything.problems)

    cpu = read_thermal_zones(tmp_path, types=['x86_pkg_temp', 'acpitz'])
    assert {z.type for z in cpu.zones} == {'x86_pkg_temp', 'acpitz'}
    hot = hottest(cpu.zones)
    assert (hot.name, hot.type, hot.celsius) == ('thermal_zone2', 'x86_pkg_temp', 71.5)
    assert read_thermal_zones(tmp_path, types=['gpu']).zones == []


def test_zone_without_temp_is_listed_with_a_problem(tmp_path):
    """A zone that gives no temperature is listed but can never be the hottest."""
    zone(tmp_path, 0, 'soc', None)
    zones = read_thermal_zones(tmp_path)
    assert [z.celsius for z in zones.zones] == [None]
    assert hottest(zones.zones) is None
    assert any('no temp' in p for p in zones.problems)


def test_negative_temperatures_are_kept(tmp_path):
    """Below zero is a valid reading, not garbage."""
    zone(tmp_path, 0, 'outdoor', -12_500)
    assert hottest(read_thermal_zones(tmp_path).zones).celsius == -12.5


def test_empty_root(tmp_path):
    """A machine without batteries or zones (containers, CI) reads as empty."""
    supplies = read_power_supplies(tmp_path)
    assert (supplies.batteries, supplies.mains_online, supplies.problems) == ([], None, [])
    zones = read_thermal_zones(tmp_path)
    assert (zones.zones, zones.problems) == ([], [])
    assert hottest(zones.zones) is None


def test_codes_match_sensor_msgs():
    """The pure module mirrors the sensor_msgs constants."""
    from sensor_msgs.msg import BatteryState as b  # noqa: N813 (short, as the table reads)
    assert sysfs.STATUS_CODES == {
        'Charging': b.POWER_SUPPLY_STATUS_CHARGING,
        'Discharging': b.POWER_SUPPLY_STATUS_DISCHARGING,
        'Not charging': b.POWER_SUPPLY_STATUS_NOT_CHARGING,
        'Full': b.POWER_SUPPLY_STATUS_FULL, 'Unknown': b.POWER_SUPPLY_STATUS_UNKNOWN}
    assert sysfs.TECHNOLOGY_CODES == {
        'Unknown': b.POWER_SUPPLY_TECHNOLOGY_UNKNOWN, 'NiMH': b.POWER_SUPPLY_TECHNOLOGY_NIMH,
        'Li-ion': b.POWER_SUPPLY_TECHNOLOGY_LION, 'Li-poly': b.POWER_SUPPLY_TECHNOLOGY_LIPO,
        'LiFe': b.POWER_SUPPLY_TECHNOLOGY_LIFE, 'NiCd': b.POWER_SUPPLY_TECHNOLOGY_NICD,
        'LiMn': b.POWER_SUPPLY_TECHNOLOGY_LIMN}
