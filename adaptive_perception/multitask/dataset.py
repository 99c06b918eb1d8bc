"""The dense multi-task dataset format, its writer for the procedural scenes, and its loader.

Users bring their own images with labels for any subset of the four tasks in this
layout; ``write_dataset`` writes the procedural scenes (``scenes.py``) in it, and
``load_dataset`` reads any such folder into ``DenseArrays``, what training and
evaluation consume::

    DATASET/
      dataset.json            {"format": "adaptive_perception.dense/1", "tasks": [...],
                               "class_names": [...],
                               "images": [{"name": "000000", "objects": 3}, ...]}
      images/NAME.png         RGB (any 8-bit PNG/JPEG PIL opens; converted to RGB)
      segmentation/NAME.png   8-bit single-channel class ids, 255 = ignore
      depth/NAME.png          16-bit single-channel depth in millimetres, 0 = unknown
      normals/NAME.png        8-bit RGB, n = rgb / 127.5 - 1 (camera frame x right,
                              y down, z forward); (0,0,0) = unknown
      saliency/NAME.png       8-bit single-channel, >= 128 salient, 0..127 not

- ``tasks`` lists the tasks whose folders are read (any of segmentation, depth,
  normals, saliency); ``class_names`` names the segmentation ids in order and is
  required when segmentation is listed; ``objects`` (optional) is the number of
  objects in the image.
- The image may also be ``images/NAME.jpg`` or ``.jpeg``; labels are always PNG
  (lossless). Segmentation may be a palette PNG whose indices are the class ids.
- A listed task whose folder is missing has no labels at all, and a missing label
  file leaves that image without that label: the loader marks both unknown.
- Every label image has the size of its image. A size mismatch, an unreadable file,
  an unknown ``format``, a class id >= len(class_names) other than 255, or a listed
  image that is missing raises ``ValueError`` naming the file and the problem.

Normals are re-normalised after decoding. ``generate_dataset_arrays`` passes the
scenes through the same 8/16-bit encoding in memory, so training from the written
files and from memory sees identical arrays.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from adaptive_perception.multitask.scenes import CLASS_NAMES, TASKS, render_scene

FORMAT = 'adaptive_perception.dense/1'
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg')
DEPTH_MODES = ('I;16', 'I;16B', 'I;16L', 'I')   # how PIL opens 16-bit greyscale PNGs
LABEL_MODES = {'segmentation': ('L', 'P'), 'depth': DEPTH_MODES, 'normals': ('RGB',),
               'saliency': ('L', '1')}
LABEL_KINDS = {'segmentation': '8-bit single-channel', 'depth': '16-bit single-channel',
               'normals': '8-bit RGB', 'saliency': '8-bit single-channel'}
SCENE_SEED_STRIDE = 1_000_003   # dataset seeds far apart never share a scene


@dataclass
class DenseArrays:
    """A dataset in memory: images and per-task labels, unknown labels marked per pixel."""

    images: np.ndarray            # uint8 (N, H, W, 3)
    segmentation: np.ndarray      # uint8 (N, H, W), 255 = unknown/ignore
    depth: np.ndarray             # float32 (N, H, W) metres, 0 = unknown
    normals: np.ndarray           # float32 (N, H, W, 3) unit, all-zero vector = unknown
    saliency: np.ndarray          # float32 (N, H, W) in {0, 1}, NaN = unknown
    class_names: tuple
    tasks: tuple                  # tasks with any label in this dataset, in TASKS order
    objects: np.ndarray           # int (N,), -1 where not known

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, rows) -> 'DenseArrays':
        """Restrict the dataset to ``rows`` (indices or a slice)."""
        rows = np.arange(len(self))[rows] if isinstance(rows, slice) else np.asarray(rows)
        return DenseArrays(self.images[rows], self.segmentation[rows], self.depth[rows],
                           self.normals[rows], self.saliency[rows], self.class_names,
                           self.tasks, self.objects[rows])


def encode_depth(depth: np.ndarray) -> np.ndarray:
    """Encode metres as uint16 millimetres: not positive -> 0 (unknown), saturating at 65.535 m."""
    mm = np.clip(np.round(np.nan_to_num(depth) * 1000), 1, 65535)
    return np.where(depth > 0, mm, 0).astype(np.uint16)


def decode_depth(code: np.ndarray) -> np.ndarray:
    """Decode uint16 millimetres as float32 metres (0 stays 0 = unknown)."""
    return code.astype(np.float32) / np.float32(1000)


def encode_normals(normals: np.ndarray) -> np.ndarray:
    """Encode unit vectors as uint8 RGB round((n + 1) * 127.5); the zero vector (unknown) -> 0."""
    code = np.clip(np.round((normals + 1) * 127.5), 0, 255).astype(np.uint8)
    code[~np.any(normals != 0, axis=-1)] = 0
    return code


def decode_normals(code: np.ndarray) -> np.ndarray:
    """Decode uint8 RGB as float32 unit vectors (rgb / 127.5 - 1, re-normalised); 0, 0, 0 -> 0."""
    normals = code.astype(np.float32) / np.float32(127.5) - 1
    known = np.any(code != 0, axis=-1)
    normals /= np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-6)
    normals[~known] = 0
    return normals


def _scene_codes(sample) -> dict:
    """Return a rendered scene's labels in the file encoding (what the PNGs hold)."""
    labels = sample.labels
    return {'segmentation': labels['segmentation'],
            'depth': encode_depth(labels['depth']),
            'normals': encode_normals(labels['normals']),
            'saliency': labels['saliency'].astype(np.uint8) * 255}


