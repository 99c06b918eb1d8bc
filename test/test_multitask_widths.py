"""bench multitask-widths: narrower AdaMTL encoders trained, scored and timed."""

import json
from dataclasses import replace

from adaptive_perception.channels.encoder_widths import (
    load_stage1,
    narrow_config,
    run_bench_multitask_widths,
)
from adaptive_perception.multitask.config import AdamtlTrainConfig
from adaptive_perception.multitask.dataset import describe_generated, generate_dataset_arrays
from adaptive_perception.multitask.model import AdaMTL, ModelConfig
from adaptive_perception.multitask.train import train_adamtl
from adaptive_perception.multitask.validate import score_model

CONFIG = ModelConfig(dims=(16, 32, 64), depths=(1, 1, 1), head_dim=16, decoder_dim=8)


def test_a_narrower_encoder_keeps_its_heads_and_decoders():
    narrow = narrow_config(ModelConfig(), 0.75)
    assert narrow.dims == (24, 48, 96) and narrow.head_dim == 24
    assert narrow.decoder_dim == ModelConfig().decoder_dim and narrow.policies == {}
    full, half = AdaMTL(ModelConfig(policies={})), AdaMTL(narrow_config(ModelConfig(), 0.5))
    assert [b.attn.heads for s in half.stages for b in s] == \
        [b.attn.heads for s in full.stages for b in s]


def test_bench_trains_scores_and_times_every_width_on_stage_1s_data(tmp_path):
    train = generate_dataset_arrays(32, seed=0, size=64)
    val = generate_dataset_arrays(8, seed=1, size=64)
    train_adamtl(AdamtlTrainConfig(smoke=True, batch_size=16, single_task=False), train, val,
                 tmp_path / 'adamtl.pt', CONFIG, train_description=describe_generated(32, 0, 64),
                 val_description=describe_generated(8, 1, 64), log=lambda line: None)
    report = run_bench_multitask_widths(tmp_path / 'adamtl.pt', tmp_path / 'bench',
                                        widths=[0.5], frames=6, log=lambda line: None)
    assert report == json.loads((tmp_path / 'bench' / 'bench_multitask_widths.json').read_text())
    assert report['epochs'] == 1  # the checkpoint's stage-1 epochs
    assert report['val'] == describe_generated(8, 1, 64)
    full, half = report['widths']['1'], report['widths']['0.5']
    assert full['delta_m'] == 0 and full['latency_vs_full'] == 1
    # Stage 1 scored on the scenes the bench generated again: its own validation data.
    assert full['scores'] == score_model(load_stage1(tmp_path / 'adamtl.pt')[0], val)
    assert half['dims'] == [8, 16, 32] and half['flops_vs_full'] < 0.5
    assert set(half['scores']) == set(CONFIG.tasks)
    assert half['latency_p50_ms'] > 0 and report['frames'] == 6
    assert half['pays'] == (half['latency_vs_full'] < 1 and half['delta_m'] >= -2)


def test_bench_cli_runs_on_a_stage_1_file_and_says_what_is_wrong(tmp_path, capsys):
    from adaptive_perception.cli import main
    from cli_errors import user_error
    config = replace(CONFIG, image_size=32)
    train = generate_dataset_arrays(8, seed=0, size=32)
    val = generate_dataset_arrays(4, seed=1, size=32)
    smoke = AdamtlTrainConfig(smoke=True, batch_size=4, single_task=False)
    train_adamtl(smoke, train, val, tmp_path / 'adamtl.pt', config,
                 train_description=describe_generated(8, 0, 32),
                 val_description=describe_generated(4, 1, 32), log=lambda line: None)
    # Its stage-1 file serves as well: the bench needs nothing stages 2-3 trained.
    assert main(['bench', 'multitask-widths', '--checkpoint',
                 str(tmp_path / 'adamtl.stage1.pt'), '--widths', '0.5', '--frames', '2',
                 '--out', str(tmp_path / 'bench')]) == 0
    report = json.loads((tmp_path / 'bench' / 'bench_multitask_widths.json').read_text())
    assert report['val'] == describe_generated(4, 1, 32)
    assert 'cannot read the checkpoint' in user_error(
        capsys, ['bench', 'multitask-widths', '--checkpoint', str(tmp_path / 'missing.pt')])
    train_adamtl(smoke, train, val, tmp_path / 'unnamed.pt', config,
                 log=lambda line: None)  # no data description recorded
    assert 'cannot tell which data' in user_error(
        capsys, ['bench', 'multitask-widths', '--checkpoint', str(tmp_path / 'unnamed.pt')])
