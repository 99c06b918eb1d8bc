"""FastestDet, the COCO-pretrained family: module, shipped graphs, engine and factory.

The project's module, its shipped graphs (models/coco_fastestdet), the engine and
the family factory, on real photographs.

The checks against upstream and the quality floors need the vendored weights and
the coco128 photos (present in CI); the shipped-folder and factory checks do not.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from adaptive_perception.detection.evaluate import load_rgb
from adaptive_perception.detection.families import (
    default_modes,
    load_engine,
    model_family,
    parse_engine_mode,
)
from adaptive_perception.detection.fastestdet.engine import FastestDetEngine, decode
from adaptive_perception.detection.fastestdet.manifest import SizeMode, parse_size_mode

REPO = Path(__file__).resolve().parents[1]
MODEL_DIR = REPO / 'models' / 'coco_fastestdet'
SHARED = REPO.parent / 'shared'
VENDOR = SHARED / 'vendor' / 'fastestdet'
COCO128 = SHARED / 'data' / 'coco128'
needs_shared = pytest.mark.skipif(
    not (VENDOR / 'fastestdet_coco80.pth').is_file() or not COCO128.is_dir(),
    reason='../shared (vendored FastestDet weights and coco128 photos) is not here')
PHOTOS = ['000000000009.jpg', '000000000025.jpg', '000000000036.jpg', '000000000049.jpg']
# mAP@[.5:.95] on the 128 photos, measured with `eval adacon` (models/coco_fastestdet/
# README.md), minus a margin: 352 0.201, 288 0.179, 224 0.133, 160 0.085.
MAP_FLOOR = {'static@352': 0.19, 'static@288': 0.17, 'static@224': 0.125, 'static@160': 0.078}


def relative_error(reference: np.ndarray, value: np.ndarray) -> float:
    return float(np.abs(value - reference).max() / np.abs(reference).max())


@pytest.fixture(scope='module')
def upstream_dir(tmp_path_factory):
    """Upstream's own 352 export as a one-graph model folder (same manifest otherwise)."""
    folder = tmp_path_factory.mktemp('upstream')
    shutil.copy(VENDOR / 'fastestdet_352.onnx', folder / 'fastestdet_352.onnx')
    manifest = json.loads((MODEL_DIR / 'manifest.json').read_text())
    manifest['graphs'] = [g for g in manifest['graphs'] if g['file'] == 'fastestdet_352.onnx']
    (folder / 'manifest.json').write_text(json.dumps(manifest))
    return folder


@pytest.fixture(scope='module')
def torch_model():
    from adaptive_perception.detection.fastestdet.model import load_fastestdet
    return load_fastestdet(VENDOR / 'fastestdet_coco80.pth')


@needs_shared
def test_module_loads_the_vendored_weights_and_reproduces_upstreams_onnx(torch_model,
                                                                        upstream_dir):
    import torch
    engine = FastestDetEngine(upstream_dir)
    name = engine._sessions['352:fp32'].get_inputs()[0].name
    inputs = [np.random.default_rng(0).random((1, 3, 352, 352), dtype=np.float32),
              *[engine.preprocess(load_rgb(COCO128 / 'images' / p), 352) for p in PHOTOS]]
    for image in inputs:
        expected = engine._sessions['352:fp32'].run(None, {name: image})[0]
        with torch.no_grad():
            got = torch_model(torch.from_numpy(image)).numpy()
        assert got.shape == expected.shape == (1, 85, 22, 22)
        assert relative_error(expected, got) < 1e-3
        boxes_e, scores_e, classes_e = decode(expected[0], (480, 640), 0.3)
        boxes_g, scores_g, classes_g = decode(got[0], (480, 640), 0.3)
        assert np.array_equal(classes_e, classes_g)
        np.testing.assert_allclose(boxes_g, boxes_e, rtol=1e-3, atol=1e-3 * 640)
        np.testing.assert_allclose(scores_g, scores_e, rtol=1e-3)


