"""Interleaved timing for the benchmarks: the inputs through each callable in turn.

Variants compared as ratios must see the same machine: timed one after another, a
slow stretch (another process, a frequency change) would hit only some of them.
Taking turns, in an order that rotates, spreads it over all alike.

A turn may be several consecutive inputs (``frames_per_turn``): then each variant is
timed in its steady state, as a node holding one configuration runs it frame after
frame. Switching on every input instead makes each call pay for the caches the
previous variant filled, and what that costs depends on which variants are in the
rotation (AdaMTL's graphs are 4 MB each on a 1 MB L2 per core).
"""

import time
from collections.abc import Callable, Sequence
from typing import NamedTuple, TypedDict

import numpy as np


def interleaved_seconds(runs: dict[str, Callable], inputs: Sequence, repeats: int = 1,
                        warmup: int = 5, frames_per_turn: int = 1,
                        on_result: Callable | None = None,
                        before: Callable[[str], None] | None = None) -> dict[str, list[float]]:
    """Name -> seconds of each call of ``runs[name](x)``, for every x of ``inputs``.

    The first ``warmup`` inputs run once through each callable untimed. Each turn
    runs ``frames_per_turn`` consecutive inputs through one callable. ``on_result``,
    if given, gets ``(name, x, result)`` after each timed call, outside the timing;
    ``before``, if given, gets ``name`` before each call, warm-up included, outside
    the timing (a node switching its level, as it would between frames in service).
    """
    if frames_per_turn < 1:
        raise ValueError(f'frames_per_turn must be at least 1, got {frames_per_turn}')
    names = list(runs)
    for x in inputs[:warmup]:
        for name in names:
            if before is not None:
                before(name)
            runs[name](x)
    samples = {name: [] for name in names}
    turn = 0
    for _ in range(repeats):
        for first in range(0, len(inputs), frames_per_turn):
            chunk = inputs[first:first + frames_per_turn]
            for k in range(len(names)):
                name = names[(turn + k) % len(names)]
                for x in chunk:
                    if before is not None:
                        before(name)
                    start = time.perf_counter()
                    result = runs[name](x)
                    samples[name].append(time.perf_counter() - start)
                    if on_result is not None:
                        on_result(name, x, result)
            turn += 1
    return samples


class LatencyColumns(TypedDict):
    """A bench row's latency columns, as its JSON holds them."""

    latency_p50_ms: float
    latency_p95_ms: float
    latency_mean_ms: float
    frames_per_s: float
    samples: int


class Latency(NamedTuple):
    """The summary every bench reports of one variant's call times, in milliseconds."""

    p50_ms: float
    p95_ms: float
    mean_ms: float
    frames_per_s: float
    samples: int

    @classmethod
    def of_seconds(cls, seconds: Sequence[float]) -> 'Latency':
        """Summarise call times given in seconds (``interleaved_seconds``' samples)."""
        return cls.of_ms(np.asarray(seconds, dtype=float) * 1e3)

    @classmethod
    def of_ms(cls, ms: Sequence[float]) -> 'Latency':
        """Summarise call times given in milliseconds."""
        ms = np.asarray(ms, dtype=float)
        return cls(float(np.percentile(ms, 50)), float(np.percentile(ms, 95)),
                   float(ms.mean()), float(1e3 / ms.mean()), int(ms.size))

    def columns(self) -> LatencyColumns:
        """Return the row columns the benches write: ``latency_p50_ms`` ... ``samples``."""
        return {'latency_p50_ms': self.p50_ms, 'latency_p95_ms': self.p95_ms,
                'latency_mean_ms': self.mean_ms, 'frames_per_s': self.frames_per_s,
                'samples': self.samples}


def stage_timer(timings: dict) -> Callable[[str], None]:
    """Return ``lap(stage)``: it stores the ms since the previous lap (or now) in ``timings``."""
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[stage] = (now - clock) * 1e3
        clock = now
    return lap
