"""Any COCO-format detection set as model input and CenterNet targets.

Images are letterboxed to the model input (aspect kept, padded right and bottom with
the mean colour in 8 bits, about zero after normalisation); ``scale`` maps boxes back:
original = input / scale. Categories become contiguous class indices in ascending id
order, the static head's channel order.
"""

import json
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from adaptive_perception.detection.manifest import letterbox

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def gaussian_radius(height: float, width: float, min_overlap: float = 0.7) -> float:
    """CenterNet's radius: a centre this far off still overlaps the box by ``min_overlap``."""
    b1 = height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1 ** 2 - 4 * c1)) / 2
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + math.sqrt(b2 ** 2 - 16 * c2)) / 8
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + math.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def draw_gaussian(heatmap: np.ndarray, row: int, col: int, radius: int) -> None:
    """Max a Gaussian of peak 1 at (row, col) into ``heatmap`` (h, w), in place."""
    sigma = (2 * radius + 1) / 6
    ys, xs = np.ogrid[-radius:radius + 1, -radius:radius + 1]
    blob = np.exp(-(xs * xs + ys * ys) / (2 * sigma * sigma))
    h, w = heatmap.shape
    top, bottom = min(row, radius), min(h - row, radius + 1)
    left, right = min(col, radius), min(w - col, radius + 1)
    region = heatmap[row - top:row + bottom, col - left:col + right]
    np.maximum(region, blob[radius - top:radius + bottom, radius - left:radius + right],
               out=region)


def clip_boxes(boxes: np.ndarray, size: tuple, min_visible: float) -> tuple:
    """Clip (x, y, w, h) boxes to an (H, W) image; (clipped, which to keep).

    A box is kept if at least one pixel wide and high and at least ``min_visible`` of
    its area is inside (zoomed-out objects can leave the image; so can user boxes).
    """
    height, width = size
    corners = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], 1)
    inside = np.clip(corners, 0, [width, height, width, height])
    clipped = np.concatenate([inside[:, :2], inside[:, 2:] - inside[:, :2]], 1)
    area = boxes[:, 2] * boxes[:, 3]
    keep = ((clipped[:, 2] >= 1) & (clipped[:, 3] >= 1)
            & (clipped[:, 2] * clipped[:, 3] >= min_visible * area))
    return clipped, keep


def encode_targets(boxes: np.ndarray, classes: np.ndarray, num_classes: int,
                   feature_size: tuple, stride: int) -> dict:
    """Boxes (x, y, w, h in input pixels) -> dense CenterNet targets on the feature grid.

    ``heatmap`` (n, h, w): a Gaussian per object in its class channel, 1 at the centre
    cell; ``box`` (4, h, w): (dx, dy, log(w / stride), log(h / stride)) at centre cells;
    ``cls_map`` (h, w): the class whose centre lies in a cell, -1 elsewhere. Where two
    centres share a cell the smaller object wins (the larger one still has its peak).
    """
    h, w = feature_size
    heatmap = np.zeros((num_classes, h, w), np.float32)
    box = np.zeros((4, h, w), np.float32)
    cls_map = np.full((h, w), -1, np.int64)
    for i in np.argsort(-(boxes[:, 2] * boxes[:, 3]), kind='stable'):
        x, y, bw, bh = boxes[i]
        cx, cy = (x + bw / 2) / stride, (y + bh / 2) / stride
        col, row = min(int(cx), w - 1), min(int(cy), h - 1)
        radius = max(0, int(gaussian_radius(bh / stride, bw / stride)))
        draw_gaussian(heatmap[classes[i]], row, col, radius)
        box[:, row, col] = (cx - col, cy - row, math.log(bw / stride), math.log(bh / stride))
        cls_map[row, col] = classes[i]
    return {'heatmap': heatmap, 'box': box, 'cls_map': cls_map}


