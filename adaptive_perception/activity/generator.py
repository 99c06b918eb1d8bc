"""Synthetic labelled accelerometer streams: the embedded default data.

A waist-worn device (x forward, y left, z up when standing) records six
activities, the thesis's set. Each sample is specific force in m/s^2: the
gravity reaction, rotated into the device frame by the posture, plus the body's
own acceleration.

* Posture sets the gravity direction: upright for stand, walk and stairs (with a
  forward lean, larger upstairs), pelvis tilted back ~35 deg when sitting, about
  horizontal when lying (on the back or on a side).
* Gait (walk, upstairs, downstairs): a step-frequency fundamental with
  harmonics on the vertical and forward axes and a stride-frequency (half the
  step rate) sway on the lateral axis. Cadence, amplitudes and harmonic content
  differ by activity: upstairs is slower with a stronger stride component,
  downstairs faster with sharper heel impacts (stronger harmonics). Each step
  also has a short heel-strike transient (~15 ms), strongest downstairs: content
  far above 3 Hz that only a fast, short-averaging sensor sees sharply.
* Static activities: slow postural sway, breathing, occasional fidgets.
* Subjects differ in cadence, intensity, device mounting angle and sensor bias;
  cadence and intensity also drift slowly within a segment. ``Variety`` widens
  that for training and tests of robustness: the device in any orientation on
  the body (uniformly random, or one of the 24 axis-aligned ones: a phone in a
  pocket or on a belt with gravity along any axis), per-axis scale error and a
  larger bias. The device rotation is fixed for a subject's whole stream.
* Transitions: at an activity change, posture and gait blend over 1-2.5 s
  (sitting down, lying down ...). A sample's label is the activity of its segment.

The signal is an explicit function of time built from each segment's random
parameters, so any slice is deterministic by seed and independent of chunking:
``raw(a, b)`` equals the matching part of ``raw(0, T)``.
"""

import math
from dataclasses import dataclass, field, replace

import numpy as np

from adaptive_perception.activity.sensor import GRAVITY, INTERNAL_HZ

ACTIVITIES = ('walk', 'upstairs', 'downstairs', 'sit', 'stand', 'lie')
GAIT = {  # step Hz, vertical amp, harmonic ratios (x1, x2, x3), forward amp, lateral,
    # stride component, heel-strike impulse amp
    'walk': (1.85, 2.2, (1.0, 0.40, 0.15), 1.3, 0.8, 0.15, 1.5),
    'upstairs': (1.55, 2.0, (1.0, 0.25, 0.08), 1.0, 1.0, 0.45, 1.0),
    'downstairs': (2.0, 2.3, (1.0, 0.45, 0.2), 1.4, 1.0, 0.25, 7.0),
}
IMPULSE_S = 0.015   # heel-strike transient width (sd)
POSTURE_DEG = {  # activity -> (pitch mean, pitch sd): forward lean positive
    'walk': (6.0, 3.0), 'upstairs': (14.0, 4.0), 'downstairs': (-3.0, 4.0),
    'stand': (0.0, 3.0), 'sit': (-35.0, 8.0), 'lie': (-88.0, 5.0),
}
MAX_TRANSITION_S = 2.5


ORIENTATIONS = ('upright', 'random', 'axis')
IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def axis_rotations() -> list:
    """Return the 24 rotations that map the device axes onto signed axes, as 3x3 arrays."""
    import itertools
    out = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            matrix = np.zeros((3, 3))
            for row, (col, sign) in enumerate(zip(perm, signs, strict=True)):
                matrix[row, col] = sign
            if np.isclose(np.linalg.det(matrix), 1.0):
                out.append(matrix)
    return out


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Draw a rotation uniformly (Haar measure): QR of a Gaussian matrix, signs fixed."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


