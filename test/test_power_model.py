"""The simulated battery and thermal model: energy bookkeeping and RC physics."""

import math
import re
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adaptive_perception.interfaces import STATUS_CHARGING, STATUS_DISCHARGING, STATUS_FULL
from adaptive_perception.power.model import PowerConfig, PowerModel

CONFIG = PowerConfig(capacity_wh=20.0, base_power_w=2.0, level_power_w=(7.0, 4.0, 2.0, 1.0),
                     ambient_c=25.0, thermal_resistance_c_per_w=5.0,
                     thermal_capacitance_j_per_c=60.0, charge_power_w=15.0, voltage_v=7.4)
TAU_S = 5.0 * 60.0


def test_fraction_drops_by_energy_over_capacity():
    """Drawing P watts for dt seconds removes P*dt/3600 Wh of the capacity."""
    model = PowerModel(CONFIG)
    model.step(360.0, load_power_w=3.0)  # 5 W for 0.1 h = 0.5 Wh of 20 Wh
    assert model.fraction == pytest.approx(1.0 - 0.5 / 20.0)
    assert model.power_w == pytest.approx(5.0)
    assert model.sim_time_s == pytest.approx(360.0)
    assert model.battery_power_w == pytest.approx(-5.0)
    assert model.status == STATUS_DISCHARGING


def test_initial_fraction_and_capacity_change_keeps_the_fraction():
    """A new capacity set at run time keeps the charge fraction, not the energy."""
    model = PowerModel(replace(CONFIG, initial_fraction=0.5))
    assert model.fraction == 0.5
    model.config = replace(CONFIG, capacity_wh=40.0)
    model.step(360.0, load_power_w=3.0)
    assert model.fraction == pytest.approx(0.5 - 0.5 / 40.0)


def test_thermal_steady_state_is_ambient_plus_power_times_resistance():
    """After many time constants the device sits at T_amb + P R."""
    model = PowerModel(CONFIG)
    model.step(50 * TAU_S, load_power_w=4.0)
    assert model.temperature_c == pytest.approx(25.0 + 6.0 * 5.0)
    assert CONFIG.steady_state_c(4.0) == pytest.approx(55.0)


def test_one_time_constant_closes_63_percent_of_the_gap():
    """The exact first-order response: 1 - 1/e of the way after R*C seconds."""
    model = PowerModel(CONFIG)
    model.step(TAU_S, load_power_w=0.0)
    rise = 2.0 * 5.0
    assert model.temperature_c == pytest.approx(25.0 + rise * (1 - math.exp(-1)))


def test_huge_steps_are_stable_and_steps_compose():
    """Big dt (high time scale) converges without overshoot; two half steps equal one."""
    model = PowerModel(CONFIG)
    model.step(1e12, load_power_w=7.0)
    assert model.temperature_c == pytest.approx(70.0)
    model.step(1e12, load_power_w=0.0)
    assert model.temperature_c == pytest.approx(35.0)

    one, two = PowerModel(CONFIG), PowerModel(CONFIG)
    one.step(200.0, 7.0)
    two.step(100.0, 7.0)
    two.step(100.0, 7.0)
    assert one.temperature_c == pytest.approx(two.temperature_c)
    assert one.fraction == pytest.approx(two.fraction)


def test_frugal_levels_drain_slower_and_run_cooler():
    """Each higher level draws less, so it drains slower and settles cooler."""
    fractions, temperatures = [], []
    for level in range(4):
        model = PowerModel(CONFIG)
        model.step(1800.0, CONFIG.level_power(level))
        fractions.append(model.fraction)
        temperatures.append(model.temperature_c)
    assert fractions == sorted(fractions) and len(set(fractions)) == 4
    assert temperatures == sorted(temperatures, reverse=True)


def test_short_profile_repeats_its_last_entry():
    """A profile shorter than the manager's levels keeps its last setting."""
    config = replace(CONFIG, level_power_w=(5.0, 1.0))
    assert [config.level_power(level) for level in range(4)] == [5.0, 1.0, 1.0, 1.0]