class CocoDetection(Dataset):
    """Letterboxed images of a COCO json with CenterNet targets for the AdaCon heads.

    An item is a dict: ``image`` (3, H, W) normalised, ``heatmap``, ``box``, ``cls_map``
    (see :func:`encode_targets`), ``index``, ``image_id`` and ``scale``. ``train`` turns
    on a random zoom (scale 1 +- ``zoom``, random shift), horizontal flip and colour
    jitter (``generator`` makes them reproducible); ``mirror`` flips every image (a
    fixed view to cache features of). Crowd boxes, and boxes under one pixel or with
    less than ``min_visible`` of their area in the input, are left out.
    """

    def __init__(self, annotations, image_dir, input_size=128, stride: int = 8,
                 train: bool = False, mirror: bool = False, mean: tuple = IMAGENET_MEAN,
                 std: tuple = IMAGENET_STD, jitter: float = 0.2, zoom: float = 0.25,
                 min_visible: float = 0.4, generator: torch.Generator = None):
        coco = annotations if isinstance(annotations, dict) else json.loads(
            Path(annotations).read_text())
        self.image_dir = Path(image_dir)
        self.input_size = (input_size, input_size) if isinstance(input_size, int) \
            else tuple(input_size)
        if self.input_size[0] % stride or self.input_size[1] % stride:
            raise ValueError(f'input size {self.input_size} is not a multiple of {stride}')
        self.stride = stride
        self.train = train
        self.mirror = mirror
        self.mean, self.std = tuple(mean), tuple(std)
        self.jitter = jitter
        self.zoom = zoom
        self.min_visible = min_visible
        self.generator = generator
        self.category_ids = sorted(c['id'] for c in coco['categories'])
        self.class_names = {c['id']: c['name'] for c in coco['categories']}
        self._class_of = {cid: i for i, cid in enumerate(self.category_ids)}
        self.images = sorted(coco['images'], key=lambda im: im['id'])
        self._boxes = {im['id']: [] for im in self.images}
        for ann in coco['annotations']:
            if not ann.get('iscrowd', 0) and ann['image_id'] in self._boxes:
                self._boxes[ann['image_id']].append((ann['bbox'], ann['category_id']))

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_classes(self) -> int:
        """Number of categories, i.e. static head channels."""
        return len(self.category_ids)

    def image_category_ids(self, index: int) -> list:
        """COCO category ids present in image ``index`` (sorted, once each)."""
        return sorted({cid for _, cid in self._boxes[self.images[index]['id']]})

    def _uniform(self) -> float:
        return float(torch.rand((), generator=self.generator))

    def _colour_jitter(self, image: torch.Tensor) -> torch.Tensor:
        """Brightness, contrast and saturation each scaled by 1 +- ``jitter``."""
        brightness, contrast, saturation = (1 + self.jitter * (2 * self._uniform() - 1)
                                            for _ in range(3))
        image = image * brightness
        image = (image - image.mean()) * contrast + image.mean()
        grey = image.mean(dim=0, keepdim=True)
        return ((image - grey) * saturation + grey).clamp(0, 1)

    def _random_zoom(self, image: Image.Image, boxes: np.ndarray, fill: tuple) -> tuple:
        """Scale by 1 +- ``zoom`` and shift at random: objects at new sizes and places."""
        s = 1 + self.zoom * (2 * self._uniform() - 1)
        width, height = image.size
        tx = (width - s * width) * self._uniform()  # the zoomed image covers or stays inside
        ty = (height - s * height) * self._uniform()
        image = image.transform(image.size, Image.AFFINE, (1 / s, 0, -tx / s, 0, 1 / s, -ty / s),
                                Image.BILINEAR, fillcolor=fill)
        return image, boxes * s + [tx, ty, 0, 0]

    def __getitem__(self, index: int) -> dict:
        info = self.images[index]
        height, width = self.input_size
        fill = tuple(round(255 * m) for m in self.mean)
        with Image.open(self.image_dir / info['file_name']) as raw:
            canvas, scale = letterbox(np.asarray(raw.convert('RGB')), self.input_size, self.mean)
        image = Image.fromarray(canvas)
        boxes = np.array([b for b, _ in self._boxes[info['id']]], np.float64).reshape(-1, 4)
        boxes *= scale
        classes = np.array([self._class_of[c] for _, c in self._boxes[info['id']]], np.int64)
        if self.train and self.zoom:
            image, boxes = self._random_zoom(image, boxes, fill)
        pixels = torch.from_numpy(np.asarray(image, np.float32) / 255).permute(2, 0, 1)
        if self.mirror or (self.train and self._uniform() < 0.5):
            pixels = pixels.flip(-1)
            boxes[:, 0] = width - boxes[:, 0] - boxes[:, 2]
        if self.train:
            pixels = self._colour_jitter(pixels)
        boxes, keep = clip_boxes(boxes, (height, width), self.min_visible)
        targets = encode_targets(boxes[keep], classes[keep], self.num_classes,
                                 (height // self.stride, width // self.stride), self.stride)
        mean = torch.tensor(self.mean).view(3, 1, 1)
        std = torch.tensor(self.std).view(3, 1, 1)
        item = {name: torch.from_numpy(value) for name, value in targets.items()}
        item.update(image=(pixels - mean) / std, index=index, image_id=info['id'], scale=scale)
        return item
