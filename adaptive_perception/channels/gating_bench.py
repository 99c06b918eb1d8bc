"""``adaptive-perception bench gating``: whether per-input channel skipping pays on this CPU.

Two measurements, each side by side in one run:

1. The mechanism alone: the gathered static head (ONNX Runtime, batch 1) forced to
   keep 100%, 75%, 50% and 25% of its hidden channels, against the dense static head
   graph, on real features. This gives the overhead of gating (gate, gathers,
   convolutions on run-time weights) and the keep share where it breaks even.
2. Trained gates: for each cost weight ``alpha`` a gate is trained on the frozen
   backbone (:func:`gating.train_gate`); the detector then runs in static mode with
   the gated head in place of the dense one. mAP (pycocotools, the same engine),
   channels kept per frame and the median latency of the engine's ``detect`` are
   measured against the dense model, frames interleaved.

Kept in the detector only if a gate reaches at least ``TARGET_LATENCY_REDUCTION``
lower latency than the same width without gating at equal or better mAP.
"""

import json
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Sequence, TypedDict

import numpy as np
import torch

from adaptive_perception.channels.gating import DecodedGatedHead, GatedHead, train_gate
from adaptive_perception.detection.coco_data import CocoDetection
from adaptive_perception.detection.engine import AdaConEngine
from adaptive_perception.detection.evaluate import evaluate, load_rgb
from adaptive_perception.detection.export import load_checkpoint
from adaptive_perception.detection.manifest import Manifest, Mode
from adaptive_perception.detection.model import DecodedHead
from adaptive_perception.runtime.onnx_sessions import create_sessions
from adaptive_perception.runtime.report_io import markdown_table, write_json
from adaptive_perception.runtime.timing import interleaved_seconds
from adaptive_perception.training.onnx_export import export_graph

TARGET_LATENCY_REDUCTION = 0.15
FORCED_KEEP = (1.0, 0.75, 0.5, 0.25)
GATED_FILE = 'static_head_gated.onnx'


def _forced(head, in_channels: int, keep: float) -> GatedHead:
    """Make a gate that keeps the first ``keep`` share of both layers' channels on any input."""
    gated = GatedHead(head, in_channels).eval()
    kept = max(1, round(gated.width * keep))
    with torch.no_grad():
        bias = torch.full((2 * gated.width,), -10.0)
        bias[:kept] = bias[gated.width:gated.width + kept] = 10.0
        gated.gate.fc2.bias.copy_(bias)
    return gated


def _interleaved(runs: dict, inputs: list, repeats: int, warmup: int) -> dict[str, float]:
    """Median ms of each callable on every input, the callables taking turns."""
    samples = interleaved_seconds(runs, inputs, repeats, warmup)
    return {name: float(np.median(s) * 1e3) for name, s in samples.items()}


class MechanismTime(TypedDict):
    """Median ms of one head graph and its ratio to the dense head."""

    ms: float
    vs_dense: float


def mechanism(model, features: list, work: Path, threads: int,
              repeats: int) -> dict[str, MechanismTime]:
    """Latency of the gathered head at forced keep shares vs the dense head graph."""
    stride, channels = model.stride, model.backbone.out_channels
    example = torch.from_numpy(features[0])
    paths = {'dense': work / 'dense_head.onnx'}
    export_graph(DecodedHead(model.static_head, stride).eval(), (example,), paths['dense'],
                 ['features'], ['heatmap', 'box'])
    for keep in FORCED_KEEP:
        paths[f'keep {keep:g}'] = work / f'forced_{keep:g}.onnx'
        export_graph(DecodedGatedHead(_forced(model.static_head, channels, keep), stride).eval(),
                     (example,), paths[f'keep {keep:g}'], ['features'], ['heatmap', 'box', 'kept'])
    sessions = create_sessions(paths, threads=threads).sessions
    ms = _interleaved({name: (lambda x, s=s: s.run(None, {'features': x}))
                       for name, s in sessions.items()}, features, repeats, warmup=5)
    return {name: {'ms': value, 'vs_dense': value / ms['dense']} for name, value in ms.items()}


def _gated_model_dir(model_dir: Path, width: float, gated_graph: Path, work: Path) -> Path:
    """Copy ``model_dir``, with the gated graph as its static head at ``width``.

    The copy is FP32 only: the gated graph has no calibrated INT8 copy.
    """
    target = work / gated_graph.stem
    shutil.copytree(model_dir, target)
    shutil.copy(gated_graph, target / GATED_FILE)
    manifest = Manifest.load(target)
    widths = [replace(g, static_head=replace(g.static_head, file=GATED_FILE))
              if g.width == width else g for g in manifest.widths]
    replace(manifest, widths=widths, int8={}).save(target)
    return target


