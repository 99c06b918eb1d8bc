"""``adaptive-perception bench channels``: every detector operating point, side by side.

An operating point is a mode (static head, multi-branch threshold, single branch) at
a backbone width (a nested channel set) in a precision (FP32, calibrated INT8), or
an exit cascade between two of them. One run measures all of them the same way as
``bench detector`` does: mAP from the ONNX engine scored by pycocotools, MACs per
frame from the manifest counts, latency of the node's own ``process(msg)`` with the
points taking turns on every frame, split into model time and node overhead, and a
cascade's exit rate. The backbone graphs of every width are also timed alone,
interleaved, for the width target.

Which margin should decide a cascade's exit is measured, not assumed: per frame,
does the costly pass publish a better answer than the cheap one (more true minus
false positives at IoU 0.5 above the score threshold, from pycocotools' per-image
matches)? The area under the ROC curve of each margin for "the cheap answer is as
good" says how well it separates the frames (0.5 = no better than chance).

From the points it fits the per-knob latency model ``latency = a * MACs + c``
(the EDLAB thesis, ch. 5): one fit per knob, holding the other fixed (width
at static mode, mode at full width) and one over all points, so that the budget
manager and the docs can predict a level's cost from its MACs. It draws the Pareto
front of accuracy against latency and proposes the detector's level profile from it:
level ``i`` of ``N`` gets a latency budget evenly spaced from the front's costliest
point (level 0) to its cheapest (level N-1), and the most accurate front point
within that budget.
"""

import contextlib
import io
import json
from pathlib import Path
from typing import Sequence, TypedDict

import numpy as np

from adaptive_perception.detection.bench import (
    FRONT_LATENCY,
    DetectorRow,
    overhead_columns,
    pareto_front,
    save_accuracy_latency,
    time_process,
)
from adaptive_perception.detection.engine import AdaConEngine
from adaptive_perception.detection.evaluate import evaluate, load_rgb
from adaptive_perception.detection.manifest import DEFAULT_MODES, Mode, parse_mode
from adaptive_perception.runtime.onnx_sessions import CPU
from adaptive_perception.runtime.report_io import (
    TargetCheck,
    cell,
    machine,
    markdown_table,
    pyplot,
    target,
    write_json,
)
from adaptive_perception.runtime.timing import Latency, interleaved_seconds

TARGETS = {'half_width_backbone_latency_reduction': 0.40, 'half_width_map_drop': 0.05,
           'cheapest_latency_reduction': 0.60, 'near_static_map_drop': 0.02,
           # precision and exits: ratios to FP32 static, mAP drops in mAP units (0.01 = 1 point)
           'static_int8_latency_ratio': 0.45, 'static_int8_map_drop': 0.01,
           'cheapest_latency_ratio': 0.15, 'near_static_int8_map_drop': 0.01,
           'near_static_int8_latency_ratio': 0.40, 'node_overhead_p50_ms': 0.5}
# Cascade thresholds measured: context margins sit high (median ~0.96 on the shipped
# model), detection-score margins around 0.5, so each grid spans exit rates of
# roughly 85% down to 25% (bench output: exit_rate).
CASCADE_THRESHOLDS = {'context': (0.5, 0.9, 0.97), 'score': (0.4, 0.5, 0.6)}


def operating_points(widths: Sequence[float], modes: Sequence[str] = DEFAULT_MODES,
                     precisions: Sequence[str] = ('fp32',)) -> list:
    """Every mode at every width in every precision ('single@0.5/int8'), widest first."""
    return [str(Mode(parse_mode(m).kind, parse_mode(m).threshold, w, p))
            for w in sorted(widths, reverse=True) for p in precisions for m in modes]


