"""COCO evaluation of an exported FastestDet folder: the ONNX engine, scored by pycocotools.

What is scored is what the node runs (``FastestDetEngine``) at every level entry
('static@352', 'static@224/int8', ...). The report has the shape of
``detection.evaluate.evaluate``'s (no branches, no controller), so ``eval adacon``
prints and saves either family the same way.
"""

import contextlib
import io
from pathlib import Path
from typing import Sequence

from pycocotools.coco import COCO

from adaptive_perception.detection.evaluate import (
    EVAL_SCORE_THRESHOLD,
    EvalReport,
    coco_scores,
    load_rgb,
)
from adaptive_perception.detection.fastestdet.engine import FastestDetEngine
from adaptive_perception.runtime.onnx_sessions import CPU

NMS_IOU = 0.45  # upstream's


def evaluate_fastestdet(model_dir, annotations, images_dir, modes: Sequence[str] | None = None,
                        providers: Sequence[str] = (CPU,), threads: int | None = None,
                        score_threshold: float = EVAL_SCORE_THRESHOLD, nms_iou: float = NMS_IOU,
                        max_detections: int = 100, limit: int | None = None) -> EvalReport:
    """Run the engine over a COCO set at every level entry (default: every graph); scores.

    Category ids of the set must be COCO's (the model's classes); ``limit``
    evaluates only the first images (sorted by id). Each image is read once.
    """
    engine = FastestDetEngine(model_dir, providers, threads)
    if modes is None:
        modes = [f'static@{g.size}' + ('' if g.precision == 'fp32' else f':{g.precision}')
                 for g in engine.manifest.graphs]
    parsed = [engine.parse_mode(m) for m in modes]
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        coco = COCO(str(annotations))
    unknown = sorted(set(coco.getCatIds()) - set(engine.manifest.classes))
    if unknown:
        raise ValueError(f'{annotations}: category ids {unknown} are not among the model\'s '
                         f'COCO classes')
    image_ids = sorted(coco.getImgIds())[:limit]
    results = {str(m): [] for m in parsed}
    for image_id in image_ids:
        info = coco.loadImgs(image_id)[0]
        rgb = load_rgb(Path(images_dir) / info['file_name'])
        for mode in parsed:
            result = engine.detect(rgb, mode, score_threshold, nms_iou, max_detections)
            results[str(mode)] += [
                {'image_id': image_id, 'category_id': d.class_id, 'score': d.score,
                 'bbox': [d.x_min, d.y_min, d.x_max - d.x_min, d.y_max - d.y_min]}
                for d in result.detections]
    n = max(1, len(image_ids))
    return {
        'model_dir': str(model_dir), 'annotations': str(annotations), 'family': 'fastestdet',
        'images': len(image_ids), 'providers': engine.providers,
        'score_threshold': score_threshold, 'nms_iou': nms_iou,
        'controller': {'top1_accuracy': None, 'images': 0},
        'modes': {str(mode): {**coco_scores(coco, results[str(mode)], image_ids),
                              'mean_branches': 0.0,
                              'mean_macs': float(engine.manifest.graph(
                                  mode.size, mode.precision).macs),
                              'detections_per_image': len(results[str(mode)]) / n}
                  for mode in parsed},
    }
