"""The deployed AdaCon runtime: exported ONNX graphs in, detections out (no torch).

Every graph of the model directory - every part at every backbone width - is loaded
once and stays resident, so a mode or width change only changes which sessions the
next frame uses. Per frame: letterbox ->
backbone -> static head, or controller -> branch selection -> only the selected
branch heads -> CenterNet decode -> local channel to global class -> class-aware NMS
(common classes come from several branches) -> boxes back in original pixels.
"""

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from adaptive_perception.detection.manifest import HeadSpec, Manifest, Mode, letterbox
from adaptive_perception.runtime.onnx_sessions import CPU, create_sessions

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
    """What one frame produced and what it cost."""

    detections: list
    mode: Mode
    branches_run: list          # controller indices, ascending; empty for static
    probabilities: np.ndarray | None  # sigmoid of the controller logits; None for static
    macs: int                   # sum over the graphs that ran (manifest counts)
    timings_ms: dict            # stage -> ms: letterbox, backbone, controller, heads, decode


def select_branches(probabilities: np.ndarray, mode: Mode) -> list:
    """Branches to run: single = the top one; multi:T = all >= T, else the top one."""
    top = int(np.argmax(probabilities))
    if mode.kind == 'single':
        return [top]
    passing = np.flatnonzero(probabilities >= mode.threshold).tolist()
    return passing or [top]


def _max_pool_3x3(heat: np.ndarray) -> np.ndarray:
    """3x3 max filter over the last two axes (stride 1, same size)."""
    padded = np.pad(heat, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    h, w = heat.shape[1:]
    out = padded[:, :h, :w].copy()
    for dy in range(3):
        for dx in range(3):
            np.maximum(out, padded[:, dy:dy + h, dx:dx + w], out=out)
    return out


def decode_peaks(heatmap: np.ndarray, box: np.ndarray, stride: int, score_threshold: float,
                 top_k: int) -> tuple:
    """CenterNet peaks of one head -> (boxes x1 y1 x2 y2 in input pixels, scores, channels).

    A peak is a cell equal to the 3x3 maximum around it and at least the threshold;
    the ``top_k`` best are kept. ``heatmap`` is (n, h, w), ``box`` (4, h, w).
    """
    _, h, w = heatmap.shape
    keep = (heatmap == _max_pool_3x3(heatmap)) & (heatmap >= score_threshold)
    index = np.flatnonzero(keep)
    scores = heatmap.ravel()[index]
    if index.size > top_k:
        best = np.argpartition(-scores, top_k - 1)[:top_k]
        index, scores = index[best], scores[best]
    channel, cell = np.divmod(index, h * w)
    row, col = np.divmod(cell, w)
    dx, dy, bw, bh = box[:, row, col]
    cx, cy = (col + dx) * stride, (row + dy) * stride
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
    return boxes.astype(np.float64), scores.astype(np.float64), channel


def nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_threshold: float,
        max_keep: int) -> np.ndarray:
    """Class-aware greedy NMS; indices of the kept boxes, best score first."""
    if boxes.shape[0] == 0:
        return np.zeros(0, np.int64)
    # Shift each class to its own region of the plane, so boxes of different
    # classes never overlap and one pass handles every class.
    span = np.abs(boxes).max() * 2 + 1
    shifted = boxes + (classes.astype(np.float64) * span)[:, None]
    area = (shifted[:, 2] - shifted[:, 0]).clip(0) * (shifted[:, 3] - shifted[:, 1]).clip(0)
    order = np.argsort(-scores, kind='stable')
    keep = []
    while order.size and len(keep) < max_keep:
        best, rest = order[0], order[1:]
        keep.append(best)
        x1 = np.maximum(shifted[best, 0], shifted[rest, 0])
        y1 = np.maximum(shifted[best, 1], shifted[rest, 1])
        x2 = np.minimum(shifted[best, 2], shifted[rest, 2])
        y2 = np.minimum(shifted[best, 3], shifted[rest, 3])
        inter = (x2 - x1).clip(0) * (y2 - y1).clip(0)
        union = area[best] + area[rest] - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, np.int64)


def _session_name(width: float, part: str) -> str:
    return f'{width:g}/{part}'


