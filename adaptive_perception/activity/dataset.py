"""Labelled feature windows from synthetic streams and from user recordings.

Synthetic: every subject walks through a random schedule of the six activities;
the stream is emulated at a sensor configuration and cut into 2 s windows every
1 s. A window's label is the activity at its centre (the majority, since
segments are longer than a window). Training and validation use disjoint
subjects, so validation measures how the classifier does on a new wearer.

Training also uses *switching* windows, whose two seconds come from two sensor
states, because that is what the recognizer sees right after SPOT changes state.

Recordings (``recordings.py``) are used at each requested configuration their
rate allows: a configuration at about the recording's rate is the recording as
it is, a slower one is decimated with the sensor model's noise for its averaging
window added (what a recording can show of a cheaper state), a faster one cannot
be made and is left out (the callers say so).
"""

from dataclasses import dataclass

import numpy as np

from adaptive_perception.activity.features import (
    FEATURE_SIZE,
    HOP_S,
    MIN_SAMPLES,
    WINDOW_S,
    UprightReference,
    stream_features,
    window_ends,
)
from adaptive_perception.activity.generator import (
    ACTIVITIES,
    UPRIGHT,
    ActivityStream,
    Subject,
    Variety,
    schedule,
)
from adaptive_perception.activity.sensor import (
    DEFAULT_MODEL,
    INTERNAL_HZ,
    SensorConfig,
    SensorModel,
    emulate,
)

TRAIN_SUBJECTS = tuple(range(0, 24))
VAL_SUBJECTS = tuple(range(1000, 1012))
SEGMENT_S = 30.0  # about how long each synthetic activity lasts
# Training wearers: every other one with the device in a random orientation, some
# scale error and more bias (robust to how the device is worn); the rest upright,
# so the model also learns the documented convention for the start of a stream.
ROBUST = Variety('random', scale_sd=0.03, bias_sd=0.2)


def training_variety(subject: int) -> Variety:
    """Return a training subject's variety (half random orientation, half upright)."""
    return ROBUST if subject % 2 == 0 else UPRIGHT
CHUNK_S = 300.0   # emulate long streams in pieces of this length (bounded memory)


@dataclass
class Windows:
    """Feature rows and their labels (index into ``class_names``)."""

    features: np.ndarray
    labels: np.ndarray
    class_names: tuple = ACTIVITIES

    @classmethod
    def concat(cls, parts) -> 'Windows':
        """Join parts that share class names."""
        parts = list(parts)
        names = parts[0].class_names if parts else ACTIVITIES
        if any(p.class_names != names for p in parts):
            raise ValueError('cannot join windows with different class names')
        if not parts:
            return cls(np.zeros((0, FEATURE_SIZE), np.float32), np.zeros(0, np.int64))
        return cls(np.concatenate([p.features for p in parts]),
                   np.concatenate([p.labels for p in parts]), names)


def emulate_states(stream: ActivityStream, states, rng: np.random.Generator,
                   model: SensorModel = DEFAULT_MODEL) -> list:
    """Sensor output (t, acc) of the whole stream at every state, from one true signal.

    The stream is emulated in CHUNK_S pieces, so memory stays bounded for hours of data.
    """
    outputs = [([], []) for _ in states]
    margin = max(c.filter_window for c in states) + 2
    for a in np.arange(0.0, stream.duration_s, CHUNK_S):
        b = min(a + CHUNK_S, stream.duration_s)
        t0 = (np.floor(a * INTERNAL_HZ) - margin) / INTERNAL_HZ
        count = int(np.ceil((b - t0) * INTERNAL_HZ)) + 2
        _, raw, _ = stream.raw(t0, count)
        for (times, readings), config in zip(outputs, states, strict=True):
            t, acc = emulate(t0, raw, config, a, b, rng, model)
            times.append(t)
            readings.append(acc)
    return [(np.concatenate(t), np.concatenate(a)) for t, a in outputs]


def switched_window(outputs: list, end: float, first: int, second: int) -> tuple:
    """Return the samples (t, acc) of the window ending at ``end``, across a state change.

    Its first second comes from state ``first``'s output, its second from state
    ``second``'s (``outputs`` as ``emulate_states`` returns them): what the
    recognizer sees when the state changed in between.
    """
    times, readings = [], []
    for start, state in ((end - 2 * HOP_S, first), (end - HOP_S, second)):
        t, acc = outputs[state]
        lo, hi = np.searchsorted(t, [start, start + HOP_S], side='right')
        times.append(t[lo:hi])
        readings.append(acc[lo:hi])
    return np.concatenate(times), np.concatenate(readings)


def switching_windows(stream: ActivityStream, states, rng: np.random.Generator,
                      model: SensorModel = DEFAULT_MODEL) -> Windows:
    """Windows whose two seconds come from two random states, as after a SPOT switch.

    When the controller changes state, the next window holds one second at the old
    configuration and one at the new; a classifier that has never seen such a
    window may call it a new activity, and SPOT would jump back to the top state
    because of its own switch.
    """
    outputs = emulate_states(stream, states, rng, model)
    ends = window_ends(0.0, stream.duration_s)
    rows, kept = [], []
    reference = UprightReference()
    for end in ends:
        t, acc = switched_window(outputs, end, *rng.integers(len(states), size=2))
        if len(t) >= MIN_SAMPLES:
            rows.append(reference(t, acc))
            kept.append(end)
    labels = stream.label_at(np.array(kept) - WINDOW_S / 2)
    return Windows(np.stack(rows), labels.astype(np.int64))


