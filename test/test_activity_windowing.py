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
