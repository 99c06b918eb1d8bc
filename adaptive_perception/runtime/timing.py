"""Interleaved timing for the benchmarks: every input through each callable in turn.

Variants compared as ratios must see the same machine: timed one after another, a
slow stretch (another process, a frequency change) would hit only some of them.
Taking turns on every input, in an order that rotates, spreads it over all alike.
"""

import time
from collections.abc import Callable, Sequence


def interleaved_seconds(runs: dict[str, Callable], inputs: Sequence, repeats: int = 1,
                        warmup: int = 5) -> dict:
    """Name -> seconds of each call of ``runs[name](x)``, for every x of ``inputs``.

    The first ``warmup`` inputs run once through each callable untimed.
    """
    names = list(runs)
    for x in inputs[:warmup]:
        for name in names:
            runs[name](x)
    samples = {name: [] for name in names}
    turn = 0
    for _ in range(repeats):
        for x in inputs:
            for k in range(len(names)):
                name = names[(turn + k) % len(names)]
                start = time.perf_counter()
                runs[name](x)
                samples[name].append(time.perf_counter() - start)
            turn += 1
    return samples