@needs_shared
def test_shipped_graphs_compute_what_the_pytorch_module_computes(torch_model):
    import torch
    engine = FastestDetEngine(MODEL_DIR)
    rgb = load_rgb(COCO128 / 'images' / PHOTOS[0])
    for graph in engine.manifest.graphs:
        image = engine.preprocess(rgb, graph.size)
        with torch.no_grad():
            expected = torch_model(torch.from_numpy(image)).numpy()[0]
        got = engine.predict(rgb, engine.parse_mode(f'static@{graph.size}'))
        assert got.shape == (85, graph.size // 16, graph.size // 16)
        assert relative_error(expected, got) < 1e-4, graph.file


@needs_shared
def test_shipped_352_detects_what_upstreams_export_detects(upstream_dir):
    ours, theirs = FastestDetEngine(MODEL_DIR), FastestDetEngine(upstream_dir)
    mode = ours.parse_mode('static@352')
    for photo in PHOTOS:
        rgb = load_rgb(COCO128 / 'images' / photo)
        a, b = ours.detect(rgb, mode).detections, theirs.detect(rgb, mode).detections
        assert a and [d.class_name for d in a] == [d.class_name for d in b]
        np.testing.assert_allclose([[d.x_min, d.y_min, d.x_max, d.y_max] for d in a],
                                   [[d.x_min, d.y_min, d.x_max, d.y_max] for d in b],
                                   rtol=1e-3, atol=0.5)


@needs_shared
def test_quality_floor_per_level_on_coco128_and_upstream_scores_the_same(upstream_dir):
    from adaptive_perception.detection.fastestdet.evaluate import evaluate_fastestdet
    args = (COCO128 / 'instances.json', COCO128 / 'images')
    report = evaluate_fastestdet(MODEL_DIR, *args, threads=1)
    scores = {mode: row['map'] for mode, row in report['modes'].items()}
    assert set(scores) == set(MAP_FLOOR)
    for mode, floor in MAP_FLOOR.items():
        assert scores[mode] >= floor, (mode, scores[mode])
    upstream = evaluate_fastestdet(upstream_dir, *args, threads=1)['modes']['static@352']
    assert abs(upstream['map'] - scores['static@352']) <= 0.005


@needs_shared
def test_int8_graph_is_a_level_of_its_own_and_keeps_most_of_the_accuracy(tmp_path):
    from adaptive_perception.detection.fastestdet.evaluate import evaluate_fastestdet
    from adaptive_perception.detection.fastestdet.quantize import quantize_fastestdet
    folder = tmp_path / 'model'
    shutil.copytree(MODEL_DIR, folder, ignore=shutil.ignore_patterns('*.md'))
    manifest = quantize_fastestdet(folder, COCO128 / 'images', count=8, sizes=[224])
    assert [(g.size, g.precision) for g in manifest.graphs if g.precision == 'int8'] == \
        [(224, 'int8')]
    assert len(manifest.source['int8']['calibration']) == 8
    engine = FastestDetEngine(folder)
    assert engine.parse_mode('static@224/int8') == SizeMode(224, 'int8')
    with pytest.raises(ValueError, match='not available at 352'):
        engine.parse_mode('static@352/int8')
    report = evaluate_fastestdet(folder, COCO128 / 'instances.json', COCO128 / 'images',
                                 ['static@224', 'static@224/int8'], threads=1, limit=40)
    fp32, int8 = (report['modes'][m]['map'] for m in ('static@224', 'static@224/int8'))
    assert int8 >= 0.8 * fp32 > 0
    # Without --modes the bench measures every graph of the folder, INT8 included.
    assert manifest.modes == ['static@352', 'static@288', 'static@224', 'static@224/int8',
                              'static@160']
    from adaptive_perception.cli import main
    assert main(['bench', 'detector', '--model-dir', str(folder), '--annotations',
                 str(COCO128 / 'instances.json'), '--images', str(COCO128 / 'images'),
                 '--limit', '4', '--frames', '3', '--out', str(tmp_path / 'bench')]) == 0
    bench = json.loads((tmp_path / 'bench' / 'bench_detector.json').read_text())
    assert list(bench['modes']) == manifest.modes


def test_shipped_folder_has_the_coco_classes_and_four_small_graphs():
    manifest = json.loads((MODEL_DIR / 'manifest.json').read_text())
    assert manifest['family'] == 'fastestdet'
    assert len(manifest['classes']) == 80
    assert manifest['classes']['1'] == 'person' and manifest['classes']['90'] == 'toothbrush'
    assert [(g['size'], g['precision']) for g in manifest['graphs']] == \
        [(352, 'fp32'), (288, 'fp32'), (224, 'fp32'), (160, 'fp32')]
    for graph in manifest['graphs']:
        assert (MODEL_DIR / graph['file']).stat().st_size < 1.1e6
    assert (MODEL_DIR / 'README.md').is_file()


def test_either_family_loads_through_the_same_factory():
    adacon_dir = REPO / 'models' / 'adacon'
    assert (model_family(adacon_dir), model_family(MODEL_DIR)) == ('adacon', 'fastestdet')
    coco = load_engine(MODEL_DIR, threads=1)
    scenes = load_engine(adacon_dir, threads=1)
    assert type(coco).__name__ == 'FastestDetEngine'
    assert type(scenes).__name__ == 'AdaConEngine'
    assert default_modes(coco) == ['static@352', 'static@288', 'static@224', 'static@160']
    assert str(parse_engine_mode(scenes, 'single@0.5')) == 'single@0.5'
    assert parse_engine_mode(coco, 'static@224') == SizeMode(224)
    with pytest.raises(ValueError, match='static@<size>'):
        parse_engine_mode(coco, 'single@0.5')
    with pytest.raises(ValueError):
        parse_engine_mode(scenes, 'static@224')
    rgb = np.full((480, 640, 3), 128, np.uint8)
    for engine in (coco, scenes):
        engine.warm_up()
        result = engine.detect(rgb, parse_engine_mode(engine, default_modes(engine)[-1]))
        assert result.macs > 0 and result.timings_ms['total'] > 0


def test_factory_refuses_unknown_or_missing_folders_with_the_reason(tmp_path):
    with pytest.raises(ValueError, match='manifest.json not found'):
        load_engine(tmp_path)
    (tmp_path / 'manifest.json').write_text(json.dumps({'family': 'yolo'}))
    with pytest.raises(ValueError, match="unknown model family 'yolo'"):
        load_engine(tmp_path)
    (tmp_path / 'manifest.json').write_text(json.dumps({'family': 'fastestdet'}))
    with pytest.raises(ValueError, match='format'):
        load_engine(tmp_path)


@pytest.mark.parametrize('text, expected', [
    ('static', SizeMode(352)), ('static@224', SizeMode(224)), (' static@160 ', SizeMode(160)),
    ('static@288/int8', SizeMode(288, 'int8'))])
def test_level_entries_name_a_size_and_precision(text, expected):
    assert parse_size_mode(text, [352, 288, 224, 160], {288: ['fp32', 'int8']}) == expected
    assert str(expected) == text.strip().replace('static', 'static@352', text.strip() == 'static')


@pytest.mark.parametrize('text', ['single', 'multi:0.3', 'static@200', 'static@', 'static@x',
                                  'static/int8', 'static@352:fp16', 'static@352/int8'])
def test_bad_level_entries_are_refused(text):
    with pytest.raises(ValueError, match='mode'):
        parse_size_mode(text, [352, 288, 224, 160], {288: ['fp32', 'int8']})


def test_decode_puts_boxes_in_image_pixels_and_rescales_sizes_to_the_training_input():
    prediction = np.zeros((85, 10, 10), np.float32)
    prediction[5 + 2] = 1.0                     # every cell: class channel 2, p = 1
    prediction[0, 4, 6] = 0.9                   # one confident cell at row 4, col 6
    prediction[3:5, 4, 6] = 0.0                 # sigmoid(0) = half the image
    boxes, scores, classes = decode(prediction, (480, 640), 0.3, size_scale=352 / 160)
    assert classes.tolist() == [2] and scores[0] == pytest.approx(0.9 ** 0.6)
    half_w, half_h = 640 * 0.5 * 352 / 160 / 2, 480 * 0.5 * 352 / 160 / 2
    # centre = the cell corner (tanh(0) = 0): (6 / 10 * 640, 4 / 10 * 480)
    assert boxes[0] == pytest.approx([384 - half_w, 192 - half_h, 384 + half_w, 192 + half_h])


@needs_shared
def test_eval_and_bench_commands_take_a_coco_folder(tmp_path, capsys):
    from adaptive_perception.cli import main
    coco = ['--model-dir', str(MODEL_DIR), '--annotations', str(COCO128 / 'instances.json'),
            '--images', str(COCO128 / 'images'), '--limit', '4']
    assert main(['eval', 'adacon', *coco, '--modes', 'static@224', 'static@160',
                 '--out', str(tmp_path / 'eval.json')]) == 0
    report = json.loads((tmp_path / 'eval.json').read_text())
    assert list(report['modes']) == ['static@224', 'static@160'] and report['images'] == 4
    assert '| static@160 |' in capsys.readouterr().out
    assert main(['bench', 'detector', *coco, '--modes', 'static@160', '--frames', '3',
                 '--out', str(tmp_path / 'bench')]) == 0
    bench = json.loads((tmp_path / 'bench' / 'bench_detector.json').read_text())
    assert list(bench['modes']) == ['static@352', 'static@160']  # the reference is added
    assert bench['frame_size'] == [640, 480] and bench['modes']['static@160']['samples'] == 6
    assert bench['targets']['cheapest']['mode'] == 'static@160'
    assert 'cheapest point static@160' in capsys.readouterr().out
    from cli_errors import user_error
    assert "mode 'multi:0.3'" in user_error(capsys, ['eval', 'adacon', *coco, '--modes',
                                                     'multi:0.3'])


def test_opencv_nms_keeps_what_the_detector_nms_keeps():
    from adaptive_perception.detection.engine import nms
    from adaptive_perception.detection.fastestdet.engine import batched_nms
    rng = np.random.default_rng(3)
    for n in (0, 1, 12, 80):
        corner = rng.random((n, 2)) * 400
        boxes = np.concatenate([corner, corner + rng.random((n, 2)) * 150 + 2], axis=1)
        scores, classes = rng.random(n), rng.integers(0, 4, n)
        for iou, keep in ((0.45, 100), (0.3, 5)):
            assert batched_nms(boxes, scores, classes, iou, keep).tolist() == \
                nms(boxes, scores, classes, iou, keep).tolist()
