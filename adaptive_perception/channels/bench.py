"""``adaptive-perception bench channels``: every detector operating point, side by side.

An operating point is a mode (static head, multi-branch threshold, single branch) at
a backbone width (a nested channel set). One run measures all of them the same way
as ``bench detector`` does: mAP from the ONNX engine scored by pycocotools, MACs per
frame from the manifest counts, latency of the node's own ``process(msg)`` with the
points taking turns on every frame. The backbone graphs of every width are also
timed alone, interleaved, for the width target.

From the points it fits the per-knob latency model ``latency = a * MACs + c``
(001_9c60bc5df7d71ac1.txt ch. 5): one fit per knob, holding the other fixed (width
at static mode, mode at full width) and one over all points, so that the budget
manager and the docs can predict a level's cost from its MACs. It draws the Pareto
front of accuracy against latency and proposes the detector's level profile from it:
level ``i`` of ``N`` gets a latency budget evenly spaced from the front's costliest
point (level 0) to its cheapest (level N-1), and the most accurate front point
within that budget.
"""

import json
import os
import platform
from pathlib import Path
from typing import Sequence

import numpy as np
import onnxruntime as ort

from adaptive_perception.detection.bench import (
    pareto_front,
    save_accuracy_latency,
    time_process,
)
from adaptive_perception.detection.engine import AdaConEngine
from adaptive_perception.detection.evaluate import evaluate, load_rgb
from adaptive_perception.detection.manifest import DEFAULT_MODES, Mode, parse_mode
from adaptive_perception.runtime.onnx_sessions import CPU
from adaptive_perception.runtime.timing import interleaved_seconds

TARGETS = {'half_width_backbone_latency_reduction': 0.40, 'half_width_map_drop': 0.05,
           'cheapest_latency_reduction': 0.60, 'near_static_map_drop': 0.02}


def operating_points(widths: Sequence[float], modes: Sequence[str] = DEFAULT_MODES) -> list:
    """Every mode at every width, as mode strings ('single@0.5'), widest first."""
    return [str(Mode(parse_mode(m).kind, parse_mode(m).threshold, w))
            for w in sorted(widths, reverse=True) for m in modes]


def time_backbones(engine: AdaConEngine, images: Sequence[np.ndarray], repeats: int,
                   warmup: int) -> dict:
    """Seconds per backbone graph run, per width, widths taking turns on every frame."""
    inputs = [engine.preprocess(rgb)[0] for rgb in images]
    runs = {width: (lambda image, width=width: engine.features(image, width))
            for width in engine.widths}
    return interleaved_seconds(runs, inputs, repeats, warmup)


def fit_latency(macs: Sequence[float], latency_ms: Sequence[float]) -> dict:
    """Least-squares ``latency = a * MACs + c``: a in ms per GMAC, c in ms, and R^2."""
    x = np.asarray(macs, np.float64) / 1e9
    y = np.asarray(latency_ms, np.float64)
    if len(x) < 2 or np.ptp(x) == 0:
        return {'a_ms_per_gmac': None, 'c_ms': float(y.mean()), 'r2': None, 'points': len(x)}
    a, c = np.polyfit(x, y, 1)
    residual = y - (a * x + c)
    total = ((y - y.mean()) ** 2).sum()
    return {'a_ms_per_gmac': float(a), 'c_ms': float(c),
            'r2': float(1 - (residual ** 2).sum() / total) if total > 0 else None,
            'points': len(x)}


def propose_profile(rows: dict, front: list, levels: int) -> list:
    """Pick, per level, the most accurate front point within the level's latency budget.

    The ``levels`` budgets are evenly spaced from the front's costliest point to its
    cheapest.
    """
    latencies = [rows[p]['latency_p50_ms'] for p in front]
    budgets = np.linspace(max(latencies), min(latencies), levels)
    return [max((p for p in front if rows[p]['latency_p50_ms'] <= budget + 1e-9),
                key=lambda p: rows[p]['map']) for budget in budgets]