def cascade_points(widths: Sequence[float], precisions: Sequence[str]) -> list:
    """Return the cascades benched, as mode strings.

    In the cheapest precision: the narrowest single branch escalating to the full
    static head (nothing shared), and the full-width single branch escalating to
    multi:0.1 at the same width (backbone, controller and the top branch reused);
    every threshold of ``CASCADE_THRESHOLDS`` for both margins.
    """
    precision = precisions[-1]
    narrow = min(widths)
    pairs = [(f'single@{narrow:g}/{precision}', f'static/{precision}'),
             (f'single/{precision}', f'multi:0.1/{precision}')]
    return [str(parse_mode(f'cascade:{margin}={d:g}:{cheap}>{costly}'))
            for cheap, costly in pairs for margin, grid in CASCADE_THRESHOLDS.items()
            for d in grid]


class LatencyFit(TypedDict, total=False):
    """``latency = a * MACs + c`` fitted over some points (``over``, where named)."""

    a_ms_per_gmac: float | None
    c_ms: float
    r2: float | None
    points: int
    over: list[str]


def time_backbones(engine: AdaConEngine, images: Sequence[np.ndarray], repeats: int,
                   warmup: int) -> dict[float, list[float]]:
    """Seconds per backbone graph run, per width, widths taking turns on every frame."""
    inputs = [engine.preprocess(rgb)[0] for rgb in images]
    runs = {width: (lambda image, width=width: engine.features(image, width))
            for width in engine.widths}
    return interleaved_seconds(runs, inputs, repeats, warmup)


def fit_latency(macs: Sequence[float], latency_ms: Sequence[float]) -> LatencyFit:
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


def propose_profile(rows: dict, front: list, levels: int) -> list[str]:
    """Pick, per level, the most accurate front point within the level's latency budget.

    The ``levels`` budgets (mean latency) are evenly spaced from the front's costliest
    point to its cheapest. Each level must also be cheaper than the one before it
    where the front has such a point: a level that saves nothing gives the budget
    manager nothing to shed.
    """
    latencies = [rows[p][FRONT_LATENCY] for p in front]
    profile = []
    for budget in np.linspace(max(latencies), min(latencies), levels):
        within = [p for p in front if rows[p][FRONT_LATENCY] <= budget + 1e-9]
        if profile:  # only what saves over the level before; else that level again
            before = rows[profile[-1]][FRONT_LATENCY]
            within = [p for p in within if rows[p][FRONT_LATENCY] < before] or [profile[-1]]
        profile.append(max(within, key=lambda p: rows[p]['map']))
    return profile


def _rows(report: dict, samples: dict, static_point: str,
          model: dict | None = None) -> dict[str, DetectorRow]:
    rows = {}
    for point, seconds in samples.items():
        scores = report['modes'][point]
        rows[point] = {'map': scores['map'], 'ap50': scores['ap50'], 'ap75': scores['ap75'],
                       'mean_branches': scores['mean_branches'],
                       'macs_per_frame': scores['mean_macs'],
                       'exit_rate': scores.get('exit_rate'),
                       **Latency.of_seconds(seconds).columns()}
        if model is not None:
            rows[point].update(overhead_columns(seconds, model[point]))
    static = rows[static_point]
    for row in rows.values():
        row['latency_vs_static'] = row['latency_p50_ms'] / static['latency_p50_ms']
        row['macs_vs_static'] = row['macs_per_frame'] / static['macs_per_frame']
        row['map_vs_static'] = row['map'] - static['map']
    return rows


def latency_models(rows: dict) -> dict[str, LatencyFit]:
    """Fit the latency model per knob.

    Width (static FP32), mode (full-width FP32), each precision (all its plain
    points) and all plain points.
    """
    def fit(points):
        return {**fit_latency([rows[p]['macs_per_frame'] for p in points],
                              [rows[p]['latency_p50_ms'] for p in points]),
                'over': points}
    plain = [p for p in rows if parse_mode(p).kind != 'cascade']
    modes = {p: parse_mode(p) for p in plain}
    by_width = [p for p, m in modes.items() if m.kind == 'static' and m.precision == 'fp32']
    by_mode = [p for p, m in modes.items() if m.width == 1.0 and m.precision == 'fp32']
    fits = {'width': fit(by_width), 'mode': fit(by_mode)}
    for precision in sorted({m.precision for m in modes.values()}):
        fits[f'precision {precision}'] = fit([p for p, m in modes.items()
                                              if m.precision == precision])
    fits['all'] = fit(plain)
    return fits


