"""``bench detector`` on a FastestDet folder: mAP and node latency per level, one run.

Accuracy: ``evaluate_fastestdet`` (the ONNX engine, pycocotools) on a COCO set.
Latency: the detector node's own ``process(msg)`` - a 640x480 rgb8
``sensor_msgs/Image`` in (the size of a common camera frame; every timed photo is
resized to it), a ``DetectionArray`` out: conversion, resize, graph, decode and
NMS - in-process, batch 1, without DDS. Levels take turns of ``frames_per_turn``
consecutive frames in a rotating order (``runtime.timing``), so load from other
processes falls on all of them alike; the time reported is the node's own
``latency_ms`` of each frame (the level switch between turns is not in it).
Ratios to ``static@<largest size>`` FP32 are the result; absolute times belong to
this machine. The front targets (cheapest point, a point of 0.8x the mAP at 0.5x the
latency) are checked and printed as measured.
"""

import json
import time
from pathlib import Path
from typing import Sequence, TypedDict

import numpy as np
from PIL import Image as PilImage

from adaptive_perception.detection.bench import (
    FRONT_LATENCY,
    DetectorRow,
    bench_node,
    format_table,
    image_messages,
    pareto_front,
    save_accuracy_latency,
    switch_level,
)
from adaptive_perception.detection.evaluate import format_table as format_eval_table
from adaptive_perception.detection.evaluate import load_rgb
from adaptive_perception.detection.fastestdet.engine import FastestDetEngine
from adaptive_perception.detection.fastestdet.evaluate import evaluate_fastestdet
from adaptive_perception.runtime.images import rgb_to_image_fields
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

CAMERA_SIZE = (640, 480)  # (width, height) of the frames timed
CHEAPEST_MAX_LATENCY = 0.25   # targets, as ratios to the FP32 largest-size point
GOOD_MIN_MAP, GOOD_MAX_LATENCY = 0.8, 0.5


def node_latency_ms(model_dir, images: Sequence[np.ndarray], modes: Sequence[str],
                    repeats: int, frames_per_turn: int, warmup: int,
                    providers: Sequence[str] = (CPU,), threads: int = 1) -> dict[str, list[float]]:
    """Time the node: its ``latency_ms`` per ``process`` call, per mode {mode: [ms, ...]}.

    The node is built in its own context and never spun (its input topic is a
    private one); a level change is a ``level_override`` set, as in service, made
    outside the timing (``detection.bench.switch_level``).
    """
    with bench_node(model_dir, modes, providers, threads) as node:
        messages = image_messages(images)
        samples = {mode: [] for mode in modes}
        interleaved_seconds({mode: node.process for mode in modes}, messages,
                            repeats=repeats, warmup=warmup, frames_per_turn=frames_per_turn,
                            on_result=lambda mode, _, out: samples[mode].append(out.latency_ms),
                            before=switch_level(node, modes, node.engine.parse_mode))
        return samples


def graph_latency_ms(engine: FastestDetEngine, images: Sequence[np.ndarray],
                     modes: Sequence[str], repeats: int, frames_per_turn: int,
                     warmup: int) -> dict[str, list[float]]:
    """Time of the graph alone (ONNX Runtime's run on a preprocessed input), per mode.

    The same interleaved protocol as the node timing; what the node adds around the
    graph (conversion, resize, decode, NMS, the message) is the difference.
    """
    parsed = {mode: engine.parse_mode(mode) for mode in modes}
    inputs = {mode: [engine.preprocess(rgb, parsed[mode].size) for rgb in images]
              for mode in modes}
    indices = list(range(len(images)))

    def run_at(mode):
        mode_ = parsed[mode]
        return lambda i: engine._run(mode_.size, mode_.precision, inputs[mode][i])

    seconds = interleaved_seconds({mode: run_at(mode) for mode in modes}, indices,
                                  repeats=repeats, warmup=warmup,
                                  frames_per_turn=frames_per_turn)
    return {mode: [s * 1e3 for s in values] for mode, values in seconds.items()}


