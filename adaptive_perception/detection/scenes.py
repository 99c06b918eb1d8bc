"""Context scenes: a procedural COCO detection dataset with planted spatial contexts.

Nothing can be downloaded, so the default dataset is generated. Each image shows
one scene context (kitchen, street, farm, office) - its background and objects
of that context's classes - plus classes common to every context (person, bag).
About 15% of the scenes mix objects of two contexts. Because the planted
assignment is known (``CONTEXTS``, ``COMMON``), the spatial-context clustering
can be checked against it, and the detector learns from scenes whose context
shows in the background as well as in the objects.

Classes differ by shape, colour and texture, but shapes and colours repeat across
contexts, colours jitter per instance, objects occlude each other and the images
are noisy: a small detector does not saturate on them. Everything is
deterministic by seed.
"""

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

VERSION = 1
MIXED_SHARE = 0.15        # scenes with objects from two contexts
COMMON_SHARE = 0.2        # chance that an object is of a common class
OBJECTS_PER_IMAGE = (2, 7)
SIZE_RANGE = (12 / 128, 48 / 128)  # longer side of an object, as a share of the image
MIN_VISIBLE = 0.4         # objects hidden more than 60% are not annotated
NOISE_STD = 6.0


@dataclass(frozen=True)
class ClassStyle:
    """How one class looks: shape, colours, texture and aspect (height / width) range."""

    name: str
    shape: str
    colour: tuple
    accent: tuple         # second colour of the texture (unused by solid)
    texture: str          # solid, stripes_h, stripes_v, stripes_d, dots, checker, gradient
    aspect: tuple
    jitter: float = 14.0  # per-instance colour jitter (std per channel)


CLASSES = {
    'kitchen': [
        ClassStyle('cup', 'ring', (196, 62, 52), (150, 40, 35), 'solid', (0.85, 1.2)),
        ClassStyle('plate', 'ellipse', (226, 224, 214), (180, 176, 168), 'stripes_h',
                   (0.45, 0.65)),
        ClassStyle('bottle', 'capsule', (46, 138, 72), (150, 210, 160), 'gradient', (1.8, 2.6)),
        ClassStyle('pan', 'lollipop', (62, 62, 70), (110, 110, 120), 'dots', (0.45, 0.6)),
    ],
    'street': [
        ClassStyle('car', 'car', (204, 52, 48), (90, 20, 20), 'gradient', (0.5, 0.7)),
        ClassStyle('traffic_light', 'square', (40, 40, 44), (235, 200, 40), 'dots',
                   (1.9, 2.6)),
        ClassStyle('stop_sign', 'octagon', (210, 40, 40), (240, 240, 240), 'solid', (0.9, 1.1)),
        ClassStyle('traffic_cone', 'triangle', (240, 120, 30), (245, 245, 245), 'stripes_h',
                   (1.1, 1.5)),
    ],
    'farm': [
        ClassStyle('cow', 'ellipse', (236, 236, 232), (30, 30, 30), 'dots', (0.55, 0.75)),
        ClassStyle('sheep', 'cloud', (228, 222, 205), (190, 184, 170), 'checker', (0.65, 0.85)),
        ClassStyle('tractor', 'tractor', (44, 140, 60), (230, 190, 40), 'gradient',
                   (0.7, 0.9)),
        ClassStyle('hay_bale', 'square', (222, 190, 92), (170, 140, 60), 'stripes_v',
                   (0.7, 1.0)),
    ],
    'office': [
        ClassStyle('laptop', 'L', (150, 150, 160), (100, 100, 110), 'solid', (0.8, 1.1)),
        ClassStyle('monitor', 'frame', (34, 34, 40), (80, 80, 90), 'gradient', (0.65, 0.85)),
        ClassStyle('chair', 'T', (120, 72, 42), (80, 48, 28), 'stripes_d', (1.1, 1.5)),
        ClassStyle('book', 'square', (52, 92, 180), (220, 220, 230), 'stripes_h', (1.2, 1.5)),
    ],
    'common': [
        ClassStyle('person', 'figure', (200, 150, 120), (60, 70, 140), 'gradient', (1.8, 2.6),
                   jitter=40.0),
        ClassStyle('bag', 'bag', (122, 72, 40), (70, 40, 20), 'checker', (0.9, 1.2),
                   jitter=30.0),
    ],
}
CONTEXTS = {context: [style.name for style in styles]
            for context, styles in CLASSES.items() if context != 'common'}
COMMON = [style.name for style in CLASSES['common']]
_STYLES = [style for styles in CLASSES.values() for style in styles]  # index = id - 1
_ID = {style.name: i + 1 for i, style in enumerate(_STYLES)}
_SUPERCATEGORY = {style.name: context for context, styles in CLASSES.items()
                  for style in styles}


