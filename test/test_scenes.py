"""The context-scenes generator: a valid, deterministic COCO dataset with planted contexts."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from adaptive_perception.detection import scenes

NAMES = ['cup', 'plate', 'bottle', 'pan', 'car', 'traffic_light', 'stop_sign', 'traffic_cone',
         'cow', 'sheep', 'tractor', 'hay_bale', 'laptop', 'monitor', 'chair', 'book',
         'person', 'bag']


def files_of(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob('*')) if p.is_file()}


def test_categories_are_stable_and_match_the_planted_contexts():
    cats = scenes.categories()
    assert [c['name'] for c in cats] == NAMES  # trained models rely on these ids
    assert [c['id'] for c in cats] == list(range(1, 19))
    assert cats == scenes.categories()
    for c in cats:
        context = c['supercategory']
        assert c['name'] in (scenes.COMMON if context == 'common' else scenes.CONTEXTS[context])
    assert len(scenes.CONTEXTS) == 4 and all(len(v) == 4 for v in scenes.CONTEXTS.values())
    assert scenes.COMMON == ['person', 'bag']


def test_same_seed_writes_byte_identical_files(tmp_path):
    a = files_of(scenes.write_dataset(tmp_path / 'a', 12, seed=3).parent)
    b = files_of(scenes.write_dataset(tmp_path / 'b', 12, seed=3).parent)
    c = files_of(scenes.write_dataset(tmp_path / 'c', 12, seed=4).parent)
    assert len(a) == 13 and a == b
    first = Path('images/000000.png')
    assert a[first] != c[first]


def test_dataset_loads_with_pycocotools_and_boxes_lie_inside(tmp_path):
    path = scenes.write_dataset(tmp_path, 40, seed=1, image_size=96)
    coco = COCO(str(path))
    assert sorted(coco.getCatIds()) == list(range(1, 19))
    assert len(coco.getImgIds()) == 40
    info = coco.dataset['info']
    assert (info['generator'], info['seed'], info['version']) == (
        'adaptive_perception.detection.scenes', 1, scenes.VERSION)
    for image in coco.loadImgs(coco.getImgIds()):
        pixels = Image.open(tmp_path / 'images' / image['file_name'])
        assert pixels.mode == 'RGB' and pixels.size == (image['width'], image['height']) == (
            96, 96)
        assert image['context'] in scenes.CONTEXTS or image['context'].startswith('mixed:')
    anns = coco.loadAnns(coco.getAnnIds())
    assert len({a['id'] for a in anns}) == len(anns) >= 80
    for a in anns:
        x, y, w, h = a['bbox']
        assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= 96 and y + h <= 96
        assert 0 < a['area'] <= w * h and a['iscrowd'] == 0


def test_objects_belong_to_the_planted_context_and_mixed_scenes_exist():
    generator = scenes.SceneGenerator(seed=0)
    context_of = {c['id']: c['supercategory'] for c in scenes.categories()}
    labels = []
    for _ in range(200):
        image, objects, label = generator.sample()
        assert image.shape == (128, 128, 3) and image.dtype == np.uint8
        assert 1 <= len(objects) <= 7
        planted = label.removeprefix('mixed:').split('+')
        assert all(context_of[o['category_id']] in [*planted, 'common'] for o in objects)
        labels.append(label)
    mixed = [label for label in labels if label.startswith('mixed:')]
    assert 0.05 < len(mixed) / len(labels) < 0.3
    a, b = mixed[0].removeprefix('mixed:').split('+')
    assert a != b and {a, b} <= set(scenes.CONTEXTS)
    assert set(labels) >= set(scenes.CONTEXTS)


def test_objects_occlude_each_other():
    generator = scenes.SceneGenerator(seed=5)

    def overlap(p, q):
        return (p[0] < q[0] + q[2] and q[0] < p[0] + p[2]
                and p[1] < q[1] + q[3] and q[1] < p[1] + p[3])

    overlapping = 0
    for _ in range(50):
        boxes = [o['bbox'] for o in generator.sample()[1]]
        overlapping += any(overlap(p, q) for i, p in enumerate(boxes) for q in boxes[i + 1:])
    assert overlapping >= 10


def test_run_generate_prints_a_summary(tmp_path, capsys):
    path = scenes.run_generate(tmp_path, 5, seed=2, image_size=64)
    coco = json.loads(path.read_text())
    out = capsys.readouterr().out
    assert f'5 images, {len(coco["annotations"])} objects, 18 classes' in out
    assert str(path) in out


@pytest.mark.parametrize('size', [32, 48, 64])
def test_small_images_render_without_errors(size):
    """Outlined shapes too small for a hole are drawn solid instead of failing."""
    generator = scenes.SceneGenerator(3, size)
    for _ in range(200):
        image, objects, _ = generator.sample()
        assert image.shape == (size, size, 3)
        assert all(0 <= o['bbox'][0] and o['bbox'][0] + o['bbox'][2] <= size for o in objects)
