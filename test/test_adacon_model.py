"""AdaCon model, data, training stages and ONNX export, on tiny generated scene sets."""

import json
from dataclasses import asdict, replace

import numpy as np
import onnxruntime as ort
import pytest
import torch

from adaptive_perception.channels.bench import run_bench_channels
from adaptive_perception.channels.gating_bench import run_bench_gating
from adaptive_perception.detection import scenes
from adaptive_perception.detection.coco_data import CocoDetection, encode_targets
from adaptive_perception.detection.config import AdaconTrainConfig
from adaptive_perception.detection.export import export_adacon, load_checkpoint
from adaptive_perception.detection.manifest import Manifest
from adaptive_perception.detection.model import AdaCon, DecodedHead, branch_width
from adaptive_perception.detection.slimmable import SlimmableAdaCon
from adaptive_perception.detection.train import (
    controller_loss,
    head_loss,
    init_branches_from_static,
    train_adacon,
    train_branches,
    train_static,
)
from adaptive_perception.training.macs import count_macs

CLUSTERS = [[0, 1, 2, 3, 16, 17], [4, 5, 6, 7, 16, 17], [8, 9, 10, 11, 12, 16, 17],
            [13, 14, 15, 16, 17]]
CONFIG = {'num_classes': 18, 'branch_classes': CLUSTERS}
WIDTHS = (1.0, 0.5)
# Wider branches than the thesis's, nested at half width: export and engine see both.
SMOKE = AdaconTrainConfig(seed=3, smoke=True, widths=list(WIDTHS), branch_scale=1.5,
                          branch_scale_at=[(0.5, 1.0)])


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp('scenes')
    train = scenes.write_dataset(root / 'train', 64, seed=0)
    val = scenes.write_dataset(root / 'val', 16, seed=1)
    return {'train': (train, train.parent / 'images'), 'val': (val, val.parent / 'images')}


@pytest.fixture(scope='module')
def smoke(data, tmp_path_factory):
    out = tmp_path_factory.mktemp('smoke')
    checkpoint = train_adacon(SMOKE, *data['train'], *data['val'], out)
    return out, checkpoint


@pytest.fixture(scope='module')
def exported(smoke, tmp_path_factory):
    """Export the smoke model once: calibrating its 14 INT8 graphs takes seconds."""
    out = tmp_path_factory.mktemp('exported')
    return out, export_adacon(smoke[1], out, calibration_frames_count=16)


def test_shapes():
    model = AdaCon(18, CLUSTERS).eval()
    out = model(torch.randn(2, 3, 128, 128))
    assert out['features'].shape == (2, 96, 16, 16)
    assert [t.shape for t in out['static']] == [(2, 18, 16, 16), (2, 4, 16, 16)]
    assert out['logits'].shape == (2, 4)
    for (heatmap, box), classes in zip(out['branches'], CLUSTERS, strict=True):
        assert heatmap.shape == (2, len(classes), 16, 16) and box.shape == (2, 4, 16, 16)
    heatmap, box = DecodedHead(model.static_head, 8)(torch.randn(1, 96, 12, 20))
    assert heatmap.shape == (1, 18, 12, 20) and 0 <= heatmap.min() and heatmap.max() <= 1
    assert (box[:, 2:] > 0).all()  # pixel sizes


