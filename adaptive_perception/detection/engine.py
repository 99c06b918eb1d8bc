"""The deployed AdaCon runtime: exported ONNX graphs in, detections out (no torch).

Every graph of the model directory - every part at every backbone width, in every
precision the model has (FP32, calibrated INT8) - is loaded once and stays resident,
so a mode, width or precision change only changes which sessions the next frame
uses. Per frame: letterbox -> backbone -> static head, or controller -> branch
selection -> only the selected branch heads -> CenterNet decode -> local channel to
global class -> class-aware NMS (common classes come from several branches) -> boxes
back in original pixels.

A cascade mode (EdgeCompress's early exit) runs its cheap mode first and the costly
one only when the cheap pass is not confident enough, reusing what both share
(backbone features and controller output at the same width and precision, the
output of a head both run).

The work around the graphs is kept small, since at the cheapest levels it is a
large share of a frame: the normalised input is written into one reused buffer,
peaks are found only among the cells that pass the score threshold, and results
stay numpy arrays until the caller builds its message.
"""

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from adaptive_perception.detection.manifest import HeadSpec, Manifest, Mode
from adaptive_perception.runtime.onnx_sessions import CPU, create_sessions
from adaptive_perception.runtime.timing import stage_timer

GRAPH_IO = {  # graph -> (input names, output names), as manifest.py defines them
    'backbone': (['image'], ['features']),
    'controller': (['features'], ['logits']),
    'head': (['features'], ['heatmap', 'box']),
}


@dataclass(frozen=True)
class DetectedObject:
    """One detection, box in original image pixels; ``branch`` -1 = static head."""

    class_id: int
    class_name: str
    score: float
    x_min: float
    y_min: float
    x_max: float
    y_max: float
    branch: int


@dataclass(frozen=True)
class DetectionResult:
    """What one frame produced and what it cost.

    ``mode`` is the plain mode whose detections these are (for a cascade: the cheap
    one when it exited, else the costly one); ``requested`` the mode asked for.
    """

    detections: list
    mode: Mode
    branches_run: list          # controller indices, ascending; empty for static
    probabilities: np.ndarray | None  # sigmoid of the controller logits; None for static
    macs: int                   # sum over the graphs that ran (manifest counts)
    timings_ms: dict            # stage -> ms: letterbox, backbone, controller, heads, decode
    requested: Mode | None = None
    margin: float | None = None  # a cascade's confidence margin of the cheap pass
    exited: bool | None = None   # a cascade: True = the cheap pass was published

    @property
    def precision(self) -> str:
        """The precision the published detections were computed in."""
        return self.mode.precision


def context_margin(probabilities: np.ndarray | None) -> float:
    """Return the controller's confidence: top-1 minus top-2 probability (0 = undecided)."""
    if probabilities is None or probabilities.size < 2:
        return 1.0
    top2 = np.partition(probabilities, probabilities.size - 2)[-2:]
    return float(top2[1] - top2[0])


def score_margin(scores: np.ndarray, floor: float = 0.1) -> float:
    """Return the detections' confidence: mean |2s - 1| over the peaks above ``floor``.

    The engine passes the peaks a frame decoded (those at or above the score
    threshold, before NMS). 1 = every candidate is clearly an object; 0 = all sit
    at 0.5. A frame with no candidate at all counts as decided (1).
    """
    scores = scores[scores >= floor]
    return float(np.abs(2 * scores - 1).mean()) if scores.size else 1.0


def select_branches(probabilities: np.ndarray, mode: Mode) -> list:
    """Branches to run: single = the top one; multi:T = all >= T, else the top one."""
    top = int(np.argmax(probabilities))
    if mode.kind == 'single':
        return [top]
    passing = np.flatnonzero(probabilities >= mode.threshold).tolist()
    return passing or [top]


