"""AdaMTL without ROS: decisions, real skipping, FLOPs, export vs PyTorch, the recipe."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from adaptive_perception.multitask.config import AdamtlTrainConfig
from adaptive_perception.multitask.dataset import generate_dataset_arrays
from adaptive_perception.multitask.engine import STATIC, MultiTaskEngine, RandomPolicy
from adaptive_perception.multitask.export import (
    POLICY_ARRAYS,
    DecodersGraph,
    EncoderGraph,
    block_flop_model,
)
from adaptive_perception.multitask.model import (
    Block,
    Decisions,
    ModelConfig,
    PolicySpec,
    block_flops,
    decide,
    normalise,
    parse_targets,
    postprocess,
)
from adaptive_perception.multitask.train import distillation_loss, efficiency_loss
from adaptive_perception.training.macs import count_flops

POLICIES = ['high', 'low', 'low_agnostic']


@pytest.fixture(scope='module')
def frames():
    """Scenes at the random model's input size (32 px)."""
    return generate_dataset_arrays(6, seed=5, size=32)


def test_inference_decisions_are_deterministic_training_ones_are_not():
    logits = torch.linspace(-3, 3, 1000)
    assert torch.equal(decide(logits, training=False), (logits > 0).float())
    torch.manual_seed(0)
    noisy = decide(logits, training=True)
    assert set(noisy.unique().tolist()) == {0.0, 1.0}
    assert not torch.equal(noisy, decide(logits, training=True))  # Gumbel noise


def test_annealed_noise_trains_on_the_inference_decisions():
    """At noise 0 training takes the thresholds inference takes, and still has a gradient."""
    logits = torch.linspace(-3, 3, 1000, requires_grad=True)
    quiet = decide(logits, training=True, noise_scale=0.0)
    assert torch.equal(quiet.detach(), (logits > 0).float())
    quiet.sum().backward()
    assert (logits.grad > 0).all()