def _rows(report: dict, samples: dict, reference: str,
          graph: dict | None = None) -> dict[str, DetectorRow]:
    rows = {}
    for mode, values in samples.items():
        scores = report['modes'][mode]
        rows[mode] = {
            'map': scores['map'], 'ap50': scores['ap50'], 'ap75': scores['ap75'],
            'mean_branches': 0.0, 'macs_per_frame': scores['mean_macs'],
            **Latency.of_ms(values).columns()}
        if graph is not None:
            rows[mode]['graph_p50_ms'] = Latency.of_ms(graph[mode]).p50_ms
    ref = rows[reference]
    for row in rows.values():
        row['macs_vs_static'] = row['macs_per_frame'] / ref['macs_per_frame']
        row['head_macs_vs_static'] = row['macs_vs_static']  # one graph: all of it is "head"
        row['latency_vs_static'] = row['latency_p50_ms'] / ref['latency_p50_ms']
        row['map_vs_static'] = row['map'] / ref['map'] if ref['map'] else None
        if 'graph_p50_ms' in row:
            row['graph_vs_static'] = row['graph_p50_ms'] / ref['graph_p50_ms']
    return rows


class GoodAndCheap(TypedDict):
    """The points that keep most of the reference's mAP at a fraction of its latency."""

    target: str
    points: list[str]
    met: bool


class FastestDetTargets(TypedDict):
    """The targets of the FastestDet front, as ``bench detector`` prints and writes them."""

    reference: str
    cheapest: TargetCheck     # with mode, latency_vs_reference, target_max
    good_and_cheap: GoodAndCheap


def check_targets(rows: dict, reference: str) -> FastestDetTargets:
    """Check the front targets: which points meet them, and whether any does."""
    others = {m: r for m, r in rows.items() if m != reference}
    cheapest = min(others or rows, key=lambda m: rows[m]['latency_p50_ms'])
    good = [m for m, r in others.items() if r['map_vs_static'] is not None
            and r['map_vs_static'] >= GOOD_MIN_MAP and r['latency_vs_static'] <= GOOD_MAX_LATENCY]
    ratio = rows[cheapest]['latency_vs_static']
    return {
        'reference': reference,
        'cheapest': target(ratio, CHEAPEST_MAX_LATENCY, mode=cheapest,
                           latency_vs_reference=ratio, target_max=CHEAPEST_MAX_LATENCY),
        'good_and_cheap': {'target': f'mAP >= {GOOD_MIN_MAP}x at latency <= '
                                     f'{GOOD_MAX_LATENCY}x', 'points': good, 'met': bool(good)},
    }


def plot_front(rows: dict, path: Path) -> None:
    """MAP against node latency per level; the Pareto front joined."""
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(6, 4))
    for mode, r in rows.items():
        int8 = mode.endswith('/int8')
        axes.scatter(r[FRONT_LATENCY], r['map'], marker='^' if int8 else 'o', s=50,
                     color='tab:orange' if int8 else 'tab:blue')
        axes.annotate(mode, (r[FRONT_LATENCY], r['map']), textcoords='offset points',
                      xytext=(5, 5))
    front = [(rows[p][FRONT_LATENCY], rows[p]['map']) for p in pareto_front(rows)]
    axes.plot(*zip(*front, strict=True), color='tab:blue', alpha=0.4, label='Pareto front')
    axes.set_title('FastestDet (COCO): input size x precision, 640x480 frames')
    save_accuracy_latency(figure, axes, path)


