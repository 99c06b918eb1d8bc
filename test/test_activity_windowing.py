"""SampleWindows: windows by stamps, refused samples and skipped windows, counted."""

import math

import numpy as np
import pytest

from adaptive_perception.activity.windowing import (
    DUPLICATE,
    GAP,
    NON_FINITE,
    OUT_OF_ORDER,
    TOO_FEW,
    SampleWindows,
)

G = (0.0, 0.0, 9.8)


def feed(windows: SampleWindows, stamps) -> list:
    done = []
    for t in stamps:
        done += windows.push(float(t), G)
    return done


def test_one_full_window_per_second_of_data_time():
    done = feed(SampleWindows(), np.arange(1000) / 100 + 50.0)   # 10 s at 100 Hz
    assert [w.end for w in done] == pytest.approx(50.0 + np.arange(2, 10))
    first = done[0]
    assert len(first.t) == 200 and first.t[0] > first.end - 2.0
    assert first.rate_hz == pytest.approx(100.0)


def test_a_burst_of_late_samples_gives_the_same_windows():
    """Arrival time plays no part: only stamps do (here: all at once, 12.5 Hz)."""
    done = feed(SampleWindows(), np.arange(125) / 12.5)
    assert [w.end for w in done] == pytest.approx(np.arange(2, 10))
    assert all(len(w.t) == 25 for w in done)


def test_bad_samples_are_refused_and_counted():
    windows = SampleWindows()
    feed(windows, np.arange(100) / 50)
    assert windows.push(1.98, G) == [] and windows.push(1.5, G) == []
    assert windows.push(2.5, (math.nan, 0.0, 9.8)) == []
    assert windows.push(2.6, (0.0, math.inf, 9.8)) == []
    assert windows.refused == {DUPLICATE: 1, OUT_OF_ORDER: 1, NON_FINITE: 2}
    assert windows.accepted == 100


def test_windows_with_a_gap_or_too_few_samples_are_skipped():
    windows = SampleWindows(max_gap_s=0.5)
    stamps = np.concatenate([np.arange(0, 6, 0.02), np.arange(6.8, 12, 0.02),   # 0.8 s gap
                             np.arange(30, 36, 0.02)])                          # long silence
    done = feed(windows, stamps)
    ends = [round(w.end) for w in done]
    assert 7 not in ends and 8 not in ends          # these windows hold the 0.8 s gap
    assert {2, 3, 4, 5, 6, 9, 10, 11} <= set(ends)
    assert windows.skipped[GAP] >= 2 + 15           # the two gap windows + the silence
    assert windows.skipped[TOO_FEW] + windows.skipped[GAP] + len(done) >= 25


# -- resynchronisation ------------------------------------------------------------------

def feed_rate(windows, start, seconds, rate=50.0):
    done = []
    for t in start + np.arange(int(seconds * rate)) / rate:
        done += windows.push(float(t), (0.0, 0.0, 9.81))
    return done


def test_a_pause_longer_than_a_window_starts_fresh_windows():
    windows = SampleWindows()
    before = feed_rate(windows, 100.0, 5.0)
    after = feed_rate(windows, 115.0, 4.0)     # 10 s with nothing
    assert [w.end for w in before][-1] <= 105.0
    # the window pending at the pause is dropped, not finished with old data 10 s late
    assert after[0].end == pytest.approx(117.0)
    assert all(w.t[0] >= 115.0 for w in after)
    assert windows.resyncs == {'pause': 1}
    assert windows.events and windows.events[0][0] == 'pause'
    assert windows.skipped['gap'] >= 1


def test_a_short_step_back_is_refused_but_a_restarted_clock_resets_after_the_grace():
    windows = SampleWindows(clock_grace_s=0.5)
    feed_rate(windows, 1000.0, 4.0)
    assert windows.push(1003.0, (0.0, 0.0, 9.81)) == []          # 1 s back: out of order
    assert windows.refused['out_of_order'] == 1
    restarted = feed_rate(windows, 0.0, 5.0)                     # 1000 s behind
    assert windows.refused['clock_jump'] == 25                    # the 0.5 s grace at 50 Hz
    assert windows.resyncs == {'clock_reset': 1}
    assert restarted[0].end == pytest.approx(0.5 + 2.0)
    assert all(w.end < 10.0 for w in restarted)


def test_stragglers_far_behind_do_not_reset_the_clock():
    windows = SampleWindows(clock_grace_s=0.5)
    feed_rate(windows, 1000.0, 4.0)
    for _ in range(30):                                          # the same old stamp again
        assert windows.push(10.0, (0.0, 0.0, 9.81)) == []
    assert windows.resyncs == {}
    assert feed_rate(windows, 1004.0, 3.0)                       # the stream goes on
