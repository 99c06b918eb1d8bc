"""The ONNX Runtime engine on a tiny exported model whose every output is known."""


import numpy as np
import pytest

import fake_adacon as fake
from adaptive_perception.detection.engine import (
    AdaConEngine,
    decode_peaks,
    nms,
    select_branches,
)
from adaptive_perception.detection.manifest import (
    Manifest,
    Mode,
    WidthGraphs,
    letterbox,
    parse_mode,
)
from adaptive_perception.runtime.onnx_sessions import resolve_providers

# Controller probabilities for this colour: sigmoid(10 * (c / 255 - 0.5)).
COLOUR = (102, 153, 128)
PROBABILITIES = [0.269, 0.731, 0.505]
BACKBONE, CONTROLLER, STATIC = (fake.MACS[k] for k in ('backbone', 'controller', 'static'))
BRANCH_MACS = fake.MACS['branches']


@pytest.fixture(scope='module')
def model_dir(tmp_path_factory):
    return fake.build(tmp_path_factory.mktemp('adacon'))


@pytest.fixture(scope='module')
def int8_dir(tmp_path_factory):
    return fake.build(tmp_path_factory.mktemp('adacon_int8'), int8=True)


@pytest.fixture
def engine(model_dir):
    return AdaConEngine(model_dir)


def detect(engine, mode: str, rgb=None, **kwargs):
    return engine.detect(fake.colour_image(COLOUR) if rgb is None else rgb, parse_mode(mode),
                         **kwargs)


@pytest.mark.parametrize('mode, branches', [
    ('single', [1]),
    ('multi:0.5', [1, 2]),
    ('multi:0.2', [0, 1, 2]),
    ('multi:0.9', [1]),  # none passes: the top-scoring branch, as for single
])
def test_branch_selection(engine, mode, branches):
    result = detect(engine, mode)
    np.testing.assert_allclose(result.probabilities, PROBABILITIES, atol=1e-3)
    assert result.branches_run == branches
    assert result.macs == BACKBONE + CONTROLLER + sum(BRANCH_MACS[i] for i in branches)
    assert result.mode == parse_mode(mode)


def test_selection_rule_alone():
    p = np.array([0.1, 0.45, 0.3])
    assert select_branches(p, Mode('single')) == [1]
    assert select_branches(p, Mode('multi', 0.3)) == [1, 2]
    assert select_branches(p, Mode('multi', 0.5)) == [1]


def test_unselected_branches_never_run(engine):
    for _ in range(3):
        detect(engine, 'single')
    detect(engine, 'multi:0.5')
    assert engine.branch_runs == [0, 4, 1]
    assert engine.graph_runs == {'backbone': 4, 'controller': 4, 'static_head': 0}
    # Another colour moves the choice; only then does branch 0 run.
    detect(engine, 'single', rgb=fake.colour_image((255, 0, 0)))
    assert engine.branch_runs == [1, 4, 1]


def test_static_mode_runs_no_controller_or_branch(engine):
    result = detect(engine, 'static')
    assert result.branches_run == [] and result.probabilities is None
    assert engine.graph_runs == {'backbone': 1, 'controller': 0, 'static_head': 1}
    assert engine.branch_runs == [0, 0, 0]
    assert result.macs == BACKBONE + STATIC
    assert {d.branch for d in result.detections} == {-1}
    found = sorted((d.class_name, round(d.score, 2), d.x_min, d.y_min, d.x_max, d.y_max)
                   for d in result.detections)
    assert found == sorted((fake.CLASSES[fake.STATIC_CLASS_IDS[p[0]]], p[3],
                            *fake.expected_box(p)) for p in fake.STATIC_PEAKS)
    assert set(result.timings_ms) == {'letterbox', 'backbone', 'controller', 'heads',
                                      'decode', 'total'}


def test_local_channels_map_to_global_classes_and_common_ones_are_deduplicated(engine):
    # Branch 0 (street: car, person) and branch 1 (home: cup, dog, person) both find a
    # person in the same box; one survives, from the branch that scored it higher.
    result = detect(engine, 'single', rgb=fake.colour_image((255, 255, 0)))
    assert result.branches_run == [0]
    result = detect(engine, 'multi:0.5', rgb=fake.colour_image((255, 255, 0)))
    assert result.branches_run == [0, 1]
    found = sorted((d.class_id, d.class_name, round(d.score, 2), d.branch)
                   for d in result.detections)
    assert found == [(1, 'person', 0.9, 0), (2, 'car', 0.6, 0),
                     (3, 'dog', 0.8, 1), (5, 'cup', 0.5, 1)]
    person, dog = (next(d for d in result.detections if d.class_id == c) for c in (1, 3))
    # NMS is class-aware: the dog in the person's box stays.
    assert (person.x_min, person.y_max) == (dog.x_min, dog.y_max)