def subject_stream(subject: int, minutes: float, segment_s: float, seed: int,
                   variety: Variety = UPRIGHT) -> ActivityStream:
    """Build one subject's synthetic stream: a schedule of activities, deterministic by seed."""
    stream_seed = seed * 100_003 + subject
    return ActivityStream(schedule(minutes * 60.0, segment_s, stream_seed),
                          Subject.sample(subject, variety), stream_seed)


def stream_windows(stream: ActivityStream, config: SensorConfig, rng: np.random.Generator,
                   model: SensorModel = DEFAULT_MODEL) -> Windows:
    """All full windows of ``stream`` at ``config``, labelled by their centre."""
    [(t, acc)] = emulate_states(stream, [config], rng, model)
    ends = window_ends(0.0, stream.duration_s)
    features, kept = stream_features(t, acc, ends)
    labels = stream.label_at(ends[kept] - WINDOW_S / 2)
    return Windows(features, labels.astype(np.int64))


def synthetic_windows(config: SensorConfig, subjects, minutes: float = 8.0,
                      segment_s: float = SEGMENT_S, seed: int = 0,
                      model: SensorModel = DEFAULT_MODEL, variety=UPRIGHT) -> Windows:
    """Windows of every subject's stream at ``config``; deterministic by seed.

    ``variety``: a ``Variety`` for every subject, or a function subject -> Variety.
    """
    parts = []
    for subject in subjects:
        rng = np.random.default_rng([seed, subject, int(config.sampling_hz * 100),
                                     config.averaging_window])
        chosen = variety(subject) if callable(variety) else variety
        parts.append(stream_windows(subject_stream(subject, minutes, segment_s, seed, chosen),
                                    config, rng, model))
    return Windows.concat(parts)


RATE_TOLERANCE = 0.05   # a recording this close to a state's rate is that state's data


def config_allowed(config: SensorConfig, rate_hz: float) -> bool:
    """Say whether a recording at ``rate_hz`` can give ``config`` (no faster than it)."""
    return config.sampling_hz <= rate_hz * (1 + RATE_TOLERANCE)


def recording_versions(recording, configs, seed: int = 0,
                       model: SensorModel = DEFAULT_MODEL) -> list:
    """(name, t, acc, sample indices) of a recording at its own rate and at each config.

    A config at about the recording's rate is the recording itself; a slower one
    is decimated (nearest earlier sample on the config's grid) with the sensor
    model's noise for its averaging window added; a faster one is not made (the
    caller says so, see ``config_allowed``).
    """
    rng = np.random.default_rng(seed)
    rate = recording.rate_hz
    everything = np.arange(len(recording.t))
    versions = []
    for config in configs:
        if not config_allowed(config, rate):
            continue
        if config.sampling_hz >= rate * (1 - RATE_TOLERANCE):
            versions.append((config.name, recording.t, recording.acc, everything))
            continue
        grid = np.arange(np.ceil(recording.t[0] * config.sampling_hz),
                         np.floor(recording.t[-1] * config.sampling_hz) + 1) / config.sampling_hz
        nearest = np.unique(np.clip(np.searchsorted(recording.t, grid, side='right') - 1, 0,
                                    len(recording.t) - 1))
        noisy = recording.acc[nearest] + rng.normal(0, model.noise_rms(config),
                                                    (len(nearest), 3))
        versions.append((config.name, recording.t[nearest], noisy, nearest))
    if not configs:
        versions.append((f'{rate:.4g} Hz', recording.t, recording.acc, everything))
    return versions


def recording_windows(recording, class_names, configs=(), seed: int = 0,
                      model: SensorModel = DEFAULT_MODEL, by_version: bool = False):
    """Windows of a labelled recording at each config it allows (at its own rate if none).

    Windows whose samples carry no label are skipped; a label outside
    ``class_names`` is an error naming the label, the recording and the line.
    ``by_version`` returns ``{version name: Windows}`` instead of one Windows.
    """
    if recording.labels is None:
        raise ValueError(f'{recording.name}: has no labels; training and evaluation need '
                         f'labelled data')
    index = {name: i for i, name in enumerate(class_names)}
    coded = np.array([index.get(label, -1) for label in recording.labels])
    unknown = (coded < 0) & (recording.labels != '')
    if unknown.any():
        from adaptive_perception.activity.recordings import label_counts, unknown_labels_error
        counts = label_counts([recording])
        raise unknown_labels_error(
            {n: c for n, c in counts.items() if n not in index}, class_names,
            'map them with --labels FILE (lines "user_label,model_label")')
    parts = {}
    for name, t, acc, rows in recording_versions(recording, configs, seed, model):
        codes = coded[rows]
        ends = window_ends(t[0], t[-1] + 1e-9)
        features, kept = stream_features(t, acc, ends)
        centre = np.clip(np.searchsorted(t, ends[kept] - WINDOW_S / 2), 0, len(t) - 1)
        labels = codes[centre]
        labelled = labels >= 0
        parts[name] = Windows(features[labelled], labels[labelled], tuple(class_names))
    if by_version:
        return parts
    return Windows.concat(list(parts.values())) if parts else Windows(
        np.zeros((0, FEATURE_SIZE), np.float32), np.zeros(0, np.int64), tuple(class_names))


def synthetic_recording(minutes: float, segment_s: float, subject: int, seed: int,
                        config: SensorConfig, model: SensorModel = DEFAULT_MODEL):
    """Make a labelled ``Recording`` of one synthetic subject at ``config``."""
    from adaptive_perception.activity.recordings import Recording
    stream = subject_stream(subject, minutes, segment_s, seed)
    rng = np.random.default_rng([seed, subject, 0x5F])
    [(t, acc)] = emulate_states(stream, [config], rng, model)
    labels = np.array(ACTIVITIES)[stream.label_at(t)]
    return Recording(t, acc, labels, name=f'synthetic subject {subject} at {config.name}')