@dataclass(frozen=True)
class Variety:
    """How different wearers and devices are (generator options).

    ``orientation``: 'upright' (the documented convention, a few degrees of
    mounting error), 'random' (any device rotation, uniformly) or 'axis' (one of
    the 24 axis-aligned rotations, chosen by the subject's seed). ``scale_sd``:
    per-axis scale error (fraction); ``bias_sd``: per-axis offset, m/s^2.
    """

    orientation: str = 'upright'
    scale_sd: float = 0.0
    bias_sd: float = 0.1
    axis_index: int | None = None   # with 'axis': this one of the 24 for every subject

    def __post_init__(self):
        if self.orientation not in ORIENTATIONS:
            raise ValueError(f'orientation must be one of {ORIENTATIONS}, '
                             f'got {self.orientation!r}')
        if self.axis_index is not None and not 0 <= self.axis_index < 24:
            raise ValueError(f'axis_index must be in 0..23, got {self.axis_index}')


UPRIGHT = Variety()


@dataclass(frozen=True)
class Subject:
    """What stays the same for one wearer and device."""

    cadence: float         # multiplies every activity's step frequency
    intensity: float       # multiplies gait amplitudes
    mount_pitch: float     # device mounting error, degrees
    mount_roll: float
    bias: tuple            # per-axis sensor offset, m/s^2
    rotation: tuple = IDENTITY   # device orientation on the body, row-major 3x3
    scale: tuple = (1.0, 1.0, 1.0)   # per-axis scale factor of the sensor

    @classmethod
    def sample(cls, seed: int, variety: Variety = UPRIGHT) -> 'Subject':
        """Draw a subject from the population, deterministic by ``seed``.

        With the default ``variety`` the draws are those of the original generator,
        so upright subjects stay the same.
        """
        rng = np.random.default_rng([seed, 0x5B])
        subject = cls(cadence=float(rng.normal(1.0, 0.07)),
                      intensity=float(np.clip(rng.normal(1.0, 0.15), 0.6, 1.5)),
                      mount_pitch=float(rng.normal(0.0, 6.0)),
                      mount_roll=float(rng.normal(0.0, 4.0)),
                      bias=tuple(float(b) for b in rng.normal(0.0, 0.1, 3)))
        if variety == UPRIGHT:
            return subject
        extra = np.random.default_rng([seed, 0x5E])
        rotation = np.eye(3)
        if variety.orientation == 'random':
            rotation = random_rotation(extra)
        elif variety.orientation == 'axis':
            index = extra.integers(24) if variety.axis_index is None else variety.axis_index
            rotation = axis_rotations()[int(index)]
        return replace(subject, rotation=tuple(rotation.ravel().tolist()),
                       scale=tuple((1.0 + extra.normal(0.0, variety.scale_sd, 3)).tolist()),
                       bias=tuple(extra.normal(0.0, variety.bias_sd, 3).tolist()))


@dataclass(frozen=True)
class Segment:
    """One activity from ``start`` to ``end`` (s)."""

    activity: str
    start: float
    end: float


def schedule(duration_s: float, segment_s: float, seed: int,
             activities=ACTIVITIES) -> list:
    """Segments covering ``[0, duration_s)``, changing activity about every ``segment_s``.

    Lengths vary by +-30%; each next activity differs from the current one.
    """
    rng = np.random.default_rng([seed, 0x5C])
    segments, start, current = [], 0.0, None
    while start < duration_s:
        choices = [a for a in activities if a != current] or list(activities)
        current = choices[rng.integers(len(choices))]
        length = segment_s * rng.uniform(0.7, 1.3)
        end = min(duration_s, start + length)
        segments.append(Segment(current, start, end))
        start = end
    return segments


def constant(activity: str, duration_s: float) -> list:
    """One segment of ``activity`` for ``duration_s``."""
    if activity not in ACTIVITIES:
        raise ValueError(f'unknown activity {activity!r}; known: {", ".join(ACTIVITIES)}')
    return [Segment(activity, 0.0, float(duration_s))]