def decode_peaks(heatmap: np.ndarray, box: np.ndarray, stride: int, score_threshold: float,
                 top_k: int) -> tuple:
    """CenterNet peaks of one head -> (boxes x1 y1 x2 y2 in input pixels, scores, channels).

    A peak is a cell equal to the 3x3 maximum around it and at least the threshold;
    the ``top_k`` best are kept. ``heatmap`` is (n, h, w), ``box`` (4, h, w). Only
    the cells at or above the threshold are compared with their neighbours: at
    usual thresholds they are a few of the n x h x w. (Few numpy calls on few
    elements: at this size each call's fixed cost is what a frame pays.)
    """
    n, h, w = heatmap.shape
    index = np.flatnonzero(heatmap >= score_threshold)
    scores = heatmap.ravel()[index]
    channel, row, col = np.unravel_index(index, heatmap.shape)
    if index.size:
        padded = np.full((n, h + 2, w + 2), -np.inf, heatmap.dtype)  # borders never win
        padded[:, 1:-1, 1:-1] = heatmap
        neighbours = padded[channel[:, None], row[:, None] + _DY, col[:, None] + _DX]
        peak = neighbours.max(axis=1) <= scores
        channel, row, col, scores = channel[peak], row[peak], col[peak], scores[peak]
    if scores.size > top_k:
        best = np.argpartition(-scores, top_k - 1)[:top_k]
        channel, row, col, scores = channel[best], row[best], col[best], scores[best]
    dx, dy, bw, bh = box[:, row, col].astype(np.float64)
    cx, cy = (col + dx) * stride, (row + dy) * stride
    boxes = np.array([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2]).T
    return boxes, scores.astype(np.float64), channel


# the 3x3 neighbourhood, as offsets into the heatmap padded by one cell
_DY, _DX = ((d.ravel() + 1)[None] for d in np.mgrid[-1:2, -1:2])


def nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_threshold: float,
        max_keep: int) -> np.ndarray:
    """Class-aware greedy NMS; indices of the kept boxes, best score first.

    The IoU of every pair is computed at once (a frame has a few dozen candidates
    at most), so the greedy pass is a loop over rows of one small matrix.
    """
    count = boxes.shape[0]
    order = np.argsort(-scores, kind='stable')
    if count <= 1:
        return order[:max_keep].astype(np.int64)
    # Shift each class to its own region of the plane, so boxes of different
    # classes never overlap and one pass handles every class.
    span = np.abs(boxes).max() * 2 + 1
    shifted = (boxes + (classes.astype(np.float64) * span)[:, None])[order]
    x1, y1, x2, y2 = shifted.T
    area = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    width = np.maximum(np.minimum(x2[:, None], x2) - np.maximum(x1[:, None], x1), 0)
    height = np.maximum(np.minimum(y2[:, None], y2) - np.maximum(y1[:, None], y1), 0)
    inter = width * height
    union = area[:, None] + area - inter
    overlaps = (inter > iou_threshold * union) & (union > 0)  # IoU > threshold
    keep, suppressed = [], np.zeros(count, bool)
    for i in range(count):
        if suppressed[i]:
            continue
        keep.append(i)
        if len(keep) == max_keep:
            break
        suppressed |= overlaps[i]
    return order[keep].astype(np.int64)


def _session_name(width: float, part: str, precision: str = 'fp32') -> str:
    return f'{width:g}/{part}' if precision == 'fp32' else f'{width:g}/{precision}/{part}'


