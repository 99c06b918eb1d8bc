"""A tiny exported AdaCon model whose outputs the tests know in advance.

Same graph I/O and manifest as ``export adacon`` writes (see detection/manifest.py),
but every part is a few lines of torch with a predictable answer:

* backbone: average pooling by ``STRIDE`` (mean 0, std 1, so features are the RGB
  colour on 0..1); ``work_channels`` > 0 adds convolutions whose result is
  multiplied by zero, to make a frame cost real time;
* controller: branch ``k``'s logit = ``GAIN`` x (mean of colour channel ``k`` - 0.5),
  so the image colour sets the branch probabilities;
* heads: constant heatmaps and boxes, peaks listed in ``STATIC_PEAKS`` / ``BRANCH_PEAKS``;
* a second backbone width, ``HALF``: the same graphs at half the backbone MACs, except
  a static head that finds only the first two static peaks;
* with ``int8``: an "INT8" copy of every graph, the same modules except a static head
  that finds only the first static peak (``INT8_STATIC_PEAKS``), so a test can see
  which precision ran. (Real quantization is tested in test_quantize.py.)
"""

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from adaptive_perception.detection.manifest import HeadSpec, Manifest, WidthGraphs

INPUT = 32
STRIDE = 4
GRID = INPUT // STRIDE
GAIN = 10.0
CLASSES = {1: 'person', 2: 'car', 3: 'dog', 5: 'cup'}
COMMON = [1]
STATIC_CLASS_IDS = [1, 2, 3, 5]
BRANCHES = [('street', [2, 1]), ('home', [5, 3, 1]), ('park', [3, 1])]
MACS = {'backbone': 1000, 'controller': 10, 'static': 400, 'branches': [100, 150, 120]}
HALF = 0.5
HALF_STATIC_PEAKS = 2  # the static head at HALF finds STATIC_PEAKS[:2]
INT8_STATIC_PEAKS = 1  # the "INT8" static heads find STATIC_PEAKS[:1]

# (local channel, row, col, score, dx, dy, w, h): one peak of a constant head.
STATIC_PEAKS = [(1, 1, 1, 0.9, 0.5, 0.5, 6.0, 6.0),    # car
                (1, 5, 5, 0.8, 0.5, 0.5, 8.0, 6.0),    # car
                (3, 2, 6, 0.7, 0.5, 0.5, 4.0, 4.0)]    # cup
BRANCH_PEAKS = [
    [(0, 6, 1, 0.6, 0.5, 0.5, 6.0, 4.0),               # street: car
     (1, 4, 4, 0.9, 0.5, 0.5, 8.0, 8.0)],              # street: person (common)
    [(1, 4, 4, 0.8, 0.5, 0.5, 8.0, 8.0),               # home: dog, same box as person
     (2, 4, 4, 0.7, 0.5, 0.5, 8.0, 8.0),               # home: person again (to dedup)
     (0, 2, 2, 0.5, 0.5, 0.5, 4.0, 4.0)],              # home: cup
    [(0, 7, 7, 0.4, 0.5, 0.5, 4.0, 4.0)],              # park: dog
]


class Backbone(nn.Module):
    def __init__(self, work_channels: int):
        super().__init__()
        self.pool = nn.AvgPool2d(STRIDE)
        self.work = nn.Sequential(nn.Conv2d(3, work_channels, 3, padding=1),
                                  nn.Conv2d(work_channels, work_channels, 3, padding=1),
                                  ) if work_channels else None

    def forward(self, image):
        features = self.pool(image)
        if self.work is not None:
            features = features + 0 * self.work(image).mean()
        return features


class Controller(nn.Module):
    def forward(self, features):
        return GAIN * (features.mean(dim=(2, 3)) - 0.5)


class ConstantHead(nn.Module):
    def __init__(self, num_classes: int, peaks: list):
        super().__init__()
        heatmap = torch.zeros(1, num_classes, GRID, GRID)
        box = torch.zeros(1, 4, GRID, GRID)
        for channel, row, col, score, *geometry in peaks:
            heatmap[0, channel, row, col] = score
            box[0, :, row, col] = torch.tensor(geometry)
        self.register_buffer('heatmap', heatmap)
        self.register_buffer('box', box)

    def forward(self, features):
        zero = 0 * features.sum()
        return self.heatmap + zero, self.box + zero


def _export(module: nn.Module, example, path: Path, inputs: list, outputs: list) -> None:
    # The TorchScript exporter takes 0.1 s a graph here, the dynamo one 2 s; it is
    # deprecated, and says so on every call.
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        torch.onnx.export(module.eval(), (example,), str(path), input_names=inputs,
                          output_names=outputs, dynamo=False)