@dataclass
class _Params:
    """Random draws of one segment: everything its signal needs."""

    pitch: float
    roll: float
    gait: tuple | None           # (step_hz, vertical, harmonics, forward, lateral, stride)
    phases: np.ndarray           # random phases of the gait components
    drift: np.ndarray            # (k, 3): slow modulation freq, phase, depth (cadence+amp)
    sway: np.ndarray             # (3, 2): per-axis sway amplitude and frequency
    sway_phase: np.ndarray
    fidgets: np.ndarray          # (m, 5): time, width, x, y, z amplitude
    transition_s: float


@dataclass
class ActivityStream:
    """A labelled stream of true acceleration for one subject, as a function of time."""

    segments: list
    subject: Subject
    seed: int
    transitions: tuple = (1.0, MAX_TRANSITION_S)   # blend length range at a change, s
    _params: list = field(init=False, repr=False)

    def __post_init__(self):
        if not self.segments:
            raise ValueError('a stream needs at least one segment')
        self._starts = np.array([s.start for s in self.segments])
        self._params = [self._draw(i, s) for i, s in enumerate(self.segments)]

    @property
    def duration_s(self) -> float:
        """End of the last segment."""
        return self.segments[-1].end

    def _draw(self, index: int, segment: Segment) -> _Params:
        rng = np.random.default_rng([self.seed, index, 0x5D])
        subject = self.subject
        pitch_mean, pitch_sd = POSTURE_DEG[segment.activity]
        pitch = pitch_mean + rng.normal(0, pitch_sd) + subject.mount_pitch
        roll = rng.normal(0, 4.0) + subject.mount_roll
        if segment.activity == 'lie' and rng.random() < 0.4:  # on a side, not the back
            pitch = rng.normal(0, 8.0) + subject.mount_pitch
            roll = rng.choice([-1, 1]) * rng.normal(85.0, 5.0)
        gait = None
        if segment.activity in GAIT:
            step, vertical, harmonics, forward, lateral, stride, impulse = GAIT[segment.activity]
            scale = subject.intensity * rng.normal(1.0, 0.1)
            gait = (step * subject.cadence * rng.normal(1.0, 0.04), vertical * scale,
                    harmonics, forward * scale, lateral * scale, stride * scale,
                    impulse * scale)
        duration = segment.end - segment.start
        n_fidgets = rng.poisson(duration / 20.0) if segment.activity in ('sit', 'stand',
                                                                          'lie') else 0
        fidgets = np.column_stack([
            segment.start + rng.uniform(0, duration, n_fidgets),
            rng.uniform(0.2, 0.8, n_fidgets),
            rng.normal(0, 1.0, (n_fidgets, 3))]) if n_fidgets else np.zeros((0, 5))
        return _Params(
            pitch=math.radians(pitch), roll=math.radians(roll), gait=gait,
            phases=rng.uniform(0, 2 * math.pi, 8),
            drift=np.column_stack([rng.uniform(0.02, 0.15, 3), rng.uniform(0, 2 * math.pi, 3),
                                   rng.uniform(0.01, 0.04, 3)]),
            sway=np.column_stack([rng.uniform(0.03, 0.12, 3), rng.uniform(0.1, 0.5, 3)]),
            sway_phase=rng.uniform(0, 2 * math.pi, 3),
            fidgets=fidgets,
            transition_s=float(rng.uniform(*self.transitions)))

    # -- the signal ----------------------------------------------------------------
    def _gravity(self, pitch, roll) -> np.ndarray:
        return GRAVITY * np.stack([np.sin(pitch), np.cos(pitch) * np.sin(roll),
                                   np.cos(pitch) * np.cos(roll)], axis=-1)

    def _motion(self, p: _Params, t: np.ndarray) -> np.ndarray:
        """Body acceleration of one segment's activity (no gravity), (n, 3)."""
        out = np.zeros((len(t), 3))
        for axis in range(3):  # slow postural sway, every activity
            amplitude, freq = p.sway[axis]
            out[:, axis] += amplitude * np.sin(2 * math.pi * freq * t + p.sway_phase[axis])
        near = p.fidgets[(p.fidgets[:, 0] > t.min() - 2.0) & (p.fidgets[:, 0] < t.max() + 2.0)]
        for time, width, *amplitude in near:
            bump = np.exp(-0.5 * ((t - time) / (width / 3)) ** 2)
            out += bump[:, None] * np.asarray(amplitude)[None, :]
        if p.gait is None:
            return out
        step_hz, vertical, harmonics, forward, lateral, stride, impulse = p.gait
        freq, phase, depth = p.drift.T
        # cadence drifts slowly: the phase integrates a small sinusoidal modulation
        wobble = depth[0] * step_hz / freq[0] * np.sin(2 * math.pi * freq[0] * t + phase[0])
        step_phase = 2 * math.pi * step_hz * t + wobble
        gain = 1.0 + 4 * depth[1] * np.sin(2 * math.pi * freq[1] * t + phase[1])
        ph = p.phases
        for k, ratio in enumerate(harmonics, start=1):
            out[:, 2] += gain * vertical * ratio * np.cos(k * step_phase + ph[k])
        out[:, 2] += gain * stride * vertical * np.cos(0.5 * step_phase + ph[4])
        out[:, 0] += gain * forward * (np.cos(step_phase + ph[5])
                                       + 0.3 * harmonics[1] * np.cos(2 * step_phase + ph[6]))
        out[:, 1] += gain * lateral * np.cos(0.5 * step_phase + ph[7])
        # heel strikes: a short transient once per step, mostly vertical
        offset = np.angle(np.exp(1j * (step_phase - ph[0])))  # wrapped to [-pi, pi)
        strike = impulse * np.exp(-0.5 * (offset / (2 * math.pi * step_hz * IMPULSE_S)) ** 2)
        out[:, 2] += gain * strike
        out[:, 0] -= 0.4 * gain * strike
        return out

    def _segment_signal(self, index: int, t: np.ndarray) -> np.ndarray:
        p = self._params[index]
        pitch = np.full(len(t), p.pitch)
        roll = np.full(len(t), p.roll)
        motion = self._motion(p, t)
        if index > 0:  # blend in from the previous activity
            prev = self._params[index - 1]
            w = np.clip((t - self.segments[index].start) / p.transition_s, 0.0, 1.0)
            w = w * w * (3 - 2 * w)  # smoothstep
            blending = w < 1.0
            if blending.any():
                tb, wb = t[blending], w[blending]
                pitch[blending] = (1 - wb) * prev.pitch + wb * p.pitch
                roll[blending] = (1 - wb) * prev.roll + wb * p.roll
                motion[blending] = ((1 - wb)[:, None] * self._motion(prev, tb)
                                    + wb[:, None] * motion[blending])
        body = self._gravity(pitch, roll) + motion
        if self.subject.rotation != IDENTITY:
            body = body @ np.asarray(self.subject.rotation).reshape(3, 3).T
        return body * np.asarray(self.subject.scale) + np.asarray(self.subject.bias)

    def signal(self, t: np.ndarray) -> tuple:
        """Return the true acceleration (n, 3) and label index (n,) at times ``t`` (s)."""
        t = np.asarray(t, dtype=np.float64)
        index = np.clip(np.searchsorted(self._starts, t, side='right') - 1, 0,
                        len(self.segments) - 1)
        acc = np.empty((len(t), 3))
        for i in np.unique(index):
            mask = index == i
            acc[mask] = self._segment_signal(int(i), t[mask])
        labels = np.array([ACTIVITIES.index(s.activity) for s in self.segments])[index]
        return acc, labels

    def raw(self, start_s: float, count: int) -> tuple:
        """``count`` samples at ``INTERNAL_HZ`` from ``start_s``: (t, acc, label index)."""
        first = round(start_s * INTERNAL_HZ)
        t = (first + np.arange(count)) / INTERNAL_HZ
        acc, labels = self.signal(t)
        return t, acc, labels

    def label_at(self, t: np.ndarray) -> np.ndarray:
        """Label index of the segment holding each time."""
        index = np.clip(np.searchsorted(self._starts, np.asarray(t), side='right') - 1, 0,
                        len(self.segments) - 1)
        return np.array([ACTIVITIES.index(s.activity) for s in self.segments])[index]
