"""The pure parts every level-following node shares: follower, profiles, stats."""

import math

import pytest

from adaptive_perception.levels import clamp_level, profile_entry, validate_level_names
from adaptive_perception.runtime.level_follower import LevelFollower
from adaptive_perception.runtime.stats import FrameStats


def test_follower_falls_back_when_manager_silent_and_returns():
    follower = LevelFollower(fallback_level=2, timeout_s=3.0)
    assert follower.decide(0.0).source == 'fallback'
    follower.on_manager_level(1, 1.0)
    assert follower.decide(3.9).level == 1
    late = follower.decide(4.1)
    assert (late.level, late.source) == (2, 'fallback') and 'silent' in late.reason
    follower.on_manager_level(0, 5.0)
    assert (follower.decide(5.0).level, follower.decide(5.0).source) == (0, 'manager')


@pytest.mark.parametrize('timeout_s, period_s', [(0.1, 0.1), (0.5, 0.1), (3.0, 0.3),
                                                 (5.0, 0.5), (3600.0, 0.5)])
def test_silence_check_period_is_a_tenth_of_the_timeout_within_bounds(timeout_s, period_s):
    from adaptive_perception.ros.level_following import check_period_s
    assert check_period_s(timeout_s) == pytest.approx(period_s)


def test_override_beats_manager_and_fallback():
    follower = LevelFollower(fallback_level=2, timeout_s=3.0, override=3)
    follower.on_manager_level(0, 0.0)
    assert follower.decide(0.0).level == 3
    assert follower.decide(100.0).source == 'override'


def test_profile_repeats_last_entry_for_deeper_levels():
    profile = ['static', 'multi:0.5']
    assert [profile_entry(profile, lv) for lv in range(4)] == [
        'static', 'multi:0.5', 'multi:0.5', 'multi:0.5']
    with pytest.raises(ValueError):
        profile_entry([], 0)
    assert clamp_level(9, 4) == 3 and clamp_level(-2, 4) == 0
    with pytest.raises(ValueError):
        validate_level_names(['a', ''])


def test_frame_stats_rate_and_percentiles():
    stats = FrameStats(window_s=10.0)
    empty = stats.snapshot(0.0)
    assert empty.rate_hz == 0.0 and math.isnan(empty.latency_p50_ms)
    for i in range(1, 101):
        stats.record(i * 0.1, latency_s=0.001 * (i % 10 + 1))
    snap = stats.snapshot(10.0)
    assert snap.frames == 100
    assert snap.rate_hz == pytest.approx(10.0, rel=0.02)
    assert snap.latency_p50_ms == pytest.approx(5.5, abs=0.6)
    assert snap.latency_p95_ms == pytest.approx(10.0, abs=0.6)
    assert stats.snapshot(30.0).rate_hz == 0.0, 'rate falls to zero when frames stop'