def run_bench_fastestdet(model_dir, annotations, images_dir, modes: Sequence[str] | None = None,
                         out_dir: Path = Path('reports/bench_detector'), repeats: int = 2,
                         frames: int = 50, frames_per_turn: int = 5, warmup: int = 5,
                         providers: Sequence[str] = (CPU,), threads: int = 1,
                         eval_limit: int | None = None, stream_seconds: float = 0.0,
                         stream_rate_hz: float = 15.0) -> int:
    """Measure, print the table and the targets, write JSON and PNG into ``out_dir``; 0.

    ``stream_seconds`` > 0 also streams 640x480 frames over DDS into a detector
    process per level (``stream_levels``) and reports frames lost and end-to-end latency.
    """
    engine = FastestDetEngine(model_dir, providers, threads or None)
    if modes is None:
        modes = engine.manifest.modes
    modes = [str(engine.parse_mode(m)) for m in modes]
    if len(set(modes)) != len(modes):
        raise ValueError(f'modes must be distinct, got {modes}')
    reference = f'static@{engine.sizes[0]}'
    if reference not in modes:
        modes.insert(0, reference)
    report = evaluate_fastestdet(model_dir, annotations, images_dir, modes, providers,
                                 threads or None, limit=eval_limit)
    infos = sorted(json.loads(Path(annotations).read_text())['images'], key=lambda i: i['id'])
    images = [np.asarray(PilImage.fromarray(load_rgb(Path(images_dir) / i['file_name']))
                         .resize(CAMERA_SIZE, PilImage.BILINEAR)) for i in infos[:frames]]
    samples = node_latency_ms(model_dir, images, modes, repeats, frames_per_turn, warmup,
                              providers, threads)
    graph = graph_latency_ms(engine, images, modes, repeats, frames_per_turn, warmup)
    rows = _rows(report, samples, reference, graph)
    targets = check_targets(rows, reference)
    stream = (stream_levels(model_dir, images, modes, stream_seconds, stream_rate_hz,
                            Path(out_dir) / 'logs', providers, threads)
              if stream_seconds > 0 else None)
    result = {
        'machine': machine(report['providers'], threads),
        'model_dir': str(model_dir), 'family': 'fastestdet', 'frames': len(images),
        'frame_size': list(CAMERA_SIZE), 'repeats': repeats, 'frames_per_turn': frames_per_turn,
        'eval_images': report['images'], 'modes': rows, 'targets': targets,
        'stream': None if stream is None else {'rate_hz': stream_rate_hz,
                                               'seconds': stream_seconds, 'modes': stream},
    }
    out_dir = Path(out_dir)
    write_json(out_dir / 'bench_detector.json', result)
    plot_front(rows, out_dir / 'bench_detector_pareto.png')
    print(format_table(rows))
    print('graph alone (ONNX Runtime run), p50 ms and vs ' + reference + ': ' + ', '.join(
        f'{m} {r["graph_p50_ms"]:.2f} ({r["graph_vs_static"]:.2f})' for m, r in rows.items()))
    cheapest, good = targets['cheapest'], targets['good_and_cheap']
    print(f'cheapest point {cheapest["mode"]}: {cheapest["latency_vs_reference"]:.2f}x the '
          f'latency of {reference} (target <= {CHEAPEST_MAX_LATENCY}): '
          f'{"met" if cheapest["met"] else "MISSED"}')
    print(f'{good["target"]} of {reference}: '
          f'{", ".join(good["points"]) if good["met"] else "MISSED (no such point)"}')
    if stream is not None:
        print(f'\nover DDS at {stream_rate_hz:g} Hz, 640x480 rgb8, {stream_seconds:g} s a level:')
        print(markdown_table(
            ('level entry', 'frames sent', 'lost', 'end-to-end p50 ms', 'p95 ms'),
            ((mode, r['sent'], r['lost'], cell(r['e2e_p50_ms']), cell(r['e2e_p95_ms']))
             for mode, r in stream.items())))
    print(f'written {out_dir / "bench_detector.json"} and {out_dir / "bench_detector_pareto.png"}')
    return 0


def run_eval_fastestdet(model_dir, annotations, images_dir, modes=None, providers=(CPU,),
                        threads=None, out: Path | None = None, limit: int | None = None) -> int:
    """``eval adacon`` on a FastestDet folder: print the table, write the JSON; exit code 0."""
    report = evaluate_fastestdet(model_dir, annotations, images_dir, modes, providers, threads,
                                 limit=limit)
    print(format_eval_table(report))
    if out is not None:
        write_json(out, report)
        print(f'wrote {out}')
    return 0


