"""Cutting a live sample stream into classification windows, by the samples' stamps.

A window is the last ``WINDOW_S`` of data, every ``HOP_S`` of *data time* (the
stamps, not the arrival time): a burst of late messages still gives windows at
the right instants. Samples that cannot be used are refused and counted, never
raised: non-finite values, a stamp equal to the last one (duplicate) or before it
(out of order). A window with a gap longer than ``max_gap_s`` or fewer than
``MIN_SAMPLES`` samples is skipped and counted rather than classified, because its
features would describe the gap, not the activity.

Resynchronisation (real drivers pause, restart and reset their clocks):

* A pause longer than a window (the next stamp more than ``WINDOW_S`` after the
  last) starts fresh windows from the new sample: the window that was being
  filled before the pause is dropped, not finished seconds late with old data.
* A stamp far behind the last one (more than ``WINDOW_S``: a restarted driver
  whose clock began again) is refused for a grace period; if the stamps keep
  coming from that new clock, increasing, for ``clock_grace_s`` of their own
  time, the buffer is reset and the stream continues on the new clock instead
  of refusing every sample forever. A few late stragglers are only refused.

Both are counted in ``resyncs`` and told to the caller through ``events``.
"""

from collections import Counter, deque
from dataclasses import dataclass

import numpy as np

from adaptive_perception.activity.features import HOP_S, MIN_SAMPLES, WINDOW_S

NON_FINITE = 'non_finite'
DUPLICATE = 'duplicate_stamp'
OUT_OF_ORDER = 'out_of_order'
GAP = 'gap'
TOO_FEW = 'too_few_samples'
CLOCK_JUMP = 'clock_jump'       # refused while deciding whether the clock restarted
PAUSE = 'pause'                 # resync reasons
CLOCK_RESET = 'clock_reset'


@dataclass(frozen=True)
class Window:
    """One window ready to classify: ``(end - WINDOW_S, end]``."""

    end: float
    t: np.ndarray
    acc: np.ndarray

    @property
    def rate_hz(self) -> float:
        """Mean sample rate measured from the stamps."""
        span = self.t[-1] - self.t[0]
        return (len(self.t) - 1) / span if span > 0 else float('nan')


class SampleWindows:
    """Accepts samples one at a time; hands out every window they complete."""

    def __init__(self, max_gap_s: float = 0.5, clock_grace_s: float = 1.0):
        self.max_gap_s = max_gap_s
        self.clock_grace_s = clock_grace_s
        self.refused = Counter()     # reason -> samples refused
        self.skipped = Counter()     # reason -> windows not classified
        self.resyncs = Counter()     # reason -> fresh starts
        self.events = []             # (reason, message) of resyncs, for the caller to report
        self.accepted = 0
        self._samples = deque()
        self._last_t = None
        self._next_end = None
        self._behind = None          # (first, last) stamp of a run on a clock behind ours

    def reset(self) -> None:
        """Drop the buffered samples (the counters stay)."""
        self._samples.clear()
        self._last_t = self._next_end = self._behind = None

    def _resync(self, reason: str, message: str) -> None:
        self.resyncs[reason] += 1
        self.events.append((reason, message))
        self.reset()

    def _far_behind(self, t: float) -> bool:
        """Track a run of stamps far behind ours; True once it has lasted the grace period."""
        first, last = self._behind or (t, None)
        if last is not None and t <= last:     # not a clock running on: start over
            first = t
        self._behind = (first, t)
        return t - first >= self.clock_grace_s

    def push(self, t: float, acc) -> list:
        """Add one sample (stamp in s, 3 values); return the windows it completed."""
        acc = np.asarray(acc, dtype=np.float64)
        if not (np.isfinite(t) and np.all(np.isfinite(acc))):
            self.refused[NON_FINITE] += 1
            return []
        if self._last_t is not None and t < self._last_t - WINDOW_S:
            if not self._far_behind(t):
                self.refused[CLOCK_JUMP] += 1
                return []
            self._resync(CLOCK_RESET, f'stamps {self._last_t - t:.3f} s behind the last one '
                         f'for {self.clock_grace_s:g} s: the driver clock restarted, '
                         f'fresh windows from stamp {t:.3f}')
        elif self._last_t is not None and t <= self._last_t:
            self.refused[DUPLICATE if t == self._last_t else OUT_OF_ORDER] += 1
            return []
        elif self._last_t is not None and t - self._last_t > WINDOW_S:
            missed = int(max(0.0, t - self._next_end) // HOP_S) + 1
            self.skipped[GAP] += missed
            self._resync(PAUSE, f'no samples for {t - self._last_t:.3f} s (longer than a '
                         f'{WINDOW_S:g} s window): {missed} window(s) dropped, fresh windows '
                         f'from stamp {t:.3f}')
        self._behind = None
        done = []
        if self._next_end is None:
            self._next_end = t + WINDOW_S
        while t > self._next_end:   # this sample is past the window's end: it is complete
            window = self._cut(self._next_end)
            if window is not None:
                done.append(window)
            self._next_end += HOP_S
            if t - self._next_end > WINDOW_S:   # long silence: jump, counting what is lost
                missed = int((t - self._next_end) // HOP_S)
                self.skipped[GAP] += missed
                self._next_end += missed * HOP_S
        self._samples.append((t, acc))
        self._last_t = t
        self.accepted += 1
        while self._samples and self._samples[0][0] <= self._next_end - WINDOW_S - HOP_S:
            self._samples.popleft()
        return done

    def _cut(self, end: float) -> Window | None:
        inside = [(t, a) for t, a in self._samples if end - WINDOW_S < t <= end]
        if len(inside) < MIN_SAMPLES:
            self.skipped[TOO_FEW] += 1
            return None
        t = np.array([s[0] for s in inside])
        edges = np.concatenate([[end - WINDOW_S], t, [end]])
        if np.diff(edges).max() > self.max_gap_s:
            self.skipped[GAP] += 1
            return None
        return Window(end, t, np.stack([s[1] for s in inside]))
