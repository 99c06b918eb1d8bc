"""AdaMTL's data without ROS: the procedural scenes, the dataset folder format, the metrics.

Geometry is checked against planes and spheres computed here from the scene's camera
and objects (not the renderer's ray caster); metrics against hand-computed values and
a brute-force saliency F-measure.
"""

import json
import math
import shutil

import numpy as np
import pytest
import scipy.ndimage as ndimage
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from adaptive_perception.multitask import scenes
from adaptive_perception.multitask.dataset import (
    DenseArrays,
    generate_dataset_arrays,
    load_dataset,
    write_dataset,
)
from adaptive_perception.multitask.metrics import (
    LOWER_IS_BETTER,
    TaskScores,
    multitask_delta,
)
from adaptive_perception.multitask.scenes import (
    CLASS_NAMES,
    OBJECT_CLASSES,
    TASKS,
    render_scene,
    sample_scene,
)

SEEDS = range(40)


@pytest.fixture(scope='module')
def rendered():
    return {seed: render_scene(seed, 48) for seed in SEEDS}


def camera_rays(camera, size):
    """Pinhole rays through pixel centres (z = 1), from the field of view alone."""
    f = size / 2 / math.tan(camera.fov / 2)
    c = (np.arange(size) + 0.5 - size / 2) / f
    u, v = np.meshgrid(c, c)
    return np.stack([u, v, np.ones_like(u)], -1)


def to_camera(camera, point):
    """Level frame (y down along gravity, z forward along the horizon) -> camera frame."""
    c, s = math.cos(camera.pitch), math.sin(camera.pitch)
    x, y, z = point
    return np.array([x, c * y - s * z, s * y + c * z])


# --- scenes ---------------------------------------------------------------------------

def test_class_names_and_tasks_are_the_contract():
    assert CLASS_NAMES[:6] == ('background', 'ground', 'sphere', 'box', 'cylinder', 'cone')
    assert TASKS == ('segmentation', 'depth', 'normals', 'saliency')


def test_render_is_deterministic_by_seed_and_seeds_differ():
    a, b, c = render_scene(7), render_scene(7), render_scene(8)
    assert np.array_equal(a.image, b.image) and a.objects == b.objects
    for task in TASKS:
        assert np.array_equal(a.labels[task], b.labels[task])
    assert not np.array_equal(a.image, c.image)
    assert not np.array_equal(a.labels['depth'], c.labels['depth'])


@pytest.mark.parametrize('size', [16, 33, 64])
def test_label_shapes_dtypes_and_ranges(size):
    sample = render_scene(3, size)
    assert sample.image.shape == (size, size, 3) and sample.image.dtype == np.uint8
    assert set(sample.labels) == set(TASKS)
    seg, depth = sample.labels['segmentation'], sample.labels['depth']
    normals, saliency = sample.labels['normals'], sample.labels['saliency']
    assert seg.shape == depth.shape == saliency.shape == (size, size)
    assert normals.shape == (size, size, 3)
    assert seg.dtype == saliency.dtype == np.uint8
    assert depth.dtype == normals.dtype == np.float32
    assert seg.max() < len(CLASS_NAMES) and set(np.unique(saliency)) <= {0, 1}
    assert np.isfinite(depth).all() and depth.min() > 0 and depth.max() <= 25
    assert isinstance(sample.objects, int) and sample.objects >= 1


def test_size_below_the_minimum_is_refused():
    with pytest.raises(ValueError, match='size'):
        render_scene(0, 8)


def test_normals_are_unit_and_face_the_camera(rendered):
    for seed, sample in rendered.items():
        normals = sample.labels['normals']
        assert np.allclose(np.linalg.norm(normals, axis=-1), 1, atol=1e-5)
        facing = (normals * camera_rays(sample_scene(seed).camera, 48)).sum(-1)
        assert facing.max() < 1e-4, seed