class AdaConEngine:
    """All graphs of an exported AdaCon model, resident, and the per-frame pipeline.

    ``graph_runs`` (backbone, controller, static_head), ``branch_runs`` (per branch)
    and ``width_runs`` (frames per backbone width) count what each frame ran; a
    session is created once, in the constructor. An invalid model directory raises
    ValueError saying what is wrong.
    """

    def __init__(self, model_dir, providers: Sequence[str] = (CPU,), threads: int | None = None,
                 warn: Callable[[str], None] | None = None):
        self.model_dir = Path(model_dir)
        self.manifest = m = Manifest.load(self.model_dir)
        self.widths = [graphs.width for graphs in m.widths]
        paths, heads = {}, {}
        for graphs in m.widths:
            paths[_session_name(graphs.width, 'backbone')] = graphs.backbone['file']
            paths[_session_name(graphs.width, 'controller')] = graphs.controller['file']
            for part, head in [('static_head', graphs.static_head),
                               *[(f'branch{i}', b) for i, b in enumerate(graphs.branches)]]:
                heads[_session_name(graphs.width, part)] = head
                paths[_session_name(graphs.width, part)] = head.file
        loaded = create_sessions({k: self.model_dir / v for k, v in paths.items()},
                                 providers, threads, warn)
        self.providers = loaded.providers
        self._sessions = loaded.sessions
        for width in self.widths:
            self._check_io(_session_name(width, 'backbone'), *GRAPH_IO['backbone'])
            self._check_io(_session_name(width, 'controller'), *GRAPH_IO['controller'])
        for name, head in heads.items():
            self._check_io(name, *GRAPH_IO['head'])
            self._check_head(name, head)
        self.branch_names = [b.name for b in m.branches]
        self.graph_runs = {'backbone': 0, 'controller': 0, 'static_head': 0}
        self.branch_runs = [0] * len(m.branches)
        self.width_runs = dict.fromkeys(self.widths, 0)
        self._mean = np.asarray(m.mean, np.float32) * 255
        self._inv_std = 1 / (np.asarray(m.std, np.float32) * 255)
        self._class_ids = {name.split('/')[1]: np.asarray(head.class_ids, np.int64)
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

    def warm_up(self) -> None:
        """Run every graph once on zeros (not counted): first-run allocations happen now."""
        image = np.zeros((1, 3, *self.input_size), np.float32)
        for width in self.widths:
            features = self.features(image, width)
            for name, session in self._sessions.items():
                if name.startswith(f'{width:g}/') and not name.endswith('/backbone'):
                    session.run(None, {'features': features})

    def preprocess(self, rgb: np.ndarray) -> tuple:
        """RGB uint8 (H, W, 3) -> (normalised, letterboxed (1, 3, H, W) input, scale)."""
        canvas, scale = letterbox(rgb, self.input_size, self.manifest.mean)
        image = ((canvas - self._mean) * self._inv_std).transpose(2, 0, 1)[None]
        return np.ascontiguousarray(image, np.float32), scale

    def features(self, image: np.ndarray, width: float = 1.0) -> np.ndarray:
        """Run the backbone graph of ``width`` on a preprocessed image."""
        return self._sessions[_session_name(width, 'backbone')].run(
            ['features'], {'image': image})[0]

    def _head(self, name: str, features: np.ndarray) -> tuple:
        heatmap, box = self._sessions[name].run(['heatmap', 'box'], {'features': features})
        return heatmap[0], box[0]

    def detect(self, rgb: np.ndarray, mode: Mode, score_threshold: float = 0.3,
               nms_iou: float = 0.5, max_detections: int = 100) -> DetectionResult:
        """Detect objects in one RGB uint8 image (H, W, 3) in ``mode``."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f'expected an RGB uint8 image (H, W, 3), got {rgb.dtype} '
                             f'{rgb.shape}')
        if mode.kind not in ('static', 'multi', 'single'):
            raise ValueError(f'unknown mode {mode}')
        m = self.manifest
        graphs = m.graphs(mode.width)
        timings = {}
        clock = time.perf_counter()

        def lap(stage):
            nonlocal clock
            now = time.perf_counter()
            timings[stage] = (now - clock) * 1e3
            clock = now

        image, scale = self.preprocess(rgb)
        lap('letterbox')
        features = self.features(image, mode.width)
        self.graph_runs['backbone'] += 1
        self.width_runs[mode.width] += 1
        macs = graphs.backbone['macs']
        lap('backbone')

        if mode.kind == 'static':
            probabilities, selected = None, []
            heads = [('static_head', -1)]
            self.graph_runs['static_head'] += 1
            macs += graphs.static_head.macs
        else:
            logits = self._sessions[_session_name(mode.width, 'controller')].run(
                ['logits'], {'features': features})[0]
            self.graph_runs['controller'] += 1
            macs += graphs.controller['macs']
            probabilities = 1 / (1 + np.exp(-logits[0].astype(np.float64)))
            selected = select_branches(probabilities, mode)
            heads = [(f'branch{i}', i) for i in selected]
            for i in selected:
                self.branch_runs[i] += 1
                macs += graphs.branches[i].macs
        lap('controller')

        boxes, scores, classes, branches = [], [], [], []
        outputs = [(self._head(_session_name(mode.width, name), features), name, branch)
                   for name, branch in heads]
        lap('heads')
        for (heatmap, box), name, branch in outputs:
            b, s, channel = decode_peaks(heatmap, box, m.stride, score_threshold,
                                         max_detections)
            boxes.append(b)
            scores.append(s)
            classes.append(self._class_ids[name][channel])
            branches.append(np.full(len(s), branch, np.int64))
        boxes, scores = np.concatenate(boxes), np.concatenate(scores)
        classes, branches = np.concatenate(classes), np.concatenate(branches)
        keep = nms(boxes, scores, classes, nms_iou, max_detections)
        height, width = rgb.shape[:2]
        boxes = boxes[keep] / scale
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
        detections = [
            DetectedObject(int(c), m.classes[int(c)], float(s), *map(float, b), int(br))
            for b, s, c, br in zip(boxes, scores[keep], classes[keep], branches[keep],
                                   strict=True)]
        lap('decode')
        timings['total'] = sum(timings.values())
        return DetectionResult(detections, mode, selected, probabilities, macs, timings)