def test_default_levels_straddle_the_default_thermal_thresholds():
    """Level 0 heats past the manager's first threshold (65 C); level 2 settles below 60 C."""
    config = PowerConfig()
    assert config.steady_state_c(config.level_power(0)) > 65.0
    assert config.steady_state_c(config.level_power(2)) < 60.0


def test_charging_raises_the_fraction_and_clamps_at_full():
    """A charger stronger than the draw fills the battery, then it reads FULL."""
    model = PowerModel(replace(CONFIG, initial_fraction=0.5, charging=True))
    model.step(360.0, load_power_w=3.0)  # +15 - 5 W for 0.1 h = +1 Wh
    assert model.fraction == pytest.approx(0.5 + 1.0 / 20.0)
    assert model.status == STATUS_CHARGING
    assert model.battery_power_w == pytest.approx(10.0)
    model.step(1e6, load_power_w=3.0)
    assert model.fraction == 1.0
    assert model.status == STATUS_FULL
    assert model.battery_power_w == 0.0


def test_charger_weaker_than_the_draw_still_discharges():
    """Plugged in but drawing more than the charger gives: the battery still drains."""
    model = PowerModel(replace(CONFIG, charging=True, charge_power_w=3.0))
    model.step(360.0, load_power_w=7.0)
    assert model.fraction == pytest.approx(1.0 - 0.6 / 20.0)
    assert model.status == STATUS_DISCHARGING


def test_empty_battery_clamps_at_zero():
    """The fraction never goes negative and an empty battery delivers nothing."""
    model = PowerModel(replace(CONFIG, initial_fraction=0.01))
    model.step(1e6, load_power_w=7.0)
    assert model.fraction == 0.0
    assert model.battery_power_w == 0.0


@pytest.mark.parametrize('change, words', [
    ({'capacity_wh': 0.0}, 'capacity_wh must be > 0'),
    ({'capacity_wh': -1.0}, 'capacity_wh must be > 0'),
    ({'capacity_wh': math.nan}, 'capacity_wh'),
    ({'thermal_resistance_c_per_w': 0.0}, 'thermal_resistance_c_per_w'),
    ({'thermal_capacitance_j_per_c': math.inf}, 'thermal_capacitance_j_per_c'),
    ({'voltage_v': 0.0}, 'voltage_v'),
    ({'base_power_w': -0.5}, 'base_power_w must be >= 0'),
    ({'charge_power_w': -1.0}, 'charge_power_w'),
    ({'initial_fraction': 1.5}, 'initial_fraction must be within 0..1'),
    ({'ambient_c': -300.0}, 'ambient_c'),
    ({'level_power_w': ()}, 'level_power_w needs at least one entry'),
    ({'level_power_w': (3.0, -1.0)}, 'level_power_w[1] must be >= 0'),
    ({'capacity_wh': 'big'}, 'capacity_wh must be a number'),
])
def test_validate_rejects_with_a_reason(change, words):
    """Nonsense configs are refused with a message that names the value."""
    config = replace(CONFIG, **change)
    with pytest.raises(ValueError, match=re.escape(words)):
        config.validate()
    with pytest.raises(ValueError):
        PowerModel(config)


def test_defaults_are_valid_and_negative_steps_are_refused():
    """The defaults pass validation; time never runs backwards."""
    PowerConfig().validate()
    with pytest.raises(ValueError, match='dt_s'):
        PowerModel(CONFIG).step(-1.0, 0.0)


@given(st.lists(st.tuples(st.floats(0.0, 1e7), st.floats(0.0, 20.0), st.booleans()),
                max_size=30))
def test_fraction_and_temperature_stay_in_bounds(steps):
    """Whatever the steps, loads and plugging: fraction in 0..1, heat within the RC bounds."""
    model = PowerModel(replace(CONFIG, initial_fraction=0.5))
    hottest = CONFIG.ambient_c + (CONFIG.base_power_w + 20.0) * 5.0
    for dt, load, charging in steps:
        model.config = replace(CONFIG, charging=charging)
        model.step(dt, load)
        assert 0.0 <= model.fraction <= 1.0
        assert CONFIG.ambient_c - 1e-9 <= model.temperature_c <= hottest + 1e-9