def _decode(task: str, code: np.ndarray) -> np.ndarray:
    if task == 'depth':
        return decode_depth(code)
    if task == 'normals':
        return decode_normals(code)
    if task == 'saliency':
        return (code >= 128).astype(np.float32)
    return code


def _assemble(images: list, codes: list, shape: tuple, class_names, objects) -> DenseArrays:
    """Stack images and per-task label codes (None = no label) into ``DenseArrays``."""
    n, (height, width) = len(images), shape
    arrays = {'segmentation': np.full((n, height, width), 255, np.uint8),
              'depth': np.zeros((n, height, width), np.float32),
              'normals': np.zeros((n, height, width, 3), np.float32),
              'saliency': np.full((n, height, width), np.nan, np.float32)}
    present = set()
    for i, image_codes in enumerate(codes):
        for task, code in image_codes.items():
            if code is not None:
                arrays[task][i] = _decode(task, code)
                present.add(task)
    return DenseArrays(np.stack(images) if images else np.zeros((0, height, width, 3), np.uint8),
                       **arrays, class_names=tuple(class_names),
                       tasks=tuple(t for t in TASKS if t in present),
                       objects=np.asarray(objects, dtype=np.int64).reshape(n))


def _scenes(count: int, seed: int, size: int):
    """Yield (name, scene) i of a dataset: render_scene(seed * SCENE_SEED_STRIDE + i, size)."""
    if seed < 0:
        raise ValueError(f'seed must be >= 0, got {seed}')
    for i in range(count):
        yield f'{i:06d}', render_scene(seed * SCENE_SEED_STRIDE + i, size)


def generate_dataset_arrays(count: int, seed: int = 0, size: int = 64) -> DenseArrays:
    """Return the scenes ``write_dataset`` writes, in memory, quantised exactly as its files."""
    images, codes, objects = [], [], []
    for _, sample in _scenes(count, seed, size):
        images.append(sample.image)
        codes.append(_scene_codes(sample))
        objects.append(sample.objects)
    return _assemble(images, codes, (size, size), CLASS_NAMES, objects)


def describe_generated(count: int, seed: int, size: int) -> str:
    """Name generated scenes as checkpoints and reports record them (see ``from_description``)."""
    return f'generated:seed={seed},count={count},size={size}'


def describe_folder(path) -> str:
    """Name a dataset folder as checkpoints and reports record it."""
    return f'folder:{Path(path).resolve()}'


def from_description(description: str, size: int) -> DenseArrays:
    """Return the data a recorded description names: scenes generated again, or a folder.

    So that a later step (e.g. the single-task references) trains on exactly the data
    stage 1 did, without the user repeating it. ``size``: the folder's images are
    resized to it; generated scenes have theirs in the description.
    """
    kind, _, rest = description.partition(':')
    if kind == 'folder' and rest:
        return load_dataset(Path(rest), size)
    if kind == 'generated':
        try:
            fields = {key: int(value) for key, value in
                      (item.split('=') for item in rest.split(','))}
            return generate_dataset_arrays(fields['count'], fields['seed'], fields['size'])
        except (KeyError, ValueError):
            pass
    raise ValueError(f'cannot tell which data {description!r} names: expected '
                     f"'generated:seed=S,count=N,size=P' or 'folder:PATH'")


def write_dataset(out_dir, count: int, seed: int = 0, size: int = 64) -> Path:
    """Write ``count`` procedural scenes with all four tasks in the dataset format; return the dir.

    The same arguments write byte-identical files.
    """
    out_dir = Path(out_dir)
    for folder in ('images', *TASKS):
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
    entries = []
    for name, sample in _scenes(count, seed, size):
        Image.fromarray(sample.image).save(out_dir / 'images' / f'{name}.png')
        for task, code in _scene_codes(sample).items():
            Image.fromarray(code).save(out_dir / task / f'{name}.png')
        entries.append({'name': name, 'objects': sample.objects})
    meta = {'format': FORMAT, 'tasks': list(TASKS), 'class_names': list(CLASS_NAMES),
            'generator': {'module': 'adaptive_perception.multitask.scenes', 'seed': seed,
                          'size': size},
            'images': entries}
    (out_dir / 'dataset.json').write_text(json.dumps(meta, indent=1) + '\n')
    return out_dir