def test_ground_and_wall_match_their_analytic_planes(rendered):
    for seed, sample in rendered.items():
        scene = sample_scene(seed)
        camera = scene.camera
        rays = camera_rays(camera, 48)
        seg, depth, normals = (sample.labels[t] for t in ('segmentation', 'depth', 'normals'))
        # Ground: the plane y = height of the level frame, its normal pointing up (-y).
        # Clutter lies flat on it. A plane n.p = -d gives depth = -d / (n . ray).
        for classes, normal, distance in (
                ((scenes.GROUND, scenes.CLUTTER), (0, -1, 0), camera.height),
                ((scenes.BACKGROUND,), (0, 0, -1), scene.wall_distance)):
            n = to_camera(camera, normal)
            pixels = np.isin(seg, classes)
            assert pixels.any(), seed
            assert np.allclose(normals[pixels], n, atol=1e-5)
            expected = -distance / (rays[pixels] @ n)
            assert np.allclose(depth[pixels], expected, rtol=1e-5)
        if scene.camera.pitch > 0.1:
            n = to_camera(camera, (0, -1, 0))
            assert n[2] < 0 and n[1] < 0    # pitched down: the ground faces up and back


def test_sphere_pixels_lie_on_a_placed_sphere_with_the_radial_normal(rendered):
    checked = 0
    for seed, sample in rendered.items():
        scene = sample_scene(seed)
        camera = scene.camera
        pixels = sample.labels['segmentation'] == scenes.SPHERE
        points = sample.labels['depth'][pixels, None] * camera_rays(camera, 48)[pixels]
        spheres = [(to_camera(camera, (o.x, camera.height - o.radius, o.z)), o.radius)
                   for o in scene.objects if o.kind == scenes.SPHERE]
        for point, normal in zip(points, sample.labels['normals'][pixels], strict=True):
            gap, centre, radius = min(
                (abs(np.linalg.norm(point - c) - r), c, r) for c, r in spheres)
            assert gap < 1e-4
            assert np.allclose(normal, (point - centre) / radius, atol=1e-4)
            checked += 1
    assert checked > 100


def test_every_surface_point_is_on_or_above_the_ground(rendered):
    for seed, sample in rendered.items():
        camera = sample_scene(seed).camera
        points = sample.labels['depth'][..., None] * camera_rays(camera, 48)
        up = -to_camera(camera, (0, -1, 0))     # camera-frame direction of gravity
        height_below_camera = points @ up
        assert height_below_camera.max() <= camera.height + 1e-5


def test_saliency_marks_bright_saturated_objects_only(rendered):
    salient_saturation, other_saturation = [], []
    for sample in rendered.values():
        salient = sample.labels['saliency'] == 1
        assert salient.any()
        assert np.isin(sample.labels['segmentation'][salient], OBJECT_CLASSES).all()
        pixels = sample.image.astype(float)
        brightest = pixels.max(-1)
        saturation = (brightest - pixels.min(-1)) / np.maximum(brightest, 1)
        salient_saturation.append(saturation[salient].mean())
        other_saturation.append(saturation[~salient].mean())
    # Learnable from appearance: targets are clearly more saturated than the rest.
    assert min(salient_saturation) > max(other_saturation)


def test_complexity_varies_object_count_fragments_and_texture():
    counts = [len(sample_scene(seed).objects) for seed in range(300)]
    assert min(counts) == 1 and max(counts) >= 13
    simple = [s for s in range(300) if counts[s] <= 3][:15]
    busy = [s for s in range(300) if counts[s] >= 11][:15]
    assert len(simple) == len(busy) == 15

    def fragments(sample):
        seg = sample.labels['segmentation']
        return sum(ndimage.label(seg == c)[1] for c in OBJECT_CLASSES)

    def ground_texture(sample):
        grey = sample.image.astype(float).mean(-1)
        ground = sample.labels['segmentation'] == scenes.GROUND
        return np.abs(ndimage.laplace(grey))[ground].mean()

    simple_samples = [render_scene(s) for s in simple]
    busy_samples = [render_scene(s) for s in busy]
    assert max(s.objects for s in simple_samples) <= 3
    assert np.mean([fragments(s) for s in simple_samples]) * 2 < np.mean(
        [fragments(s) for s in busy_samples])
    assert np.mean([ground_texture(s) for s in simple_samples]) * 1.5 < np.mean(
        [ground_texture(s) for s in busy_samples])