def test_every_branch_layer_is_scaled_by_its_share_of_classes():
    model = AdaCon(18, CLUSTERS + [[5]], head_width=192)
    static = [m.out_channels for m in model.static_head.trunk.modules()
              if isinstance(m, torch.nn.Conv2d)]
    assert static == [192, 192]
    for branch, classes in zip(model.branches, model.branch_classes, strict=True):
        convs = [m for m in branch.trunk.modules() if isinstance(m, torch.nn.Conv2d)]
        width = max(8, round(192 * len(classes) / 18))
        assert [c.out_channels for c in convs] == [width, width]
        assert convs[1].in_channels == width
        assert branch.heatmap.in_channels == branch.box.in_channels == width
        assert branch.heatmap.out_channels == len(classes)
    assert model.branches[-1].heatmap.in_channels == 11  # 192 / 18 rounded
    assert branch_width(64, 1, 18) == 8  # never narrower than the minimum
    assert branch_width(192, 6, 18, scale=1.5) == 96  # widened beyond the thesis's share
    assert branch_width(192, 6, 18, scale=4) == 192  # never wider than the static head
    wide = AdaCon(18, CLUSTERS, branch_scale=1.5)
    assert wide.branches[0].trunk[0][0].out_channels == round(192 * 6 / 18 * 1.5)


def test_one_branch_costs_at_most_half_of_the_static_head():
    model = AdaCon(18, CLUSTERS).eval()
    image = torch.zeros(1, 3, 128, 128)
    features = model.backbone(image)
    backbone = count_macs(model.backbone, image)
    static = count_macs(DecodedHead(model.static_head, 8), features)
    controller = count_macs(model.controller, features)
    for branch in model.branches:
        macs = count_macs(DecodedHead(branch, 8), features)
        assert macs <= 0.5 * static
        assert backbone + controller + macs <= 0.7 * (backbone + static)  # >= 30% end to end
    assert static > backbone  # the head is the larger part, as in RetinaNet


def test_controller_loss_is_bce_with_logits_on_multi_label_targets():
    logits = torch.tensor([[2.0, -1.0, 0.5, -3.0], [0.0, 0.0, 4.0, 1.0]])
    present = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 1.0, 1.0]])  # two clusters each
    p = torch.sigmoid(logits)
    manual = -(present * p.log() + (1 - present) * (1 - p).log()).mean()
    assert torch.allclose(controller_loss(logits, present), manual)
    logits.requires_grad_(True)
    controller_loss(logits, present).backward()
    assert (logits.grad[present == 1] < 0).all() and (logits.grad[present == 0] > 0).all()


def test_branch_targets_hold_only_its_classes():
    boxes = np.array([[8.0, 8.0, 20.0, 20.0], [70.0, 60.0, 30.0, 24.0]])
    targets = {k: torch.from_numpy(v)[None] for k, v in
               encode_targets(boxes, np.array([2, 9]), 18, (16, 16), 8).items()}
    outputs = (torch.full((1, 2, 16, 16), -20.0), torch.zeros(1, 4, 16, 16))
    outputs[0][0, 0, 2, 2] = 20.0  # confident on class 2's centre, silent elsewhere
    outputs[1][:, :, 2, 2] = targets['box'][:, :, 2, 2]
    total, heat, reg = head_loss(outputs, targets, torch.tensor([2, 3]))
    assert heat < 1e-3 and reg == 0  # class 9 is background for this branch
    _, heat_all, _ = head_loss((torch.full((1, 18, 16, 16), -20.0), outputs[1]), targets)
    assert heat_all > 1  # the static head is scored on both objects


def test_letterbox_scale_maps_boxes_back(tmp_path):
    from PIL import Image
    (tmp_path / 'images').mkdir()
    Image.new('RGB', (200, 100), (10, 20, 30)).save(tmp_path / 'images' / 'a.png')
    coco = {'images': [{'id': 7, 'file_name': 'a.png', 'width': 200, 'height': 100}],
            'annotations': [{'id': 1, 'image_id': 7, 'category_id': 5, 'bbox': [50, 20, 40, 60],
                             'area': 2400, 'iscrowd': 0}],
            'categories': [{'id': 5, 'name': 'x'}, {'id': 2, 'name': 'y'}]}
    item = CocoDetection(coco, tmp_path / 'images', 128)[0]
    mirrored = CocoDetection(coco, tmp_path / 'images', 128, mirror=True)[0]
    assert torch.equal(mirrored['image'], item['image'].flip(-1))
    assert item['scale'] == pytest.approx(0.64) and item['image_id'] == 7
    assert item['image'][:, 64:].abs().max() < 0.01  # padding below: the mean in 8 bits
    for target, x in ((item, 70 * 0.64), (mirrored, 128 - 70 * 0.64)):
        row, col = np.argwhere(target['cls_map'].numpy() >= 0)[0]
        dx, dy, lw, lh = target['box'][:, row, col].tolist()
        assert target['cls_map'][row, col] == 1  # category 5 is the second in id order
        assert ((col + dx) * 8, (row + dy) * 8) == pytest.approx((x, 50 * 0.64), abs=1e-3)
        assert (np.exp(lw) * 8 / 0.64, np.exp(lh) * 8 / 0.64) == pytest.approx((40, 60))


