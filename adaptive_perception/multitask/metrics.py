"""The dense tasks' standard metrics, accumulated over a dataset, and the multi-task delta.

The metrics follow the multi-task dense-prediction literature the AdaMTL paper
reports in (ASTMT, Maninis et al. 2019; MTI-Net and the survey of Vandenhende et
al.): segmentation mIoU from a dataset-wide confusion matrix, depth RMSE over all
valid pixels of the dataset, the mean angular error of surface normals, and
saliency maxF (beta^2 = 0.3) from dataset-wide precision and recall per threshold.
Each statistic is a sum over pixels, so adding a dataset batch by batch gives the
same result as adding it at once. Unknown labels (the ``DenseArrays`` markers)
are skipped.
"""

import numpy as np

from adaptive_perception.multitask.scenes import TASKS

IGNORE = 255
SALIENCY_THRESHOLDS = np.arange(1, 100) / 100    # ASTMT: arange(step, 1, step), step 0.01
BETA_SQUARED = 0.3
LOWER_IS_BETTER = {'segmentation': False, 'depth': True, 'normals': True, 'saliency': False}


class TaskScores:
    """Accumulates per-task statistics over batches; ``result`` gives the metrics so far.

    ``add`` takes numpy arrays of one batch: segmentation class ids (N, H, W) against
    uint8 targets with 255 = ignore; depth in metres against targets with 0 = unknown;
    normals (N, H, W, 3) (normalised here) against targets with the zero vector =
    unknown; saliency probabilities in [0, 1] against {0, 1} targets with NaN = unknown.
    """

    def __init__(self, class_count: int):
        if not 0 < class_count <= IGNORE:
            raise ValueError(f'class_count must be in 1..{IGNORE}, got {class_count}')
        self.class_count = class_count
        self.confusion = np.zeros((class_count, class_count), np.int64)   # target x pred
        self.depth_squared_error, self.depth_pixels = 0.0, 0
        self.angle_sum, self.normal_pixels = 0.0, 0
        self.true_positives = np.zeros(len(SALIENCY_THRESHOLDS), np.int64)
        self.predicted_positives = np.zeros(len(SALIENCY_THRESHOLDS), np.int64)
        self.actual_positives = 0
        self.saliency_pixels = 0

    def add(self, task: str, prediction: np.ndarray, target: np.ndarray) -> None:
        """Add one batch of ``task``'s predictions and targets (same pixel grid)."""
        if task not in TASKS:
            raise ValueError(f'unknown task {task!r}, expected one of {TASKS}')
        prediction, target = np.asarray(prediction), np.asarray(target)
        if prediction.shape != target.shape:
            raise ValueError(f'{task}: prediction shape {prediction.shape} differs from '
                             f'target shape {target.shape}')
        getattr(self, f'_add_{task}')(prediction, target)

    def _add_segmentation(self, prediction, target) -> None:
        known = target != IGNORE
        truth, guess = target[known].astype(np.int64), prediction[known].astype(np.int64)
        k = self.class_count
        if truth.size and (truth.max() >= k or guess.min() < 0 or guess.max() >= k):
            raise ValueError(f'segmentation: class ids must lie in 0..{k - 1} (255 = ignore)')
        self.confusion += np.bincount(truth * k + guess, minlength=k * k).reshape(k, k)

    def _add_depth(self, prediction, target) -> None:
        known = target > 0
        error = prediction[known].astype(np.float64) - target[known]
        self.depth_squared_error += float(error @ error)
        self.depth_pixels += int(known.sum())

    def _add_normals(self, prediction, target) -> None:
        known = np.any(target != 0, axis=-1)
        guess = prediction[known].astype(np.float64)
        truth = target[known].astype(np.float64)
        guess /= np.maximum(np.linalg.norm(guess, axis=-1, keepdims=True), 1e-12)
        truth /= np.linalg.norm(truth, axis=-1, keepdims=True)
        cosine = np.clip((guess * truth).sum(-1), -1, 1)
        self.angle_sum += float(np.degrees(np.arccos(cosine)).sum())
        self.normal_pixels += int(known.sum())

    def _add_saliency(self, prediction, target) -> None:
        known = ~np.isnan(target)
        truth, guess = target[known] >= 0.5, prediction[known]
        # A pixel is predicted salient at the thresholds <= its probability: the first
        # ``passed`` ones. Counting pixels per ``passed`` and summing from the top gives
        # the positives at every threshold in one pass.
        passed = np.searchsorted(SALIENCY_THRESHOLDS, guess, side='right')
        bins = len(SALIENCY_THRESHOLDS) + 1
        at_least = np.cumsum(np.bincount(passed, minlength=bins)[::-1])[::-1]
        salient_at_least = np.cumsum(np.bincount(passed[truth], minlength=bins)[::-1])[::-1]
        self.predicted_positives += at_least[1:]
        self.true_positives += salient_at_least[1:]
        self.actual_positives += int(truth.sum())
        self.saliency_pixels += int(known.sum())

    def result(self) -> dict:
        """Metrics of the tasks that got known pixels.

        segmentation: mIoU in 0..1, the mean IoU over the classes present in the
        targets or predictions; depth: RMSE in metres; normals: mean angular error in
        degrees; saliency: maxF in 0..1, the best F-beta over the thresholds.
        """
        scores = {}
        if self.confusion.any():
            hits = np.diag(self.confusion)
            union = self.confusion.sum(0) + self.confusion.sum(1) - hits
            present = union > 0
            scores['segmentation'] = float(np.mean(hits[present] / union[present]))
        if self.depth_pixels:
            scores['depth'] = float(np.sqrt(self.depth_squared_error / self.depth_pixels))
        if self.normal_pixels:
            scores['normals'] = self.angle_sum / self.normal_pixels
        if self.saliency_pixels:
            tp = self.true_positives.astype(np.float64)
            precision = np.divide(tp, self.predicted_positives,
                                  out=np.zeros_like(tp), where=self.predicted_positives > 0)
            recall = tp / self.actual_positives if self.actual_positives else np.zeros_like(tp)
            denominator = BETA_SQUARED * precision + recall
            f = np.divide((1 + BETA_SQUARED) * precision * recall, denominator,
                          out=np.zeros_like(tp), where=denominator > 0)
            scores['saliency'] = float(f.max())
        return scores


def multitask_delta(scores: dict, reference: dict) -> float:
    """Return the multi-task performance delta in percent (Maninis et al. 2019).

    The mean over the tasks in both dicts of (-1)^l * (M - M_ref) / M_ref * 100,
    l = 1 where lower is better: positive means better than the reference on average.
    """
    common = [task for task in TASKS if task in scores and task in reference]
    unknown = (set(scores) | set(reference)) - set(TASKS)
    if unknown:
        raise ValueError(f'unknown tasks {sorted(unknown)}, expected some of {TASKS}')
    if not common:
        raise ValueError(f'no task in both {sorted(scores)} and {sorted(reference)}')
    deltas = []
    for task in common:
        if reference[task] == 0:
            raise ValueError(f'{task}: reference value 0 cannot scale a relative change')
        sign = -1 if LOWER_IS_BETTER[task] else 1
        deltas.append(sign * (scores[task] - reference[task]) / reference[task] * 100)
    return float(np.mean(deltas))
