"""Nested channel sets (slimmable AdaCon) and the operating-point analysis of bench channels."""

import unittest.mock

import numpy as np
import pytest
import torch

from adaptive_perception.channels.bench import (
    CASCADE_THRESHOLDS,
    cascade_points,
    check_targets,
    fit_latency,
    latency_models,
    operating_points,
    propose_profile,
)
from adaptive_perception.channels.gating import GatedHead
from adaptive_perception.detection.bench import pareto_front
from adaptive_perception.detection.model import CenterHead
from adaptive_perception.detection.slimmable import SlimmableAdaCon, scaled_widths, width_key

CONFIG = {'num_classes': 6, 'branch_classes': [[0, 1, 5], [2, 3, 4, 5]], 'head_width': 24}
WIDTHS = (1.0, 0.75, 0.5)


@pytest.fixture
def slim():
    torch.manual_seed(0)
    model = SlimmableAdaCon(CONFIG, WIDTHS)
    with torch.no_grad():  # distinct statistics per width, so a mix-up shows
        for norm in [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]:
            norm.running_mean.uniform_(-0.2, 0.2)
            norm.running_var.uniform_(0.5, 2.0)
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.2, 0.2)
    return model.eval()


def test_narrower_widths_are_nested_slices_of_the_shared_weights(slim):
    full = dict(slim.full.named_parameters())
    for width in WIDTHS[1:]:
        state = slim.width_state(width)
        stem = state['backbone.stem.0.weight']
        assert stem.shape == (round(24 * width), 3, 3, 3)
        assert stem.data_ptr() == full['backbone.stem.0.weight'].data_ptr()  # a view, shared
        features = round(96 * width)
        assert state['static_head.trunk.0.0.weight'].shape == (24, features, 3, 3)
        assert state['controller.fc1.weight'].shape == (64, 2 * features)
        norm = state['backbone.stem.1.running_mean']
        assert norm is slim.norms[width_key(width)]['backbone/stem/1'].running_mean  # its own
    assert scaled_widths((24, 48, 96), 0.75) == (18, 36, 72)


def test_each_width_cut_out_as_a_plain_model_computes_the_same(slim):
    image = torch.randn(2, 3, 64, 64)
    for width in WIDTHS:
        plain = slim.at_width(width)
        assert plain.backbone.out_channels == round(96 * width)
        with torch.no_grad():
            want, got = slim(image, width), plain(image)
        torch.testing.assert_close(got['features'], want['features'])
        torch.testing.assert_close(got['logits'], want['logits'])
        for a, b in zip([got['static'], *got['branches']], [want['static'], *want['branches']],
                        strict=True):
            torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match='width 0.6 is not one of'):
        slim.width_state(0.6)
    with pytest.raises(ValueError, match='must be in'):
        SlimmableAdaCon(CONFIG, (0.75, 0.5))


def test_nested_branches_run_their_first_channels_at_a_narrower_width():
    """A smaller branch scale at width 0.5: the branches there are slices, cut out alike."""
    torch.manual_seed(0)
    config = {**CONFIG, 'branch_scale': 2.0}
    model = SlimmableAdaCon(config, WIDTHS, {0.5: 1.0}).eval()
    full_width = [model.branch_channels(i, 1.0) for i in range(2)]
    assert full_width == [24, 24] and [model.branch_channels(i, 0.5) for i in range(2)] == \
        [12, 16]  # 24 x 3/6 and 24 x 4/6: the thesis's share
    state = model.width_state(0.5, 'branches.1')
    shared = model.full.branches[1].trunk[1][0].weight
    assert state['branches.1.trunk.1.0.weight'].shape == (16, 16, 3, 3)
    assert state['branches.1.trunk.1.0.weight'].data_ptr() == shared.data_ptr()  # first ones
    assert state['branches.1.heatmap.weight'].shape == (4, 16, 1, 1)
    assert state['branches.1.trunk.0.1.running_mean'].shape == (16,)  # its own norms
    plain = model.at_width(0.5)
    assert plain.branches[1].trunk[0][0].out_channels == 16
    image = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for got, want in zip(plain(image)['branches'], model(image, 0.5)['branches'],
                             strict=True):
            torch.testing.assert_close(got, want)
    assert model.at_width(0.75).branches[1].trunk[0][0].out_channels == 24
    with pytest.raises(ValueError, match='branch scale 3.0 at width 0.5'):
        SlimmableAdaCon(config, WIDTHS, {0.5: 3.0})  # wider than the branches are
    with pytest.raises(ValueError, match='branch scale 1.0 at width 0.6'):
        SlimmableAdaCon(config, WIDTHS, {0.6: 1.0})


