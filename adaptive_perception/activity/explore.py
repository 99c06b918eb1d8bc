"""Design-space exploration (DSE): accuracy against current at every sensor configuration.

Why: SPOT (``spot.py``) steps the accelerometer down through a short list of
states as the activity stays stable. Those states should be the Pareto front of
the 16 configurations of the thesis's Table 5.1: for its current, no other
configuration is more accurate. A configuration off the front is never worth
using, since another one is at least as accurate for no more current. The
thesis found {F100_A128, F50_A16, F12.5_A16, F12.5_A8} (its Fig. 5.2); this
module repeats that search on the synthetic subjects and the sensor model.

How (as the thesis did for Fig. 5.2): for each configuration, one MLP is trained
on the training subjects' windows at that configuration and scored on the
validation subjects (disjoint wearers) at the same configuration. The current is
the model's (``sensor.py``), so configurations with the same duty cycle draw
exactly the same current (e.g. F6.25_A128, F25_A32 and F50_A16 all 91.5 uA; the
A128 states from 12.5 to 100 Hz all run in normal mode at 180 uA); among those
only the most accurate can be on the front.

Reading the result (``dse.json``, ``dse.png``, the printed table): the front is
listed costliest first, the order SPOT walks it. ``thesis_on_front`` and
``thesis_missed`` say which of the thesis's states this model confirms. The
accuracies come from a finite validation set and one training seed, so two
configurations a fraction of a percentage point apart are not really ranked;
and how much the averaging window matters depends on the model's single-sample
noise (``noise``), which is an assumption, not a data-sheet figure.
"""

import sys
import time
from pathlib import Path

from adaptive_perception.activity.dataset import TRAIN_SUBJECTS, VAL_SUBJECTS, synthetic_windows
from adaptive_perception.activity.sensor import CONFIGS, THESIS_PARETO, SensorModel
from adaptive_perception.activity.train import fit_mlp
from adaptive_perception.runtime.report_io import write_json


def _dominates(a, b) -> bool:
    """Say whether ``a`` costs no more, is no less accurate than ``b`` and beats it in one."""
    return a[1] <= b[1] and a[2] >= b[2] and (a[1] < b[1] or a[2] > b[2])


def pareto_front(points) -> list:
    """Return the non-dominated ``(name, current_ua, accuracy)`` points, costliest first.

    Of points with equal current only the most accurate survive; exact duplicates
    (same current and accuracy) dominate neither other, so both stay.
    """
    points = list(points)
    front = [p for p in points if not any(_dominates(q, p) for q in points)]
    return sorted(front, key=lambda p: (-p[1], -p[2], p[0]))


def run_explore(out_dir: Path, *, subjects=TRAIN_SUBJECTS, val_subjects=VAL_SUBJECTS,
                minutes: float = 8.0, hidden: int = 64, seed: int = 0,
                noise: float = SensorModel().single_sample_noise,
                smoke: bool = False) -> dict:
    """Score all 16 configurations, find the front; write dse.json and dse.png to ``out_dir``.

    ``smoke`` (for CI) keeps all 16 configurations but trains on 2 subjects for
    1 minute each, for 20 iterations, and validates on 1 subject.
    Returns what dse.json holds.
    """
    started = time.monotonic()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = SensorModel(noise)
    subjects, val_subjects, max_iter = tuple(subjects), tuple(val_subjects), 300
    if smoke:
        subjects, val_subjects, minutes, max_iter = subjects[:2], val_subjects[:1], \
            min(minutes, 1.0), 20
    rows = []
    for config in CONFIGS:
        train = synthetic_windows(config, subjects, minutes, seed=seed, model=model)
        pipeline = fit_mlp(train, hidden, seed, max_iter)
        # seed + 1 for validation streams, as train.accuracy_by_state draws them
        val = synthetic_windows(config, val_subjects, minutes, seed=seed + 1, model=model)
        accuracy = round(float((pipeline.predict(val.features) == val.labels).mean()), 4)
        rows.append({'name': config.name, 'sampling_hz': config.sampling_hz,
                     'averaging_window': config.averaging_window,
                     'current_ua': round(config.current_ua, 4), 'duty': round(config.duty, 6),
                     'accuracy': accuracy})
        print(f'{config.name}: {len(train.labels)} training windows, {len(val.labels)} '
              f'validation, accuracy {accuracy:.2%} ({time.monotonic() - started:.0f} s)',
              file=sys.stderr, flush=True)
    front = [p[0] for p in pareto_front((r['name'], r['current_ua'], r['accuracy'])
                                        for r in rows)]
    for row in rows:
        row['on_front'] = row['name'] in front
    thesis = [c.name for c in THESIS_PARETO]
    result = {
        'configurations': rows,
        'front': front,
        'thesis_front': thesis,
        'thesis_on_front': [n for n in thesis if n in front],
        'thesis_missed': [n for n in thesis if n not in front],
        'settings': {'subjects': list(subjects), 'val_subjects': list(val_subjects),
                     'minutes': minutes, 'seed': seed, 'noise': noise, 'hidden': hidden,
                     'max_iter': max_iter, 'smoke': smoke,
                     'seconds': round(time.monotonic() - started, 1)},
    }
    write_json(out_dir / 'dse.json', result)
    _plot(result, out_dir / 'dse.png')
    print(_table(result))
    print(f'wrote {out_dir / "dse.json"}, {out_dir / "dse.png"}')
    return result


