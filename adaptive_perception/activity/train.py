"""Training the one activity classifier for every sensor state, and exporting it.

The thesis's classifier (sec. 5.3.3): a 2-layer MLP (one ReLU hidden layer,
softmax output) on the 24 rate-independent features, trained on windows from
all Pareto sensor states at once, so a single small model serves every state.
Besides one set of windows per state it sees windows that switch state in the
middle (``dataset.switching_windows``), as after every SPOT step. Half the
synthetic wearers carry the device in a random orientation with scale and bias
errors, the samples are clipped at +-8 g and their stamps jittered, so the model
does not learn one way of wearing the device or a perfect sensor. scikit-learn
fits it (with standardisation in the same pipeline, early stopping on a held-out
tenth); skl2onnx exports the whole pipeline as one ONNX graph.
"""

import json
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np

from adaptive_perception.activity.classifier import ActivityClassifier, ActivityManifest
from adaptive_perception.activity.config import ActivityTrainConfig
from adaptive_perception.activity.dataset import (
    SEGMENT_S,
    TRAIN_SUBJECTS,
    VAL_SUBJECTS,
    Windows,
    config_allowed,
    recording_windows,
    subject_stream,
    switching_windows,
    synthetic_windows,
    training_variety,
)
from adaptive_perception.activity.features import FEATURE_NAMES, FEATURE_SIZE
from adaptive_perception.activity.generator import ACTIVITIES
from adaptive_perception.activity.recordings import label_counts, unknown_labels_error
from adaptive_perception.activity.sensor import CONFIGS, GRAVITY, SensorModel, parse_config

TRAIN_RANGE_MS2 = 8 * GRAVITY   # +-8 g full scale: clips only the hardest heel strikes
TRAIN_JITTER_S = 0.001          # stamps of a driver that stamps on arrival


def fit_mlp(windows: Windows, hidden: int = 64, seed: int = 0, max_iter: int = 300):
    """Fit standardisation + MLP on ``windows``; returns the scikit-learn pipeline."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    if len(np.unique(windows.labels)) < 2:
        raise ValueError('training needs windows of at least two activities')
    pipeline = make_pipeline(StandardScaler(), MLPClassifier(
        hidden_layer_sizes=(hidden,), early_stopping=True, validation_fraction=0.1,
        n_iter_no_change=15, max_iter=max_iter, random_state=seed))
    with warnings.catch_warnings():  # a smoke run stops early on purpose
        warnings.simplefilter('ignore', ConvergenceWarning)
        pipeline.fit(windows.features, windows.labels)
    return pipeline


def mlp_parameters(pipeline) -> int:
    """Weights and biases of the pipeline's MLP."""
    mlp = pipeline[-1]
    return int(sum(w.size for w in mlp.coefs_) + sum(b.size for b in mlp.intercepts_))


def export_onnx(pipeline, path: Path) -> None:
    """Write the pipeline as one ONNX graph: input ``X``, outputs label and probabilities."""
    from skl2onnx import to_onnx
    from sklearn.neural_network import MLPClassifier
    sample = np.zeros((1, FEATURE_SIZE), np.float32)
    model = to_onnx(pipeline, sample, options={MLPClassifier: {'zipmap': False}},
                    target_opset={'': 17, 'ai.onnx.ml': 3})
    Path(path).write_bytes(model.SerializeToString())


def accuracy_by_state(classifier: ActivityClassifier, configs, subjects, minutes: float,
                      seed: int, model: SensorModel) -> dict:
    """Accuracy of an exported classifier on synthetic subjects at each configuration."""
    result = {}
    for config in configs:
        windows = synthetic_windows(config, subjects, minutes, seed=seed, model=model)
        predicted = classifier.predict(windows.features)
        result[config.name] = round(float((predicted == windows.labels).mean()), 4)
    return result


def trainable_states(states, recordings, synthetic: bool) -> tuple:
    """Split ``states`` into those the data can give and those skipped, with the reason.

    Synthetic data gives every state. A recording gives a state at or below its
    own rate (``recording_windows`` decimates it and adds that state's noise); a
    faster state cannot be made from slower data.
    """
    trained, skipped = [], {}
    for config in states:
        if synthetic or any(config_allowed(config, r.rate_hz) for r in recordings):
            trained.append(config)
        else:
            rates = sorted({f'{r.rate_hz:.4g} Hz' for r in recordings})
            skipped[config.name] = (f'{config.sampling_hz:g} Hz is above the recordings\' '
                                    f'rate ({", ".join(rates)})')
    return trained, skipped


def class_list(recordings, synthetic: bool, new_labels: bool) -> list:
    """Return the model's classes, in output order: built-in ones first, then new ones sorted.

    Without synthetic data only the labels the recordings hold become classes. A
    label that is not a built-in activity is an error (listing each with its
    count and first line) unless ``new_labels`` allows new classes.
    """
    counts = label_counts(recordings)
    unknown = {name: c for name, c in counts.items() if name not in ACTIVITIES}
    if unknown and not new_labels:
        raise unknown_labels_error(
            unknown, ACTIVITIES, 'map them to these with --labels FILE (lines '
            '"user_label,model_label") or pass --new-labels to train them as new classes')
    names = [a for a in ACTIVITIES if synthetic or a in counts]
    return names + sorted(unknown)