def _read_meta(path: Path) -> dict:
    """Parse and check dataset.json: format, tasks, class names and the image list."""
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f'{path}: cannot read the dataset description ({exc})') from exc
    if not isinstance(meta, dict) or meta.get('format') != FORMAT:
        found = meta.get('format') if isinstance(meta, dict) else None
        raise ValueError(f'{path}: unknown format {found!r}, expected {FORMAT!r}')
    tasks = meta.get('tasks')
    if not isinstance(tasks, list) or not set(tasks) <= set(TASKS):
        raise ValueError(f'{path}: "tasks" must be a list of {list(TASKS)}, got {tasks!r}')
    names = meta.get('class_names', [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or len(
            names) > 255:
        raise ValueError(f'{path}: "class_names" must be a list of at most 255 strings')
    if 'segmentation' in tasks and not names:
        raise ValueError(f'{path}: segmentation is listed but "class_names" is empty')
    images = meta.get('images')
    if not isinstance(images, list) or not all(
            isinstance(e, dict) and isinstance(e.get('name'), str) and e['name']
            and isinstance(e.get('objects', -1), int) for e in images):
        raise ValueError(f'{path}: "images" must be a list of {{"name": str, "objects": int}}')
    seen = [e['name'] for e in images]
    if len(set(seen)) != len(seen):
        raise ValueError(f'{path}: image names repeat')
    return meta


def _open(path: Path, modes=None, kind: str = '') -> np.ndarray:
    """Read ``path``: converted to RGB (``modes`` None) or checked to be one of ``modes``."""
    try:
        with Image.open(path) as image:
            mode = image.mode
            pixels = np.asarray(image.convert('RGB') if modes is None else image)
    except (OSError, SyntaxError, EOFError, ValueError, Image.DecompressionBombError) as exc:
        raise ValueError(f'{path}: unreadable image ({exc})') from exc
    if modes is not None and mode not in modes:
        raise ValueError(f'{path}: expected a {kind} PNG, got PIL mode {mode}')
    if pixels.dtype == bool:
        return pixels.astype(np.uint8) * 255
    if modes is DEPTH_MODES:
        if pixels.min(initial=0) < 0 or pixels.max(initial=0) > 65535:
            raise ValueError(f'{path}: depth values outside 0..65535 mm')
        return pixels.astype(np.uint16)
    return pixels


def _read_labels(root: Path, name: str, tasks, shape: tuple, class_count: int) -> dict:
    """Read one image's label codes by task, None where the task folder or file is missing."""
    codes = {}
    for task in tasks:
        path = root / task / f'{name}.png'
        if not path.is_file():
            codes[task] = None
            continue
        code = _open(path, LABEL_MODES[task], LABEL_KINDS[task])
        if code.shape[:2] != shape:
            raise ValueError(f'{path}: size {code.shape[1]}x{code.shape[0]} differs from its '
                             f'image, {shape[1]}x{shape[0]}')
        if task == 'segmentation':
            ids = np.unique(code)
            bad = ids[(ids >= class_count) & (ids != 255)]
            if bad.size:
                raise ValueError(f'{path}: class id {bad[0]} but only {class_count} class '
                                 'names (255 = ignore)')
        codes[task] = code
    return codes


def _resize(task: str, pixels: np.ndarray, size: int) -> np.ndarray:
    """Resize an image (area average) or a label code (nearest: no blended ids or depths)."""
    interpolation = cv2.INTER_AREA if task == 'images' else cv2.INTER_NEAREST_EXACT
    return cv2.resize(pixels, (size, size), interpolation=interpolation)


def load_dataset(path, size: int | None = None) -> DenseArrays:
    """Read a dataset folder (format above) into ``DenseArrays``.

    ``size`` resizes every image and label to size x size (no crop), so data of any
    size trains at the model's input size; normals are re-normalised after resizing.
    With None every image must already have the same size.
    """
    root = Path(path)
    meta = _read_meta(root / 'dataset.json')
    if not meta['images']:
        raise ValueError(f'{root / "dataset.json"}: lists no images')
    tasks, class_names = meta['tasks'], tuple(meta.get('class_names', []))
    images, codes, shape = [], [], None
    for entry in meta['images']:
        name = entry['name']
        files = [root / 'images' / f'{name}{suffix}' for suffix in IMAGE_SUFFIXES]
        file = next((f for f in files if f.is_file()), None)
        if file is None:
            raise ValueError(f'{files[0]}: image {name!r} is listed in dataset.json but missing '
                             f'(looked for {", ".join(s for s in IMAGE_SUFFIXES)})')
        image = _open(file)
        labels = _read_labels(root, name, tasks, image.shape[:2], len(class_names))
        if size is not None:
            image = _resize('images', image, size)
            labels = {t: None if c is None else _resize(t, c, size) for t, c in labels.items()}
        elif shape is not None and image.shape[:2] != shape:
            raise ValueError(f'{file}: size {image.shape[1]}x{image.shape[0]} differs from the '
                             f'first image, {shape[1]}x{shape[0]}; pass size= to resize all')
        shape = image.shape[:2]
        images.append(image)
        codes.append(labels)
    objects = [entry.get('objects', -1) for entry in meta['images']]
    return _assemble(images, codes, shape, class_names, objects)
