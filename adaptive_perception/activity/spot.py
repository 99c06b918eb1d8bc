"""SPOT: the state prediction optimisation technique (thesis sec. 5.4.4-5.4.5).

A finite state machine over the sensor's Pareto states, ordered costliest first.
Each classification (every second) is compared with the previous one:

* C1 same activity, counter below ``stability_threshold``: stay, count it.
* C2 same activity, counter reaches the threshold: step down to the next cheaper
  state and restart the count.
* C3 a different activity: jump back to the top state, restart the count.
* C4 same activity in the cheapest state: stay there.

With ``confidence_threshold`` (SPOT with confidence), a different activity counts
as a change only when predicted with probability above the threshold; a less
confident one is ignored (no jump, no count), so one noisy window does not send the
sensor back to full power.

The execution level adds a cap: ``top`` is the costliest state allowed, so jumps
go back to ``top`` instead of state 0, and a lower cap moves the sensor down at once.
"""

from dataclasses import dataclass

C1, C2, C3, C4 = 'C1', 'C2', 'C3', 'C4'
UNCERTAIN = 'uncertain'   # a change below the confidence threshold, ignored
FIRST = 'first'           # the first prediction: nothing to compare with
UP = 'up'                 # margin SPOT: one state up, not to the top


@dataclass(frozen=True)
class Step:
    """What one prediction did: the condition that held and the state it leaves."""

    condition: str
    state: int
    counter: int


class Spot:
    """SPOT over ``num_states`` states (0 = costliest), optionally with confidence."""

    def __init__(self, num_states: int, stability_threshold: int,
                 confidence_threshold: float | None = None, top: int = 0):
        if num_states < 1:
            raise ValueError(f'SPOT needs at least one state, got {num_states}')
        self.num_states = num_states
        self.configure(stability_threshold, confidence_threshold)
        self.top = self._check_top(top)
        self.state = self.top
        self.counter = 0
        self.climbed = False      # margin SPOT: stepped up for an unclear window already
        self.last_label = None

    def configure(self, stability_threshold: int, confidence_threshold: float | None) -> None:
        """Change the thresholds; the state and count are kept."""
        threshold = stability_threshold
        if isinstance(threshold, bool) or int(threshold) != threshold or threshold < 1:
            raise ValueError(f'stability_threshold must be an integer >= 1, '
                             f'got {stability_threshold!r}')
        if confidence_threshold is not None and not 0.0 <= confidence_threshold < 1.0:
            raise ValueError(f'confidence_threshold must be in [0, 1), '
                             f'got {confidence_threshold}')
        self.stability_threshold = int(stability_threshold)
        self.confidence_threshold = confidence_threshold

    def _check_top(self, top: int) -> int:
        if not 0 <= top < self.num_states:
            raise ValueError(f'top state must be in 0..{self.num_states - 1}, got {top}')
        return int(top)

    def set_top(self, top: int) -> None:
        """Cap the costliest allowed state; a state above the new cap drops to it now."""
        self.top = self._check_top(top)
        if self.state < self.top:
            self.state, self.counter = self.top, 0

    def reset(self) -> None:
        """Forget the history (e.g. after a gap in the data): back to the top state."""
        self.state, self.counter, self.last_label, self.climbed = self.top, 0, None, False

    def update_with_margin(self, label, margin: float, margin_threshold: float) -> Step:
        """Feed one prediction with its margin under the margin SPOT rule (``MarginSpot``)."""
        if self.last_label is None:
            self.last_label = label
            return Step(FIRST, self.state, self.counter)
        sure = margin >= margin_threshold
        if label != self.last_label:
            self.last_label, self.climbed = label, False
            self.state, self.counter = max(self.top, self.state - 1), 0
            return Step(UP, self.state, self.counter)
        if not sure and not self.climbed:
            self.state, self.counter = max(self.top, self.state - 1), 0
            self.climbed = True
            return Step(UP, self.state, self.counter)
        if sure:
            self.climbed = False
        return self._stable()

    def _stable(self) -> Step:
        """Count the same label again; one state cheaper after enough of them (C1, C2, C4)."""
        if self.state == self.num_states - 1:
            return Step(C4, self.state, self.counter)
        self.counter += 1
        if self.counter < self.stability_threshold:
            return Step(C1, self.state, self.counter)
        self.state, self.counter = self.state + 1, 0
        return Step(C2, self.state, self.counter)

    def update(self, label, confidence: float = 1.0) -> Step:
        """Feed one prediction; returns the condition that held and the new state."""
        if self.last_label is None:
            self.last_label = label
            return Step(FIRST, self.state, self.counter)
        if label != self.last_label:
            if (self.confidence_threshold is not None
                    and confidence <= self.confidence_threshold):
                return Step(UNCERTAIN, self.state, self.counter)
            self.last_label = label
            self.state, self.counter = self.top, 0
            return Step(C3, self.state, self.counter)
        return self._stable()


class MarginSpot(Spot):
    """SPOT that moves only as far as the classifier's margin says.

    Why: when activities change every 10-20 s, classic SPOT spends most of its
    time climbing back down from the top state after each change, and a fixed
    mid-cost state beats it. The margin (top-1 minus top-2 probability) says how
    sure the classifier is at the current state, so:

    * a change steps one state up, not to the top: the state it was seen at
      already told it apart, and the next windows say whether more is needed;
    * the same activity with a margin below ``margin_threshold`` steps one more
      state up (the cheap state is not clear enough for what the wearer does now),
      once: if the window is still unclear one state up, more sensing is not what
      it lacks (e.g. a posture before the wearer's upright direction is known), so
      it counts towards stepping down again instead of climbing to the top;
    * the same activity with a margin at or above it counts towards stepping down
      (C1, C2; C4 in the cheapest state).

    ``margin_threshold`` 0 never steps up on the same activity: the cheapest.
    """

    def __init__(self, num_states: int, stability_threshold: int,
                 margin_threshold: float = 0.5, top: int = 0):
        super().__init__(num_states, stability_threshold, None, top)
        if not 0.0 <= margin_threshold <= 1.0:
            raise ValueError(f'margin_threshold must be in [0, 1], got {margin_threshold}')
        self.margin_threshold = margin_threshold

    def update_margin(self, label, margin: float) -> Step:
        """Feed one prediction and its margin; returns the condition and the new state."""
        return self.update_with_margin(label, margin, self.margin_threshold)