def train_activity(config: ActivityTrainConfig, out_dir: Path, *, recordings=(),
                   command: str = '', log=print) -> ActivityManifest:
    """Train on synthetic wearers and/or ``recordings`` as ``config`` says; export to ``out_dir``.

    Writes ``classifier.onnx`` and ``manifest.json`` (with accuracy at all 16
    configurations on held-out synthetic subjects when ``config.synthetic``); the
    manifest's ``training`` holds ``config`` as it is plus what the run did (windows,
    subjects, minutes that ran, states skipped, ...). Everything is written into a
    temporary folder first and moved into ``out_dir`` at the end, so a failed run
    leaves ``out_dir`` as it was.
    """
    states = [parse_config(name) for name in config.states]
    synthetic, minutes, seed, noise = config.synthetic, config.minutes, config.seed, config.noise
    started = time.monotonic()
    out_dir = Path(out_dir)
    recordings = list(recordings)
    for recording in recordings:
        if recording.labels is None:
            raise ValueError(f'{recording.name}: has no labels; training needs labelled data')
    model = SensorModel(noise, range_ms2=TRAIN_RANGE_MS2, stamp_jitter_s=TRAIN_JITTER_S)
    subjects, val_subjects = TRAIN_SUBJECTS, VAL_SUBJECTS
    if config.smoke:
        subjects, val_subjects, minutes = subjects[:3], val_subjects[:2], min(minutes, 2.0)
    class_names = class_list(recordings, synthetic, config.new_labels)
    states, skipped = trainable_states(states, recordings, synthetic)
    for name, why in skipped.items():
        log(f'state {name} skipped: {why}')
    if not states:
        raise ValueError('none of the requested sensor states can be emulated from the '
                         'recordings; choose states at or below their rate with --states')
    log(f'training {", ".join(c.name for c in states)} on classes {", ".join(class_names)}')
    names = tuple(class_names)
    parts = []
    if synthetic:
        for state in states:
            part = synthetic_windows(state, subjects, minutes, seed=seed, model=model,
                                     variety=training_variety)
            parts.append(Windows(part.features, part.labels, names))
        if len(states) > 1:
            for subject in subjects:
                stream = subject_stream(subject, minutes, SEGMENT_S, seed,
                                        training_variety(subject))
                part = switching_windows(stream, states,
                                         np.random.default_rng([seed, subject, 0x60]), model)
                parts.append(Windows(part.features, part.labels, names))
    for recording in recordings:
        parts.append(recording_windows(recording, class_names, states, seed, model))
    data = Windows.concat(parts)
    if not len(data.labels):
        raise ValueError('no training windows: give recordings or keep the synthetic data')
    # The graph has one output column per class that has windows, in index order:
    # the manifest's names are taken from that same list, never built separately.
    present = np.unique(data.labels)
    if len(present) < len(class_names):
        log('classes without a single full window, left out: '
            + ', '.join(class_names[i] for i in sorted(set(range(len(class_names)))
                                                      - set(present.tolist()))))
    class_names = [class_names[i] for i in present]
    data = Windows(data.features, np.searchsorted(present, data.labels), tuple(class_names))
    pipeline = fit_mlp(data, config.hidden, seed, max_iter=20 if config.smoke else 300)
    if list(pipeline.classes_) != list(range(len(class_names))):   # never: one list above
        raise RuntimeError(f'the classifier learned classes {list(pipeline.classes_)}, '
                           f'expected 0..{len(class_names) - 1}')
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f'.{out_dir.name}.', dir=out_dir.parent))
    try:
        export_onnx(pipeline, staging / 'classifier.onnx')
        manifest = ActivityManifest(
            class_names=class_names, feature_names=list(FEATURE_NAMES),
            states=[c.name for c in states], hidden_units=config.hidden,
            parameters=mlp_parameters(pipeline),
            training={**asdict(config), 'command': command, 'windows': int(len(data.labels)),
                      'synthetic_subjects': len(subjects) if synthetic else 0,
                      'minutes_per_subject': minutes if synthetic else 0,
                      'synthetic_variety': 'half random device orientation (scale sd 0.03, '
                                           'bias sd 0.2 m/s^2), half upright'
                                           if synthetic else '',
                      'range_ms2': TRAIN_RANGE_MS2, 'stamp_jitter_s': TRAIN_JITTER_S,
                      'recordings': [r.name for r in recordings],
                      'states_skipped': skipped})
        manifest.save(staging)
        if synthetic:
            classifier = ActivityClassifier(staging)
            manifest.validation = accuracy_by_state(classifier, CONFIGS, val_subjects, minutes,
                                                    seed + 1, SensorModel(noise))
        manifest.training['seconds'] = round(time.monotonic() - started, 1)
        manifest.save(staging)
        out_dir.mkdir(exist_ok=True)
        for item in staging.iterdir():
            os.replace(item, out_dir / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(json.dumps({'out': str(out_dir), 'windows': manifest.training['windows'],
                    'parameters': manifest.parameters, 'validation': manifest.validation},
                   indent=1))
    return manifest