def test_zoomed_and_flipped_boxes_follow_the_pixels(tmp_path):
    from PIL import Image
    (tmp_path / 'images').mkdir()
    image = np.zeros((128, 128, 3), np.uint8)
    image[30:66, 40:64] = 255
    Image.fromarray(image).save(tmp_path / 'images' / 'a.png')
    coco = {'images': [{'id': 1, 'file_name': 'a.png', 'width': 128, 'height': 128}],
            'annotations': [{'id': 1, 'image_id': 1, 'category_id': 1, 'bbox': [40, 30, 24, 36],
                             'area': 864, 'iscrowd': 0}],
            'categories': [{'id': 1, 'name': 'x'}]}
    data = CocoDetection(coco, tmp_path / 'images', train=True, jitter=0.0, zoom=0.3,
                         generator=torch.Generator().manual_seed(0))
    mean, std = torch.tensor(data.mean).view(3, 1, 1), torch.tensor(data.std).view(3, 1, 1)
    for _ in range(8):
        item = data[0]
        rows, cols = np.nonzero((item['image'] * std + mean)[0].numpy() > 0.5)
        row, col = np.argwhere(item['cls_map'].numpy() >= 0)[0]
        dx, dy, lw, lh = item['box'][:, row, col].tolist()
        w, h = np.exp(lw) * 8, np.exp(lh) * 8
        x, y = (col + dx) * 8 - w / 2, (row + dy) * 8 - h / 2
        assert [x, y, x + w, y + h] == pytest.approx(
            [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], abs=1.5)


def test_stage2_keeps_the_backbone_frozen_at_every_width(data):
    torch.manual_seed(0)
    train = CocoDetection(*data['train'])
    slim = SlimmableAdaCon(CONFIG, WIDTHS)
    images = torch.stack([train[i]['image'] for i in range(8)])
    with torch.no_grad():  # non-trivial running statistics
        for width in WIDTHS:
            slim.part('backbone', images, width)

    def state(*parts):
        return {k: v.clone() for k, v in slim.state_dict().items()
                if any(k.startswith(f'full.{p}.') or f'.{p}/' in k for p in parts)}

    frozen, trained = state('backbone', 'static_head'), state('branches')
    present = torch.randint(0, 2, (len(train), 4)).float()
    train_branches(slim, train, present, train, present, epochs=1, log=lambda line: None)
    after = slim.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in frozen.items())  # bit-identical, BN too
    changed = {k for k, v in trained.items() if not torch.equal(v, after[k])}
    assert 'full.branches.0.trunk.0.0.weight' in changed
    assert 'norms.w050.branches/0/trunk/0/1.weight' in changed  # the half width's own norm
    assert not slim.full.backbone.training
    assert not any(p.requires_grad for p in slim.full.backbone.parameters())