def categories() -> list:
    """COCO categories, ids 1..18 in a fixed order; supercategory = context or 'common'."""
    return [{'id': _ID[s.name], 'name': s.name, 'supercategory': _SUPERCATEGORY[s.name]}
            for s in _STYLES]


def _cut(draw, x0, y0, x1, y1) -> None:
    """Hollow out a box; a tiny object too small for a hole stays solid."""
    if x1 >= x0 and y1 >= y0:
        draw([x0, y0, x1, y1], fill=0)


def _shape_mask(shape: str, w: int, h: int) -> np.ndarray:
    """Draw ``shape`` filling a w x h box; True where the object is."""
    img = Image.new('L', (w, h), 0)
    d = ImageDraw.Draw(img)
    r, b = w - 1, h - 1
    t = max(2, min(w, h) // 4)  # stroke width of outlined shapes
    if shape == 'ellipse':
        d.ellipse([0, 0, r, b], fill=255)
    elif shape == 'ring':
        d.ellipse([0, 0, r, b], fill=255)
        _cut(d.ellipse, t, t, r - t, b - t)
    elif shape == 'square':
        d.rectangle([0, 0, r, b], fill=255)
    elif shape == 'frame':
        d.rectangle([0, 0, r, b], fill=255)
        _cut(d.rectangle, t, t, r - t, b - 2 * t)
    elif shape == 'capsule':
        d.rounded_rectangle([0, 0, r, b], radius=w // 2, fill=255)
    elif shape == 'lollipop':  # a pan: round body, handle to the right
        d.ellipse([0, 0, int(0.65 * r), b], fill=255)
        d.rectangle([int(0.5 * r), int(0.4 * b), r, int(0.6 * b)], fill=255)
    elif shape == 'car':
        d.rectangle([0, int(0.4 * b), r, int(0.8 * b)], fill=255)
        d.polygon([(0.2 * r, 0.4 * b), (0.35 * r, 0), (0.7 * r, 0), (0.85 * r, 0.4 * b)],
                  fill=255)
        wheel = int(0.35 * b)
        d.ellipse([int(0.1 * r), b - wheel, int(0.1 * r) + wheel, b], fill=255)
        d.ellipse([int(0.9 * r) - wheel, b - wheel, int(0.9 * r), b], fill=255)
    elif shape == 'octagon':
        c = 0.29
        d.polygon([(c * r, 0), ((1 - c) * r, 0), (r, c * b), (r, (1 - c) * b),
                   ((1 - c) * r, b), (c * r, b), (0, (1 - c) * b), (0, c * b)], fill=255)
    elif shape == 'triangle':
        d.polygon([(r / 2, 0), (r, b), (0, b)], fill=255)
    elif shape == 'cloud':  # a sheep: overlapping blobs
        for x0, y0, x1, y1 in [(0, .25, .5, .85), (.25, 0, .75, .6), (.5, .25, 1, .85),
                               (.2, .4, .8, 1)]:
            d.ellipse([int(x0 * r), int(y0 * b), int(x1 * r), int(y1 * b)], fill=255)
    elif shape == 'tractor':  # cab, body, big rear wheel, small front wheel
        d.rectangle([int(0.15 * r), 0, int(0.5 * r), int(0.6 * b)], fill=255)
        d.rectangle([int(0.15 * r), int(0.35 * b), r, int(0.7 * b)], fill=255)
        d.ellipse([0, int(0.4 * b), int(0.55 * r), b], fill=255)
        d.ellipse([int(0.7 * r), int(0.7 * b), r, b], fill=255)
    elif shape == 'L':  # a laptop seen from the side: screen and base
        d.rectangle([0, 0, int(0.3 * r), b], fill=255)
        d.rectangle([0, int(0.7 * b), r, b], fill=255)
    elif shape == 'T':  # a chair: back and seat, one leg
        d.rectangle([0, 0, r, int(0.3 * b)], fill=255)
        d.rectangle([int(0.33 * r), 0, int(0.67 * r), b], fill=255)
    elif shape == 'figure':  # a person: head and body
        d.ellipse([int(0.3 * r), 0, int(0.7 * r), int(0.25 * b)], fill=255)
        d.polygon([(0.15 * r, 0.28 * b), (0.85 * r, 0.28 * b), (r, b), (0, b)], fill=255)
    elif shape == 'bag':  # body and handle
        d.rectangle([0, int(0.3 * b), r, b], fill=255)
        d.ellipse([int(0.25 * r), 0, int(0.75 * r), int(0.6 * b)], outline=255,
                  width=max(1, t // 2))
    else:
        raise ValueError(f'unknown shape {shape!r}')
    return np.asarray(img) > 0


def _texture(kind: str, colour: np.ndarray, accent: np.ndarray, h: int, w: int,
             rng: np.random.Generator) -> np.ndarray:
    """Fill an h x w patch with ``colour`` patterned with ``accent``; float RGB."""
    if kind == 'solid':
        return np.broadcast_to(colour, (h, w, 3))
    yy, xx = np.mgrid[0:h, 0:w]
    period = int(rng.integers(4, 9))
    phase = int(rng.integers(0, period))
    if kind == 'gradient':
        angle = rng.uniform(0, 2 * math.pi)
        t = (xx * math.cos(angle) + yy * math.sin(angle)).astype(np.float32)
        t = (t - t.min()) / max(float(np.ptp(t)), 1.0)
    elif kind.startswith('stripes'):
        coord = {'stripes_h': yy, 'stripes_v': xx, 'stripes_d': xx + yy}[kind]
        t = ((coord + phase) // max(period // 2, 2)) % 2
    elif kind == 'dots':
        dy = (yy + phase) % period - period / 2
        dx = (xx + phase) % period - period / 2
        t = dy * dy + dx * dx < (0.3 * period) ** 2
    elif kind == 'checker':
        t = ((yy + phase) // period + (xx + phase) // period) % 2
    else:
        raise ValueError(f'unknown texture {kind!r}')
    t = np.asarray(t, np.float32)[..., None]
    return colour * (1 - t) + accent * t


class SceneGenerator:
    """An endless, seeded stream of context scenes (image, objects, context)."""

    def __init__(self, seed: int, image_size: int = 128):
        self.rng = np.random.default_rng(seed)
        self.size = image_size
        yy, xx = np.mgrid[0:image_size, 0:image_size].astype(np.float32) / image_size
        self._yy, self._xx = yy[..., None], xx[..., None]

    def sample(self) -> tuple:
        """Render one scene: (HxWx3 uint8 RGB, [{category_id, bbox, area}], context).

        ``bbox`` is the full (also occluded) box ``[x, y, w, h]`` in pixels; ``area``
        is the object's full pixel count. ``context`` is the planted one, or
        ``'mixed:a+b'``.
        """
        rng = self.rng
        names = list(CONTEXTS)
        context = names[rng.integers(len(names))]
        pools = [context]
        if rng.random() < MIXED_SHARE:
            pools.append(names[(names.index(context) + rng.integers(1, len(names))) %
                               len(names)])
        image = self._background(context)
        n = int(rng.integers(OBJECTS_PER_IMAGE[0], OBJECTS_PER_IMAGE[1] + 1))
        picks, k = [], 0
        for _ in range(n):
            if rng.random() < COMMON_SHARE:
                picks.append(COMMON[rng.integers(len(COMMON))])
            else:  # alternate between the mixed contexts so that both show
                pool = CONTEXTS[pools[k % len(pools)]]
                picks.append(pool[rng.integers(len(pool))])
                k += 1
        placed = [self._place(_STYLES[_ID[name] - 1]) for name in picks]
        placed.sort(key=lambda p: -p[2].sum())  # larger objects further back
        owner = np.full((self.size, self.size), -1, np.int16)
        for i, (x, y, mask, texture, _) in enumerate(placed):
            h, w = mask.shape
            image[y:y + h, x:x + w][mask] = texture[mask]
            owner[y:y + h, x:x + w][mask] = i
        objects = []
        for i, (x, y, mask, _, name) in enumerate(placed):
            h, w = mask.shape
            area = int(mask.sum())
            if (owner[y:y + h, x:x + w] == i).sum() >= MIN_VISIBLE * area:
                objects.append({'category_id': _ID[name],
                                'bbox': [float(x), float(y), float(w), float(h)],
                                'area': float(area)})
        image *= rng.uniform(0.8, 1.15)  # lighting
        image += NOISE_STD * rng.standard_normal(image.shape, dtype=np.float32)
        label = context if len(pools) == 1 else f'mixed:{pools[0]}+{pools[1]}'
        return np.clip(image, 0, 255).astype(np.uint8), objects, label

    def _place(self, style: ClassStyle) -> tuple:
        """Size, mask, texture and position of one instance: (x, y, mask, texture, name)."""
        rng = self.rng
        lo, hi = SIZE_RANGE
        side = self.size * math.exp(rng.uniform(math.log(lo), math.log(hi)))
        aspect = rng.uniform(*style.aspect)
        w, h = (side / aspect, side) if aspect >= 1 else (side, side * aspect)
        mask = _shape_mask(style.shape, max(4, round(w)), max(4, round(h)))
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        mask = mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]  # tight box
        colour = np.array(style.colour, np.float32) + rng.normal(0, style.jitter, 3)
        accent = np.array(style.accent, np.float32) + rng.normal(0, style.jitter / 2, 3)
        texture = _texture(style.texture, colour, accent, *mask.shape, rng)
        x = int(rng.integers(0, self.size - mask.shape[1] + 1))
        y = int(rng.integers(0, self.size - mask.shape[0] + 1))
        return x, y, mask, texture, style.name

    def _background(self, context: str) -> np.ndarray:
        """Paint the context's backdrop (float RGB), so that the scene shows its context too."""
        rng, s, yy, xx = self.rng, self.size, self._yy, self._xx
        shift = rng.normal(0, 10, 3).astype(np.float32)
        if context == 'kitchen':  # cream tiles with grout lines
            tile = int(rng.integers(s // 10, s // 6))
            oy, ox = rng.integers(0, tile, 2)
            rows = np.arange(s)
            grout = (((rows[:, None] + oy) % tile) < 2) | (((rows[None, :] + ox) % tile) < 2)
            img = np.array([226, 214, 188], np.float32) - 25 * yy
            img = img - 45 * grout[..., None]
        elif context == 'street':  # asphalt, pavement at the top, a dashed lane marking
            img = np.array([92, 92, 98], np.float32) + 9 * rng.standard_normal(
                (s, s, 1), dtype=np.float32)
            kerb = rng.uniform(0.15, 0.3)
            img = np.where(yy < kerb, np.float32(150), img)
            lane = rng.uniform(0.55, 0.8)
            dash = ((xx * s + rng.integers(0, 24)) % 24 < 12) & (np.abs(yy - lane) < 0.015)
            img = np.where(dash, np.array([230, 210, 90], np.float32), img)
        elif context == 'farm':  # sky above the horizon, striped grass below
            horizon = rng.uniform(0.2, 0.45)
            sky = np.array([150, 190, 235], np.float32) + 40 * (yy / horizon)
            grass = (np.array([78, 148, 58], np.float32) - 40 * (yy - horizon)
                     - 14 * ((np.arange(s) % 3 == 0)[None, :, None]))
            img = np.where(yy < horizon, sky, grass)
        else:  # office: blue-grey carpet, a faint checker, lit from one side
            period = int(rng.integers(6, 12))
            rows = np.arange(s)
            checker = ((rows[:, None] // period + rows[None, :] // period) % 2)[..., None]
            img = np.array([118, 128, 150], np.float32) + 10 * checker - 30 * xx
        return np.broadcast_to(img + shift, (s, s, 3)).astype(np.float32)


def write_dataset(out_dir, num_images: int, seed: int, image_size: int = 128) -> Path:
    """Write ``images/000000.png ...`` and COCO ``annotations.json`` into ``out_dir``.

    Image ids equal the file numbers; annotation ids start at 1. Every image has
    its planted ``context``. The same arguments write byte-identical files.
    """
    out_dir = Path(out_dir)
    (out_dir / 'images').mkdir(parents=True, exist_ok=True)
    generator = SceneGenerator(seed, image_size)
    images, annotations = [], []
    for image_id in range(num_images):
        pixels, objects, context = generator.sample()
        file_name = f'{image_id:06d}.png'
        Image.fromarray(pixels).save(out_dir / 'images' / file_name)
        images.append({'id': image_id, 'file_name': file_name, 'width': image_size,
                       'height': image_size, 'context': context})
        for obj in objects:
            annotations.append({'id': len(annotations) + 1, 'image_id': image_id,
                                'category_id': obj['category_id'], 'bbox': obj['bbox'],
                                'area': obj['area'], 'iscrowd': 0})
    coco = {'info': {'description': 'adaptive_perception context scenes',
                     'generator': __name__, 'version': VERSION, 'seed': seed,
                     'image_size': image_size},
            'images': images, 'annotations': annotations, 'categories': categories()}
    path = out_dir / 'annotations.json'
    path.write_text(json.dumps(coco, indent=1))
    return path


def run_generate(out_dir, num_images: int, seed: int, image_size: int = 128) -> Path:
    """``adaptive-perception data scenes``: write the dataset, print a one-line summary."""
    path = write_dataset(out_dir, num_images, seed, image_size)
    coco = json.loads(path.read_text())
    print(f'wrote {len(coco["images"])} images, {len(coco["annotations"])} objects, '
          f'{len(coco["categories"])} classes to {path}')
    return path
