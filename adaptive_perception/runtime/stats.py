"""Frame rate, latency and CPU time per level, for diagnostics."""

import math
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


def thread_cpu_clock():
    """Return a clock of the calling thread's CPU seconds that any thread can read.

    ``time.thread_time`` only reads the calling thread; a node's level changes and
    diagnostics may run elsewhere, so this reads the thread's POSIX CPU-time clock by
    id. NaN where the platform has none (or the clock cannot be read).
    """
    import threading
    import time

    try:
        clock_id = time.pthread_getcpuclockid(threading.get_ident())
    except (AttributeError, OSError):
        return lambda: math.nan

    def read() -> float:
        try:
            return time.clock_gettime(clock_id)
        except OSError:
            return math.nan
    return read


class CpuMeter:
    """Process CPU time per second and per frame, split by the level (and knob) applied.

    What a node really spends is what the OS charged to its process
    (``time.process_time``: every thread, the middleware's included), so a knob
    that computes less shows up here and one that does not, does not. ONNX
    Runtime's share is the CPU time spent inside its sessions' run calls
    (``runtime.onnx_sessions.ort_cpu_seconds``). Counting starts at the first
    frame, so loading models does not count as work at the first level.

    A node that cannot keep up drops inputs (newest frame wins); then a cheaper
    knob processes more frames for the same CPU time and CPU s/s hides what the
    knob saves. ``cpu_demand_s_per_s`` is what the node would spend on every input
    it was offered: CPU time per processed frame x (processed + dropped) per second.
    Where nothing is dropped it equals ``cpu_s_per_s``.

    ``executor_cpu_s_per_s`` is the CPU time of the thread that built the meter,
    which in every executable (``ros.run.run_node``) is the one that spins the
    node: the rclpy executor's own cost (waking, taking messages, timers, callbacks
    that run there). It does not shrink with the level, so it shows how much of a
    node's cost no knob can save.
    """

    def __init__(self, clock=None, cpu=None, ort=None, executor=None):
        import time

        from adaptive_perception.runtime.onnx_sessions import ort_cpu_seconds
        self._clock = clock or time.monotonic
        self._cpu = cpu or time.process_time
        self._ort = ort or ort_cpu_seconds
        self._executor = executor or thread_cpu_clock()
        self._level = self._knob = None
        self._mark = None  # _now() at the start of the current interval
        self._window = None  # the same at the last sample
        self.by_level = {}  # level -> {'knob', 'wall_s', 'cpu_s', 'ort_s', 'executor_s', ...}

    _COLUMNS = ('wall_s', 'cpu_s', 'ort_s', 'executor_s', 'frames', 'dropped')

    def _now(self, frames, dropped):
        return (self._clock(), self._cpu(), self._ort(), self._executor(), frames, dropped)

    def switch(self, level: int, knob, frames: int, dropped: int = 0) -> None:
        """Note that the node now applies ``level`` with ``knob``; close the old interval."""
        self._close(frames, dropped)
        self._level, self._knob = level, str(knob)

    def _close(self, frames, dropped):
        now = self._now(frames, dropped)
        if self._mark is not None and self._level is not None:
            entry = self.by_level.get(self._level)
            if entry is None or entry['knob'] != self._knob:  # a new knob starts afresh
                entry = self.by_level[self._level] = {
                    'knob': self._knob, **dict.fromkeys(self._COLUMNS, 0)}
            for i, key in enumerate(self._COLUMNS):
                entry[key] += now[i] - self._mark[i]
        if self._mark is not None or frames > 0:
            self._mark = now

    @staticmethod
    def _demand(cpu, wall, frames, dropped):
        if not frames:
            return cpu / wall
        return cpu / frames * (frames + max(dropped, 0)) / wall

    def values(self, frames: int, dropped: int = 0) -> dict:
        """Diagnostics values: the last window's rates and the totals per level."""
        self._close(frames, dropped)
        now = self._now(frames, dropped)
        out = {'cpu_s_per_s': math.nan, 'cpu_demand_s_per_s': math.nan,
               'cpu_ms_per_frame': math.nan, 'ort_cpu_s_per_s': math.nan,
               'executor_cpu_s_per_s': math.nan}
        if self._window is not None and self._mark is not None and now[0] > self._window[0]:
            wall, cpu, ort, executor, n, lost = (
                a - b for a, b in zip(now, self._window, strict=True))
            out.update(cpu_s_per_s=cpu / wall, ort_cpu_s_per_s=ort / wall,
                       executor_cpu_s_per_s=executor / wall,
                       cpu_demand_s_per_s=self._demand(cpu, wall, n, lost),
                       cpu_ms_per_frame=1e3 * cpu / n if n else math.nan)
        if self._mark is not None:
            self._window = now
        for level, e in sorted(self.by_level.items()):
            if e['wall_s'] <= 0:
                continue
            out[f'cpu_s_per_s_level_{level}'] = e['cpu_s'] / e['wall_s']
            out[f'cpu_demand_s_per_s_level_{level}'] = self._demand(
                e['cpu_s'], e['wall_s'], e['frames'], e['dropped'])
            out[f'ort_cpu_s_per_s_level_{level}'] = e['ort_s'] / e['wall_s']
            out[f'executor_cpu_s_per_s_level_{level}'] = e['executor_s'] / e['wall_s']
            out[f'cpu_ms_per_frame_level_{level}'] = (1e3 * e['cpu_s'] / e['frames']
                                                      if e['frames'] else math.nan)
            out[f'knob_level_{level}'] = e['knob']
        return out


def level_costs(values: dict, prefix: str = 'cpu_demand_s_per_s_level_') -> dict:
    """Level -> CPU s/s (demand by default) from a node's diagnostics values."""
    out = {}
    for key, value in values.items():
        if key.startswith(prefix):
            try:
                cost = float(value)
            except (TypeError, ValueError):
                continue
            if math.isfinite(cost):
                out[int(key.rsplit('_', 1)[1])] = cost
    return out
