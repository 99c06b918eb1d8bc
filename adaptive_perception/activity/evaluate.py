"""``eval activity``: how an exported classifier does, per sensor state, per recording, per pose.

Without recordings it scores the held-out synthetic subjects at each requested
configuration (default: all 16, also the ones the model was not trained at),
worn as ``--orientation`` says. With recordings it scores every file at each
requested state the file's rate allows (a state faster than the recording is
named and left out; without ``--states`` each file at its own rate), per file
and summed over all files. Every table gives the overall accuracy, the recall of
each class and the confusion matrix (rows = truth, columns = prediction).

``--robustness`` adds the orientation test of the model card: the same held-out
wearers upright, in random device orientations, and in each of the 24
axis-aligned orientations (gravity along every device axis, both signs), with
the spread over the 24.
"""

from pathlib import Path
from typing import TypedDict

import numpy as np

from adaptive_perception.activity.classifier import ActivityClassifier
from adaptive_perception.activity.dataset import (
    VAL_SUBJECTS,
    config_allowed,
    recording_windows,
    synthetic_windows,
)
from adaptive_perception.activity.generator import UPRIGHT, Variety
from adaptive_perception.activity.sensor import CONFIGS, SensorModel, parse_config
from adaptive_perception.runtime.report_io import write_json

OWN_RATE = 'own rate'
ORIENTATION_SUBJECTS = 6   # 26 orientations x 6 wearers x 8 min: minutes on 2 cores


class Scores(TypedDict):
    """One set of predictions scored: windows, accuracy, recall per class, confusion matrix.

    ``accuracy`` and a class's recall are None where there was nothing to score.
    """

    windows: int
    accuracy: float | None
    recall: dict[str, float | None]
    confusion: list[list[int]]


def score(classifier: ActivityClassifier, windows) -> Scores:
    """Accuracy, per-class recall and confusion matrix of ``windows``."""
    predicted = classifier.predict(windows.features) if len(windows.labels) else np.zeros(0, int)
    return scored(classifier.class_names, windows.labels, predicted)


def scored(names, truth, predicted) -> Scores:
    """Report one set of predictions: windows, accuracy, recall, confusion."""
    from sklearn.metrics import confusion_matrix
    matrix = confusion_matrix(truth, predicted, labels=range(len(names))) if len(truth) else \
        np.zeros((len(names), len(names)), np.int64)
    return from_confusion(names, matrix)


def from_confusion(names, matrix) -> Scores:
    """Accuracy and recall from a confusion matrix (rows = truth)."""
    matrix = np.asarray(matrix, dtype=np.int64)
    totals = matrix.sum(axis=1)
    windows = int(matrix.sum())
    return {'windows': windows,
            'accuracy': float(np.trace(matrix) / windows) if windows else None,
            'recall': {n: float(matrix[i, i] / totals[i]) if totals[i] else None
                       for i, n in enumerate(names)},
            'confusion': matrix.tolist()}


def summed(names, results) -> Scores:
    """One report over several: the confusion matrices added, accuracy and recall from that."""
    total = np.zeros((len(names), len(names)), np.int64)
    for result in results:
        total += np.asarray(result['confusion'], dtype=np.int64)
    return from_confusion(names, total)




def eval_recordings(classifier, recordings, states, seed: int, model: SensorModel,
                    log=print) -> dict:
    """{state or 'own rate': {'files': {name: report}, 'all': summed report}}."""
    names = classifier.class_names
    configs = [parse_config(s) for s in states] if states else []
    results = {c.name: {'files': {}} for c in configs} if configs else {OWN_RATE: {'files': {}}}
    for recording in recordings:
        for config in configs:
            if not config_allowed(config, recording.rate_hz):
                log(f'{recording.name}: {config.name} not scored: {config.sampling_hz:g} Hz is '
                    f'above the recording\'s {recording.rate_hz:.4g} Hz')
        versions = recording_windows(recording, names, configs, seed, model, by_version=True)
        for version, windows in versions.items():
            key = version if configs else OWN_RATE
            results[key]['files'][recording.name] = score(classifier, windows)
    for result in results.values():
        result['all'] = summed(names, result['files'].values())
    return results


