"""``eval activity``: how an exported classifier does, per sensor state or per recording.

Without recordings it scores the held-out synthetic subjects at each requested
configuration (default: all 16, also the ones the model was not trained at).
With recordings it scores each one at its own rate. Either way it prints
accuracy and the confusion matrix (rows = truth, columns = prediction).
"""

import json
from pathlib import Path

import numpy as np

from adaptive_perception.activity.classifier import ActivityClassifier
from adaptive_perception.activity.dataset import VAL_SUBJECTS, recording_windows, synthetic_windows
from adaptive_perception.activity.sensor import CONFIGS, SensorModel, parse_config


def score(classifier: ActivityClassifier, windows) -> dict:
    """Accuracy, per-class recall and confusion matrix of ``windows``."""
    from sklearn.metrics import confusion_matrix
    names = classifier.class_names
    predicted = classifier.predict(windows.features)
    matrix = confusion_matrix(windows.labels, predicted, labels=range(len(names)))
    totals = matrix.sum(axis=1)
    return {'windows': int(len(windows.labels)),
            'accuracy': float((predicted == windows.labels).mean()) if len(predicted) else 0.0,
            'recall': {n: float(matrix[i, i] / totals[i]) if totals[i] else None
                       for i, n in enumerate(names)},
            'confusion': matrix.tolist()}


def run_eval_activity(model_dir, recordings=(), states=None, minutes: float = 8.0,
                      seed: int = 0, noise: float = SensorModel().single_sample_noise,
                      out: Path | None = None) -> int:
    """Score ``model_dir``; print a table and optionally write JSON. Returns 0."""
    classifier = ActivityClassifier(model_dir)
    names = classifier.class_names
    results = {}
    if recordings:
        for recording in recordings:
            windows = recording_windows(recording, names)
            results[recording.name] = score(classifier, windows)
    else:
        configs = [parse_config(s) for s in states] if states else list(CONFIGS)
        for config in configs:
            windows = synthetic_windows(config, VAL_SUBJECTS, minutes, seed=seed + 1,
                                        model=SensorModel(noise))
            results[config.name] = score(classifier, windows)
    trained = {s.name for s in classifier.states}
    print(f"{'data':<36}{'windows':>8}{'accuracy':>10}")
    for name, result in results.items():
        mark = '  (trained at)' if name in trained else ''
        print(f"{name:<36}{result['windows']:>8}{result['accuracy']:>10.4f}{mark}")
    for name, result in results.items():
        print(f'\nconfusion, {name} (rows: truth; columns: {" ".join(names)})')
        for truth, row in zip(names, np.asarray(result['confusion']), strict=True):
            print(f"  {truth:<12}" + ''.join(f'{v:>7}' for v in row))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({'model_dir': str(model_dir), 'class_names': names,
                                   'results': results}, indent=1) + '\n')
    return 0
