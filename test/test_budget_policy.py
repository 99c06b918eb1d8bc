"""Unit and property tests of the budget policy (pure, no ROS)."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptive_perception import interfaces
from adaptive_perception.budget import inputs
from adaptive_perception.budget.policy import BudgetPolicy, PolicyConfig, config_with

TEMP = '/thermal/temperature'
CFG = PolicyConfig(dwell_s=10.0, stale_timeout_s=5.0, latency_window_s=2.0)


def feed(policy, t, battery=None, temp=None, charging=False):
    """Give the policy readings at time ``t`` and return its decision."""
    if battery is not None:
        policy.battery(battery, charging, t)
    if temp is not None:
        policy.temperature(TEMP, temp, t)
    return policy.decide(t)


@pytest.mark.parametrize('change, message', [
    ({'battery_thresholds': (0.3, 0.6, 0.15)}, 'descending'),
    ({'battery_thresholds': (0.6, 0.35)}, 'needs 3 values'),
    ({'battery_thresholds': (1.2, 0.35, 0.15)}, 'between 0 and 1'),
    ({'battery_thresholds': (0.6, 0.58, 0.15)}, 'larger than the hysteresis'),
    ({'temperature_thresholds_c': (80.0, 70.0, 90.0)}, 'ascending'),
    ({'temperature_thresholds_c': (60.0, math.nan, 90.0)}, 'finite'),
    ({'stale_level': 4}, 'stale_level'),
    ({'override_level': 7}, 'override_level'),
    ({'level_names': ('a', 'a', 'b', 'c')}, 'unique'),
    ({'dwell_s': -1.0}, 'dwell_s'),
    ({'latency_recover_ratio': 1.5}, 'latency_recover_ratio'),
])
def test_inconsistent_config_is_rejected_with_reason(change, message):
    with pytest.raises(ValueError, match=message):
        config_with(CFG, **change).validate()


def test_reconfigure_rejects_and_keeps_old_config():
    policy = BudgetPolicy(CFG, 0.0)
    with pytest.raises(ValueError):
        policy.reconfigure(config_with(CFG, battery_thresholds=(0.1, 0.5, 0.9)))
    assert policy.config is CFG


def test_battery_thresholds_and_hysteresis():
    policy = BudgetPolicy(config_with(CFG, dwell_s=0.0), 0.0)
    assert feed(policy, 0, 0.9, 40).level == 0
    assert feed(policy, 1, 0.59, 40).level == 1
    assert feed(policy, 2, 0.62, 40).level == 1, 'inside the band: no release yet'
    assert feed(policy, 3, 0.64, 40).level == 0
    assert feed(policy, 4, 0.10, 40).level == 3
    decision = feed(policy, 5, 0.36, 40)
    assert decision.level == 2 and 'hysteresis band of 0.35' in decision.reason


def test_temperature_overrides_full_battery():
    policy = BudgetPolicy(CFG, 0.0)
    decision = feed(policy, 0, 1.0, 80.0)
    assert decision.level == 2 and 'temperature 80.0 C' in decision.reason
    assert decision.battery_fraction == 1.0 and decision.temperature_c == 80.0


def test_charging_lifts_battery_limit_but_not_heat():
    policy = BudgetPolicy(config_with(CFG, dwell_s=0.0), 0.0)
    assert feed(policy, 0, 0.1, 40).level == 3
    assert feed(policy, 1, 0.1, 40, charging=True).level == 0
    assert feed(policy, 2, 0.1, 70, charging=True).level == 1
    no_lift = BudgetPolicy(config_with(CFG, charging_lifts_battery_limit=False), 0.0)
    assert feed(no_lift, 0, 0.1, 40, charging=True).level == 3


def test_cheaper_is_immediate_costlier_waits_for_dwell():
    policy = BudgetPolicy(CFG, 0.0)
    feed(policy, 0, 0.9, 40)
    assert feed(policy, 1, 0.3, 40).level == 2
    assert feed(policy, 2, 0.9, 40).level == 2
    held = feed(policy, 10.9, 0.9, 40)
    assert held.level == 2 and 'dwell' in held.reason
    assert feed(policy, 11.0, 0.9, 40).level == 0


def test_stale_inputs_go_to_safe_level_and_recover():
    policy = BudgetPolicy(config_with(CFG, dwell_s=0.0), 0.0)
    assert policy.decide(4.0).level == 0, 'not stale before the timeout'
    decision = policy.decide(5.5)
    assert decision.level == CFG.stale_level and 'stale input' in decision.reason
    assert feed(policy, 6.0, 0.9, 40).level == 0
    decision = feed(policy, 12.0, temp=40)
    assert decision.level == CFG.stale_level and 'battery' in decision.reason
    not_required = BudgetPolicy(config_with(CFG, require_battery=False), 0.0)
    assert feed(not_required, 12.0, temp=40).level == 0


def test_manual_override_wins_immediately():
    policy = BudgetPolicy(config_with(CFG, override_level=3), 0.0)
    decision = feed(policy, 0, 1.0, 30)
    assert decision.level == 3 and 'override' in decision.reason
    policy.reconfigure(config_with(CFG, override_level=0))
    assert feed(policy, 1, 0.1, 30).level == 0


def test_latency_objective_spends_less_then_gives_back():
    policy = BudgetPolicy(config_with(CFG, dwell_s=0.0), 0.0)
    for t in range(0, 3):
        policy.latency('detector', 150.0, 100.0, float(t))
        decision = feed(policy, float(t), 0.9, 40)
    assert decision.level == 1 and 'latency: detector p95 150 ms' in decision.reason
    for t in range(3, 5):  # just under target: not enough to come back
        policy.latency('detector', 90.0, 100.0, float(t))
        assert feed(policy, float(t), 0.9, 40).level == 1
    for t in range(5, 9):
        policy.latency('detector', 50.0, 100.0, float(t))
        decision = feed(policy, float(t), 0.9, 40)
    assert decision.level == 0


def test_reconfigure_to_fewer_levels_clamps_level():
    policy = BudgetPolicy(CFG, 0.0)
    assert feed(policy, 0, 0.1, 40).level == 3
    fewer = PolicyConfig(level_names=('full', 'low'), battery_thresholds=(0.3,),
                         temperature_thresholds_c=(70.0,), stale_level=1, dwell_s=10.0)
    policy.reconfigure(fewer)
    decision = feed(policy, 1, 0.1, 40)
    assert decision.level == 1 and decision.num_levels == 2 and decision.level_name == 'low'


# -- properties -------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(threshold=st.sampled_from(CFG.battery_thresholds),
       offset=st.floats(-CFG.battery_hysteresis, CFG.battery_hysteresis),
       noise=st.lists(st.floats(0.0, 0.999), min_size=2, max_size=60))
def test_noise_inside_a_band_never_oscillates(threshold, offset, noise):
    """Readings spread less than the hysteresis change the level at most once."""
    width = CFG.battery_hysteresis * 0.999
    low = threshold + offset - width / 2
    policy = BudgetPolicy(config_with(CFG, dwell_s=0.0), 0.0)
    levels = [feed(policy, 0.1 * i, low + width * n, 40.0).level for i, n in enumerate(noise)]
    changes = sum(a != b for a, b in zip(levels, levels[1:], strict=False))
    assert changes <= 1, levels


events = st.lists(st.tuples(
    st.floats(0.0, 8.0),                                     # time step
    st.one_of(st.none(), st.just(math.nan), st.floats(-1.0, 120.0)),  # raw battery percentage
    st.sampled_from([interfaces.STATUS_DISCHARGING, interfaces.STATUS_CHARGING, 9]),
    st.one_of(st.none(), st.just(math.nan), st.floats(-100.0, 200.0)),  # raw temperature
    st.one_of(st.none(), st.floats(0.0, 400.0)),             # a node's p95 latency
), max_size=80)


def run_events(config, sequence):
    """Feed raw readings through the input checks into a policy; yield decisions."""
    policy = BudgetPolicy(config, 0.0)
    t = 0.0
    for step, battery, status, temp, latency in sequence:
        t += step
        if battery is not None:
            checked = inputs.check_battery(battery, status)
            if checked.value is not None:
                policy.battery(checked.value, checked.charging, t)
        if temp is not None:
            checked = inputs.check_temperature(temp, -40.0, 150.0)
            if checked.value is not None:
                policy.temperature(TEMP, checked.value, t)
        if latency is not None:
            policy.latency('node', latency, 100.0, t)
        yield t, policy.decide(t)


@settings(max_examples=200, deadline=None)
@given(sequence=events, dwell=st.floats(0.0, 20.0))
def test_never_costlier_before_dwell(sequence, dwell):
    config = config_with(CFG, dwell_s=dwell)
    level, since = 0, 0.0
    for t, decision in run_events(config, sequence):
        if decision.level < level:
            assert t - since >= dwell, f'went costlier after {t - since} s < dwell {dwell} s'
        if decision.level != level:
            level, since = decision.level, t


@settings(max_examples=200, deadline=None)
@given(sequence=events)
def test_any_input_sequence_yields_a_valid_level(sequence):
    for _, decision in run_events(CFG, sequence):
        assert 0 <= decision.level < CFG.num_levels
        assert decision.level_name == CFG.level_names[decision.level]
        assert decision.reason
