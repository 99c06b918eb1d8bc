"""The mission objective: planner, drain estimate and the policy with a mission (pure)."""

import math
import random

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from adaptive_perception.budget import inputs
from adaptive_perception.budget.mission import (
    DrainEstimator,
    Mission,
    MissionConfig,
    _line,
    plan_mission,
    predict_end,
)
from adaptive_perception.budget.policy import BudgetPolicy, PolicyConfig, config_with

HOUR = 3600.0
RATES = [1.0 / HOUR, 0.8 / HOUR, 0.6 / HOUR, 0.45 / HOUR]  # fraction per second
WATTS = (10.0, 8.0, 6.0, 4.5)
THRESHOLDS = (0.6, 0.35, 0.15)


@settings(max_examples=50, deadline=None)
@given(st.integers(4, 60), st.floats(-1e-3, 1e-3), st.floats(0.0, 0.02), st.integers(0, 2**31))
def test_drain_line_equals_scipys_linregress(n, slope, noise, seed):
    from scipy.stats import linregress
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.uniform(0.0, 900.0, n))
    ts[-1] = ts[0] + 900.0  # never all equal
    fs = 0.9 + slope * ts + rng.normal(0.0, noise, n)
    assume(np.ptp(fs) > 0)  # the estimator never fits a flat reading (linregress: nan)
    want = linregress(ts, fs)
    slope, intercept, stderr = _line(ts, fs)
    assert (slope, intercept) == pytest.approx((want.slope, want.intercept), rel=1e-6,
                                               abs=1e-12)
    # On a noiseless line both are round-off (linregress's about 1e-11): what the estimator
    # uses is the error against its slope, so they must agree to a millionth of that.
    assert stderr == pytest.approx(want.stderr, rel=1e-6, abs=1e-6 * abs(want.slope) + 1e-12)


def mission_config(**changes):
    base = dict(require_temperature=False, dwell_s=0.0, mission_dwell_s=300.0,
                stale_timeout_s=1e6)
    base.update(changes)
    return config_with(PolicyConfig(), **base)


def run(policy, rates, until_s, dt=10.0, fraction=1.0, current=True, noise=0.0, seed=0,
        energy_wh=20.0, volts=7.4, glitch=None):
    """Run the closed loop (battery drains at ``rates[level]``); return the trace.

    ``glitch`` (t0, t1, offset): readings between t0 and t1 are off by ``offset``.
    """
    rng = random.Random(seed)
    t, trace = 0.0, []
    while t <= until_s:
        reading = min(1.0, max(0.0, fraction + rng.gauss(0.0, noise)))
        if glitch and glitch[0] <= t < glitch[1]:
            reading = min(1.0, max(0.0, reading + glitch[2]))
        if current:
            amps = -rates[policy._level] * energy_wh * HOUR / volts
            policy.battery(reading, False, t, amps, volts, energy_wh / volts)
        else:
            policy.battery(reading, False, t)
        decision = policy.decide(t)
        trace.append((t, fraction, decision))
        fraction -= rates[decision.level] * dt
        t += dt
    return trace


def changes(trace):
    return sum(1 for a, b in zip(trace, trace[1:], strict=False) if a[2].level != b[2].level)


def at(trace, t):
    return min(trace, key=lambda row: abs(row[0] - t))


def test_plan_mixes_the_two_levels_around_the_budget():
    plan = plan_mission(RATES, 1.0, 1.6 * HOUR, 0.05)
    assert plan.feasible and plan.level == 2 and plan.then_level == 3
    # 2 for s seconds then 3: 0.6 s + 0.45 (1.6 h - s) = 0.95 h
    assert plan.switch_s == pytest.approx((0.95 - 0.45 * 1.6) / (0.6 - 0.45) * HOUR, rel=1e-6)
    assert plan.end_fraction == pytest.approx(0.05, abs=1e-6)


def test_plan_counts_the_levels_battery_thresholds_will_force():
    free = plan_mission(RATES, 1.0, 1.6 * HOUR, 0.05)
    forced = plan_mission(RATES, 1.0, 1.6 * HOUR, 0.05, THRESHOLDS)
    assert forced.level < free.level, 'forced cheap levels later leave room for quality now'
    assert predict_end(RATES, 1.0, [(forced.level, forced.switch_s),
                                    (forced.then_level, 1.6 * HOUR - forced.switch_s)],
                       THRESHOLDS) == pytest.approx(0.05, abs=1e-6)


def test_short_mission_runs_full_quality():
    plan = plan_mission(RATES, 1.0, 0.5 * HOUR, 0.05)
    assert plan.level == 0 and plan.feasible and plan.end_fraction == pytest.approx(0.5)


def test_impossible_mission_runs_cheapest_level_with_error():
    policy = BudgetPolicy(mission_config(mission_duration_s=3 * HOUR,
                                         mission_prior_power_w=WATTS), 0.0)
    decision = run(policy, RATES, 60.0)[-1][2]
    assert decision.level == 3
    assert decision.mission.severity == inputs.ERROR
    assert 'cannot be met' in decision.mission.text and 'cheapest' in decision.mission.text