def test_every_class_occurs(rendered):
    seen = set()
    for sample in rendered.values():
        seen |= set(np.unique(sample.labels['segmentation']).tolist())
    assert seen == set(range(len(CLASS_NAMES)))


# --- dataset format ---------------------------------------------------------------------

def assert_arrays_equal(a: DenseArrays, b: DenseArrays):
    for field in ('images', 'segmentation', 'depth', 'normals', 'saliency', 'objects'):
        assert np.array_equal(getattr(a, field), getattr(b, field), equal_nan=True), field
    assert a.class_names == b.class_names and a.tasks == b.tasks and len(a) == len(b)


def test_written_dataset_loads_exactly_as_generated_in_memory(tmp_path):
    root = write_dataset(tmp_path / 'a', 5, seed=2, size=32)
    assert root == tmp_path / 'a'
    loaded, generated = load_dataset(root), generate_dataset_arrays(5, seed=2, size=32)
    assert_arrays_equal(loaded, generated)
    assert loaded.tasks == TASKS and loaded.class_names == CLASS_NAMES
    assert loaded.images.shape == (5, 32, 32, 3) and loaded.normals.shape == (5, 32, 32, 3)
    assert loaded.depth.dtype == loaded.normals.dtype == loaded.saliency.dtype == np.float32
    meta = json.loads((root / 'dataset.json').read_text())
    assert meta['format'] == 'adaptive_perception.dense/1'
    assert [e['name'] for e in meta['images']] == [f'{i:06d}' for i in range(5)]
    assert list(loaded.objects) == [e['objects'] for e in meta['images']]
    again = write_dataset(tmp_path / 'b', 5, seed=2, size=32)
    for path in root.rglob('*.png'):
        assert path.read_bytes() == (again / path.relative_to(root)).read_bytes()
    other = generate_dataset_arrays(5, seed=3, size=32)
    assert not np.array_equal(other.images, generated.images)


def test_generated_arrays_are_the_scenes_up_to_file_quantisation():
    data = generate_dataset_arrays(3, seed=1, size=32)
    for i in range(3):
        sample = render_scene(1_000_003 + i, 32)
        assert np.array_equal(data.images[i], sample.image)
        assert np.array_equal(data.segmentation[i], sample.labels['segmentation'])
        assert np.array_equal(data.saliency[i], sample.labels['saliency'])
        assert np.abs(data.depth[i] - sample.labels['depth']).max() <= 0.0005 + 1e-6
        cosine = (data.normals[i] * sample.labels['normals']).sum(-1)
        assert np.degrees(np.arccos(np.clip(cosine, -1, 1))).max() < 0.7
        assert np.allclose(np.linalg.norm(data.normals[i], axis=-1), 1, atol=1e-5)
        assert data.objects[i] == sample.objects


@pytest.fixture
def small(tmp_path):
    return write_dataset(tmp_path / 'data', 4, seed=0, size=16)


