"""bench multitask on the small test model: every configuration, in one interleaved run."""

import json

import pytest

from adaptive_perception.multitask.bench import TASK_DROP, run_bench_multitask
from adaptive_perception.multitask.dataset import generate_dataset_arrays


def test_bench_measures_every_configuration_and_checks_the_targets(random_adamtl, tmp_path):
    data = generate_dataset_arrays(12, seed=7, size=32)
    report = run_bench_multitask(random_adamtl[0], data, 'generated:seed=7,count=12', tmp_path)
    rows = report['rows']
    drop = f'{TASK_DROP[0]}:{"+".join(TASK_DROP[1])}'
    assert set(rows) == {'static', 'high', 'low', 'low_agnostic', 'random', drop}
    assert rows['static']['flops_vs_static'] == 1 and rows['static']['delta_m_static'] == 0
    for name, row in rows.items():
        assert row['latency_p50_ms'] > 0 and row['latency_p95_ms'] >= row['latency_p50_ms']
        assert 0 <= row['block_share'] <= 1 and 0 <= row['token_share'] <= 1, name
    assert set(rows[drop]['scores']) == set(TASK_DROP[1])
    # the random baseline keeps about the shares low kept on its probe frames
    assert rows['random']['flops_vs_static'] < 1
    for name in ('low', 'low_agnostic'):
        checked = report['targets'][name]
        assert checked['flops_reduction'] == 1 - rows[name]['flops_vs_static']
        assert checked['delta_m_met'] == (rows[name]['delta_m_static'] >= -2.0)
    encoder = report['encoder_only']
    assert set(encoder) == {'static', 'every token gathered', 'high', 'low', 'low_agnostic'}
    assert encoder['static']['vs_static'] == 1 and all(e['p50_ms'] > 0 for e in encoder.values())
    assert json.loads((tmp_path / 'bench_multitask.json').read_text()) == report
    assert (tmp_path / 'bench_multitask_flops.png').stat().st_size > 0


def test_bench_refuses_a_turn_without_frames(random_adamtl, tmp_path):
    data = generate_dataset_arrays(2, seed=7, size=32)
    with pytest.raises(ValueError, match='frames per turn'):
        run_bench_multitask(random_adamtl[0], data, 'generated', tmp_path, frames_per_turn=0)
    assert not (tmp_path / 'bench_multitask.json').exists()


def test_bench_cli_generates_scenes_at_the_model_input_size(random_adamtl, tmp_path):
    from adaptive_perception.cli import main
    # The test model takes 32x32; the package default is 64x64.
    assert main(['bench', 'multitask', '--model-dir', str(random_adamtl[0]), '--data-count',
                 '3', '--frames-per-turn', '1', '--out', str(tmp_path)]) == 0
    report = json.loads((tmp_path / 'bench_multitask.json').read_text())
    assert report['data'] == 'generated:seed=1,count=3,size=32'


def test_bench_cli_says_which_model_folder_is_wrong(tmp_path, capsys):
    from cli_errors import user_error
    line = user_error(capsys, ['bench', 'multitask', '--model-dir', str(tmp_path / 'missing'),
                               '--out', str(tmp_path / 'out')])
    assert 'cannot read the AdaMTL manifest' in line
    assert "see 'adaptive-perception bench multitask --help'" in line
    assert not (tmp_path / 'out').exists()