def orientation_report(classifier, config, subjects, minutes: float, seed: int,
                       model: SensorModel) -> dict:
    """Accuracy upright, in random orientations and in each of the 24 axis-aligned ones."""
    def accuracy(variety):
        windows = synthetic_windows(config, subjects, minutes, seed=seed, model=model,
                                    variety=variety)
        return float((classifier.predict(windows.features) == windows.labels).mean())
    upright = accuracy(UPRIGHT)
    random = accuracy(Variety('random'))
    axes = [accuracy(Variety('axis', axis_index=i)) for i in range(24)]
    return {'state': config.name, 'subjects': len(subjects), 'minutes': minutes,
            'upright': upright, 'random': random, 'random_minus_upright_points':
                (random - upright) * 100,
            'axis_aligned': axes, 'axis_spread_points': (max(axes) - min(axes)) * 100,
            'axis_min': min(axes), 'axis_max': max(axes)}


def _print_report(title: str, names, report: dict) -> None:
    accuracy = report['accuracy']
    print(f"\n{title}: {report['windows']} windows, accuracy "
          + (f'{accuracy:.4f}' if accuracy is not None else '-'))
    print('  recall: ' + ', '.join(f'{n} {r:.3f}' if r is not None else f'{n} -'
                                   for n, r in report['recall'].items()))
    print(f'  confusion (rows: truth; columns: {" ".join(names)})')
    for truth, row in zip(names, np.asarray(report['confusion']), strict=True):
        print(f"    {truth:<12}" + ''.join(f'{v:>7}' for v in row))


def run_eval_activity(model_dir, recordings=(), states=None, minutes: float = 8.0,
                      seed: int = 0, noise: float = SensorModel().single_sample_noise,
                      out: Path | None = None, orientation: str = 'upright',
                      robustness: bool = False, per_file: bool = True) -> int:
    """Score ``model_dir``; print the tables and optionally write JSON. Returns 0."""
    classifier = ActivityClassifier(model_dir)
    names = classifier.class_names
    model = SensorModel(noise)
    trained = {s.name for s in classifier.states}
    report = {'model_dir': str(model_dir), 'class_names': names}
    if recordings:
        results = eval_recordings(classifier, recordings, states, seed, model)
        report['recordings'] = results
        print(f"{'state':<14}{'file':<36}{'windows':>8}{'accuracy':>10}")
        for state, result in results.items():
            mark = '  (trained at)' if state in trained else ''
            for name, one in result['files'].items():
                acc = f"{one['accuracy']:.4f}" if one['accuracy'] is not None else '-'
                print(f"{state:<14}{name[:35]:<36}{one['windows']:>8}{acc:>10}{mark}")
        for state, result in results.items():
            _print_report(f'all {len(result["files"])} recordings at {state}', names,
                          result['all'])
            if per_file and len(result['files']) > 1:
                for name, one in result['files'].items():
                    _print_report(f'{name} at {state}', names, one)
    else:
        configs = [parse_config(s) for s in states] if states else list(CONFIGS)
        variety = UPRIGHT if orientation == 'upright' else Variety(orientation)
        results = {}
        for config in configs:
            windows = synthetic_windows(config, VAL_SUBJECTS, minutes, seed=seed + 1,
                                        model=model, variety=variety)
            results[config.name] = score(classifier, windows)
        report['synthetic'] = {'orientation': orientation, 'results': results}
        print(f"{'state':<14}{'windows':>8}{'accuracy':>10}   ({len(VAL_SUBJECTS)} held-out "
              f"synthetic wearers, orientation {orientation})")
        for name, result in results.items():
            mark = '  (trained at)' if name in trained else ''
            print(f"{name:<14}{result['windows']:>8}{result['accuracy']:>10.4f}{mark}")
        for name, result in results.items():
            _print_report(name, names, result)
    if robustness:
        config = parse_config(states[0]) if states else classifier.states[0]
        rob = orientation_report(classifier, config, VAL_SUBJECTS[:ORIENTATION_SUBJECTS],
                                 minutes, seed + 1, model)
        report['orientation'] = rob
        print(f"\norientation at {rob['state']} ({rob['subjects']} held-out wearers x "
              f"{rob['minutes']:g} min): upright {rob['upright']:.4f}, random orientations "
              f"{rob['random']:.4f} ({rob['random_minus_upright_points']:+.2f} points); 24 "
              f"axis-aligned: {rob['axis_min']:.4f}..{rob['axis_max']:.4f} (spread "
              f"{rob['axis_spread_points']:.2f} points)")
        print('  ' + ' '.join(f'{a:.3f}' for a in rob['axis_aligned']))
    if out is not None:
        write_json(out, report)
    return 0
