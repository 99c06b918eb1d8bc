"""INT8 copies of the FastestDet level graphs, calibrated on real photographs.

ONNX Runtime's static quantization (``onnxruntime.quantization.quantize_static``,
QDQ format, int8 per-channel symmetric weights, uint8 activations, MinMax
calibration) on frames preprocessed exactly as the engine does. Written for this
model family on its own: the project's shared quantization helper (runtime/quantize.py,
being written for the AdaCon graphs) did not exist yet; once it does, this module
should call it.
"""

import tempfile
from pathlib import Path
from typing import Sequence

from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from adaptive_perception.detection.evaluate import load_rgb
from adaptive_perception.detection.fastestdet.engine import INPUT, FastestDetEngine
from adaptive_perception.detection.fastestdet.manifest import FastestDetManifest, LevelGraph

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png')


class _Frames(CalibrationDataReader):
    """The calibration photos, one graph input at a time."""

    def __init__(self, images: list):
        self._feeds = iter([{INPUT: image} for image in images])

    def get_next(self):
        return next(self._feeds, None)


def calibration_files(images_dir, count: int) -> list:
    """Return the last ``count`` photos of a folder in name order (the first are for eval)."""
    files = sorted(p for p in Path(images_dir).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f'{images_dir}: no .jpg/.png photos to calibrate on')
    return files[-count:]


def quantize_fastestdet(model_dir, images_dir, count: int = 32,
                        sizes: Sequence[int] | None = None) -> FastestDetManifest:
    """Add ``fastestdet_<size>_int8.onnx`` for every FP32 graph (or ``sizes``); the manifest.

    Calibration uses ``count`` photos of ``images_dir``; the manifest records which.
    """
    model_dir = Path(model_dir)
    engine = FastestDetEngine(model_dir)
    manifest = engine.manifest
    files = calibration_files(images_dir, count)
    photos = [load_rgb(f) for f in files]
    graphs = [g for g in manifest.graphs if g.precision == 'fp32']
    new = []
    for g in graphs:
        if sizes is not None and g.size not in sizes:
            continue
        target = model_dir / g.file.replace('.onnx', '_int8.onnx')
        with tempfile.TemporaryDirectory() as tmp:
            prepared = Path(tmp) / 'prepared.onnx'
            quant_pre_process(str(model_dir / g.file), str(prepared))
            quantize_static(str(prepared), str(target),
                            _Frames([engine.preprocess(p, g.size) for p in photos]),
                            quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax)
        new.append(LevelGraph(size=g.size, precision='int8', file=target.name, macs=g.macs))
        print(f'[fastestdet int8] {target.name}: {target.stat().st_size / 1e3:.0f} kB, '
              f'calibrated on {len(files)} photos', flush=True)
    kept = [g for g in manifest.graphs
            if not (g.precision == 'int8' and g.size in {n.size for n in new})]
    order = sorted(kept + new, key=lambda g: (-g.size, g.precision))
    source = dict(manifest.source)
    source['int8'] = {'method': 'onnxruntime quantize_static, QDQ, per-channel int8 weights, '
                                'uint8 activations, MinMax',
                      'calibration': [f.name for f in files]}
    result = FastestDetManifest(**{**manifest.__dict__, 'graphs': order, 'source': source})
    result.save(model_dir)
    return result