def test_training_a_narrow_width_moves_the_shared_weights_and_its_own_norms(slim):
    slim.train()
    out = slim(torch.randn(2, 3, 64, 64), 0.5)
    out['static'][0].sum().backward()
    grad = slim.full.backbone.stem[0].weight.grad
    assert grad[:12].abs().sum() > 0 and grad[12:].abs().sum() == 0  # only its channels
    assert slim.norms['w050']['backbone/stem/1'].weight.grad is not None
    assert slim.full.backbone.stem[1].weight.grad is None  # the full width's norm untouched
    assert slim.norms['w075']['backbone/stem/1'].weight.grad is None


def test_operating_points_cover_every_mode_at_every_width():
    assert operating_points([0.5, 1.0], ['static', 'single']) == [
        'static', 'single', 'static@0.5', 'single@0.5']


def test_operating_points_cover_every_precision_and_the_cascades():
    assert operating_points([1.0, 0.5], ['static'], ('fp32', 'int8')) == [
        'static', 'static/int8', 'static@0.5', 'static@0.5/int8']
    cascades = cascade_points([1.0, 0.5], ('fp32', 'int8'))
    assert len(cascades) == 2 * sum(len(g) for g in CASCADE_THRESHOLDS.values())
    assert cascades[0] == 'cascade:context=0.5:single@0.5/int8>static/int8'
    assert cascades[-1] == 'cascade:score=0.6:single/int8>multi:0.1/int8'
    assert cascade_points([1.0], ('fp32',))[0] == 'cascade:context=0.5:single>static'


def test_precision_targets_and_fits_read_the_rows():
    rows = {'static': _row(5.0, 0.640, 200e6), 'static/int8': _row(2.0, 0.635, 200e6),
            'single@0.5/int8': _row(0.7, 0.50, 40e6), 'static@0.5': _row(3.6, 0.60, 140e6),
            'cascade:context=0.5:single@0.5/int8>static/int8': _row(0.9, 0.53, 50e6)}
    for row in rows.values():
        row['latency_vs_static'] = row['latency_p50_ms'] / 5.0
        row['overhead_p50_ms'] = 0.4
    front = pareto_front(rows)
    targets = check_targets(rows, {1.0: 2.0, 0.5: 1.0}, front)
    assert targets['static_int8_latency_ratio'] == {'point': 'static/int8', 'value': 0.4,
                                                    'met': True}
    assert targets['static_int8_map_drop']['value'] == pytest.approx(0.005)
    assert targets['cheapest_latency_ratio']['point'] == 'single@0.5/int8'
    assert targets['cheapest_latency_ratio']['met'] is True  # 0.14x
    assert targets['near_static_within_1_point']['point'] == 'static/int8'
    assert targets['cascade_on_front']['met'] is True
    assert targets['node_overhead_p50_ms']['met'] is True
    models = latency_models(rows)
    assert models['precision int8']['over'] == ['static/int8', 'single@0.5/int8']
    assert 'cascade:context=0.5:single@0.5/int8>static/int8' not in models['all']['over']