def test_missing_task_folder_and_label_file_load_as_unknown(small):
    full = load_dataset(small)
    shutil.rmtree(small / 'normals')
    (small / 'segmentation' / '000001.png').unlink()
    (small / 'saliency' / '000002.png').unlink()
    meta = json.loads((small / 'dataset.json').read_text())
    del meta['images'][3]['objects']
    (small / 'dataset.json').write_text(json.dumps(meta))
    data = load_dataset(small)
    assert data.tasks == ('segmentation', 'depth', 'saliency')
    assert not data.normals.any()
    assert (data.segmentation[1] == 255).all()
    assert np.array_equal(data.segmentation[[0, 2, 3]], full.segmentation[[0, 2, 3]])
    assert np.isnan(data.saliency[2]).all() and not np.isnan(data.saliency[[0, 1, 3]]).any()
    assert np.array_equal(data.depth, full.depth)
    assert list(data.objects[:3]) == list(full.objects[:3]) and data.objects[3] == -1


def test_a_task_not_listed_is_not_read(small):
    meta = json.loads((small / 'dataset.json').read_text())
    meta['tasks'] = ['depth']
    del meta['class_names']
    (small / 'dataset.json').write_text(json.dumps(meta))
    data = load_dataset(small)
    assert data.tasks == ('depth',) and data.class_names == ()
    assert (data.segmentation == 255).all() and np.isnan(data.saliency).all()


def test_jpeg_images_and_palette_segmentation_are_accepted(small):
    full = load_dataset(small)
    image = small / 'images' / '000000.png'
    Image.open(image).save(image.with_suffix('.jpg'), quality=95)
    image.unlink()
    seg = small / 'segmentation' / '000000.png'
    Image.open(seg).convert('P').save(seg)  # an 'L' image converts with indices = ids
    data = load_dataset(small)
    assert np.array_equal(data.segmentation, full.segmentation)
    assert np.abs(data.images[0].astype(int) - full.images[0]).mean() < 12


def save_bad_size(root):
    Image.fromarray(np.full((12, 16), 1000, np.uint16)).save(root / 'depth' / '000002.png')
    return 'depth/000002.png', 'size'


def save_bad_class(root):
    seg = np.zeros((16, 16), np.uint8)
    seg[3, 4] = len(CLASS_NAMES)
    Image.fromarray(seg).save(root / 'segmentation' / '000001.png')
    return 'segmentation/000001.png', f'class id {len(CLASS_NAMES)}'


def remove_image(root):
    (root / 'images' / '000003.png').unlink()
    return 'images/000003.png', 'missing'


def bad_format(root):
    meta = json.loads((root / 'dataset.json').read_text())
    meta['format'] = 'adaptive_perception.dense/2'
    (root / 'dataset.json').write_text(json.dumps(meta))
    return 'dataset.json', 'format'


def corrupt_png(root):
    (root / 'saliency' / '000000.png').write_bytes(b'\x89PNG\r\n\x1a\n not really')
    return 'saliency/000000.png', 'unreadable'


def truncated_png(root):
    path = root / 'images' / '000001.png'
    path.write_bytes(path.read_bytes()[:60])
    return 'images/000001.png', 'unreadable'


def depth_in_8_bits(root):
    Image.fromarray(np.full((16, 16), 3, np.uint8)).save(root / 'depth' / '000000.png')
    return 'depth/000000.png', '16-bit'


def not_json(root):
    (root / 'dataset.json').write_text('{"format": ')
    return 'dataset.json', 'cannot read'


@pytest.mark.parametrize('break_it', [save_bad_size, save_bad_class, remove_image, bad_format,
                                      corrupt_png, truncated_png, depth_in_8_bits, not_json])
def test_each_bad_dataset_raises_a_value_error_naming_the_file(small, break_it):
    file, problem = break_it(small)
    with pytest.raises(ValueError) as error:
        load_dataset(small)
    assert str(small / file) in str(error.value) and problem in str(error.value)