def test_threshold_and_max_detections(engine):
    result = detect(engine, 'static', score_threshold=0.75)
    assert sorted(round(d.score, 2) for d in result.detections) == [0.8, 0.9]
    result = detect(engine, 'static', max_detections=1)
    assert [round(d.score, 2) for d in result.detections] == [0.9]


def test_boxes_map_back_through_the_letterbox(engine):
    # 64 x 32 (w x h) -> scale 0.5 into 32 x 32, padded at the bottom; boxes in the
    # padding are clipped to the image.
    rgb = np.zeros((32, 64, 3), np.uint8)
    result = detect(engine, 'static', rgb=rgb)
    boxes = {(d.class_id, round(d.score, 2)): (d.x_min, d.y_min, d.x_max, d.y_max)
             for d in result.detections}
    assert boxes[(2, 0.9)] == pytest.approx(fake.expected_box(fake.STATIC_PEAKS[0], 0.5))
    assert boxes[(5, 0.7)] == pytest.approx(fake.expected_box(fake.STATIC_PEAKS[2], 0.5))
    x_min, y_min, x_max, y_max = boxes[(2, 0.8)]  # centre (22, 22) in input = y 44 > 32
    assert (x_min, x_max) == pytest.approx((36.0, 52.0))
    assert y_min == pytest.approx(32.0) and y_max == pytest.approx(32.0)


def test_each_width_runs_its_own_graphs_without_reloading(engine):
    sessions = dict(engine._sessions)
    assert engine.widths == [1.0, fake.HALF]
    half = detect(engine, f'static@{fake.HALF:g}')
    full = detect(engine, 'static')
    single = detect(engine, f'single@{fake.HALF:g}')
    assert len(half.detections) == fake.HALF_STATIC_PEAKS
    assert len(full.detections) == len(fake.STATIC_PEAKS)
    assert half.macs == BACKBONE * fake.HALF + STATIC and full.macs == BACKBONE + STATIC
    assert single.branches_run == [1] and single.mode.width == fake.HALF
    assert engine.width_runs == {1.0: 1, fake.HALF: 2}
    assert all(engine._sessions[name] is session for name, session in sessions.items())
    with pytest.raises(ValueError, match='no graphs for width 0.75'):
        detect(engine, 'static@0.75')


@pytest.mark.parametrize('text, mode', [
    ('static', Mode('static')), ('single@0.5', Mode('single', 0.0, 0.5)),
    ('multi:0.3@0.75', Mode('multi', 0.3, 0.75)), (' multi:1@1 ', Mode('multi', 1.0)),
    ('multi:0.03@0.5/int8', Mode('multi', 0.03, 0.5, 'int8')),
    ('static/fp32', Mode('static')), ('single/int8', Mode('single', 0.0, 1.0, 'int8')),
    ('cascade:context=0.3:single@0.5/int8>static/int8',
     Mode('cascade', 0.3, 1.0, 'int8', 'context', Mode('single', 0.0, 0.5, 'int8'),
          Mode('static', 0.0, 1.0, 'int8'))),
    ('cascade:score=0.5:single>multi:0.1',
     Mode('cascade', 0.5, 1.0, 'fp32', 'score', Mode('single'), Mode('multi', 0.1))),
])
def test_modes_parse_and_print_back(text, mode):
    assert parse_mode(text) == mode
    assert parse_mode(str(mode)) == mode


@pytest.mark.parametrize('text', ['', 'multi', 'multi:1.5', 'single@0', 'static@1.5',
                                  'static@x', 'static:0.3', 'fast', 'single@', 'static/int4',
                                  'static/', 'single@0.5/int8/int8', 'int8',
                                  'cascade:0.3:single>static', 'cascade:context=1.5:single>static',
                                  'cascade:margin=0.3:single>static', 'cascade:context=0.3:single',
                                  'cascade:context=0.3:single>cascade:context=0.1:single>static',
                                  'cascade:context=0.3:single>single', 'cascade:context=x:a>b',
                                  'cascade:context=0.3:static@0.5>static'])
def test_bad_modes_are_refused(text):
    with pytest.raises(ValueError, match='expected|the same|needs a cheap mode'):
        parse_mode(text)


def test_letterbox_keeps_aspect_and_pads_right_and_bottom():
    rgb = np.full((10, 40, 3), 200, np.uint8)
    canvas, scale = letterbox(rgb, (32, 32), (1 / 255, 2 / 255, 3 / 255))  # mean colour
    assert scale == 0.8 and canvas.shape == (32, 32, 3)
    assert (canvas[:8] == 200).all()
    assert (canvas[8:] == (1, 2, 3)).all()