def test_mission_is_met_and_then_ends():
    policy = BudgetPolicy(mission_config(mission_duration_s=1.6 * HOUR,
                                         mission_prior_power_w=WATTS), 0.0)
    trace = run(policy, RATES, 1.7 * HOUR)
    end = at(trace, 1.6 * HOUR)
    assert end[1] >= 0.05 - 0.003, 'the reserve is left at the deadline'
    assert end[1] <= 0.08, 'and not much more: the plan spent what it could on quality'
    assert changes([row for row in trace if row[0] < 1.6 * HOUR]) <= 4
    last = trace[-1][2]
    assert last.mission.active is False and 'ended' in last.mission.text
    assert 'mission' not in last.demands


def test_plan_text_says_until_when_and_the_predicted_end():
    policy = BudgetPolicy(mission_config(mission_duration_s=1.6 * HOUR,
                                         mission_prior_power_w=WATTS), 0.0)
    decision = run(policy, RATES, 30.0)[-1][2]
    text = decision.mission.text
    assert text.startswith('mission: level 1 until T+') and ', then 2' in text
    assert 'predicted end of mission' in text and '5% battery' in text
    assert decision.reason.startswith('mission: level 1'), decision.reason


def test_heat_still_overrides_the_plan():
    policy = BudgetPolicy(mission_config(mission_duration_s=0.5 * HOUR,
                                         require_temperature=True), 0.0)
    policy.battery(1.0, False, 0.0, -1.0, 7.4, 2.7)
    policy.temperature('/thermal/temperature', 80.0, 0.0)
    decision = policy.decide(0.0)
    assert decision.demands['mission'] == 0 and decision.level == 2


def test_missing_current_uses_the_percentage_slope():
    policy = BudgetPolicy(mission_config(mission_duration_s=1.6 * HOUR,
                                         mission_prior_power_w=WATTS), 0.0)
    trace = run(policy, RATES, 1.6 * HOUR, current=False)
    first = trace[0][2]
    assert first.mission.level is None and 'no drain estimate yet' in first.mission.text
    assert policy.mission.estimator.source == 'slope'
    assert trace[-1][1] >= 0.05 - 0.005


def test_charging_lifts_the_mission():
    policy = BudgetPolicy(mission_config(mission_duration_s=3 * HOUR,
                                         mission_prior_power_w=WATTS), 0.0)
    policy.battery(0.5, True, 0.0, 1.0, 7.4, 2.7)
    assert policy.decide(0.0).level == 0


@pytest.mark.parametrize('readings, problem', [
    ([0.9, 0.89, 0.5, 0.49], 'jumped'),
    ([0.9, 0.89, 0.92], 'rose'),
])
def test_bad_readings_are_reported_not_learned(readings, problem):
    estimator = DrainEstimator(4)
    estimator.set_prior(dict(enumerate(WATTS)))
    estimator.alpha = RATES[0] / WATTS[0]
    for i, fraction in enumerate(readings):
        estimator.reading(100.0 * i, fraction, 0)
    assert problem in estimator.problem[1]
    assert estimator.rates()[0] == pytest.approx(RATES[0], rel=0.3)


def test_stalled_gauge_does_not_look_like_an_endless_battery():
    estimator = DrainEstimator(4)
    estimator.set_prior(dict(enumerate(WATTS)))
    estimator.alpha = RATES[0] / WATTS[0]
    for i in range(40):
        estimator.reading(60.0 * i, 0.7, 0)
    assert 'stalled' in estimator.problem[1]
    assert estimator.rates()[0] == pytest.approx(RATES[0])


def test_reading_older_than_the_last_is_ignored():
    estimator = DrainEstimator(4)
    estimator.reading(100.0, 0.9, 0)
    estimator.reading(50.0, 0.95, 0)
    assert 'older' in estimator.problem[1]


def test_unobserved_levels_borrow_the_nearest_known_one():
    estimator = DrainEstimator(3)
    estimator.observed = {1: 2e-4}
    assert estimator.rates() == [2e-4, 2e-4, 2e-4]


def test_changed_duration_restarts_the_mission_and_bad_values_are_rejected():
    policy = BudgetPolicy(mission_config(), 0.0)
    assert not policy.mission.active(0.0)
    policy.reconfigure(mission_config(mission_duration_s=600.0), now_s=100.0)
    assert policy.mission.active(100.0) and policy.mission.mission_time(160.0) == 60.0
    for bad in ({'mission_reserve': 1.5}, {'mission_prior_power_w': (1.0, 2.0)},
                {'mission_time_scale': 0.0}, {'mission_duration_s': -1.0}):
        with pytest.raises(ValueError, match='mission_'):
            mission_config(**bad).validate()


def test_time_scale_runs_the_mission_clock_faster():
    mission = Mission(4, MissionConfig(duration_s=HOUR, time_scale=240.0))
    mission.start(10.0)
    assert mission.mission_time(25.0) == pytest.approx(3600.0)
    assert not mission.active(25.0)