def test_load_with_size_resizes_everything_and_keeps_normals_unit(small):
    shutil.rmtree(small / 'saliency')
    (small / 'normals' / '000001.png').unlink()
    full = load_dataset(small)
    data = load_dataset(small, size=24)
    assert data.images.shape == (4, 24, 24, 3) and data.depth.shape == (4, 24, 24)
    assert data.segmentation.shape == data.saliency.shape == (4, 24, 24)
    assert data.normals.shape == (4, 24, 24, 3)
    known = np.any(data.normals != 0, axis=-1)
    assert not known[1].any() and known[[0, 2, 3]].all()
    assert np.allclose(np.linalg.norm(data.normals[known], axis=-1), 1, atol=1e-5)
    for i in range(4):      # nearest: no new ids or depths appear
        assert set(np.unique(data.segmentation[i])) <= set(np.unique(full.segmentation[i]))
        assert set(np.unique(data.depth[i])) <= set(np.unique(full.depth[i]))
    assert np.isnan(data.saliency).all() and data.tasks == ('segmentation', 'depth', 'normals')


def test_images_of_different_sizes_need_a_size(small):
    image = small / 'images' / '000002.png'
    Image.open(image).resize((20, 20)).save(image)
    for task in TASKS:
        (small / task / '000002.png').unlink()
    with pytest.raises(ValueError, match='pass size='):
        load_dataset(small)
    data = load_dataset(small, size=16)
    assert data.images.shape == (4, 16, 16, 3) and (data.segmentation[2] == 255).all()


# --- metrics ----------------------------------------------------------------------------

def perfect_batch(seed=0, size=16):
    data = generate_dataset_arrays(2, seed=seed, size=size)
    return data, {'segmentation': data.segmentation.astype(np.int64), 'depth': data.depth,
                  'normals': data.normals, 'saliency': data.saliency}


def test_perfect_predictions_score_perfectly():
    data, predictions = perfect_batch()
    scores = TaskScores(len(CLASS_NAMES))
    for task in TASKS:
        scores.add(task, predictions[task], getattr(data, task))
    result = scores.result()
    assert result['segmentation'] == 1 and result['depth'] == 0 and result['saliency'] == 1
    assert result['normals'] == pytest.approx(0, abs=0.05)


def test_known_confusion_gives_known_miou():
    scores = TaskScores(3)      # class 2 appears nowhere and is left out of the mean
    scores.add('segmentation', np.array([[[0, 1, 1, 1]]]), np.array([[[0, 0, 1, 1]]], np.uint8))
    assert scores.result() == {'segmentation': pytest.approx((1 / 2 + 2 / 3) / 2)}


def test_depth_rmse_and_normal_angles_are_hand_computed():
    scores = TaskScores(2)
    scores.add('depth', np.array([[[4.0, 1.0, 9.0]]]), np.array([[[1.0, 5.0, 0.0]]]))
    normals_true = np.array([[[[0, 0, -1], [0, 0, -1], [0, 0, 0]]]], np.float32)
    normals_pred = np.array([[[[3, 0, 0], [0, 0, -2], [1, 0, 0]]]], np.float32)
    scores.add('normals', normals_pred, normals_true)
    result = scores.result()
    assert result['depth'] == pytest.approx(math.sqrt((9 + 16) / 2))
    assert result['normals'] == pytest.approx((90 + 0) / 2)
    assert set(result) == {'depth', 'normals'}


def test_unknown_labels_are_ignored():
    scores = TaskScores(2)
    scores.add('segmentation', np.array([[[1, 0, 1]]]), np.array([[[1, 255, 255]]], np.uint8))
    scores.add('depth', np.array([[[2.0, 100.0]]]), np.array([[[2.0, 0.0]]]))
    scores.add('normals', np.array([[[[0, 0, -1.0], [1, 0, 0]]]]),
               np.array([[[[0, 0, -1.0], [0, 0, 0]]]]))
    scores.add('saliency', np.array([[[0.9, 0.95, 0.0]]]), np.array([[[1.0, np.nan, 0.0]]]))
    assert scores.result() == {'segmentation': 1.0, 'depth': 0.0, 'normals': 0.0,
                               'saliency': 1.0}
    only_unknown = TaskScores(2)
    only_unknown.add('depth', np.ones((1, 2, 2)), np.zeros((1, 2, 2)))
    only_unknown.add('segmentation', np.ones((1, 2, 2), int), np.full((1, 2, 2), 255, np.uint8))
    assert only_unknown.result() == {}