def test_latency_fit_recovers_a_linear_model():
    macs = np.array([50e6, 100e6, 200e6, 400e6])
    fit = fit_latency(macs, 8.0 * macs / 1e9 + 0.5)
    assert fit['a_ms_per_gmac'] == pytest.approx(8.0)
    assert fit['c_ms'] == pytest.approx(0.5)
    assert fit['r2'] == pytest.approx(1.0)
    assert fit_latency([1e8, 1e8], [1.0, 2.0])['a_ms_per_gmac'] is None


def _row(latency, accuracy, macs=1e8, mean=None):
    return {'latency_p50_ms': latency, 'latency_mean_ms': latency if mean is None else mean,
            'map': accuracy, 'macs_per_frame': macs}


def test_front_and_profile_compare_mean_latency_not_an_exit_cascades_cheap_median():
    # Exiting on 80% of frames, the cascade's p50 is its cheap pass; its mean is not.
    cascade = 'cascade:context=0.9:single@0.5>static'
    rows = {'static': _row(5.0, 0.64), 'single@0.75': _row(2.0, 0.60),
            'single@0.5': _row(1.0, 0.55), cascade: _row(1.0, 0.58, mean=2.2)}
    assert pareto_front(rows) == ['static', 'single@0.75', 'single@0.5']
    rows[cascade]['latency_mean_ms'] = 1.6  # cheaper on average than single@0.75 now
    assert pareto_front(rows) == ['static', 'single@0.75', cascade, 'single@0.5']


def test_proposed_levels_each_save_over_the_level_before():
    rows = {'static': _row(5.0, 0.658), 'static/int8': _row(2.1, 0.657),
            'multi:0.1/int8': _row(1.8, 0.644), 'single@0.5/int8': _row(1.2, 0.551)}
    front = pareto_front(rows)
    # Budgets 5.0, 3.73, 2.47, 1.2 ms: static/int8 is the best within 3.73 and 2.47, so
    # level 2 takes the best point cheaper than level 1 instead of repeating it.
    assert propose_profile(rows, front, 4) == ['static', 'static/int8', 'multi:0.1/int8',
                                               'single@0.5/int8']
    # More levels than the front has points: a level repeats the one before, and no
    # level is ever costlier than the one before it.
    profile = propose_profile(rows, front, 6)
    assert profile[-2:] == ['single@0.5/int8', 'single@0.5/int8']
    means = [rows[p]['latency_mean_ms'] for p in profile]
    assert means == sorted(means, reverse=True)


def test_pareto_front_keeps_only_undominated_points_most_accurate_first():
    rows = {'static': _row(5.0, 0.64), 'multi:0.1': _row(3.0, 0.62), 'single': _row(2.9, 0.60),
            'static@0.5': _row(3.5, 0.58),  # slower and worse than multi:0.1
            'single@0.5': _row(1.5, 0.50), 'single@0.75': _row(1.5, 0.45)}  # tie: worse
    assert pareto_front(rows) == ['static', 'multi:0.1', 'single', 'single@0.5']


def test_targets_and_knob_fits_read_the_rows():
    rows = {'static': _row(5.0, 0.64, 200e6), 'single': _row(3.0, 0.63, 110e6),
            'static@0.5': _row(3.6, 0.60, 140e6), 'single@0.5': _row(1.5, 0.55, 45e6)}
    for row in rows.values():
        row['latency_vs_static'] = row['latency_p50_ms'] / 5.0
    front = pareto_front(rows)
    targets = check_targets(rows, {1.0: 2.0, 0.5: 1.0}, front)
    assert targets['half_width_backbone_latency_reduction'] == {
        'width': 0.5, 'value': 0.5, 'met': True}
    assert targets['half_width_map_drop']['value'] == pytest.approx(0.04)
    assert targets['cheapest_latency_reduction']['point'] == 'single@0.5'
    assert targets['cheapest_latency_reduction']['met'] is True  # 70% lower
    assert targets['near_static_point']['point'] == 'single'
    models = latency_models(rows)
    assert models['width']['over'] == ['static', 'static@0.5']
    assert models['mode']['over'] == ['static', 'single']
    assert models['all']['points'] == 4


