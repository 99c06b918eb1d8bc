"""Training the one activity classifier for every sensor state, and exporting it.

The thesis's classifier (sec. 5.3.3): a 2-layer MLP (one ReLU hidden layer,
softmax output) on the 24 rate-independent features, trained on windows from
all Pareto sensor states at once, so a single small model serves every state.
Besides one set of windows per state it sees windows that switch state in the
middle (``dataset.switching_windows``), as after every SPOT step. scikit-learn
fits it (with standardisation in the same pipeline, early stopping on a held-out
tenth); skl2onnx exports the whole pipeline as one ONNX graph.
"""

import json
import time
import warnings
from pathlib import Path

import numpy as np

from adaptive_perception.activity.classifier import ActivityClassifier, ActivityManifest
from adaptive_perception.activity.dataset import (
    SEGMENT_S,
    TRAIN_SUBJECTS,
    VAL_SUBJECTS,
    Windows,
    recording_windows,
    subject_stream,
    switching_windows,
    synthetic_windows,
)
from adaptive_perception.activity.features import FEATURE_NAMES, FEATURE_SIZE
from adaptive_perception.activity.generator import ACTIVITIES
from adaptive_perception.activity.sensor import CONFIGS, THESIS_PARETO, SensorModel


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


def train_activity(out_dir: Path, *, states=THESIS_PARETO, recordings=(),
                   synthetic: bool = True, minutes: float = 8.0, hidden: int = 64,
                   seed: int = 0, noise: float = SensorModel().single_sample_noise,
                   smoke: bool = False, command: str = '') -> ActivityManifest:
    """Train on synthetic subjects and/or recordings at ``states``; export to ``out_dir``.

    Writes ``classifier.onnx`` and ``manifest.json`` (with accuracy at all 16
    configurations on held-out synthetic subjects when ``synthetic``).
    """
    started = time.monotonic()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = SensorModel(noise)
    subjects, val_subjects = TRAIN_SUBJECTS, VAL_SUBJECTS
    if smoke:
        subjects, val_subjects, minutes = subjects[:3], val_subjects[:2], min(minutes, 2.0)
    class_names = list(ACTIVITIES)
    for recording in recordings:
        if recording.labels is not None:
            class_names += sorted(set(recording.labels) - set(class_names) - {''})
    parts = []
    if synthetic:
        for config in states:
            part = synthetic_windows(config, subjects, minutes, seed=seed, model=model)
            parts.append(Windows(part.features, part.labels, tuple(class_names)))
        if len(states) > 1:
            for subject in subjects:
                part = switching_windows(subject_stream(subject, minutes, SEGMENT_S, seed),
                                         states, np.random.default_rng([seed, subject, 0x60]),
                                         model)
                parts.append(Windows(part.features, part.labels, tuple(class_names)))
    for recording in recordings:
        parts.append(recording_windows(recording, class_names, states, seed, model))
    data = Windows.concat(parts)
    if not len(data.labels):
        raise ValueError('no training windows: give recordings or keep the synthetic data')
    pipeline = fit_mlp(data, hidden, seed, max_iter=20 if smoke else 300)
    export_onnx(pipeline, out_dir / 'classifier.onnx')
    manifest = ActivityManifest(
        class_names=class_names, feature_names=list(FEATURE_NAMES),
        states=[c.name for c in states], hidden_units=hidden,
        parameters=mlp_parameters(pipeline),
        training={'command': command, 'seed': seed, 'windows': int(len(data.labels)),
                  'synthetic_subjects': len(subjects) if synthetic else 0,
                  'minutes_per_subject': minutes if synthetic else 0,
                  'recordings': [r.name for r in recordings],
                  'single_sample_noise_ms2': noise, 'smoke': smoke})
    manifest.save(out_dir)
    if synthetic:
        classifier = ActivityClassifier(out_dir)
        manifest.validation = accuracy_by_state(classifier, CONFIGS, val_subjects, minutes,
                                                seed + 1, model)
    manifest.training['seconds'] = round(time.monotonic() - started, 1)
    manifest.save(out_dir)
    print(json.dumps({'out': str(out_dir), 'windows': manifest.training['windows'],
                      'parameters': manifest.parameters, 'validation': manifest.validation},
                     indent=1))
    return manifest