def _table(result: dict) -> str:
    """List configurations costliest first, front (*) and thesis (T) marked; then the fronts."""
    thesis = set(result['thesis_front'])
    rows = sorted(result['configurations'], key=lambda r: (-r['current_ua'], -r['accuracy']))
    lines = [f'{"config":<11} {"Hz":>5} {"A":>4} {"duty":>7} {"current uA":>10} '
             f'{"accuracy":>8}  front thesis']
    for r in rows:
        lines.append(f'{r["name"]:<11} {r["sampling_hz"]:>5g} {r["averaging_window"]:>4} '
                     f'{r["duty"]:>7.4f} {r["current_ua"]:>10.2f} {r["accuracy"]:>8.2%}  '
                     f'{"*" if r["on_front"] else "":^5} {"T" if r["name"] in thesis else "":^6}')
    lines.append('front (costliest first): ' + ' > '.join(result['front']))
    lines.append('thesis front: ' + ' > '.join(result['thesis_front'])
                 + f'; on ours: {", ".join(result["thesis_on_front"]) or "none"}'
                 + f'; missed: {", ".join(result["thesis_missed"]) or "none"}')
    return '\n'.join(lines)


def _plot(result: dict, path: Path) -> None:
    """Plot accuracy against current like the thesis's Fig. 5.2 (front joined, thesis boxed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # only plotting needs it
    from matplotlib.figure import Figure

    rows = result['configurations']
    by_name = {r['name']: r for r in rows}
    fig = Figure(figsize=(8, 5.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.scatter([r['current_ua'] for r in rows], [100 * r['accuracy'] for r in rows],
               s=25, color='tab:red', zorder=3, label='configuration')
    front = [by_name[n] for n in reversed(result['front'])]   # cheapest first
    ax.plot([r['current_ua'] for r in front], [100 * r['accuracy'] for r in front],
            drawstyle='steps-post', marker='o', markersize=10, color='tab:blue', zorder=2,
            label='Pareto front (this model)')
    thesis = [by_name[n] for n in result['thesis_front']]
    ax.scatter([r['current_ua'] for r in thesis], [100 * r['accuracy'] for r in thesis],
               s=160, marker='D', facecolors='none', edgecolors='black', linewidths=1.2,
               zorder=4, label='thesis Pareto states')
    # Equal-current configurations sit in one column: stack their labels with leaders.
    columns = {}
    for r in sorted(rows, key=lambda r: -r['accuracy']):
        columns.setdefault(r['current_ua'], []).append(r)
    for column in columns.values():
        for k, r in enumerate(column):
            ax.annotate(r['name'], (r['current_ua'], 100 * r['accuracy']),
                        textcoords='offset points', xytext=(12, 6 - 11 * k), fontsize=7,
                        va='center', arrowprops={'arrowstyle': '-', 'color': 'grey',
                                                 'linewidth': 0.5})
    ax.set_xscale('log')
    ax.set_xlim(right=max(columns) * 2.2)   # room for the labels of the costliest column
    ax.set_xlabel('accelerometer current (uA, log scale)')
    ax.set_ylabel('validation accuracy (%)')
    settings = result['settings']
    ax.set_title(f'AdaSense DSE: accuracy vs current, 16 configurations\n'
                 f'{len(settings["subjects"])} training / {len(settings["val_subjects"])} '
                 f'validation subjects, {settings["minutes"]:g} min each, '
                 f'noise {settings["noise"]:g} m/s^2' + (' (smoke)' if settings['smoke'] else ''),
                 fontsize=10)
    ax.grid(alpha=0.3, which='both')
    ax.legend(loc='best', fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