class AdaConEngine:
    """All graphs of an exported AdaCon model, resident, and the per-frame pipeline.

    ``graph_runs`` (backbone, controller, static_head), ``branch_runs`` (per branch),
    ``width_runs`` (frames per backbone width), ``precision_runs`` (backbone runs per
    precision) and ``cascade_runs`` (cascade frames: exited, escalated) count what
    each frame ran; ``model_seconds`` sums the time spent inside ONNX Runtime, so
    that what a frame costs outside the model can be told apart. A session is created
    once, in the constructor. An invalid model directory raises ValueError saying
    what is wrong.
    """

    def __init__(self, model_dir, providers: Sequence[str] = (CPU,), threads: int | None = None,
                 warn: Callable[[str], None] | None = None):
        self.model_dir = Path(model_dir)
        self.manifest = m = Manifest.load(self.model_dir)
        self.widths = [graphs.width for graphs in m.widths]
        self.precisions = m.precisions
        paths, heads = {}, {}
        for graphs in m.widths:
            for precision in self.precisions:
                def name(part, width=graphs.width, precision=precision):
                    return _session_name(width, part, precision)
                paths[name('backbone')] = m.file(graphs.backbone['file'], precision)
                paths[name('controller')] = m.file(graphs.controller['file'], precision)
                for part, head in [('static_head', graphs.static_head),
                                   *[(f'branch{i}', b) for i, b in enumerate(graphs.branches)]]:
                    heads[name(part)] = head
                    paths[name(part)] = m.file(head.file, precision)
        loaded = create_sessions({k: self.model_dir / v for k, v in paths.items()},
                                 providers, threads, warn)
        self.providers = loaded.providers
        self._sessions = loaded.sessions
        for width in self.widths:
            for precision in self.precisions:
                for part in ('backbone', 'controller'):
                    self._check_io(_session_name(width, part, precision), *GRAPH_IO[part])
        for name, head in heads.items():
            self._check_io(name, *GRAPH_IO['head'])
            self._check_head(name, head)
        self.branch_names = [b.name for b in m.branches]
        self.graph_runs = {'backbone': 0, 'controller': 0, 'static_head': 0}
        self.branch_runs = [0] * len(m.branches)
        self.width_runs = dict.fromkeys(self.widths, 0)
        self.precision_runs = dict.fromkeys(self.precisions, 0)
        self.cascade_runs = {'exited': 0, 'escalated': 0}
        self.model_seconds = 0.0
        mean = np.asarray(m.mean, np.float32) * 255
        self._inv_std = (1 / (np.asarray(m.std, np.float32) * 255))[:, None, None]
        self._mean = mean[:, None, None]
        # letterbox pads in the mean colour rounded to uint8: this is its normalised value
        self._pad = (np.round(mean) - mean)[:, None, None] * self._inv_std
        self._image = np.empty((1, 3, *self.input_size), np.float32)  # reused every frame
        self._class_ids = {name.rsplit('/', 1)[1]: np.asarray(head.class_ids, np.int64)
                           for name, head in heads.items()}

    def _outputs(self, name: str) -> dict:
        return {o.name: o.shape for o in self._sessions[name].get_outputs()}

    def _check_io(self, name: str, want_in: list, want_out: list) -> None:
        inputs = [i.name for i in self._sessions[name].get_inputs()]
        outputs = self._outputs(name)
        if inputs != want_in or any(o not in outputs for o in want_out):
            raise ValueError(f'{self.model_dir}: {name} graph has inputs {inputs} and outputs '
                             f'{list(outputs)}; expected {want_in} -> {want_out}')
        if name.endswith('/controller'):
            branches = outputs['logits'][1]
            if isinstance(branches, int) and branches != len(self.manifest.branches):
                raise ValueError(f'{self.model_dir}: controller has {branches} outputs for '
                                 f'{len(self.manifest.branches)} branches')

    def _check_head(self, name: str, head: HeadSpec) -> None:
        unknown = [c for c in head.class_ids if c not in self.manifest.classes]
        channels = self._outputs(name)['heatmap'][1]
        if unknown or (isinstance(channels, int) and channels != len(head.class_ids)):
            raise ValueError(f'{self.model_dir}: head {head.name}: {channels} heatmap channels '
                             f'for class_ids {head.class_ids} (unknown ids: {unknown})')

    @property
    def input_size(self) -> tuple:
        """(H, W) the graphs take."""
        return tuple(self.manifest.input_size)

    def check_mode(self, mode: Mode) -> Mode:
        """Return ``mode`` if this model can run it; ValueError says what it lacks."""
        for step in mode.steps():
            if step.width not in self.widths:
                raise ValueError(f'mode {mode}: no graphs for width {step.width:g}; the model '
                                 f'has backbone widths '
                                 f'{", ".join(f"{w:g}" for w in self.widths)}')
            if step.precision not in self.precisions:
                raise ValueError(f'mode {mode}: the model has no {step.precision} graphs '
                                 f'(precisions: {", ".join(self.precisions)}); export them '
                                 f'with `adaptive-perception export adacon --int8-only`')
        return mode

    def warm_up(self) -> None:
        """Run every graph once on zeros (not counted): first-run allocations happen now."""
        image = np.zeros((1, 3, *self.input_size), np.float32)
        for width in self.widths:
            for precision in self.precisions:
                features = self.features(image, width, precision)
                prefix = _session_name(width, '', precision)
                for name, session in self._sessions.items():
                    if (name.startswith(prefix) and name.count('/') == prefix.count('/')
                            and not name.endswith('/backbone')):
                        session.run(None, {'features': features})

    def preprocess(self, rgb: np.ndarray) -> tuple:
        """RGB uint8 (H, W, 3) -> (normalised, letterboxed (1, 3, H, W) input, scale).

        The array returned is the caller's own (a copy of the engine's buffer).
        """
        image, scale = self._preprocess(rgb)
        return image.copy(), scale

    def _preprocess(self, rgb: np.ndarray) -> tuple:
        """As ``preprocess``, into the engine's reused buffer (valid until the next frame).

        The same numbers as normalising ``letterbox``'s canvas, without the canvas: the
        (resized) image is normalised straight into the buffer, the rest is the pad value.
        """
        height, width = self.input_size
        scale = min(height / rgb.shape[0], width / rgb.shape[1])
        new_w = max(1, round(rgb.shape[1] * scale))
        new_h = max(1, round(rgb.shape[0] * scale))
        if (new_h, new_w) != rgb.shape[:2]:
            rgb = np.asarray(Image.fromarray(rgb).resize((new_w, new_h), Image.BILINEAR))
        image = self._image[0]
        inside = image[:, :new_h, :new_w]
        np.subtract(rgb.transpose(2, 0, 1), self._mean, out=inside)
        np.multiply(inside, self._inv_std, out=inside)
        if new_h < height:
            image[:, new_h:, :] = self._pad
        if new_w < width:
            image[:, :new_h, new_w:] = self._pad
        return self._image, scale

    def features(self, image: np.ndarray, width: float = 1.0,
                 precision: str = 'fp32') -> np.ndarray:
        """Run the backbone graph of ``width`` in ``precision`` on a preprocessed image."""
        return self._graph(_session_name(width, 'backbone', precision), ['features'],
                           {'image': image})[0]

    def _graph(self, name: str, outputs: list, feeds: dict) -> list:
        start = time.perf_counter()
        result = self._sessions[name].run(outputs, feeds)
        self.model_seconds += time.perf_counter() - start
        return result

    def _head(self, name: str, features: np.ndarray) -> tuple:
        heatmap, box = self._graph(name, ['heatmap', 'box'], {'features': features})
        return heatmap[0], box[0]

    def detect(self, rgb: np.ndarray, mode: Mode, score_threshold: float = 0.3,
               nms_iou: float = 0.5, max_detections: int = 100) -> DetectionResult:
        """Detect objects in one RGB uint8 image (H, W, 3) in ``mode``."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f'expected an RGB uint8 image (H, W, 3), got {rgb.dtype} '
                             f'{rgb.shape}')
        if mode.kind not in ('static', 'multi', 'single', 'cascade'):
            raise ValueError(f'unknown mode {mode}')
        self.check_mode(mode)
        timings = {}
        lap = stage_timer(timings)
        image, scale = self._preprocess(rgb)
        lap('letterbox')
        if mode.kind != 'cascade':
            result = self._run(rgb, image, scale, mode, score_threshold, nms_iou,
                               max_detections, timings, {})
            timings['total'] = sum(timings.values())
            return result
        shared = {}
        cheap = self._run(rgb, image, scale, mode.cheap, score_threshold, nms_iou,
                          max_detections, timings, shared)
        if mode.margin == 'context':
            margin = context_margin(cheap.probabilities)
        else:
            margin = score_margin(shared['peak_scores'])
        exited = margin >= mode.threshold
        self.cascade_runs['exited' if exited else 'escalated'] += 1
        result = cheap
        if not exited:
            cheap_timings = dict(timings)
            result = self._run(rgb, image, scale, mode.costly, score_threshold, nms_iou,
                               max_detections, timings, shared)
            timings.update({k: v + cheap_timings.get(k, 0.0) for k, v in timings.items()
                            if k != 'letterbox'})
            result = replace(result, macs=result.macs + cheap.macs,
                             branches_run=sorted(set(result.branches_run)))
        timings['total'] = sum(v for k, v in timings.items() if k != 'total')
        return replace(result, requested=mode, margin=margin, exited=exited)

    def _run(self, rgb, image, scale, mode: Mode, score_threshold, nms_iou, max_detections,
             timings: dict, shared: dict) -> DetectionResult:
        """Run one plain mode on a preprocessed image.

        ``shared`` carries what a later mode of the same frame may reuse (features,
        controller output, head outputs), keyed by graph.
        """
        m = self.manifest
        graphs = m.graphs(mode.width)
        precision = mode.precision
        lap = stage_timer(timings)

        def name(part):
            return _session_name(mode.width, part, precision)

        macs = 0
        features = shared.get(name('backbone'))
        if features is None:
            features = shared[name('backbone')] = self.features(image, mode.width, precision)
            self.graph_runs['backbone'] += 1
            self.width_runs[mode.width] += 1
            self.precision_runs[precision] += 1
            macs += graphs.backbone['macs']
        lap('backbone')

        if mode.kind == 'static':
            probabilities, selected = None, []
            heads = [('static_head', -1)]
        else:
            probabilities = shared.get(name('controller'))
            if probabilities is None:
                logits = self._graph(name('controller'), ['logits'], {'features': features})[0]
                self.graph_runs['controller'] += 1
                macs += graphs.controller['macs']
                probabilities = 1 / (1 + np.exp(-logits[0].astype(np.float64)))
                shared[name('controller')] = probabilities
            selected = select_branches(probabilities, mode)
            heads = [(f'branch{i}', i) for i in selected]
        lap('controller')

        outputs = []
        for part, branch in heads:
            key = name(part)
            if key not in shared:
                shared[key] = self._head(key, features)
                if branch < 0:
                    self.graph_runs['static_head'] += 1
                    macs += graphs.static_head.macs
                else:
                    self.branch_runs[branch] += 1
                    macs += graphs.branches[branch].macs
            outputs.append((shared[key], part, branch))
        lap('heads')
        boxes, scores, classes, branches = [], [], [], []
        for (heatmap, box), part, branch in outputs:
            b, s, channel = decode_peaks(heatmap, box, m.stride, score_threshold,
                                         max_detections)
            boxes.append(b)
            scores.append(s)
            classes.append(self._class_ids[part][channel])
            branches.append(np.full(len(s), branch, np.int64))
        boxes, scores = np.concatenate(boxes), np.concatenate(scores)
        classes, branches = np.concatenate(classes), np.concatenate(branches)
        shared['peak_scores'] = scores
        keep = nms(boxes, scores, classes, nms_iou, max_detections)
        height, width = rgb.shape[:2]
        boxes = boxes[keep] / scale
        np.clip(boxes, 0, (width, height, width, height), out=boxes)
        names = m.classes
        detections = [
            DetectedObject(c, names[c], s, b[0], b[1], b[2], b[3], br)
            for b, s, c, br in zip(boxes.tolist(), scores[keep].tolist(),
                                   classes[keep].tolist(), branches[keep].tolist(),
                                   strict=True)]
        lap('decode')
        return DetectionResult(detections, mode, selected, probabilities, macs, timings,
                               requested=mode)