class StreamResult(TypedDict):
    """One level streamed over DDS: frames sent, answered, lost; end-to-end latency."""

    sent: int
    received: int
    lost: int
    e2e_p50_ms: float | None
    e2e_p95_ms: float | None


def stream_levels(model_dir, images: Sequence[np.ndarray], modes: Sequence[str],
                  seconds: float, rate_hz: float, log_dir: Path,
                  providers: Sequence[str] = (CPU,),
                  threads: int = 1) -> dict[str, StreamResult]:
    """Stream frames over DDS into a detector process at ``rate_hz``, one level at a time.

    For each level the node is started as its own process with that level fixed
    (``level_override``) on a private camera topic; after one second of warm-up
    frames, ``seconds`` of frames are published with sensor-data QoS (the camera's),
    each stamped when sent. Result per mode: frames sent, detections received for
    them, frames lost, and end-to-end latency (received - stamp, same clock) p50/p95.
    """
    import rclpy
    from builtin_interfaces.msg import Time
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from adaptive_perception.launcher.plan import NodeSpec
    from adaptive_perception.launcher.processes import NodeProcess
    from adaptive_perception.msg import DetectionArray
    from adaptive_perception.ros.interfaces import DETECTIONS_TOPIC, OUTPUT_QOS

    topic = '/adaptive_perception/bench/stream'
    fields = [rgb_to_image_fields(rgb) for rgb in images]
    results = {}
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node('bench_stream', context=context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        camera = node.create_publisher(Image, topic, qos_profile_sensor_data)
        received = {}

        def on_output(msg):
            received.setdefault(msg.header.frame_id, time.time())

        node.create_subscription(DetectionArray, DETECTIONS_TOPIC, on_output, OUTPUT_QOS)
        for level, mode in enumerate(modes):
            process = NodeProcess(NodeSpec('adacon_detector', 'adacon_detector', 'perception', {
                'model_dir': str(model_dir), 'providers': list(providers),
                'threads': int(threads), 'image_topic': topic, 'level_modes': list(modes),
                'level_override': level}), Path(log_dir))
            try:
                sent = {}
                deadline = time.monotonic() + 30.0
                while camera.get_subscription_count() == 0 or \
                        node.count_publishers(DETECTIONS_TOPIC) == 0:
                    if process.returncode() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f'detector did not start: {process.log()[-500:]}')
                    executor.spin_once(timeout_sec=0.05)
                period, warm = 1.0 / rate_hz, int(rate_hz)
                total = warm + int(seconds * rate_hz)
                start = time.monotonic()
                for i in range(total):
                    while time.monotonic() < start + i * period:
                        executor.spin_once(timeout_sec=max(0.0, start + i * period -
                                                           time.monotonic()))
                    frame_id = f'{mode}/{i}'
                    now = time.time()
                    stamp = Time(sec=int(now), nanosec=int((now % 1) * 1e9))
                    camera.publish(Image(header=Header(stamp=stamp, frame_id=frame_id),
                                         **fields[i % len(fields)]))
                    if i >= warm:
                        sent[frame_id] = now
                end = time.monotonic() + 2.0  # the last frames' answers
                while time.monotonic() < end:
                    executor.spin_once(timeout_sec=0.05)
                latencies = np.asarray([received[f] - t for f, t in sent.items()
                                        if f in received]) * 1e3
                results[mode] = {
                    'sent': len(sent), 'received': int(latencies.size),
                    'lost': len(sent) - int(latencies.size),
                    'e2e_p50_ms': float(np.percentile(latencies, 50)) if latencies.size else None,
                    'e2e_p95_ms': float(np.percentile(latencies, 95)) if latencies.size else None}
            finally:
                process.stop()
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)
    return results