def test_branches_start_as_the_static_head_cut_to_their_width():
    """A fresh branch is the static head on its classes.

    With all but the narrowest branch's width of static channels silenced (zero scale
    and shift), every fresh branch outputs exactly the static head's heatmap rows of
    its classes and its boxes.
    """
    torch.manual_seed(0)
    model = AdaCon(18, CLUSTERS, head_width=48).eval()
    static = model.static_head
    active = min(branch.trunk[0][0].out_channels for branch in model.branches)
    with torch.no_grad():
        for layer in static.trunk:
            norm = layer[1]
            norm.running_mean.uniform_(-0.1, 0.1)
            norm.running_var.uniform_(0.5, 1.5)
            norm.weight.copy_(torch.randperm(48).float() + 1)  # distinct importances
            norm.bias.uniform_(-0.1, 0.1)
            silent = norm.weight <= 48 - active
            norm.weight[silent] = 0.0
            norm.bias[silent] = 0.0
    init_branches_from_static(model)
    features = torch.randn(2, model.backbone.out_channels, 8, 8)
    with torch.no_grad():
        heat, box = static(features)
        for branch, classes in zip(model.branches, model.branch_classes, strict=True):
            branch_heat, branch_box = branch(features)
            torch.testing.assert_close(branch_heat, heat[:, classes], atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(branch_box, box, atol=1e-4, rtol=1e-4)


def test_static_training_lowers_the_loss(data):
    torch.manual_seed(0)
    train = CocoDetection(*data['train'], train=True,
                          generator=torch.Generator().manual_seed(0))
    model = SlimmableAdaCon(CONFIG)
    records = train_static(model, train, CocoDetection(*data['val']), epochs=4, batch_size=16,
                           log=lambda line: None)
    assert records[-1]['loss'] < 0.7 * records[0]['loss']


def test_smoke_training_writes_everything_and_is_reproducible(data, smoke, tmp_path):
    out, checkpoint = smoke
    log = json.loads((out / 'training_log.json').read_text())
    assert log['seed'] == 3 and log['seconds']['total'] > 0
    assert (out / 'clusters.json').is_file() and checkpoint.is_file()
    again = train_adacon(SMOKE, *data['train'], *data['val'], tmp_path)
    repeat = json.loads((tmp_path / 'training_log.json').read_text())
    strip = ('seconds',)
    for stage in ('static', 'branches'):
        assert ([{k: v for k, v in r.items() if k not in strip} for r in log[stage]]
                == [{k: v for k, v in r.items() if k not in strip} for r in repeat[stage]])
    first, second = load_checkpoint(checkpoint)[0], load_checkpoint(again)[0]
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(),
                                                 second.state_dict().values(), strict=True))
    assert AdaconTrainConfig.from_checkpoint(load_checkpoint(checkpoint)[1]) == SMOKE
    assert log['config'] == json.loads(json.dumps(asdict(SMOKE)))


def test_a_checkpoint_of_the_previous_format_still_loads(smoke, tmp_path):
    """Format /2 kept the settings in a hand-built ``training`` dict, without the config."""
    _, checkpoint = smoke
    old = torch.load(checkpoint, map_location='cpu', weights_only=False)
    stored = old.pop('train_config')
    old['format'] = 'adacon-checkpoint/2'
    old['training'].update(seed=stored['seed'], epochs_static=1, epochs_branches=1,
                           batch_size=stored['batch_size'], lr=stored['lr'], smoke=True,
                           widths=old['widths'], branch_scales=old['branch_scales'])
    torch.save(old, tmp_path / 'old.pt')
    model, loaded = load_checkpoint(tmp_path / 'old.pt')
    assert model.widths == WIDTHS
    assert AdaconTrainConfig.from_checkpoint(loaded) == replace(SMOKE, epochs_static=1,
                                                                epochs_branches=1)