def _rows(report: dict, samples: dict, static_point: str) -> dict:
    rows = {}
    for point, seconds in samples.items():
        ms = np.asarray(seconds) * 1e3
        scores = report['modes'][point]
        rows[point] = {'map': scores['map'], 'ap50': scores['ap50'], 'ap75': scores['ap75'],
                       'mean_branches': scores['mean_branches'],
                       'macs_per_frame': scores['mean_macs'],
                       'latency_p50_ms': float(np.percentile(ms, 50)),
                       'latency_p95_ms': float(np.percentile(ms, 95)),
                       'frames_per_s': float(1e3 / ms.mean()), 'samples': int(ms.size)}
    static = rows[static_point]
    for row in rows.values():
        row['latency_vs_static'] = row['latency_p50_ms'] / static['latency_p50_ms']
        row['macs_vs_static'] = row['macs_per_frame'] / static['macs_per_frame']
        row['map_vs_static'] = row['map'] - static['map']
    return rows


def latency_models(rows: dict) -> dict:
    """Fit the latency model per knob: width (static mode), mode (full width), all points."""
    def fit(points):
        return {**fit_latency([rows[p]['macs_per_frame'] for p in points],
                              [rows[p]['latency_p50_ms'] for p in points]),
                'over': points}
    by_width = [p for p in rows if parse_mode(p).kind == 'static']
    by_mode = [p for p in rows if parse_mode(p).width == 1.0]
    return {'width': fit(by_width), 'mode': fit(by_mode), 'all': fit(list(rows))}


def check_targets(rows: dict, backbone_ms: dict, front: list) -> dict:
    """Each target of the channel-sets issue: the measured value and whether it is met."""
    static = rows['static']
    widths = sorted(backbone_ms)
    half = min(widths)
    results = {}
    reduction = 1 - backbone_ms[half] / backbone_ms[1.0]
    results['half_width_backbone_latency_reduction'] = {
        'width': half, 'value': reduction,
        'met': reduction >= TARGETS['half_width_backbone_latency_reduction']}
    drop = static['map'] - rows[str(Mode('static', 0.0, half))]['map']
    results['half_width_map_drop'] = {'width': half, 'value': drop,
                                      'met': drop <= TARGETS['half_width_map_drop']}
    cheapest = front[-1]
    reduction = 1 - rows[cheapest]['latency_vs_static']
    results['cheapest_latency_reduction'] = {
        'point': cheapest, 'value': reduction,
        'met': reduction >= TARGETS['cheapest_latency_reduction']}
    near = [p for p in front if p != 'static'
            and static['map'] - rows[p]['map'] <= TARGETS['near_static_map_drop']]
    best = min(near, key=lambda p: rows[p]['latency_p50_ms']) if near else None
    results['near_static_point'] = {
        'point': best, 'met': best is not None,
        'value': None if best is None else 1 - rows[best]['latency_vs_static']}
    return results


def format_table(rows: dict, front: list) -> str:
    """Markdown table of every operating point; '*' marks the Pareto front."""
    lines = ['| point | front | mAP | vs static | MMACs / frame | p50 ms | p95 ms | frames/s '
             '| latency vs static |', '| --- | --- | --- | --- | --- | --- | --- | --- | --- |']
    for point, r in rows.items():
        lines.append(
            f'| {point} | {"*" if point in front else ""} | {r["map"]:.3f} | '
            f'{100 * r["map_vs_static"]:+.1f} | {r["macs_per_frame"] / 1e6:.1f} | '
            f'{r["latency_p50_ms"]:.2f} | {r["latency_p95_ms"]:.2f} | {r["frames_per_s"]:.0f} | '
            f'{r["latency_vs_static"]:.2f} |')
    return '\n'.join(lines)


