"""Interleaved timing: every input through each callable, in a rotating order."""

import pytest

from adaptive_perception.runtime.timing import interleaved_seconds


def test_each_callable_times_every_input_and_the_order_rotates():
    calls = []
    runs = {name: (lambda x, name=name: calls.append((name, x))) for name in 'abc'}
    samples = interleaved_seconds(runs, [0, 1, 2], repeats=2, warmup=1)
    assert calls[:3] == [('a', 0), ('b', 0), ('c', 0)]  # warm-up, untimed
    timed = calls[3:]
    assert [name for name, _ in timed[:9]] == list('abc' 'bca' 'cab')
    assert sorted(timed) == sorted((n, x) for n in 'abc' for x in [0, 1, 2] for _ in range(2))
    assert {name: len(s) for name, s in samples.items()} == {'a': 6, 'b': 6, 'c': 6}
    assert all(t >= 0 for s in samples.values() for t in s)


def test_a_turn_of_several_frames_keeps_one_callable_on_consecutive_inputs():
    calls = []
    runs = {name: (lambda x, name=name: calls.append((name, x))) for name in 'ab'}
    samples = interleaved_seconds(runs, [0, 1, 2, 3, 4], warmup=0, frames_per_turn=2)
    assert calls == [('a', 0), ('a', 1), ('b', 0), ('b', 1),
                     ('b', 2), ('b', 3), ('a', 2), ('a', 3),
                     ('a', 4), ('b', 4)]
    assert {name: len(s) for name, s in samples.items()} == {'a': 5, 'b': 5}


def test_a_turn_needs_a_frame():
    with pytest.raises(ValueError, match='frames_per_turn'):
        interleaved_seconds({'a': lambda x: x}, [0], frames_per_turn=0)


def test_results_go_to_on_result_after_each_timed_call():
    seen = []
    interleaved_seconds({'double': lambda x: 2 * x}, [1, 2, 3], warmup=1,
                        on_result=lambda name, x, result: seen.append((name, x, result)))
    assert seen == [('double', 1, 2), ('double', 2, 4), ('double', 3, 6)]  # not the warm-up


def test_before_runs_ahead_of_every_call_and_outside_the_timing():
    import time

    calls = []
    samples = interleaved_seconds(
        {name: (lambda x, name=name: calls.append((name, x))) for name in 'ab'}, [0, 1],
        warmup=1, before=lambda name: (calls.append(('switch', name)), time.sleep(0.05)))
    assert calls[:4] == [('switch', 'a'), ('a', 0), ('switch', 'b'), ('b', 0)]  # warm-up too
    assert calls[4:] == [('switch', 'a'), ('a', 0), ('switch', 'b'), ('b', 0),
                         ('switch', 'b'), ('b', 1), ('switch', 'a'), ('a', 1)]
    assert max(t for s in samples.values() for t in s) < 0.05  # the 50 ms switch is not in it


def test_latency_summary_is_the_same_from_seconds_and_milliseconds():
    from adaptive_perception.runtime.timing import Latency

    summary = Latency.of_seconds([0.001, 0.002, 0.003, 0.004])
    assert summary == Latency.of_ms([1.0, 2.0, 3.0, 4.0])
    assert summary.p50_ms == pytest.approx(2.5)
    assert summary.p95_ms == pytest.approx(3.85)
    assert summary.frames_per_s == pytest.approx(400.0)
    assert summary.columns() == {'latency_p50_ms': summary.p50_ms,
                                 'latency_p95_ms': summary.p95_ms,
                                 'latency_mean_ms': pytest.approx(2.5),
                                 'frames_per_s': summary.frames_per_s, 'samples': 4}