def test_every_width_exports_and_matches_pytorch(data, smoke, exported):
    _, checkpoint = smoke
    model_dir, manifest = exported
    assert Manifest.load(model_dir) == manifest
    assert [g.width for g in manifest.widths] == list(WIDTHS)
    fp32 = [f'{part}{suffix}.onnx' for suffix in ('', '_w050') for part in
            ('backbone', 'controller', 'static_head',
             *[f'branch_{i}' for i in range(len(CLUSTERS))])]
    assert sorted(p.name for p in model_dir.iterdir()) == sorted(
        ['manifest.json', *fp32, *[f.replace('.onnx', '_int8.onnx') for f in fp32]])
    assert manifest.int8['calibration']['frames'] == 16
    assert manifest.int8['reports']['backbone.onnx']['quantized_ops'].get('Conv', 0) > 0
    slim, ckpt = load_checkpoint(checkpoint)
    full, half = manifest.graphs(1.0), manifest.graphs(0.5)
    assert full.static_head.class_ids == sorted(manifest.classes)
    assert [b.class_ids for b in manifest.branches] == ckpt['branch_ids']
    assert all(set(manifest.common_class_ids) <= set(b.class_ids) for b in manifest.branches)
    assert all(b.macs <= 0.5 * full.static_head.macs for b in full.branches)
    assert full.controller['macs'] > 0 and manifest.training['seed'] == 3
    assert half.backbone['macs'] < 0.35 * full.backbone['macs']  # ~ width squared
    assert half.static_head.macs < full.static_head.macs

    real = CocoDetection(*data['val'])[0]['image'][None]
    for graphs in manifest.widths:
        model = slim.at_width(graphs.width)
        for image in (torch.randn(1, 3, 128, 128), real):
            with torch.no_grad():
                features = model.backbone(image)
                # The static graph computes what the shared weights compute at this width.
                torch.testing.assert_close(
                    features, slim.part('backbone', image, graphs.width), rtol=1e-4, atol=1e-4)
                expected = {graphs.backbone['file']: [features],
                            graphs.controller['file']: [model.controller(features)],
                            graphs.static_head.file:
                                DecodedHead(model.static_head, 8)(features)}
                for head, branch in zip(graphs.branches, model.branches, strict=True):
                    expected[head.file] = DecodedHead(branch, 8)(features)
            for file, outputs in expected.items():
                session = ort.InferenceSession(str(model_dir / file),
                                               providers=['CPUExecutionProvider'])
                name = session.get_inputs()[0].name
                feed = image if name == 'image' else features
                for got, want in zip(session.run(None, {name: feed.numpy()}), outputs,
                                     strict=True):
                    np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-4,
                                               err_msg=file)
                if image is real:  # the INT8 copy on a real frame: within 10% of the output's
                    # range or 0.01 (heatmap probability units), whichever is larger
                    int8 = ort.InferenceSession(str(model_dir / manifest.file(file, 'int8')),
                                                providers=['CPUExecutionProvider'])
                    for got, want in zip(int8.run(None, {name: feed.numpy()}), outputs,
                                         strict=True):
                        want = want.numpy()
                        tolerance = max(0.1 * float(np.ptp(want)), 0.01)
                        assert np.abs(got - want).max() <= tolerance, file


def test_bench_channels_and_bench_gating_run_end_to_end(data, smoke, exported, tmp_path,
                                                        capsys):
    """Both commands on the smoke model: every operating point and both gate measurements."""
    _, checkpoint = smoke
    model_dir, _ = exported
    assert run_bench_channels(model_dir, *data['val'], modes=['static', 'single'],
                              out_dir=tmp_path / 'channels', repeats=1, warmup=1,
                              frames=3) == 0
    result = json.loads((tmp_path / 'channels' / 'bench_channels.json').read_text())
    plain = ['static', 'single', 'static/int8', 'single/int8', 'static@0.5', 'single@0.5',
             'static@0.5/int8', 'single@0.5/int8']
    assert list(result['points'])[:len(plain)] == plain
    cascades = list(result['points'])[len(plain):]
    assert len(cascades) == 12 and all(p.startswith('cascade:') for p in cascades)
    assert all(0 <= result['points'][p]['exit_rate'] <= 1 for p in cascades)
    assert all(r['overhead_p50_ms'] > 0 for r in result['points'].values())
    assert set(result['cascade_margins']) == {'single@0.5/int8>static/int8',
                                              'single/int8>multi:0.1/int8'}
    assert 'static_int8_latency_ratio' in result['targets']
    assert set(result['backbone_latency_p50_ms']) == {'1', '0.5'}
    assert len(result['proposed_level_modes']) == 4  # one per level, all on the front
    assert set(result['proposed_level_modes']) <= set(result['pareto_front'])
    assert (tmp_path / 'channels' / 'bench_channels_front.png').stat().st_size > 0
    assert 'proposed level_modes' in capsys.readouterr().out

    assert run_bench_gating(checkpoint, model_dir, *data['train'], *data['val'], alphas=[1.0],
                            epochs=1, frames=3, repeats=1,
                            out_dir=tmp_path / 'gating') == 0
    result = json.loads((tmp_path / 'gating' / 'bench_gating.json').read_text())
    assert set(result['mechanism']) == {'dense', 'keep 1', 'keep 0.75', 'keep 0.5', 'keep 0.25'}
    gate = result['gates']['gated alpha=1']
    assert 0 < gate['kept_mean'][0] <= gate['width'] and gate['latency_p50_ms'] > 0
    assert isinstance(result['kept_in_detector'], bool)


