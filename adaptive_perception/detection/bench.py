"""``adaptive-perception bench detector``: accuracy, MACs and latency per mode, side by side.

One run on one machine measures every mode the same way: mAP from ``evaluate``
(the ONNX engine on a COCO set), MACs per frame from the manifest counts of the
graphs that ran, and the latency of the node's own ``process(msg)`` - a
``sensor_msgs/Image`` in, a ``DetectionArray`` out: conversion, letterbox,
graphs, decode and NMS - in-process, batch 1, without DDS; of it, the time inside
ONNX Runtime (model) and the rest (the node's own overhead). Modes take turns on
every frame (switched through ``level_override``, as in service), so that load
from other processes and drift in the machine's speed fall on all of them alike.
Ratios between modes are the result; absolute times belong to this machine.
"""

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Sequence, TypedDict

import numpy as np

from adaptive_perception.detection.evaluate import evaluate, load_rgb
from adaptive_perception.detection.manifest import DEFAULT_MODES, Manifest, parse_mode
from adaptive_perception.runtime.images import rgb_to_image_fields
from adaptive_perception.runtime.onnx_sessions import CPU
from adaptive_perception.runtime.report_io import (
    cell,
    machine,
    markdown_table,
    pyplot,
    save_figure,
    write_json,
)
from adaptive_perception.runtime.timing import Latency, LatencyColumns, interleaved_seconds


class OverheadColumns(TypedDict):
    """Of ``process``: the time inside ONNX Runtime and the node's own (the rest), ms."""

    model_p50_ms: float
    overhead_p50_ms: float
    overhead_p95_ms: float


class DetectorRow(LatencyColumns, total=False):
    """One mode's row of ``bench detector`` (and of ``bench channels``, one per point).

    A TypedDict, not a dataclass: the rows are the bench's JSON, read back by the
    model cards and the tests by key. FastestDet's rows have no overhead split
    (its node times itself) but a ``graph_p50_ms``; ratios are to the reference point.
    """

    map: float
    ap50: float
    ap75: float
    mean_branches: float
    macs_per_frame: float
    macs_vs_static: float
    head_macs_per_frame: float
    head_macs_vs_static: float
    latency_vs_static: float | None
    map_vs_static: float | None
    exit_rate: float | None
    model_p50_ms: float
    overhead_p50_ms: float
    overhead_p95_ms: float
    graph_p50_ms: float
    graph_vs_static: float


@contextmanager
def bench_node(model_dir, modes: Sequence[str], providers: Sequence[str] = (CPU,),
               threads: int = 1):
    """Yield an ``AdaConDetector`` on ``modes`` in a context of its own; destroyed after.

    Never spun (its input topic is a private one), logging at WARN (no line per mode
    switch), level 0 to start; a level change is a ``level_override`` set, as in service.
    rclpy and the node are imported here, so that the bench's tables and fits import
    without ROS.
    """
    import rclpy
    from rclpy.logging import LoggingSeverity
    from rclpy.parameter import Parameter

    from adaptive_perception.detection.detector_node import AdaConDetector

    context = rclpy.Context()
    rclpy.init(context=context)
    node = None
    try:
        node = AdaConDetector(context=context, parameter_overrides=[
            Parameter('model_dir', value=str(model_dir)),
            Parameter('providers', value=list(providers)),
            Parameter('threads', value=int(threads)),
            Parameter('image_topic', value='/adaptive_perception/bench/unused'),
            Parameter('level_modes', value=list(modes)),
            Parameter('level_override', value=0)])
        node.get_logger().set_level(LoggingSeverity.WARN)
        yield node
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown(context=context)


def image_messages(images: Sequence[np.ndarray]) -> list:
    """``sensor_msgs/Image`` messages of RGB frames, as a camera driver would send them."""
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    return [Image(header=Header(frame_id='bench'), **rgb_to_image_fields(rgb)) for rgb in images]


def switch_level(node, modes: Sequence[str], parse=parse_mode):
    """Return ``switch(mode)``: set the node's ``level_override`` to ``mode``'s level, checked.

    The parameter is set only when the level changes (as in service, where a level
    holds for many frames); the knob the node then follows must be ``parse(mode)``.
    """
    from rclpy.parameter import Parameter

    levels = {mode: level for level, mode in enumerate(modes)}
    current = [None]

    def switch(mode: str) -> None:
        level = levels[mode]
        if current[0] == level:
            return
        node.set_parameters([Parameter('level_override', value=level)])
        current[0] = level
        if str(node.following.knob) != str(parse(mode)):
            raise RuntimeError(f'level {level} did not select {mode}')
    return switch