def run_bench_gating(checkpoint, model_dir, train_annotations, train_images, annotations,
                     images_dir, alphas: Sequence[float] = (0.1, 1.0), epochs: int = 6,
                     width: float = 1.0, frames: int = 50, repeats: int = 3,
                     out_dir: Path = Path('reports/bench_gating'), threads: int = 1,
                     eval_limit: int | None = None, seed: int = 0) -> int:
    """Measure the mechanism and trained gates; print, write JSON; exit code 0.

    ``model_dir`` must be the export of ``checkpoint`` (its backbone makes the features).
    """
    slim, _ = load_checkpoint(checkpoint)
    model = slim.at_width(width)
    dense = AdaConEngine(model_dir, threads=threads)
    mode = Mode('static', 0.0, width)
    infos = sorted(json.loads(Path(annotations).read_text())['images'], key=lambda i: i['id'])
    images = [load_rgb(Path(images_dir) / info['file_name']) for info in infos[:frames]]
    features = [dense.features(dense.preprocess(rgb)[0], width) for rgb in images]
    train_set = CocoDetection(train_annotations, train_images, dense.input_size[0], train=True,
                              generator=torch.Generator().manual_seed(seed))
    result = {'checkpoint': str(checkpoint), 'model_dir': str(model_dir), 'width': width,
              'frames': len(images), 'repeats': repeats, 'epochs': epochs, 'gates': {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        result['mechanism'] = mechanism(model, features, work, threads, repeats)
        baseline = evaluate(model_dir, annotations, images_dir, [str(mode)], threads=threads,
                            limit=eval_limit)['modes'][str(mode)]['map']
        engines = {'dense': dense}
        for alpha in alphas:
            gated = train_gate(model, train_set, alpha, epochs, seed=seed,
                               log=lambda line: print(f'[bench gating] {line}', flush=True))
            graph = work / f'gated_alpha_{alpha:g}.onnx'
            export_graph(DecodedGatedHead(gated, model.stride).eval(),
                         (torch.from_numpy(features[0]),), graph, ['features'],
                         ['heatmap', 'box', 'kept'])
            gated_dir = _gated_model_dir(Path(model_dir), width, graph, work)
            score = evaluate(gated_dir, annotations, images_dir, [str(mode)], threads=threads,
                             limit=eval_limit)['modes'][str(mode)]['map']
            with torch.no_grad():
                kept = np.array([[k.numel() for k in gated.decide(torch.from_numpy(f))]
                                 for f in features])
            name = f'gated alpha={alpha:g}'
            engines[name] = AdaConEngine(gated_dir, threads=threads)
            result['gates'][name] = {
                'alpha': alpha, 'map': score, 'map_vs_dense': score - baseline,
                'kept_mean': kept.mean(0).tolist(), 'kept_min': kept.min(0).tolist(),
                'kept_max': kept.max(0).tolist(), 'width': gated.width}
        ms = _interleaved({name: (lambda rgb, e=e: e.detect(rgb, mode))
                           for name, e in engines.items()}, images, repeats, warmup=5)
    result['dense'] = {'map': baseline, 'latency_p50_ms': ms['dense']}
    for name, gate in result['gates'].items():
        gate['latency_p50_ms'] = ms[name]
        gate['latency_vs_dense'] = ms[name] / ms['dense']
        gate['pays'] = (gate['latency_vs_dense'] <= 1 - TARGET_LATENCY_REDUCTION
                        and gate['map_vs_dense'] >= 0)
    result['kept_in_detector'] = any(g['pays'] for g in result['gates'].values())
    out_dir = Path(out_dir)
    write_json(out_dir / 'bench_gating.json', result)
    print('mechanism (static head alone, both layers forced to keep a share):')
    for name, row in result['mechanism'].items():
        print(f'  {name}: {row["ms"]:.3f} ms ({row["vs_dense"]:.2f}x dense)')
    rows = [('dense', f'{baseline:.3f}', '-', 'all', f'{ms["dense"]:.2f}', '1.00', '-')]
    for name, g in result['gates'].items():
        kept = ', '.join(f'{m:.0f} ({lo}-{hi}) of {g["width"]}' for m, lo, hi in
                         zip(g['kept_mean'], g['kept_min'], g['kept_max'], strict=True))
        rows.append((name, f'{g["map"]:.3f}', f'{100 * g["map_vs_dense"]:+.1f}', kept,
                     f'{g["latency_p50_ms"]:.2f}', f'{g["latency_vs_dense"]:.2f}',
                     'yes' if g['pays'] else 'no'))
    print('\n' + markdown_table((f'detector at width {width:g}, static', 'mAP', 'vs dense',
                                 'channels kept (layer 1, layer 2)', 'p50 ms', 'vs dense',
                                 'pays'), rows))
    print(f'\ngating kept in the detector: {"yes" if result["kept_in_detector"] else "no"}')
    print(f'written {out_dir / "bench_gating.json"}')
    return 0