@pytest.mark.parametrize('policy', POLICIES)
def test_masked_pass_is_repeatable(random_adamtl, frames, policy):
    _, model = random_adamtl
    images = normalise(frames.images)
    first, decisions = model(images, policy)
    second, again = model(images, policy)
    for task in first:
        assert torch.equal(first[task], second[task])
    for a, b in zip(decisions.tokens, again.tokens, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize('policy', [None, *POLICIES])
def test_skipping_for_real_equals_the_masked_reference(random_adamtl, frames, policy):
    _, model = random_adamtl
    for i in range(len(frames)):
        image = normalise(frames.images[i:i + 1])
        reference, decisions = model(image, policy)
        adaptive, counts = model.run_adaptive(image, policy)
        for task in reference:
            torch.testing.assert_close(adaptive[task], reference[task], atol=2e-5, rtol=1e-4)
        if decisions is not None:
            kept = [(d_b[0, :, None] * d_t[0]).sum(1).int().tolist()
                    for d_b, d_t in zip(decisions.blocks, decisions.tokens, strict=True)]
            assert counts == kept


def test_policies_really_drop_work(random_adamtl, frames):
    _, model = random_adamtl
    dropped = []
    for policy in POLICIES:
        for i in range(len(frames)):
            _, counts = model.run_adaptive(normalise(frames.images[i:i + 1]), policy)
            full = [[model.config.grid(s) ** 2] * d for s, d in enumerate(model.config.depths)]
            dropped.append(counts != full)
    assert any(dropped)  # otherwise the equivalence tests above would prove nothing


def test_skipped_blocks_are_never_called_and_blocks_see_only_kept_tokens(random_adamtl, frames):
    _, model = random_adamtl
    seen = []
    hooks = [block.register_forward_hook(lambda m, args, out: seen.append(args[0].shape[1]))
             for stage in model.stages for block in stage]
    try:
        for policy in POLICIES:
            for i in range(len(frames)):
                seen.clear()
                _, counts = model.run_adaptive(normalise(frames.images[i:i + 1]), policy)
                assert seen == [c for stage in counts for c in stage if c > 0]
    finally:
        for hook in hooks:
            hook.remove()


def _tokens_of_every_linear_layer(graph: Path, feeds: dict, profile_dir: Path) -> list:
    """Tokens fed to a block's linear layers in one run, from ORT's profile.

    Rows of every Gemm (projection, MLP) and tokens of every fused attention (which
    holds the query/key/value layer), in the order they ran.
    """
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(profile_dir / 'profile')
    session = ort.InferenceSession(str(graph), options,
                                   providers=['CPUExecutionProvider'])
    session.run(None, feeds)
    events = json.loads(Path(session.end_profiling()).read_text())
    token_axis = {'Gemm': 0, 'Attention': 1}
    return [event['args']['input_type_shape'][0]['float'][token_axis[event['args']['op_name']]]
            for event in events
            if event.get('cat') == 'Node' and event['name'].endswith('_kernel_time')
            and event['args'].get('op_name') in token_axis]


def test_a_policys_arrays_bound_once_answer_as_fed_on_every_frame(random_adamtl, frames):
    engine = MultiTaskEngine(random_adamtl[0])
    session = engine._sessions['encoder_policy']
    policy = engine.policy('low')
    for tasks in (engine.tasks, engine.tasks[:2]):  # each task set has its own binding
        feeds, _ = policy.feeds(tasks, engine.layout)
        for rgb in frames.images[:3]:
            image = engine.preprocess(rgb)
            fed = session.run(None, {'image': image, **feeds})
            bound, _ = policy.run(session, image, tasks, engine.layout)
            assert len(bound) == len(fed)
            for got, want in zip(bound, fed, strict=True):
                np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize('shares', [(0.0, 0.0), (1.0, 0.5), (1.0, 0.03), (0.5, 1.0)])
def test_runtime_blocks_see_only_kept_tokens_and_skipped_ones_none(random_adamtl, frames,
                                                                      shares, tmp_path):
    """ORT's own profile: each block's four linear layers ran on its kept tokens, 0 if skipped."""
    engine = MultiTaskEngine(random_adamtl[0])
    image = engine.preprocess(frames.images[0])
    feeds, _ = RandomPolicy(*shares, seed=3).feeds(engine.tasks, engine.layout)
    result = engine.infer(frames.images[0], RandomPolicy(*shares, seed=3))
    expected = [n for stage in result.tokens_run for n in stage for _ in range(4)]
    graph = random_adamtl[0] / 'encoder_decided.onnx'
    assert _tokens_of_every_linear_layer(graph, {'image': image, **feeds}, tmp_path) == expected
    if shares == (0.0, 0.0):
        assert result.block_share == 0 and result.token_share == 0
        assert not any(expected)


@pytest.mark.parametrize('policy', [STATIC, *POLICIES])
def test_exported_runtime_matches_pytorch(random_adamtl, frames, policy):
    model_dir, model = random_adamtl
    engine = MultiTaskEngine(model_dir)
    for i in range(len(frames)):
        result = engine.infer(frames.images[i], policy, resize=False)
        with torch.no_grad():
            reference, _ = model(normalise(frames.images[i:i + 1]),
                                 None if policy == STATIC else policy)
        for task, raw in reference.items():
            expected = postprocess(task, raw)[0].numpy()
            got = result.outputs[task]
            if task == 'segmentation':
                assert (got == expected).mean() > 0.99  # argmax ties may flip
            elif task == 'saliency':
                assert np.abs(got.astype(float) - expected * 255).max() <= 1.0
            else:
                np.testing.assert_allclose(got, expected, atol=1e-4)


@pytest.mark.parametrize('policy', [STATIC, *POLICIES])
def test_runtime_flops_equal_the_counter_on_what_ran(random_adamtl, frames, policy):
    """The FLOPs a frame reports are what PyTorch's counter counts on the exported modules.

    The reference runs the modules the graphs were exported from, in PyTorch, on the
    same inputs; PyTorch's ``run_adaptive`` differs only by the policy's second layer,
    which the graph multiplies as one block-diagonal matrix (the zeros included).
    """
    model_dir, model = random_adamtl
    engine = MultiTaskEngine(model_dir)
    mode = 'static' if policy == STATIC else 'policy'
    encoder, decoders = EncoderGraph(model, mode), DecodersGraph(model)
    for i in range(3):
        result = engine.infer(frames.images[i], policy, resize=False)
        image = torch.from_numpy(engine.preprocess(frames.images[i]))
        feeds = {} if policy == STATIC else engine.policy(policy).feeds(engine.tasks,
                                                                        engine.layout)[0]
        inputs = [torch.from_numpy(feeds[f'{key}_s{s}'])
                  for s in range(len(engine.depths)) for key in POLICY_ARRAYS if feeds]
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            features = encoder(image, *inputs)[:len(engine.depths)]
            decoders(*features)
        assert result.flops == pytest.approx(counter.get_total_flops(), rel=1e-6)


def test_block_flop_model_is_exact_at_any_token_count():
    block = Block(32, 16, 4).eval()
    a, b = block_flop_model(block, 64, 32)
    for n in (2, 7, 33, 64):
        counted = count_flops(block, torch.zeros(1, n, 32))
        assert a * n + b * n * n == pytest.approx(counted)
        assert block_flops(32, n, 4) == counted  # what the efficiency loss weighs by


def test_outputs_have_the_input_size_and_published_types(random_adamtl):
    engine = MultiTaskEngine(random_adamtl[0])
    rgb = np.random.default_rng(1).integers(0, 256, (45, 70, 3), dtype=np.uint8)
    outputs = engine.infer(rgb, 'low').outputs
    assert outputs['segmentation'].shape == (45, 70)
    assert outputs['segmentation'].dtype == np.uint8
    assert outputs['depth'].dtype == np.float32 and outputs['depth'].shape == (45, 70)
    assert outputs['normals'].shape == (45, 70, 3)
    np.testing.assert_allclose(np.linalg.norm(outputs['normals'], axis=-1), 1, atol=1e-4)
    assert outputs['saliency'].dtype == np.uint8
    assert set(engine.infer(rgb, 'low', ['depth']).outputs) == {'depth'}
    with pytest.raises(ValueError, match='unknown policy'):
        engine.infer(rgb, 'medium')
    with pytest.raises(ValueError, match='not in this model'):
        engine.infer(rgb, 'low', ['edges'])


def test_task_aware_policy_runs_only_the_running_tasks_networks(random_adamtl, frames):
    """Fewer tasks: the OR covers fewer sub-networks, so never more tokens run."""
    engine = MultiTaskEngine(random_adamtl[0])
    for i in range(len(frames)):
        every = engine.infer(frames.images[i], 'low').tokens_run
        one = engine.infer(frames.images[i], 'low', ['depth']).tokens_run
        assert all(o <= e for so, se in zip(one, every, strict=True)
                   for o, e in zip(so, se, strict=True))


def test_task_subsets_match_pytorch_and_the_one_graph_decoders(random_adamtl, frames):
    """A subset of tasks runs the per-task decoders and the policy's subset networks."""
    model_dir, model = random_adamtl
    engine = MultiTaskEngine(model_dir)
    tasks = ('segmentation', 'depth')
    for i in range(len(frames)):
        for policy in (STATIC, 'low'):
            subset = engine.infer(frames.images[i], policy, tasks, resize=False)
            with torch.no_grad():
                reference, _ = model(normalise(frames.images[i:i + 1]),
                                     None if policy == STATIC else policy, tasks)
            assert sorted(subset.outputs) == sorted(tasks)
            expected = postprocess('depth', reference['depth'])[0].numpy()
            np.testing.assert_allclose(subset.outputs['depth'], expected, atol=1e-4)
            assert (subset.outputs['segmentation']
                    == postprocess('segmentation', reference['segmentation'])[0].numpy()
                    ).mean() > 0.99
        every = engine.infer(frames.images[i], STATIC, resize=False).outputs  # one graph
        apart = engine.infer(frames.images[i], STATIC, tasks, resize=False).outputs
        np.testing.assert_allclose(every['depth'], apart['depth'], atol=1e-4)


def test_bad_model_dir_says_why(tmp_path):
    with pytest.raises(ValueError, match='manifest'):
        MultiTaskEngine(tmp_path)
    (tmp_path / 'manifest.json').write_text(json.dumps({'format': 'other'}))
    with pytest.raises(ValueError, match='format'):
        MultiTaskEngine(tmp_path)


def test_efficiency_loss_weighs_token_shares_by_width():
    config = ModelConfig(image_size=16, patch=2, dims=(32, 64), depths=(2, 2))
    spec = PolicySpec(0.5, 0.5)
    everything = Decisions(blocks=[torch.ones(2, 2), torch.ones(2, 2)],
                           tokens=[torch.ones(2, 2, 64), torch.ones(2, 2, 16)])
    # blocks: (1 - 0.5)^2; tokens: mean of (w * 0.5)^2 with w = 32/48, 64/48
    expected = 0.25 + np.mean([(w * 0.5) ** 2 for w in (2 / 3, 2 / 3, 4 / 3, 4 / 3)])
    assert float(efficiency_loss(everything, spec, config, 'width')) == pytest.approx(expected)
    on_target = Decisions(blocks=[torch.tensor([[1.0, 0.0]] * 2)] * 2,
                          tokens=[torch.ones(2, 2, 64) * 0.5, torch.ones(2, 2, 16) * 0.5])
    assert float(efficiency_loss(on_target, spec, config, 'width')) == pytest.approx(0.0)


def test_flops_budget_charges_the_costly_blocks_more():
    """Skipping a costly block lowers the FLOPs-weighted loss more than a cheap one."""
    config = ModelConfig(image_size=16, patch=2, dims=(32, 64), depths=(1, 1))
    costs = [block_flops(32, 64, 4), block_flops(64, 16, 4)]
    assert costs[0] > costs[1]
    spec = PolicySpec(0.2, 1.0)
    tokens = [torch.ones(4, 1, 64), torch.ones(4, 1, 16)]
    skip_first = Decisions(blocks=[torch.zeros(4, 1), torch.ones(4, 1)], tokens=tokens)
    skip_second = Decisions(blocks=[torch.ones(4, 1), torch.zeros(4, 1)], tokens=tokens)
    share_first = costs[1] / sum(costs)  # what still runs when the first block is skipped
    assert float(efficiency_loss(skip_first, spec, config)) == pytest.approx(
        (share_first - 0.2) ** 2)
    assert float(efficiency_loss(skip_first, spec, config)) \
        < float(efficiency_loss(skip_second, spec, config))
    # one budget, not a target per block: any split of the kept tokens that costs the same
    half = Decisions(blocks=[torch.ones(4, 1), torch.ones(4, 1)],
                     tokens=[torch.ones(4, 1, 64) * 0.5, torch.ones(4, 1, 16)])
    kept = (0.5 * costs[0] + costs[1]) / sum(costs)
    assert float(efficiency_loss(half, PolicySpec(1.0, kept), config)) == pytest.approx(0.0)
    with pytest.raises(ValueError, match='efficiency weights'):
        efficiency_loss(half, spec, config, 'tokens')


def test_distillation_pulls_each_task_towards_the_static_answer():
    """At the teacher's answer every task's distillation gradient vanishes; away from it not."""
    torch.manual_seed(0)
    teacher = {'segmentation': torch.randn(2, 7, 8, 8), 'depth': torch.rand(2, 1, 8, 8) * 5,
               'normals': torch.randn(2, 3, 8, 8), 'saliency': torch.randn(2, 1, 8, 8)}
    for task, answer in teacher.items():
        at_teacher = answer.clone().requires_grad_(True)
        loss = distillation_loss({task: at_teacher}, teacher)
        loss.backward()
        assert at_teacher.grad.abs().max() < 1e-6, task
        away = answer + torch.randn_like(answer)
        assert float(distillation_loss({task: away}, teacher)) > float(loss.detach()), task


def test_policy_targets_parse_and_bad_ones_say_why():
    policies = parse_targets(['low=0.7/0.6', 'low_agnostic=0.7/0.6'])
    assert policies['low'] == PolicySpec(0.7, 0.6)
    assert policies['low_agnostic'] == PolicySpec(0.7, 0.6, task_aware=False)
    assert policies['high'] == PolicySpec(0.9, 0.6)
    for entry, reason in [('medium=0.5/0.5', 'not one of'), ('low=0.5', 'BLOCKS/TOKENS'),
                          ('low=0/0.5', r'\(0, 1\]'), ('low=a/b', 'BLOCKS/TOKENS')]:
        with pytest.raises(ValueError, match=reason):
            parse_targets([entry])


def test_config_round_trips_through_json():
    config = ModelConfig(image_size=32, dims=(8, 16), depths=(1, 3))
    assert ModelConfig.from_json(json.loads(json.dumps(config.to_json()))) == config


def test_smoke_recipe_trains_exports_and_scores(tmp_path):
    """The CLI path end to end at toy size: train (all stages), export, eval."""
    from adaptive_perception.cli import main
    from adaptive_perception.multitask.export import export_adamtl
    from adaptive_perception.multitask.train import train_adamtl
    train = generate_dataset_arrays(40, seed=0, size=64)
    val = generate_dataset_arrays(32, seed=1, size=64)
    config = ModelConfig(dims=(16, 32, 64), depths=(1, 1, 1), head_dim=16, decoder_dim=8)
    checkpoint = train_adamtl(AdamtlTrainConfig(smoke=True, batch_size=16, distill=1.0), train,
                              val, tmp_path / 'adamtl.pt', config, val_description='val32',
                              log=lambda line: None)
    assert set(checkpoint['references']['single_task']['scores']) == set(config.tasks)
    assert {'static', 'policy_init', 'alternating', 'fine_tune'} <= set(checkpoint['history'])
    assert AdamtlTrainConfig.from_checkpoint(torch.load(
        tmp_path / 'adamtl.pt', map_location='cpu', weights_only=False)) == AdamtlTrainConfig(
        smoke=True, batch_size=16, distill=1.0)
    export_adamtl(tmp_path / 'adamtl.pt', tmp_path / 'model')
    report = tmp_path / 'eval.json'
    assert main(['eval', 'adamtl', '--model-dir', str(tmp_path / 'model'), '--data-count', '8',
                 '--policies', 'low', '--out', str(report)]) == 0
    scores = json.loads(report.read_text())['policies']
    assert set(scores) == {'static', 'low'}
    assert set(scores['low']['scores']) == set(config.tasks)
    assert scores['static']['delta_m_static'] == 0


def test_train_cli_sets_the_input_size_and_decoder_width(tmp_path):
    """``train adamtl --image-size --decoder-dim``: scenes and model at that size and width."""
    import torch

    from adaptive_perception.cli import main
    out = tmp_path / 'adamtl.pt'
    assert main(['train', 'adamtl', '--smoke', '--no-single-task', '--train-count', '32',
                 '--val-count', '8', '--image-size', '32', '--decoder-dim', '8',
                 '--out', str(out)]) == 0
    checkpoint = torch.load(out, map_location='cpu', weights_only=False)
    config = ModelConfig.from_json(checkpoint['config'])
    assert (config.image_size, config.decoder_dim) == (32, 8)
    assert checkpoint['provenance']['train'] == 'generated:seed=0,count=32,size=32'


@pytest.mark.parametrize('option', [['--image-size', '40'], ['--image-size', '0'],
                                    ['--decoder-dim', '12']])
def test_train_cli_refuses_a_size_the_model_cannot_take(option, tmp_path, capsys):
    from cli_errors import user_error
    out = tmp_path / 'adamtl.pt'
    assert 'must be a positive multiple' in user_error(
        capsys, ['train', 'adamtl', '--smoke', '--no-single-task', *option, '--out', str(out)])
    assert not out.exists()


def test_static_from_reuses_stage_one_and_references_must_share_it(tmp_path):
    """Stages 2-3 tuned again on an earlier stage 1; references only from the same one."""
    from adaptive_perception.multitask.export import export_adamtl
    from adaptive_perception.multitask.train import train_adamtl
    train = generate_dataset_arrays(32, seed=0, size=32)
    config = ModelConfig(image_size=32, dims=(8, 16), depths=(1, 1), head_dim=8,
                         decoder_dim=8, policy_hidden=4)
    smoke = AdamtlTrainConfig(smoke=True, batch_size=16)
    no_refs = replace(smoke, single_task=False)
    quiet = {'log': lambda line: None, 'val_description': 'v'}
    first = train_adamtl(smoke, train, train, tmp_path / 'a.pt', config, **quiet)
    same = train_adamtl(no_refs, train, train, tmp_path / 'e.pt', config,
                        static_from=tmp_path / 'a.stage1.pt', **quiet)
    for key, value in first['state_dict'].items():  # as if stage 1 had run again
        assert torch.equal(value, same['state_dict'][key]), key
    retargeted = replace(config, policies=parse_targets(['low=0.8/0.7']))
    again = train_adamtl(replace(no_refs, alpha=3.0), train, train, tmp_path / 'b.pt',
                         retargeted, static_from=tmp_path / 'a.stage1.pt', **quiet)
    assert again['config']['policies']['low']['block_target'] == 0.8
    for key, value in first['static']['state_dict'].items():
        assert torch.equal(value, again['static']['state_dict'][key])
    assert again['references'] == {}  # the stage-1 file has none
    manifest = export_adamtl(tmp_path / 'b.pt', tmp_path / 'model', tmp_path / 'a.pt')
    assert manifest.references == first['references']
    other = train_adamtl(replace(smoke, seed=1), train, train, tmp_path / 'c.pt', config,
                         **quiet)
    assert other['references']
    with pytest.raises(ValueError, match='does not share stage 1'):
        export_adamtl(tmp_path / 'b.pt', tmp_path / 'model2', tmp_path / 'c.pt')
    with pytest.raises(ValueError, match='other seed'):
        train_adamtl(replace(smoke, seed=2), train, train, tmp_path / 'd.pt', config,
                     static_from=tmp_path / 'a.pt', **quiet)


def test_references_trained_later_equal_a_full_runs_and_resume_where_stopped(tmp_path):
    """``train adamtl-references``: stage 1's data and recipe; a stop loses no task.

    Into a checkpoint, and into an exported model whose checkpoint is gone: the
    manifest carries stage 1's settings and the progress.
    """
    from adaptive_perception.cli import main
    from adaptive_perception.multitask.dataset import describe_generated
    from adaptive_perception.multitask.export import export_adamtl
    from adaptive_perception.multitask.train import (
        add_single_task_references,
        add_single_task_references_to_model,
        train_adamtl,
    )
    train = generate_dataset_arrays(24, seed=0, size=32)
    val = generate_dataset_arrays(8, seed=1, size=32)
    config = ModelConfig(image_size=32, dims=(8, 16), depths=(1, 1), head_dim=8,
                         decoder_dim=8, policy_hidden=4)
    quiet = {'log': lambda line: None,
             'train_description': describe_generated(24, 0, 32),
             'val_description': describe_generated(8, 1, 32)}
    smoke = AdamtlTrainConfig(smoke=True, batch_size=16)
    full = train_adamtl(smoke, train, val, tmp_path / 'full.pt', config, **quiet)
    skipped = train_adamtl(replace(smoke, single_task=False), train, val,
                           tmp_path / 'later.pt', config, **quiet)
    assert skipped['references'] == {}
    exported = export_adamtl(tmp_path / 'later.pt', tmp_path / 'exported')
    assert exported.references == {}
    assert exported.static_settings == skipped['static']['settings']

    class Stop(Exception):
        pass

    def stop_at_the_second_task(line):
        if line.startswith(f'[{config.tasks[1]}]'):
            raise Stop

    with pytest.raises(Stop):
        add_single_task_references(tmp_path / 'later.pt', log=stop_at_the_second_task)
    saved = torch.load(tmp_path / 'later.pt', map_location='cpu', weights_only=False)
    assert list(saved['static']['single_task_progress']['scores']) == [config.tasks[0]]
    assert saved['references'] == {}
    lines = []
    references = add_single_task_references(tmp_path / 'later.pt', log=lines.append)
    assert not any(line.startswith(f'[{config.tasks[0]}]') for line in lines)
    assert references == full['references']
    manifest = export_adamtl(tmp_path / 'later.pt', tmp_path / 'model')
    assert manifest.references == full['references']
    # The stage-1 file takes them too, and a file that has them is left as it is.
    assert main(['train', 'adamtl-references', '--checkpoint',
                 str(tmp_path / 'later.stage1.pt')]) == 0
    stage1 = torch.load(tmp_path / 'later.stage1.pt', map_location='cpu', weights_only=False)
    assert stage1['static']['references'] == full['references']
    assert add_single_task_references(tmp_path / 'full.pt', log=lines.append) == \
        full['references']
    assert lines[-1].endswith('has its single-task references already')
    # The exported model, with the checkpoint gone; the engine loads it mid-way too.
    (tmp_path / 'later.pt').unlink()
    (tmp_path / 'later.stage1.pt').unlink()
    with pytest.raises(Stop):
        add_single_task_references_to_model(tmp_path / 'exported', log=stop_at_the_second_task)
    halfway = json.loads((tmp_path / 'exported' / 'manifest.json').read_text())
    assert list(halfway['single_task_progress']['scores']) == [config.tasks[0]]
    assert MultiTaskEngine(tmp_path / 'exported').references == {}
    assert main(['train', 'adamtl-references', '--model-dir', str(tmp_path / 'exported')]) == 0
    done = json.loads((tmp_path / 'exported' / 'manifest.json').read_text())
    assert done['references'] == full['references']
    assert 'single_task_progress' not in done
    assert set(done['provenance']['single_task_history']) == set(config.tasks)
    assert MultiTaskEngine(tmp_path / 'exported').references == full['references']


@pytest.mark.parametrize('content, error', [
    (None, 'cannot read the checkpoint'), (b'not torch', 'cannot read the checkpoint'),
    ({'format': 'other'}, 'not an AdaMTL checkpoint')])
def test_references_cli_says_what_is_wrong_with_the_checkpoint(tmp_path, content, error,
                                                               capsys):
    from cli_errors import user_error
    path = tmp_path / 'x.pt'
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    assert error in user_error(capsys, ['train', 'adamtl-references', '--checkpoint',
                                        str(path)])


def test_references_cli_says_when_a_model_does_not_record_its_static_stage(random_adamtl,
                                                                          tmp_path, capsys):
    from cli_errors import user_error
    model_dir, _ = random_adamtl
    before = {p.name: p.stat().st_mtime_ns for p in model_dir.iterdir()}
    assert 'does not record the settings of its static stage' in user_error(
        capsys, ['train', 'adamtl-references', '--model-dir', str(model_dir)])
    assert {p.name: p.stat().st_mtime_ns for p in model_dir.iterdir()} == before
    assert 'cannot read the AdaMTL manifest' in user_error(
        capsys, ['train', 'adamtl-references', '--model-dir', str(tmp_path)])


@pytest.mark.parametrize('description', ['', 'generated:seed=1', 'folder:', 'web:x'])
def test_a_data_description_that_names_nothing_says_so(description):
    from adaptive_perception.multitask.dataset import from_description
    with pytest.raises(ValueError, match='cannot tell which data'):
        from_description(description, 32)


def test_int8_graphs_track_fp32_and_switching_precision_loads_nothing(tmp_path, frames,
                                                                     random_adamtl, monkeypatch):
    """Check ``export adamtl --int8-only`` on an exported model.

    Every graph gets a calibrated INT8 copy (FP32 files untouched), outputs stay
    close, a precision switch loads nothing.
    """
    import shutil

    import onnxruntime

    from adaptive_perception.cli import main
    model_dir = tmp_path / 'model'
    shutil.copytree(random_adamtl[0], model_dir)
    before = {p.name: p.read_bytes() for p in model_dir.glob('*.onnx')}
    main(['export', 'adamtl', '--out', str(model_dir), '--int8-only',
          '--calibration-frames', '8'])
    assert {p.name: p.read_bytes() for p in model_dir.glob('*.onnx') if p.name in before} \
        == before
    engine = MultiTaskEngine(model_dir)
    manifest = engine.manifest
    assert engine.precisions == ('fp32', 'int8')
    assert set(manifest.int8['graphs']) == set(manifest.graphs)
    assert manifest.int8['calibration']['frames'] == 8
    report = manifest.int8['reports']['encoder_policy']
    assert report['quantized_ops'].get('Gemm', 0) > 0
    assert 'reads a policy array' in ' '.join(report['excluded'].values())
    created = []
    real = onnxruntime.InferenceSession
    monkeypatch.setattr(onnxruntime, 'InferenceSession',
                        lambda *a, **k: created.append(a) or real(*a, **k))
    image = frames.images[0]
    for policy in (STATIC, 'low_agnostic'):
        fp32 = engine.encode(engine.preprocess(image), policy)[0]
        int8 = engine.encode(engine.preprocess(image), policy, precision='int8')[0]
        # on fixed inputs: each stage's output within 10% of its FP32 range (measured:
        # about 3% on this untrained model; 1-2% on the shipped one)
        for a, b in zip(fp32, int8, strict=True):
            assert np.abs(a - b).max() <= 0.1 * np.ptp(a)
        result = engine.infer(image, policy, precision='int8')
        assert result.precision == 'int8'
    assert created == []
    assert engine.precision_runs == {'fp32': 0, 'int8': 2}
    with pytest.raises(ValueError, match='no int4 graphs'):
        engine.infer(image, precision='int4')