def time_process(model_dir, images: Sequence[np.ndarray], modes: Sequence[str], repeats: int,
                 warmup: int, providers: Sequence[str] = (CPU,), threads: int = 1,
                 model_seconds: dict | None = None) -> dict[str, list[float]]:
    """Seconds per ``AdaConDetector.process`` call, per mode: {mode: [s, ...]}.

    The node is built in its own context and never spun (its input topic is a
    private one); each frame is run in every mode in turn, in an order that rotates
    from frame to frame (``runtime.timing.interleaved_seconds``, the protocol of
    every bench), the level switch outside the timing. ``model_seconds``, if given,
    receives per mode the seconds of each call spent inside ONNX Runtime (the rest
    is the node's own work).
    """
    with bench_node(model_dir, modes, providers, threads) as node:
        messages = image_messages(images)
        engine, switch = node.engine, switch_level(node, modes)
        inside = {mode: [] for mode in modes}
        model_before = [0.0]

        def prepare(mode: str) -> None:
            switch(mode)
            model_before[0] = engine.model_seconds

        def record(mode: str, _message, _result) -> None:
            inside[mode].append(engine.model_seconds - model_before[0])

        samples = interleaved_seconds({mode: node.process for mode in modes}, messages,
                                      repeats=repeats, warmup=warmup, on_result=record,
                                      before=prepare)
        if model_seconds is not None:
            model_seconds.update(inside)
        return samples


def overhead_columns(seconds: Sequence[float], model: Sequence[float]) -> OverheadColumns:
    """Model time and the node's own time (the rest of ``process``), p50 in ms."""
    total, model = np.asarray(seconds) * 1e3, np.asarray(model) * 1e3
    return {'model_p50_ms': float(np.percentile(model, 50)),
            'overhead_p50_ms': float(np.percentile(total - model, 50)),
            'overhead_p95_ms': float(np.percentile(total - model, 95))}


def _rows(report: dict, samples: dict, manifest: Manifest,
          model: dict) -> dict[str, DetectorRow]:
    """One row per mode: accuracy, cost in MACs and time, and ratios to static."""
    full = manifest.graphs(1.0)
    static_head = full.static_head.macs
    static_total = full.backbone['macs'] + static_head
    rows = {}
    for mode, seconds in samples.items():
        scores = report['modes'][str(parse_mode(mode))]
        head_macs = scores['mean_macs'] - manifest.graphs(parse_mode(mode).width).backbone['macs']
        rows[mode] = {
            'map': scores['map'], 'ap50': scores['ap50'], 'ap75': scores['ap75'],
            'mean_branches': scores['mean_branches'], 'macs_per_frame': scores['mean_macs'],
            'macs_vs_static': scores['mean_macs'] / static_total,
            'head_macs_per_frame': head_macs, 'head_macs_vs_static': head_macs / static_head,
            **Latency.of_seconds(seconds).columns(), **overhead_columns(seconds, model[mode])}
    static = rows.get('static')
    for row in rows.values():
        row['latency_vs_static'] = (row['latency_p50_ms'] / static['latency_p50_ms']
                                    if static else None)
    return rows


TABLE_HEADER = ('mode', 'mAP', 'AP50', 'branches', 'MMACs / frame', 'vs static',
                'head MACs vs static', 'p50 ms', 'p95 ms', 'model p50 ms', 'node overhead p50 ms',
                'frames/s', 'latency vs static')


def format_table(rows: dict) -> str:
    """Format the bench rows as a markdown table; '-' where a bench did not split a time out."""
    return markdown_table(TABLE_HEADER, (
        (mode, f'{r["map"]:.3f}', f'{r["ap50"]:.3f}', f'{r["mean_branches"]:.2f}',
         f'{r["macs_per_frame"] / 1e6:.1f}', f'{r["macs_vs_static"]:.2f}',
         f'{r["head_macs_vs_static"]:.2f}', f'{r["latency_p50_ms"]:.2f}',
         f'{r["latency_p95_ms"]:.2f}', cell(r.get('model_p50_ms')),
         cell(r.get('overhead_p50_ms')), f'{r["frames_per_s"]:.1f}',
         cell(r['latency_vs_static'])) for mode, r in rows.items()))