def expected_box(peak, scale: float = 1.0) -> tuple:
    """Where a peak's box lands in an original image that was scaled by ``scale``."""
    _, row, col, _, dx, dy, w, h = peak
    cx, cy = (col + dx) * STRIDE, (row + dy) * STRIDE
    return tuple(v / scale for v in (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))


def build(model_dir: Path, work_channels: int = 0, int8: bool = False) -> Path:
    """Export the fake model into ``model_dir`` (created) and return it."""
    model_dir.mkdir(parents=True, exist_ok=True)
    image = torch.zeros(1, 3, INPUT, INPUT)
    features = torch.zeros(1, 3, GRID, GRID)
    _export(Backbone(work_channels), image, model_dir / 'backbone.onnx', ['image'],
            ['features'])
    _export(Controller(), features, model_dir / 'controller.onnx', ['features'], ['logits'])
    heads = [('static.onnx', len(STATIC_CLASS_IDS), STATIC_PEAKS),
             ('static_half.onnx', len(STATIC_CLASS_IDS), STATIC_PEAKS[:HALF_STATIC_PEAKS])]
    heads += [(f'branch_{name}.onnx', len(ids), peaks)
              for (name, ids), peaks in zip(BRANCHES, BRANCH_PEAKS, strict=True)]
    for file, num_classes, peaks in heads:
        _export(ConstantHead(num_classes, peaks), features, model_dir / file, ['features'],
                ['heatmap', 'box'])
    int8_graphs = {}
    if int8:
        for file in ['backbone.onnx', 'controller.onnx', *[f for f, _, _ in heads]]:
            copy = file.replace('.onnx', '_int8.onnx')
            (model_dir / copy).write_bytes((model_dir / file).read_bytes())
            int8_graphs[file] = copy
        for file in ('static_int8.onnx', 'static_half_int8.onnx'):
            _export(ConstantHead(len(STATIC_CLASS_IDS), STATIC_PEAKS[:INT8_STATIC_PEAKS]),
                    features, model_dir / file, ['features'], ['heatmap', 'box'])
    branches = [HeadSpec(name, f'branch_{name}.onnx', ids, macs)
                for (name, ids), macs in zip(BRANCHES, MACS['branches'], strict=True)]
    Manifest(
        input_size=[INPUT, INPUT], stride=STRIDE, mean=[0.0] * 3, std=[1.0] * 3,
        classes=CLASSES, common_class_ids=COMMON,
        widths=[WidthGraphs(
            width=width,
            backbone={'file': 'backbone.onnx', 'macs': int(MACS['backbone'] * width)},
            controller={'file': 'controller.onnx', 'macs': MACS['controller']},
            static_head=HeadSpec('static', static, STATIC_CLASS_IDS, MACS['static']),
            branches=branches) for width, static in [(1.0, 'static.onnx'),
                                                     (HALF, 'static_half.onnx')]],
        training={'fake': True},
        int8={'graphs': int8_graphs, 'reports': {}, 'calibration': {}} if int8 else {},
    ).save(model_dir)
    return model_dir


def colour_image(rgb: tuple, size: int = INPUT) -> np.ndarray:
    """Make a flat image of one colour (the controller reads the colour)."""
    return np.tile(np.asarray(rgb, np.uint8), (size, size, 1))


def coco_set(directory: Path, colours: list, size: int = 2 * INPUT) -> tuple:
    """Images of ``colours`` whose ground truth is exactly the static head's peaks.

    Returns (annotations json path, images dir). The images are ``size`` pixels
    square, so every box scales by ``INPUT / size``.
    """
    from PIL import Image
    images_dir = directory / 'images'
    images_dir.mkdir(parents=True, exist_ok=True)
    scale = INPUT / size
    images, annotations = [], []
    for i, colour in enumerate(colours, start=1):
        Image.fromarray(colour_image(colour, size)).save(images_dir / f'{i:03d}.png')
        images.append({'id': i, 'file_name': f'{i:03d}.png', 'width': size, 'height': size})
        for peak in STATIC_PEAKS:
            x1, y1, x2, y2 = expected_box(peak, scale)
            annotations.append({
                'id': len(annotations) + 1, 'image_id': i,
                'category_id': STATIC_CLASS_IDS[peak[0]], 'bbox': [x1, y1, x2 - x1, y2 - y1],
                'area': (x2 - x1) * (y2 - y1), 'iscrowd': 0})
    path = directory / 'annotations.json'
    path.write_text(json.dumps({
        'images': images, 'annotations': annotations,
        'categories': [{'id': k, 'name': v} for k, v in CLASSES.items()]}))
    return path, images_dir
