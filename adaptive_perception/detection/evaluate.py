"""COCO evaluation of the deployed runtime: the ONNX engine, scored by pycocotools.

What is scored is what the node runs (``AdaConEngine``), not the PyTorch model:
per mode mAP@[.5:.95], AP50 and AP75 from ``COCOeval``, the branches and MACs the
frames cost, and how often the controller's top branch is the image's dominant
context cluster (the branch holding most of its non-common ground-truth objects).
"""

import contextlib
import io
import sys
from pathlib import Path
from typing import Sequence, TypedDict

import numpy as np
from PIL import Image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from adaptive_perception.detection.engine import AdaConEngine
from adaptive_perception.detection.manifest import DEFAULT_MODES, parse_mode
from adaptive_perception.runtime.onnx_sessions import CPU
from adaptive_perception.runtime.report_io import cell, markdown_table, write_json

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


class CategoryMismatch(ValueError):
    """The dataset's categories are not the model's: its scores would mean nothing."""


def category_mismatches(coco: COCO, classes: dict) -> list:
    """Where the dataset's category ids/names differ from the model's ``classes``.

    Ids are what is scored: a model trained with other ids (or the same ids for
    other names) scores near zero on a good detector, or well on a wrong one.
    """
    problems = []
    for category in coco.loadCats(coco.getCatIds()):
        name = classes.get(category['id'])
        if name is None:
            problems.append(f"dataset category {category['id']} ({category['name']!r}) is "
                            'not a class of the model')
        elif name != category['name']:
            problems.append(f"category {category['id']} is {category['name']!r} in the "
                            f'dataset but {name!r} in the model')
    return problems


class CocoScores(TypedDict):
    """pycocotools' bbox scores of one mode: mAP@[.5:.95], AP50, AP75, AP per class name."""

    map: float
    ap50: float
    ap75: float
    per_class: dict[str, float]


class ModeScores(CocoScores, total=False):
    """One mode's scores and cost per image (``exit_rate`` for a cascade, else None)."""

    mean_branches: float
    mean_macs: float
    exit_rate: float | None
    detections_per_image: float


class ControllerScore(TypedDict):
    """How often the controller's top branch is the frame's dominant cluster."""

    top1_accuracy: float | None
    images: int


class EvalReport(TypedDict, total=False):
    """``eval``'s report (AdaCon's and FastestDet's): what was scored and, per mode, how.

    FastestDet's adds ``family``; AdaCon's has ``category_mismatches``.
    """

    model_dir: str
    annotations: str
    family: str
    images: int
    providers: list[str]
    score_threshold: float
    nms_iou: float
    category_mismatches: list[str]
    controller: ControllerScore
    modes: dict[str, ModeScores]


def coco_scores(coco: COCO, results: list, image_ids: list) -> CocoScores:
    """mAP@[.5:.95], AP50, AP75 and AP per class (by name) of ``results`` over ``image_ids``."""
    names = {c['id']: c['name'] for c in coco.loadCats(coco.getCatIds())}
    if not results:
        return {'map': 0.0, 'ap50': 0.0, 'ap75': 0.0, 'per_class': dict.fromkeys(
            names.values(), 0.0)}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        evaluation = COCOeval(coco, coco.loadRes(results), 'bbox')
        evaluation.params.imgIds = image_ids
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    # precision[T, R, K, A, M]: all IoUs and recalls, class k, area 'all', most detections
    precision = evaluation.eval['precision']
    per_class = {}
    for k, category_id in enumerate(evaluation.params.catIds):
        values = precision[:, :, k, 0, -1]
        values = values[values > -1]  # -1: no ground truth of that class
        if values.size:
            per_class[names[category_id]] = float(values.mean())
    return {'map': float(evaluation.stats[0]), 'ap50': float(evaluation.stats[1]),
            'ap75': float(evaluation.stats[2]), 'per_class': per_class}


def evaluate(model_dir, annotations, images_dir, modes: Sequence[str] = DEFAULT_MODES,
             providers: Sequence[str] = (CPU,), threads: int | None = None,
             score_threshold: float = EVAL_SCORE_THRESHOLD, nms_iou: float = 0.5,
             max_detections: int = 100, limit: int | None = None,
             allow_category_mismatch: bool = False) -> EvalReport:
    """Run the engine over a COCO set in every mode; return the scores as a dict.

    ``limit`` evaluates only the first images (sorted by id). Each image is read
    once and run in every mode. A dataset whose categories differ from the model's
    raises CategoryMismatch, unless ``allow_category_mismatch`` (then the report
    lists the differences under ``category_mismatches``).
    """
    parsed = [parse_mode(m) for m in modes]
    engine = AdaConEngine(model_dir, providers, threads)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(annotations))
    mismatches = category_mismatches(coco, engine.manifest.classes)
    if mismatches and not allow_category_mismatch:
        raise CategoryMismatch('; '.join(mismatches))
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
        'category_mismatches': mismatches,
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


def format_table(report: EvalReport) -> str:
    """Format an evaluation report as a markdown table."""
    lines = [f'{report["images"]} images, {report["model_dir"]}, providers '
             f'{", ".join(report["providers"])}', '',
             markdown_table(
                 ('mode', 'mAP', 'AP50', 'AP75', 'branches / image', 'MMACs / image'),
                 ((name, f'{row["map"]:.3f}', f'{row["ap50"]:.3f}', f'{row["ap75"]:.3f}',
                   f'{row["mean_branches"]:.2f}', f'{row["mean_macs"] / 1e6:.1f}')
                  for name, row in report['modes'].items()))]
    modes = list(report['modes'])
    classes = sorted({c for row in report['modes'].values() for c in row.get('per_class', {})})
    if classes:
        lines += ['', 'AP@[.5:.95] per class:', '', markdown_table(
            ('class', *modes),
            ((name, *(cell(report['modes'][m].get('per_class', {}).get(name), '.3f')
                      for m in modes)) for name in classes))]
    controller = report['controller']
    if controller['top1_accuracy'] is not None:
        lines += ['', f'controller top-1 branch = dominant cluster: '
                      f'{controller["top1_accuracy"]:.3f} ({controller["images"]} images)']
    return '\n'.join(lines)


def run_eval(model_dir, annotations, images_dir, modes: Sequence[str] = DEFAULT_MODES,
             providers: Sequence[str] = (CPU,), threads: int | None = None,
             out: Path | None = None, limit: int | None = None,
             allow_category_mismatch: bool = False) -> int:
    """Evaluate, print the table, write the JSON to ``out`` if given; exit code 0.

    Exit code 2, with the differences, for a dataset whose categories are not the
    model's; ``allow_category_mismatch`` scores it anyway, with a warning first.
    """
    try:
        report = evaluate(model_dir, annotations, images_dir, modes, providers, threads,
                          limit=limit, allow_category_mismatch=allow_category_mismatch)
    except CategoryMismatch as error:
        print(f'error: the dataset\'s categories are not the model\'s: {error}\n'
              '(--allow-category-mismatch scores it anyway)', file=sys.stderr)
        return 2
    if report['category_mismatches']:
        print('WARNING: categories differ from the model\'s, scores are not comparable: '
              + '; '.join(report['category_mismatches']), file=sys.stderr)
    print(format_table(report))
    if out is not None:
        write_json(out, report)
        print(f'wrote {out}')
    return 0