def brute_force_max_f(prediction, target):
    """MaxF as ASTMT computes it: one threshold at a time, pred >= threshold."""
    known = ~np.isnan(target)
    best = 0.0
    for threshold in np.arange(1, 100) / 100:
        predicted = prediction[known] >= threshold
        truth = target[known] == 1
        tp = np.sum(predicted & truth)
        precision = tp / predicted.sum() if predicted.sum() else 0.0
        recall = tp / truth.sum() if truth.sum() else 0.0
        if precision + recall:
            best = max(best, 1.3 * precision * recall / (0.3 * precision + recall))
    return best


def test_max_f_of_a_hand_computed_case():
    scores = TaskScores(2)
    scores.add('saliency', np.array([[[0.9, 0.4, 0.6, 0.1]]]), np.array([[[1.0, 1, 0, 0]]]))
    # Thresholds in (0.6, 0.9]: precision 1, recall 1/2, F = 1.3 * 0.5 / (0.3 + 0.5).
    assert scores.result()['saliency'] == pytest.approx(0.8125)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2 ** 32 - 1), st.integers(1, 5))
def test_adding_in_batches_equals_adding_at_once(seed, split):
    rng = np.random.default_rng(seed)
    shape = (6, 5, 4)
    target_seg = rng.integers(0, 4, shape).astype(np.uint8)
    target_seg[rng.random(shape) < 0.2] = 255
    target_depth = np.where(rng.random(shape) < 0.2, 0, rng.uniform(0.5, 10, shape))
    target_normals = rng.normal(size=shape + (3,))
    target_normals[rng.random(shape) < 0.2] = 0
    target_sal = (rng.random(shape) < 0.3).astype(float)
    target_sal[rng.random(shape) < 0.2] = np.nan
    batch = {
        'segmentation': (rng.integers(0, 4, shape), target_seg),
        'depth': (rng.uniform(0.5, 10, shape), target_depth),
        'normals': (rng.normal(size=shape + (3,)), target_normals),
        'saliency': (np.round(rng.random(shape), 3), target_sal),
    }
    whole, parts = TaskScores(4), TaskScores(4)
    for task, (prediction, target) in batch.items():
        whole.add(task, prediction, target)
        parts.add(task, prediction[:split], target[:split])
        parts.add(task, prediction[split:], target[split:])
    a, b = whole.result(), parts.result()
    assert a['segmentation'] == b['segmentation'] and a['saliency'] == b['saliency']
    assert a['depth'] == pytest.approx(b['depth']) and a['normals'] == pytest.approx(
        b['normals'])
    assert a['saliency'] == pytest.approx(brute_force_max_f(*batch['saliency']))


def test_multitask_delta_signs():
    reference = {'segmentation': 0.5, 'depth': 1.0, 'normals': 20.0, 'saliency': 0.8}
    assert multitask_delta(reference, reference) == 0
    assert multitask_delta({'depth': 0.9}, reference) == pytest.approx(10)   # lower RMSE
    assert multitask_delta({'depth': 1.1}, reference) == pytest.approx(-10)
    assert multitask_delta({'segmentation': 0.55}, reference) == pytest.approx(10)
    better = {'segmentation': 0.55, 'depth': 0.9, 'normals': 22.0, 'saliency': 0.8}
    assert multitask_delta(better, reference) == pytest.approx((10 + 10 - 10 + 0) / 4)
    assert set(LOWER_IS_BETTER) == set(TASKS)
    with pytest.raises(ValueError):
        multitask_delta({'edges': 1.0}, reference)
    with pytest.raises(ValueError):
        multitask_delta({'depth': 1.0}, {'segmentation': 0.5})