class MarginQuality(TypedDict):
    """How well a cascade's margins tell, per frame, that its cheap answer is as good."""

    frames: int
    share_needing_costly: float
    context_auc: float | None
    score_auc: float | None


def check_targets(rows: dict, backbone_ms: dict, front: list) -> dict[str, TargetCheck]:
    """Each target of the channel sets, precision and exit cascades: value, whether met."""
    static = rows['static']
    half = min(backbone_ms)
    results = {
        'half_width_backbone_latency_reduction': target(
            1 - backbone_ms[half] / backbone_ms[1.0],
            TARGETS['half_width_backbone_latency_reduction'], at_most=False, width=half),
        'half_width_map_drop': target(
            static['map'] - rows[str(Mode('static', 0.0, half))]['map'],
            TARGETS['half_width_map_drop'], width=half)}
    cheapest = front[-1]
    results['cheapest_latency_reduction'] = target(
        1 - rows[cheapest]['latency_vs_static'], TARGETS['cheapest_latency_reduction'],
        at_most=False, point=cheapest)
    near = [p for p in front if p != 'static'
            and static['map'] - rows[p]['map'] <= TARGETS['near_static_map_drop']]
    best = min(near, key=lambda p: rows[p]['latency_p50_ms']) if near else None
    results['near_static_point'] = {
        'point': best, 'met': best is not None,
        'value': None if best is None else 1 - rows[best]['latency_vs_static']}
    if 'static/int8' in rows:
        results['static_int8_latency_ratio'] = target(
            rows['static/int8']['latency_vs_static'], TARGETS['static_int8_latency_ratio'],
            point='static/int8')
        results['static_int8_map_drop'] = target(
            static['map'] - rows['static/int8']['map'], TARGETS['static_int8_map_drop'],
            point='static/int8')
    results['cheapest_latency_ratio'] = target(
        rows[cheapest]['latency_vs_static'], TARGETS['cheapest_latency_ratio'], point=cheapest)
    near = [p for p in front if static['map'] - rows[p]['map']
            <= TARGETS['near_static_int8_map_drop']]
    best = min(near, key=lambda p: rows[p]['latency_p50_ms']) if near else None
    results['near_static_within_1_point'] = target(
        None if best is None else rows[best]['latency_vs_static'],
        TARGETS['near_static_int8_latency_ratio'], point=best)
    cascades = [p for p in front if parse_mode(p).kind == 'cascade']
    results['cascade_on_front'] = {'point': cascades[0] if cascades else None,
                                   'value': len(cascades), 'met': bool(cascades)}
    if 'overhead_p50_ms' in rows[cheapest]:
        results['node_overhead_p50_ms'] = target(
            rows[cheapest]['overhead_p50_ms'], TARGETS['node_overhead_p50_ms'], point=cheapest)
    return results