def test_cli_refuses_a_branch_scale_at_a_width_it_does_not_train(data, tmp_path, capsys):
    from adaptive_perception.cli import main
    from cli_errors import user_error
    args = ['train', 'adacon', '--train-annotations', str(data['train'][0]),
            '--train-images', str(data['train'][1]), '--val-annotations', str(data['val'][0]),
            '--val-images', str(data['val'][1]), '--out', str(tmp_path), '--smoke',
            '--widths', '1.0', '0.5', '--branch-scale', '1.5']
    assert 'branch scale 1.0 at width 0.75: the width must be' in user_error(
        capsys, args + ['--branch-scale-at', '0.75=1'])
    with pytest.raises(SystemExit):  # argparse: not WIDTH=SCALE
        main(args + ['--branch-scale-at', '0.5'])


def test_stage1_from_reuses_an_earlier_stage1_and_init_from_starts_from_it(data, smoke,
                                                                         tmp_path):
    out, checkpoint = smoke
    # Stage 2 may build wider branches on the same stage 1.
    wider = AdaconTrainConfig(seed=3, smoke=True, widths=list(WIDTHS), branch_scale=2)
    reused = train_adacon(wider, *data['train'], *data['val'], tmp_path / 'reused',
                          stage1_from=checkpoint)
    first, second = load_checkpoint(checkpoint)[0], load_checkpoint(reused)[0]
    classes = len(first.full.branch_classes[0])
    assert [m.full.branches[0].heatmap.in_channels for m in (first, second)] == \
        [branch_width(192, classes, 18, scale=1.5), branch_width(192, classes, 18, scale=2)]
    assert first.branch_channels(0, 0.5) == branch_width(192, classes, 18)
    stage1 = [k for k in first.state_dict() if k.startswith(('full.backbone.',
                                                             'full.static_head.'))]
    assert stage1 and all(torch.equal(first.state_dict()[k], second.state_dict()[k])
                          for k in stage1)
    log = json.loads((tmp_path / 'reused' / 'training_log.json').read_text())
    assert log['static'] == json.loads((out / 'training_log.json').read_text())['static']
    with pytest.raises(ValueError, match='not a checkpoint of this configuration'):
        train_adacon(AdaconTrainConfig(seed=3, smoke=True), *data['train'], *data['val'],
                     tmp_path / 'other', stage1_from=checkpoint)
    started = train_adacon(AdaconTrainConfig(seed=3, smoke=True, widths=[1.0, 0.75]),
                           *data['train'], *data['val'], tmp_path / 'started',
                           init_from=checkpoint)
    assert json.loads((tmp_path / 'started' / 'training_log.json').read_text())[
        'training']['init_from'] == str(checkpoint)
    assert load_checkpoint(started)[0].widths == (1.0, 0.75)