# The latency a front, a plot and a proposed level profile compare points by: the mean
# time per frame, because a level's energy follows the mean. A median would hide an
# exit cascade's costly frames: exiting on more than half of them, its p50 is the
# cheap pass alone.
FRONT_LATENCY = 'latency_mean_ms'


def pareto_front(rows: dict) -> list[str]:
    """Points no other point beats in both mean latency and mAP, most accurate first."""
    order = sorted(rows, key=lambda p: (rows[p][FRONT_LATENCY], -rows[p]['map']))
    front, best = [], -1.0
    for point in order:  # fastest first: keep what is more accurate than all faster ones
        if rows[point]['map'] > best:
            front.append(point)
            best = rows[point]['map']
    return front[::-1]


def plot_pareto(rows: dict, path: Path) -> None:
    """Accuracy against latency, static vs adaptive modes; the Pareto front joined."""
    plt = pyplot()
    points = sorted((r[FRONT_LATENCY], r['map'], mode) for mode, r in rows.items())
    front = [(rows[p][FRONT_LATENCY], rows[p]['map']) for p in pareto_front(rows)]
    figure, axes = plt.subplots(figsize=(6, 4))
    for latency, accuracy, mode in points:
        static = mode == 'static'
        axes.scatter(latency, accuracy, marker='s' if static else 'o', s=50,
                     color='tab:gray' if static else 'tab:blue')
        axes.annotate(mode, (latency, accuracy), textcoords='offset points', xytext=(5, 5))
    axes.plot(*zip(*front, strict=True), color='tab:blue', alpha=0.4, label='Pareto front')
    axes.set_title('AdaCon: static head vs adaptive modes')
    save_accuracy_latency(figure, axes, path)


def save_accuracy_latency(figure, axes, path: Path, **legend) -> None:
    """Label mAP-vs-latency axes from zero (distances read as ratios), write the PNG, close."""
    axes.set_xlim(left=0)
    axes.set_ylim(bottom=0)
    axes.set_xlabel('mean latency of process(msg) (ms)')
    axes.set_ylabel('mAP@[.5:.95]')
    axes.grid(alpha=0.3)
    axes.legend(**legend)
    save_figure(figure, path, dpi=120)


def run_bench_detector(model_dir, annotations, images_dir, modes: Sequence[str] = DEFAULT_MODES,
                       out_dir: Path = Path('reports/bench_detector'), repeats: int = 3,
                       warmup: int = 10, frames: int = 50, providers: Sequence[str] = (CPU,),
                       threads: int = 1, eval_limit: int | None = None) -> int:
    """Measure, print the table, write JSON and the Pareto PNG into ``out_dir``; exit code 0.

    ``frames``: how many images of the set are timed (each ``repeats`` times per mode).
    """
    modes = list(modes)
    if len({str(parse_mode(m)) for m in modes}) != len(modes):
        raise ValueError(f'modes must be distinct, got {modes}')
    report = evaluate(model_dir, annotations, images_dir, modes, providers, threads or None,
                      limit=eval_limit)
    infos = sorted(json.loads(Path(annotations).read_text())['images'], key=lambda i: i['id'])
    images = [load_rgb(Path(images_dir) / info['file_name']) for info in infos[:frames]]
    model = {}
    samples = time_process(model_dir, images, modes, repeats, warmup, providers, threads, model)
    rows = _rows(report, samples, Manifest.load(model_dir), model)
    result = {
        'machine': machine(report['providers'], threads),
        'model_dir': str(model_dir), 'frames': len(images), 'repeats': repeats,
        'modes': rows, 'controller': report['controller'], 'eval_images': report['images'],
    }
    out_dir = Path(out_dir)
    write_json(out_dir / 'bench_detector.json', result)
    plot_pareto(rows, out_dir / 'bench_detector_pareto.png')
    print(format_table(rows))
    accuracy = report['controller']['top1_accuracy']
    if accuracy is not None:
        print(f'controller top-1 = dominant cluster: {accuracy:.3f}')
    print(f'written {out_dir / "bench_detector.json"} and {out_dir / "bench_detector_pareto.png"}')
    return 0