def test_nms_is_class_aware():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30.]])
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    classes = np.array([1, 1, 2, 1])
    assert nms(boxes, scores, classes, 0.5, 100).tolist() == [0, 2, 3]
    assert nms(boxes, scores, classes, 0.5, 2).tolist() == [0, 2]
    assert nms(boxes[:0], scores[:0], classes[:0], 0.5, 100).tolist() == []


def test_input_checks(engine):
    with pytest.raises(ValueError, match='RGB uint8'):
        engine.detect(np.zeros((8, 8), np.uint8), Mode('static'))
    with pytest.raises(ValueError, match='unknown mode'):
        engine.detect(fake.colour_image(COLOUR), Mode('dynamic'))


@pytest.mark.parametrize('int8', [False, True])
def test_missing_provider_warns_once_and_runs_on_cpu(model_dir, int8_dir, int8):
    """The providers parameter reaches every graph, the INT8 copies too (one warning)."""
    warnings = []  # a node passes its logger; caplog misses records once launch is imported
    engine = AdaConEngine(int8_dir if int8 else model_dir,
                          providers=['CUDAExecutionProvider', 'TensorrtExecutionProvider'],
                          threads=1, warn=warnings.append)
    assert len(warnings) == 1
    assert 'CUDAExecutionProvider, TensorrtExecutionProvider' in warnings[0]
    assert engine.providers == ['CPUExecutionProvider']
    assert detect(engine, 'single/int8' if int8 else 'single').branches_run == [1]


def test_provider_order_ends_with_cpu():
    warned = []
    chosen = resolve_providers(['CPUExecutionProvider', 'XnnpackExecutionProvider', 'X'],
                               available=['XnnpackExecutionProvider', 'CPUExecutionProvider'],
                               warn=warned.append)
    assert chosen == ['XnnpackExecutionProvider', 'CPUExecutionProvider']
    assert len(warned) == 1 and 'dropped: X ' in warned[0]
    assert resolve_providers([], available=[], warn=warned.append) == ['CPUExecutionProvider']
    assert len(warned) == 1


def test_invalid_model_directories_say_what_is_wrong(model_dir, tmp_path):
    with pytest.raises(ValueError, match='manifest.json not found'):
        AdaConEngine(tmp_path)
    broken = tmp_path / 'broken'
    fake.build(broken)
    (broken / 'branch_home.onnx').write_bytes(b'not onnx')
    with pytest.raises(ValueError, match='cannot load 1/branch1 graph'):
        AdaConEngine(broken)
    manifest = Manifest.load(model_dir)
    swapped = tmp_path / 'swapped'
    fake.build(swapped)
    full = manifest.graphs(1.0)
    Manifest(**{**manifest.__dict__, 'widths': [
        WidthGraphs(**{**full.__dict__, 'controller': full.backbone})]}).save(swapped)
    with pytest.raises(ValueError, match="controller graph has inputs \\['image'\\]"):
        AdaConEngine(swapped)


def test_a_model_without_int8_graphs_refuses_int8_modes(engine):
    assert engine.precisions == ('fp32',)
    with pytest.raises(ValueError, match='no int8 graphs'):
        engine.check_mode(parse_mode('single/int8'))
    with pytest.raises(ValueError, match='no int8 graphs'):
        detect(engine, 'cascade:context=0.5:single>static/int8')


def test_switching_precision_never_loads_a_graph(int8_dir, monkeypatch):
    import onnxruntime
    engine = AdaConEngine(int8_dir)
    assert engine.precisions == ('fp32', 'int8')
    assert len(engine._sessions) == 2 * 2 * 6  # widths x precisions x graphs, all resident
    created = []
    real = onnxruntime.InferenceSession
    monkeypatch.setattr(onnxruntime, 'InferenceSession',
                        lambda *a, **k: created.append(a) or real(*a, **k))
    opened, real_open = [], open
    monkeypatch.setattr('builtins.open', lambda *a, **k: opened.append(a) or real_open(*a, **k))
    for mode in ['static', 'static/int8', f'single@{fake.HALF:g}/int8', 'multi:0.5',
                 'static/int8', 'static', 'cascade:context=0.5:single/int8>static']:
        result = detect(engine, mode)
        assert result.precision == result.mode.precision
    assert created == [] and opened == []
    assert engine.precision_runs == {'fp32': 4, 'int8': 4}  # the cascade escalated: one each
    # the INT8 static head is a different graph: one peak instead of three
    assert len(detect(engine, 'static/int8').detections) == fake.INT8_STATIC_PEAKS
    assert len(detect(engine, 'static').detections) == len(fake.STATIC_PEAKS)


