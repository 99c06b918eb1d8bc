"""INT8 copies of the FastestDet level graphs, calibrated on real photographs.

The project's helper (``runtime.quantize.quantize_graph``: ONNX Runtime's static
quantization, QDQ, int8 per-channel weights, uint8 activations, MinMax; the
convolutions and adds in INT8, each Relu folded into the convolution before it, the
other element-wise operators left FP32) on frames preprocessed
exactly as the engine does. Each graph's report goes into the manifest.
"""

from pathlib import Path
from typing import Sequence

from adaptive_perception.detection.evaluate import load_rgb
from adaptive_perception.detection.fastestdet.engine import INPUT, FastestDetEngine
from adaptive_perception.detection.fastestdet.manifest import FastestDetManifest, LevelGraph
from adaptive_perception.runtime.quantize import int8_file, quantize_graph

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png')


def calibration_files(images_dir, count: int) -> list:
    """Return the last ``count`` photos of a folder in name order (the first are for eval)."""
    files = sorted(p for p in Path(images_dir).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f'{images_dir}: no .jpg/.png photos to calibrate on')
    return files[-count:]


def quantize_fastestdet(model_dir, images_dir, count: int = 32,
                        sizes: Sequence[int] | None = None) -> FastestDetManifest:
    """Add ``fastestdet_<size>_int8.onnx`` for every FP32 graph (or ``sizes``); the manifest.

    Calibration uses ``count`` photos of ``images_dir``; the manifest records which
    and, per graph, what was quantized.
    """
    model_dir = Path(model_dir)
    engine = FastestDetEngine(model_dir)
    manifest = engine.manifest
    files = calibration_files(images_dir, count)
    photos = [load_rgb(f) for f in files]
    new, reports = [], {}
    for g in manifest.graphs:
        if g.precision != 'fp32' or (sizes is not None and g.size not in sizes):
            continue
        target = int8_file(g.file)
        report = quantize_graph(model_dir / g.file, model_dir / target,
                                [{INPUT: engine.preprocess(p, g.size)} for p in photos],
                                f'{len(files)} photos of {Path(images_dir).name}/')
        new.append(LevelGraph(size=g.size, precision='int8', file=target, macs=g.macs))
        reports[target] = report.to_json()
        print(f'[fastestdet int8] {target}: '
              f'{(model_dir / target).stat().st_size / 1e3:.0f} kB, INT8 '
              f'{report.quantized_ops}, FP32 {report.fp32_ops}', flush=True)
    kept = [g for g in manifest.graphs
            if not (g.precision == 'int8' and g.size in {n.size for n in new})]
    order = sorted(kept + new, key=lambda g: (-g.size, g.precision))
    source = dict(manifest.source)
    source['int8'] = {'calibration': [f.name for f in files], 'graphs': reports}
    result = FastestDetManifest(**{**manifest.__dict__, 'graphs': order, 'source': source})
    result.save(model_dir)
    return result
