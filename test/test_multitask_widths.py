"""bench multitask-widths: narrower AdaMTL encoders trained, scored and timed (issue 6)."""

import json
from dataclasses import replace

import pytest

from adaptive_perception.channels.encoder_widths import (
    narrow_config,
    run_bench_multitask_widths,
)
from adaptive_perception.multitask.dataset import generate_dataset_arrays
from adaptive_perception.multitask.model import AdaMTL, ModelConfig
from adaptive_perception.multitask.train import Schedule, train_adamtl

CONFIG = ModelConfig(dims=(16, 32, 64), depths=(1, 1, 1), head_dim=16, decoder_dim=8)


def test_a_narrower_encoder_keeps_its_heads_and_decoders():
    narrow = narrow_config(ModelConfig(), 0.75)
    assert narrow.dims == (24, 48, 96) and narrow.head_dim == 24
    assert narrow.decoder_dim == ModelConfig().decoder_dim and narrow.policies == {}
    full, half = AdaMTL(ModelConfig(policies={})), AdaMTL(narrow_config(ModelConfig(), 0.5))
    assert [b.attn.heads for s in half.stages for b in s] == \
        [b.attn.heads for s in full.stages for b in s]


def test_bench_trains_scores_and_times_every_width(tmp_path):
    train = generate_dataset_arrays(32, seed=0, size=64)
    val = generate_dataset_arrays(8, seed=1, size=64)
    train_adamtl(train, val, tmp_path / 'adamtl.pt', Schedule.smoke(), CONFIG, batch_size=16,
                 single_task=False, train_description='train32', val_description='val8',
                 log=lambda line: None)
    report = run_bench_multitask_widths(tmp_path / 'adamtl.pt', train, 'train32', val, 'val8',
                                        tmp_path / 'bench', widths=[0.5], frames=6,
                                        log=lambda line: None)
    assert report == json.loads((tmp_path / 'bench' / 'bench_multitask_widths.json').read_text())
    assert report['epochs'] == 1  # the checkpoint's stage-1 epochs
    full, half = report['widths']['1'], report['widths']['0.5']
    assert full['delta_m'] == 0 and full['latency_vs_full'] == 1
    assert half['dims'] == [8, 16, 32] and half['flops_vs_full'] < 0.5
    assert set(half['scores']) == set(CONFIG.tasks)
    assert half['latency_p50_ms'] > 0 and report['frames'] == 6
    assert half['pays'] == (half['latency_vs_full'] < 1 and half['delta_m'] >= -2)
    with pytest.raises(ValueError, match='pass the same data'):
        run_bench_multitask_widths(tmp_path / 'adamtl.pt', train, 'other', val, 'val8',
                                   tmp_path / 'again', widths=[0.5], log=lambda line: None)


def test_bench_cli_generates_scenes_at_the_checkpoint_input_size(tmp_path):
    from adaptive_perception.cli import main
    config = replace(CONFIG, image_size=32)
    train = generate_dataset_arrays(8, seed=0, size=32)
    val = generate_dataset_arrays(4, seed=1, size=32)
    # The descriptions the CLI gives the scenes it generates at the checkpoint's size.
    train_adamtl(train, val, tmp_path / 'adamtl.pt', Schedule.smoke(), config, batch_size=4,
                 single_task=False, train_description='generated:seed=0,count=8,size=32',
                 val_description='generated:seed=1,count=4,size=32', log=lambda line: None)
    # Its stage-1 file serves as well: the bench needs nothing stages 2-3 trained.
    assert main(['bench', 'multitask-widths', '--checkpoint',
                 str(tmp_path / 'adamtl.stage1.pt'), '--train-count', '8', '--val-count', '4',
                 '--widths', '0.5', '--frames', '2', '--out', str(tmp_path / 'bench')]) == 0
    report = json.loads((tmp_path / 'bench' / 'bench_multitask_widths.json').read_text())
    assert report['val'] == 'generated:seed=1,count=4,size=32'
    with pytest.raises(SystemExit, match='bench multitask-widths: cannot read the checkpoint'):
        main(['bench', 'multitask-widths', '--checkpoint', str(tmp_path / 'missing.pt')])