# COLOUR: controller probabilities 0.269, 0.731, 0.505 -> context margin 0.226; the top
# branch (home) has peaks 0.8, 0.7, 0.5 -> score margin mean(|2s - 1|) = 0.4 at floor 0.1.
CONTEXT_MARGIN, SCORE_MARGIN = 0.731 - 0.505, (0.6 + 0.4 + 0.0) / 3


@pytest.mark.parametrize('margin, threshold, exits', [
    ('context', 0.2, True), ('context', 0.25, False), ('context', 0.0, True),
    ('score', 0.3, True), ('score', 0.35, False), ('score', 1.0, False),
])
def test_cascade_runs_the_costly_mode_exactly_when_the_margin_is_short(engine, margin,
                                                                      threshold, exits):
    frames = 3
    for _ in range(frames):
        result = detect(engine, f'cascade:{margin}={threshold}:single>static')
        assert result.exited is exits
        assert result.margin == pytest.approx(CONTEXT_MARGIN if margin == 'context'
                                              else SCORE_MARGIN, abs=2e-3)
        assert result.requested.kind == 'cascade'
        assert result.mode == parse_mode('single' if exits else 'static')
        assert len(result.detections) == (3 if exits else len(fake.STATIC_PEAKS))
    assert engine.graph_runs['static_head'] == (0 if exits else frames)
    assert engine.cascade_runs == {'exited': frames if exits else 0,
                                   'escalated': 0 if exits else frames}
    # same width and precision: the costly pass reuses the cheap one's backbone features
    assert engine.graph_runs['backbone'] == frames
    assert engine.graph_runs['controller'] == frames and engine.branch_runs == [0, frames, 0]


def test_cascade_to_another_width_runs_its_backbone_and_reuses_branches(engine):
    result = detect(engine, f'cascade:context=0.9:single@{fake.HALF:g}>multi:0.5')
    assert not result.exited and result.branches_run == [1, 2]
    assert engine.graph_runs['backbone'] == 2
    assert engine.width_runs == {1.0: 1, fake.HALF: 1}
    assert result.macs == (BACKBONE * fake.HALF + CONTROLLER + BRANCH_MACS[1]
                           + BACKBONE + CONTROLLER + BRANCH_MACS[1] + BRANCH_MACS[2])
    # the same width: multi:0.5 after single runs branch 2 only, branch 1 is reused
    result = detect(engine, 'cascade:context=0.9:single>multi:0.5')
    assert engine.branch_runs == [0, 3, 2]
    assert result.macs == BACKBONE + CONTROLLER + BRANCH_MACS[1] + BRANCH_MACS[2]


def test_preprocess_into_the_buffer_equals_the_letterbox_canvas(engine):
    rng = np.random.default_rng(0)
    for shape in [(32, 32, 3), (20, 32, 3), (32, 12, 3), (64, 48, 3)]:
        rgb = rng.integers(0, 256, shape, np.uint8)
        canvas, scale = letterbox(rgb, engine.input_size, engine.manifest.mean)
        want = ((canvas - engine._mean.ravel()) * engine._inv_std.ravel()).transpose(2, 0, 1)
        image, got_scale = engine.preprocess(rgb)
        assert got_scale == scale
        np.testing.assert_allclose(image[0], want, rtol=1e-6, atol=1e-6)


def test_peak_decoding_and_nms_match_the_plain_definitions():
    """The vectorised decode and NMS against straightforward versions, random heads."""
    rng = np.random.default_rng(1)
    for _ in range(20):
        heat = rng.random((3, 8, 8)).astype(np.float32) ** 3
        box = rng.random((4, 8, 8)).astype(np.float32) * 6
        boxes, scores, channels = decode_peaks(heat, box, 4, 0.3, 100)
        padded = np.pad(heat, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
        pooled = np.max([padded[:, dy:dy + 8, dx:dx + 8] for dy in range(3)
                         for dx in range(3)], axis=0)
        want = set(zip(*np.nonzero((heat == pooled) & (heat >= 0.3)), strict=True))
        got = {int(c) for c in channels}
        assert sorted(scores.tolist(), reverse=True) == sorted(
            [float(heat[k]) for k in want], reverse=True)
        assert got == {int(k[0]) for k in want}
        classes = rng.integers(0, 2, len(scores))
        keep = nms(boxes, scores, classes, 0.5, 100)
        order, plain = list(np.argsort(-scores, kind='stable')), []
        while order:
            best = order.pop(0)
            plain.append(best)
            order = [i for i in order if classes[i] != classes[best]
                     or _iou(boxes[best], boxes[i]) <= 0.5]
        assert keep.tolist() == plain


def _iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0