def margin_quality(engine: AdaConEngine, annotations, images_dir, cascades: Sequence[str],
                   score_threshold: float = 0.3,
                   limit: int | None = None) -> dict[str, MarginQuality]:
    """How well each margin of a cascade's cheap pass tells when its answer is as good.

    Per frame, the cheap and the costly mode's detections above ``score_threshold``
    are matched to the ground truth by pycocotools (IoU 0.5); a frame "needs" the
    costly pass when it scores more true minus false positives. Per (cheap, costly)
    pair: that share of frames and, per margin, the ROC AUC of the margin for "does
    not need it" (scikit-learn).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    from sklearn.metrics import roc_auc_score

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(annotations))
    image_ids = sorted(coco.getImgIds())[:limit]
    pairs = sorted({(str(parse_mode(c).cheap), str(parse_mode(c).costly)) for c in cascades})
    out = {}
    for cheap, costly in pairs:
        results = {cheap: [], costly: []}
        margins = {'context': [], 'score': []}
        for image_id in image_ids:
            rgb = load_rgb(Path(images_dir) / coco.loadImgs(image_id)[0]['file_name'])
            for margin in margins:
                rule = parse_mode(f'cascade:{margin}=0:{cheap}>{costly}')
                margins[margin].append(engine.detect(rgb, rule, score_threshold).margin)
            for mode in (cheap, costly):
                results[mode] += [
                    {'image_id': image_id, 'category_id': d.class_id, 'score': d.score,
                     'bbox': [d.x_min, d.y_min, d.x_max - d.x_min, d.y_max - d.y_min]}
                    for d in engine.detect(rgb, parse_mode(mode), score_threshold).detections]
        net = {}
        for mode, found in results.items():
            net[mode] = dict.fromkeys(image_ids, 0)
            if not found:
                continue
            with contextlib.redirect_stdout(io.StringIO()):
                evaluation = COCOeval(coco, coco.loadRes(found), 'bbox')
                evaluation.params.imgIds = image_ids
                evaluation.evaluate()
            for entry in evaluation.evalImgs:
                if entry is None or entry['aRng'] != evaluation.params.areaRng[0]:
                    continue
                matched = np.asarray(entry['dtMatches'][0]) > 0  # IoU 0.5
                ignored = np.asarray(entry['dtIgnore'][0], bool)
                net[mode][entry['image_id']] += int((matched & ~ignored).sum()
                                                    - (~matched & ~ignored).sum())
        needs = np.array([net[costly][i] > net[cheap][i] for i in image_ids])
        row = {'frames': len(image_ids), 'share_needing_costly': float(needs.mean())}
        for margin, values in margins.items():
            row[f'{margin}_auc'] = (float(roc_auc_score(~needs, values))
                                    if 0 < needs.sum() < needs.size else None)
        out[f'{cheap}>{costly}'] = row
    return out


def format_table(rows: dict, front: list) -> str:
    """Markdown table of every operating point; '*' marks the Pareto front."""
    return markdown_table(
        ('point', 'front', 'mAP', 'vs static', 'MMACs / frame', 'exit rate', 'p50 ms', 'p95 ms',
         'model p50 ms', 'overhead p50 ms', 'frames/s', 'latency vs static'),
        ((point, '*' if point in front else '', f'{r["map"]:.3f}',
          f'{100 * r["map_vs_static"]:+.1f}', f'{r["macs_per_frame"] / 1e6:.1f}',
          cell(r.get('exit_rate')), f'{r["latency_p50_ms"]:.2f}', f'{r["latency_p95_ms"]:.2f}',
          cell(r.get('model_p50_ms')), cell(r.get('overhead_p50_ms')),
          f'{r["frames_per_s"]:.0f}', f'{r["latency_vs_static"]:.2f}')
         for point, r in rows.items()))


def plot_front(rows: dict, front: list, models: dict, path: Path) -> None:
    """Accuracy against latency of every point, coloured by width; the front joined."""
    plt = pyplot()
    widths = sorted({parse_mode(p).width for p in rows}, reverse=True)
    colours = dict(zip(widths, ('tab:blue', 'tab:orange', 'tab:green', 'tab:red', 'tab:purple'),
                       strict=False))
    markers = {'static': 's', 'multi': 'o', 'single': '^', 'cascade': '*'}
    figure, axes = plt.subplots(figsize=(9, 6))
    for point, r in rows.items():
        mode = parse_mode(point)
        colour = colours.get(mode.width, 'k')
        first = mode.kind == 'static' and mode.precision == 'fp32'
        axes.scatter(r[FRONT_LATENCY], r['map'], marker=markers[mode.kind], s=45,
                     edgecolors=colour, linewidths=1.2,
                     facecolors='none' if mode.precision == 'int8' else colour,
                     label=f'width {mode.width:g} (hollow: INT8)' if first else None)
        if point not in front:
            continue  # 30+ labels would cover each other: name the front only
        axes.annotate(point, (r[FRONT_LATENCY], r['map']), fontsize=6,
                      textcoords='offset points', xytext=(4, 4))
    axes.plot([rows[p][FRONT_LATENCY] for p in front], [rows[p]['map'] for p in front],
              color='k', alpha=0.35, label='Pareto front')
    fit = models['all']
    if fit['a_ms_per_gmac'] is not None:
        axes.set_title(f'AdaCon operating points (p50 latency = {fit["a_ms_per_gmac"]:.1f} '
                       f'ms/GMAC x MACs + {fit["c_ms"]:.2f} ms, R^2 {fit["r2"]:.2f})',
                       fontsize=9)
    save_accuracy_latency(figure, axes, path, fontsize=8, loc='lower right')


def run_bench_channels(model_dir, annotations, images_dir, modes: Sequence[str] = DEFAULT_MODES,
                       out_dir: Path = Path('reports/bench_channels'), repeats: int = 3,
                       warmup: int = 10, frames: int = 50, providers: Sequence[str] = (CPU,),
                       threads: int = 1, eval_limit: int | None = None,
                       levels: int = 4, cascades: bool = True) -> int:
    """Measure every operating point; print and write (JSON, front PNG) what it found.

    Printed: the table, the latency fits, the proposed profile of ``levels`` entries
    and the targets. Exit code 0.
    """
    engine = AdaConEngine(model_dir, providers, threads)
    if 1.0 not in engine.widths:
        raise ValueError(f'{model_dir} has no full-width graphs (widths {engine.widths})')
    points = operating_points(engine.widths, modes, engine.precisions)
    if 'static' not in points:
        raise ValueError("the modes must include 'static', the reference")
    cascade = cascade_points(engine.widths, engine.precisions) if cascades else []
    points += cascade
    report = evaluate(model_dir, annotations, images_dir, points, providers, threads or None,
                      limit=eval_limit)
    infos = sorted(json.loads(Path(annotations).read_text())['images'], key=lambda i: i['id'])
    images = [load_rgb(Path(images_dir) / info['file_name']) for info in infos[:frames]]
    model = {}
    samples = time_process(model_dir, images, points, repeats, warmup, providers, threads, model)
    backbone = {w: float(np.percentile(s, 50) * 1e3)
                for w, s in time_backbones(engine, images, repeats, warmup).items()}
    rows = _rows(report, samples, 'static', model)
    margins = margin_quality(engine, annotations, images_dir, cascade,
                             limit=eval_limit) if cascade else {}
    front = pareto_front(rows)
    models = latency_models(rows)
    targets = check_targets(rows, backbone, front)
    profile = propose_profile(rows, front, levels)
    result = {
        'machine': machine(report['providers'], threads),
        'model_dir': str(model_dir), 'frames': len(images), 'repeats': repeats,
        'eval_images': report['images'], 'points': rows,
        'backbone_latency_p50_ms': {f'{w:g}': ms for w, ms in backbone.items()},
        'backbone_macs': {f'{w:g}': engine.manifest.graphs(w).backbone['macs']
                          for w in engine.widths},
        'pareto_front': front, 'proposed_level_modes': profile, 'latency_models': models,
        'targets': targets, 'cascade_margins': margins,
    }
    out_dir = Path(out_dir)
    write_json(out_dir / 'bench_channels.json', result)
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
    for pair, quality in margins.items():
        print(f'\ncascade {pair}: {quality["share_needing_costly"]:.2f} of frames gain from the '
              f'costly pass; ROC AUC of the margin for "cheap is as good": context '
              f'{quality["context_auc"]}, score {quality["score_auc"]}')
    print(f'\nPareto front, most accurate first: {front}')
    print(f'proposed level_modes ({levels} levels, evenly spaced latency budgets): {profile}')
    print('\ntargets:')
    for name, t in targets.items():
        value = '-' if t['value'] is None else f'{t["value"]:.3f}'
        where = t.get('point', t.get('width'))
        print(f'  {name}: {value} ({where}): {"met" if t["met"] else "NOT met"}')
    print(f'written {out_dir / "bench_channels.json"} and {out_dir / "bench_channels_front.png"}')
    return 0