@pytest.fixture
def gated():
    torch.manual_seed(0)
    head = CenterHead(16, 24, 5)
    with torch.no_grad():
        for norm in (head.trunk[0][1], head.trunk[1][1]):
            norm.running_mean.uniform_(-0.2, 0.2)
            norm.running_var.uniform_(0.5, 2.0)
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.2, 0.2)
    gated = GatedHead(head, 16).eval()
    with torch.no_grad():
        gated.gate.fc2.weight.normal_(0.0, 0.5)
        gated.gate.fc2.bias.normal_(0.0, 1.0)
    return gated


def test_gated_head_computes_only_the_kept_channels_and_equals_the_masked_reference(gated):
    for seed in range(5):
        features = torch.randn(1, 16, 8, 8, generator=torch.Generator().manual_seed(seed))
        kept1, kept2 = gated.decide(features)
        assert 0 < kept1.numel() < 24 and 0 < kept2.numel() < 24  # a real selection
        conv = unittest.mock.Mock(side_effect=torch.nn.functional.conv2d)
        with torch.no_grad(), unittest.mock.patch('torch.nn.functional.conv2d', conv):
            heatmap, box, n1, n2 = gated.gathered_forward(features)
        # Only the kept filters were convolved: each layer's output and input channels.
        assert [tuple(c.args[1].shape[:2]) for c in conv.call_args_list] == [
            (n1, 16), (n2, n1), (5, n2), (4, n2)]
        assert (n1, n2) == (kept1.numel(), kept2.numel())
        masks = [torch.zeros(1, 24).index_fill_(1, kept, 1.0) for kept in (kept1, kept2)]
        with torch.no_grad():
            want_heatmap, want_box = gated.masked_forward(features, *masks)
        torch.testing.assert_close(heatmap, want_heatmap, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(box, want_box, rtol=1e-4, atol=1e-5)


def test_gate_decisions_are_deterministic_and_keep_at_least_one_channel(gated):
    features = torch.randn(1, 16, 8, 8)
    first = gated.decide(features)
    assert all(torch.equal(a, b) for a, b in zip(first, gated.decide(features), strict=True))
    with torch.no_grad():
        gated.gate.fc2.bias.fill_(-50.0)  # the gate would skip everything
    assert [k.numel() for k in gated.decide(features)] == [1, 1]


def test_training_pays_the_expected_share_of_macs(gated):
    gated.train()
    features = torch.randn(4, 16, 8, 8)
    (heatmap, box), share = gated.train_forward(features)
    assert heatmap.shape == (4, 5, 8, 8) and share.shape == (4,)
    share.mean().backward()
    assert gated.gate.fc2.bias.grad.abs().sum() > 0  # the cost term reaches the gate
    ones = torch.ones(1, 24)
    assert gated.expected_share(features, ones, ones).item() == pytest.approx(1.0)
    half = torch.cat([torch.ones(1, 12), torch.zeros(1, 12)], 1)
    assert 0.25 < gated.expected_share(features, half, half).item() < 0.5


def test_each_level_gets_the_best_front_point_within_its_latency_budget():
    rows = {'static': _row(5.0, 0.64), 'multi:0.1': _row(3.0, 0.62), 'multi@0.75': _row(2.6, 0.60),
            'single@0.75': _row(2.3, 0.58), 'single@0.5': _row(1.0, 0.50)}
    front = pareto_front(rows)
    # Budgets 5.0, 3.67, 2.33 and 1.0 ms: the best point within each.
    assert propose_profile(rows, front, 4) == ['static', 'multi:0.1', 'single@0.75',
                                               'single@0.5']
    assert propose_profile(rows, front, 2) == ['static', 'single@0.5']