rates_strategy = st.lists(st.floats(0.2, 1.0), min_size=4, max_size=4).map(
    lambda r: sorted(r, reverse=True))


@settings(max_examples=40, deadline=None)
@given(rates=rates_strategy, duration_h=st.floats(0.5, 4.0), reserve=st.floats(0.0, 0.2),
       thresholds=st.sampled_from([(), THRESHOLDS]))
def test_never_runs_out_before_the_deadline_when_the_estimate_is_right(
        rates, duration_h, reserve, thresholds):
    per_s = [r / HOUR for r in rates]
    cheapest_end = predict_end(per_s, 1.0, [(3, duration_h * HOUR)], thresholds)
    config = mission_config(mission_duration_s=duration_h * HOUR, mission_reserve=reserve,
                            mission_prior_power_w=tuple(10 * r for r in rates),
                            battery_thresholds=(0.6, 0.35, 0.15) if thresholds else
                            (0.03, 0.02, 0.01), battery_hysteresis=0.0)
    trace = run(BudgetPolicy(config, 0.0), per_s, duration_h * HOUR - 1.0, dt=20.0)
    end = trace[-1][1]
    if cheapest_end >= reserve:
        assert end >= reserve - 0.004
    elif cheapest_end < reserve - 0.01:  # impossible: said so, at the cheapest level
        first = next(row[2] for row in trace if row[2].mission.level is not None)
        assert first.level == 3 and first.mission.severity == inputs.ERROR


@settings(max_examples=40, deadline=None)
@given(rates=rates_strategy, fraction=st.floats(0.05, 1.0), remaining_h=st.floats(0.1, 5.0),
       reserve=st.floats(0.0, 0.2))
def test_never_costlier_than_the_energy_allows(rates, fraction, remaining_h, reserve):
    per_s = [r / HOUR for r in rates]
    plan = plan_mission(per_s, fraction, remaining_h * HOUR, reserve)
    if plan.feasible:
        # running the chosen level first, then the cheapest, still keeps the reserve
        first = plan.switch_s if plan.then_level is not None else remaining_h * HOUR
        assert predict_end(per_s, fraction, [(plan.level, first),
                                             (3, remaining_h * HOUR - first)]) >= reserve - 0.003
        if plan.level > 0:  # and the next costlier level alone would not
            assert predict_end(per_s, fraction, [(plan.level - 1, remaining_h * HOUR)]) \
                < reserve
    else:
        assert plan.level == 3


@settings(max_examples=15, deadline=None)
@given(noise=st.floats(0.001, 0.01), seed=st.integers(0, 1000), current=st.booleans())
def test_stable_under_noisy_readings(noise, seed, current):
    policy = BudgetPolicy(mission_config(mission_duration_s=1.6 * HOUR,
                                         mission_prior_power_w=WATTS), 0.0)
    trace = run(policy, RATES, 1.6 * HOUR - 1.0, noise=noise, seed=seed, current=current)
    assert changes(trace) / 1.6 <= 12, 'at most 12 level changes per hour (the target)'
    costlier = [b[0] for a, b in zip(trace, trace[1:], strict=False) if b[2].level < a[2].level]
    assert all(t1 - t0 >= 300.0 for t0, t1 in zip(costlier, costlier[1:], strict=False)), \
        'a costlier level only after mission_dwell_s: noise cannot flip it reading by reading'
    assert trace[-1][1] >= 0.05 - 0.02
    assert not math.isnan(trace[-1][2].mission.end_fraction)


@pytest.mark.parametrize('current', [True, False])
@pytest.mark.parametrize('glitch', [(1800.0, 1810.0, -0.15), (1800.0, 2400.0, 0.0),
                                    (1800.0, 1900.0, 0.08)], ids=['jump', 'none', 'backwards'])
def test_glitches_do_not_crash_oscillate_or_empty_the_battery(current, glitch):
    policy = BudgetPolicy(mission_config(mission_duration_s=1.6 * HOUR,
                                         mission_prior_power_w=WATTS), 0.0)
    trace = run(policy, RATES, 1.6 * HOUR - 1.0, current=current, glitch=glitch)
    assert changes(trace) <= 6
    assert trace[-1][1] >= 0.05 - 0.01


def test_stalled_gauge_in_closed_loop_keeps_the_plan():
    """A gauge stuck for half an hour must not make the plan think the battery is endless."""
    policy = BudgetPolicy(mission_config(mission_duration_s=1.6 * HOUR,
                                         mission_prior_power_w=WATTS), 0.0)
    fraction, t, problems = 1.0, 0.0, []
    while t < 1.6 * HOUR - 1.0:
        frozen = 1800.0 <= t < 3600.0
        if t < 1800.0:
            stuck = fraction
        policy.battery(stuck if frozen else fraction, False, t)
        decision = policy.decide(t)
        problems.append(policy.mission.estimator.problem)
        fraction -= RATES[decision.level] * 10.0
        t += 10.0
    assert fraction >= 0.05 - 0.02
    assert any(p and 'stalled' in p[1] for p in problems), 'the frozen reading was reported'