def plot_front(rows: dict, front: list, models: dict, path: Path) -> None:
    """Accuracy against latency of every point, coloured by width; the front joined."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    widths = sorted({parse_mode(p).width for p in rows}, reverse=True)
    colours = dict(zip(widths, ('tab:blue', 'tab:orange', 'tab:green', 'tab:red', 'tab:purple'),
                       strict=False))
    markers = {'static': 's', 'multi': 'o', 'single': '^'}
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for point, r in rows.items():
        mode = parse_mode(point)
        axes.scatter(r['latency_p50_ms'], r['map'], color=colours.get(mode.width, 'k'),
                     marker=markers[mode.kind], s=45,
                     label=f'width {mode.width:g}' if mode.kind == 'static' else None)
        axes.annotate(point, (r['latency_p50_ms'], r['map']), fontsize=7,
                      textcoords='offset points', xytext=(4, 4))
    axes.plot([rows[p]['latency_p50_ms'] for p in front], [rows[p]['map'] for p in front],
              color='k', alpha=0.35, label='Pareto front')
    fit = models['all']
    if fit['a_ms_per_gmac'] is not None:
        axes.set_title(f'AdaCon operating points (latency = {fit["a_ms_per_gmac"]:.1f} ms/GMAC '
                       f'x MACs + {fit["c_ms"]:.2f} ms, R^2 {fit["r2"]:.2f})', fontsize=9)
    save_accuracy_latency(figure, axes, path, fontsize=8, loc='lower right')


def run_bench_channels(model_dir, annotations, images_dir, modes: Sequence[str] = DEFAULT_MODES,
                       out_dir: Path = Path('reports/bench_channels'), repeats: int = 3,
                       warmup: int = 10, frames: int = 50, providers: Sequence[str] = (CPU,),
                       threads: int = 1, eval_limit: int | None = None,
                       levels: int = 4) -> int:
    """Measure every operating point; print and write (JSON, front PNG) what it found.

    Printed: the table, the latency fits, the proposed profile of ``levels`` entries
    and the targets. Exit code 0.
    """
    engine = AdaConEngine(model_dir, providers, threads)
    if 1.0 not in engine.widths:
        raise ValueError(f'{model_dir} has no full-width graphs (widths {engine.widths})')
    points = operating_points(engine.widths, modes)
    if 'static' not in points:
        raise ValueError("the modes must include 'static', the reference")
    report = evaluate(model_dir, annotations, images_dir, points, providers, threads or None,
                      limit=eval_limit)
    infos = sorted(json.loads(Path(annotations).read_text())['images'], key=lambda i: i['id'])
    images = [load_rgb(Path(images_dir) / info['file_name']) for info in infos[:frames]]
    samples = time_process(model_dir, images, points, repeats, warmup, providers, threads)
    backbone = {w: float(np.percentile(s, 50) * 1e3)
                for w, s in time_backbones(engine, images, repeats, warmup).items()}
    rows = _rows(report, samples, 'static')
    front = pareto_front(rows)
    models = latency_models(rows)
    targets = check_targets(rows, backbone, front)
    profile = propose_profile(rows, front, levels)
    result = {
        'machine': {'platform': platform.platform(), 'processor': platform.processor(),
                    'cpus': os.cpu_count(), 'onnxruntime': ort.__version__,
                    'providers': report['providers'], 'threads': threads},
        'model_dir': str(model_dir), 'frames': len(images), 'repeats': repeats,
        'eval_images': report['images'], 'points': rows,
        'backbone_latency_p50_ms': {f'{w:g}': ms for w, ms in backbone.items()},
        'backbone_macs': {f'{w:g}': engine.manifest.graphs(w).backbone['macs']
                          for w in engine.widths},
        'pareto_front': front, 'proposed_level_modes': profile, 'latency_models': models,
        'targets': targets,
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / 'bench_channels.json').write_text(json.dumps(result, indent=1))
    plot_front(rows, front, models, out_dir / 'bench_channels_front.png')
    print(format_table(rows, front))
    print('\nbackbone alone, p50: ' + ', '.join(
        f'width {w:g} {ms:.2f} ms ({ms / backbone[1.0]:.2f}x)' for w, ms in backbone.items()))
    print('\nlatency model (p50 ms = a x GMACs + c):')
    for knob, fit in models.items():
        if fit['a_ms_per_gmac'] is None:
            print(f'  {knob}: too few distinct points')
        else:
            print(f'  {knob}: a = {fit["a_ms_per_gmac"]:.2f} ms/GMAC, c = {fit["c_ms"]:.2f} ms, '
                  f'R^2 = {fit["r2"]:.3f} over {fit["points"]} points')
    print(f'\nPareto front, most accurate first: {front}')
    print(f'proposed level_modes ({levels} levels, evenly spaced latency budgets): {profile}')
    print('\ntargets:')
    for name, t in targets.items():
        value = '-' if t['value'] is None else f'{t["value"]:.3f}'
        where = t.get('point', t.get('width'))
        print(f'  {name}: {value} ({where}): {"met" if t["met"] else "NOT met"}')
    print(f'written {out_dir / "bench_channels.json"} and {out_dir / "bench_channels_front.png"}')
    return 0
