"""Frame rate and latency statistics over a sliding window, for diagnostics."""

from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class StatsSnapshot:
    """What a node reports about its recent frames."""

    frames: int
    rate_hz: float
    latency_p50_ms: float
    latency_p95_ms: float


class FrameStats:
    """Counts frames and keeps the latencies of the recent ones.

    Rate is computed over the last ``window_s`` seconds of frame end times, so it
    drops to zero when frames stop arriving instead of freezing at its last value.
    """

    def __init__(self, window_s: float = 10.0, max_samples: int = 500):
        self.window_s = window_s
        self.frames = 0
        self._first_end = None
        self._ends = deque(maxlen=max_samples)
        self._latencies = deque(maxlen=max_samples)

    def record(self, end_time_s: float, latency_s: float) -> None:
        """Record one processed frame that finished at ``end_time_s``."""
        self.frames += 1
        if self._first_end is None:
            self._first_end = end_time_s
        self._ends.append(end_time_s)
        self._latencies.append(latency_s)

    def snapshot(self, now_s: float) -> StatsSnapshot:
        """Summarise the window ending at ``now_s``; NaN latencies when empty."""
        in_window = sum(1 for t in self._ends if now_s - t <= self.window_s)
        span = 0.0 if self._first_end is None else min(self.window_s, now_s - self._first_end)
        rate = in_window / span if span > 0 else 0.0
        if self._latencies:
            p50, p95 = np.percentile(np.fromiter(self._latencies, float), [50, 95]) * 1e3
        else:
            p50 = p95 = float('nan')
        return StatsSnapshot(self.frames, float(rate), float(p50), float(p95))
