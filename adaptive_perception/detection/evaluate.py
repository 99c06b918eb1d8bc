"""COCO evaluation of the deployed runtime: the ONNX engine, scored by pycocotools.

What is scored is what the node runs (``AdaConEngine``), not the PyTorch model:
per mode mAP@[.5:.95], AP50 and AP75 from ``COCOeval``, the branches and MACs the
frames cost, and how often the controller's top branch is the image's dominant
context cluster (the branch holding most of its non-common ground-truth objects).
"""

import contextlib
import io
import json
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from adaptive_perception.detection.engine import AdaConEngine
from adaptive_perception.detection.manifest import DEFAULT_MODES, parse_mode
from adaptive_perception.runtime.onnx_sessions import CPU

EVAL_SCORE_THRESHOLD = 0.05  # mAP integrates over scores: keep the low ones too


def load_rgb(path: Path) -> np.ndarray:
    """Read an image file as RGB uint8."""
    with Image.open(path) as image:
        return np.asarray(image.convert('RGB'))


def dominant_branches(category_ids: Sequence[int], manifest) -> set:
    """Branches holding the most non-common objects of an image (ties: all of them)."""
    common = set(manifest.common_class_ids)
    counts = np.array([sum(1 for c in category_ids if c in branch.class_ids and c not in common)
                       for branch in manifest.branches])
    if counts.max(initial=0) == 0:
        return set()
    return set(np.flatnonzero(counts == counts.max()).tolist())


def coco_scores(coco: COCO, results: list, image_ids: list) -> dict:
    """mAP@[.5:.95], AP50 and AP75 of ``results`` (COCO result dicts) over ``image_ids``."""
    if not results:
        return {'map': 0.0, 'ap50': 0.0, 'ap75': 0.0}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        evaluation = COCOeval(coco, coco.loadRes(results), 'bbox')
        evaluation.params.imgIds = image_ids
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return {'map': float(evaluation.stats[0]), 'ap50': float(evaluation.stats[1]),
            'ap75': float(evaluation.stats[2])}


def evaluate(model_dir, annotations, images_dir, modes: Sequence[str] = DEFAULT_MODES,
             providers: Sequence[str] = (CPU,), threads: int | None = None,
             score_threshold: float = EVAL_SCORE_THRESHOLD, nms_iou: float = 0.5,
             max_detections: int = 100, limit: int | None = None) -> dict:
    """Run the engine over a COCO set in every mode; return the scores as a dict.

    ``limit`` evaluates only the first images (sorted by id). Each image is read
    once and run in every mode.
    """
    parsed = [parse_mode(m) for m in modes]
    engine = AdaConEngine(model_dir, providers, threads)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(annotations))
    image_ids = sorted(coco.getImgIds())[:limit]
    results = {str(m): [] for m in parsed}
    branches = {str(m): 0 for m in parsed}
    macs = {str(m): 0 for m in parsed}
    exits = {str(m): 0 for m in parsed}  # cascade frames whose cheap pass was published
    controller_hits, controller_images = 0, 0
    for image_id in image_ids:
        info = coco.loadImgs(image_id)[0]
        rgb = load_rgb(Path(images_dir) / info['file_name'])
        probabilities = None
        for mode in parsed:
            result = engine.detect(rgb, mode, score_threshold, nms_iou, max_detections)
            branches[str(mode)] += len(result.branches_run)
            macs[str(mode)] += result.macs
            exits[str(mode)] += bool(result.exited)
            if result.probabilities is not None:
                probabilities = result.probabilities
            results[str(mode)] += [
                {'image_id': image_id, 'category_id': d.class_id, 'score': d.score,
                 'bbox': [d.x_min, d.y_min, d.x_max - d.x_min, d.y_max - d.y_min]}
                for d in result.detections]
        truth = dominant_branches([a['category_id'] for a in coco.loadAnns(
            coco.getAnnIds(imgIds=image_id, iscrowd=None))], engine.manifest)
        if probabilities is not None and truth:
            controller_images += 1
            controller_hits += int(np.argmax(probabilities)) in truth
    n = max(1, len(image_ids))
    return {
        'model_dir': str(model_dir), 'annotations': str(annotations),
        'images': len(image_ids), 'providers': engine.providers,
        'score_threshold': score_threshold, 'nms_iou': nms_iou,
        'controller': {
            'top1_accuracy': controller_hits / controller_images if controller_images else None,
            'images': controller_images},
        'modes': {name: {**coco_scores(coco, results[name], image_ids),
                         'mean_branches': branches[name] / n, 'mean_macs': macs[name] / n,
                         'exit_rate': (exits[name] / n if name.startswith('cascade')
                                       else None),
                         'detections_per_image': len(results[name]) / n}
                  for name in results},
    }


def format_table(report: dict) -> str:
    """Format an evaluation report as a markdown table."""
    lines = [f'{report["images"]} images, {report["model_dir"]}, providers '
             f'{", ".join(report["providers"])}', '',
             '| mode | mAP | AP50 | AP75 | branches / image | MMACs / image |',
             '| --- | --- | --- | --- | --- | --- |']
    for name, row in report['modes'].items():
        lines.append(f'| {name} | {row["map"]:.3f} | {row["ap50"]:.3f} | {row["ap75"]:.3f} | '
                     f'{row["mean_branches"]:.2f} | {row["mean_macs"] / 1e6:.1f} |')
    controller = report['controller']
    if controller['top1_accuracy'] is not None:
        lines += ['', f'controller top-1 branch = dominant cluster: '
                      f'{controller["top1_accuracy"]:.3f} ({controller["images"]} images)']
    return '\n'.join(lines)


def run_eval(model_dir, annotations, images_dir, modes: Sequence[str] = DEFAULT_MODES,
             providers: Sequence[str] = (CPU,), threads: int | None = None,
             out: Path | None = None, limit: int | None = None) -> int:
    """Evaluate, print the table, write the JSON to ``out`` if given; exit code 0."""
    report = evaluate(model_dir, annotations, images_dir, modes, providers, threads,
                      limit=limit)
    print(format_table(report))
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(report, indent=1))
        print(f'wrote {out}')
    return 0
