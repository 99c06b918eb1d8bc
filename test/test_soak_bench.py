"""``adaptive-perception bench soak``: the fit and the targets, and a 2-minute run of the bench."""

import json
import math
import os
import subprocess
import sys

import pytest

from adaptive_perception.launcher.soak import memory_fit, process_usage, summarise
from ros_harness import node_env


def _samples(minutes, growth_mb_per_min, rate=10.0, every_s=30.0):
    samples = []
    for i in range(int(minutes * 60 / every_s) + 1):
        t = i * every_s
        samples.append({'t_s': t, 'nodes': {
            'adamtl_multitask': {'rss_mb': 185.0 + growth_mb_per_min * t / 60, 'cpu_s': 0.5 * t,
                                 'rate_hz': rate, 'latency_p95_ms': 80.0,
                                 'frames_dropped': 0.0},
            'budget_manager': {'rss_mb': 70.0 + (0.3 if i % 2 else 0.0), 'cpu_s': 0.02 * t,
                               'rate_hz': math.nan, 'latency_p95_ms': math.nan,
                               'frames_dropped': math.nan}}})
    return samples


EXECUTABLES = {'adamtl_multitask': 'adamtl_multitask', 'budget_manager': 'budget_manager'}


def test_memory_fit_ignores_the_warm_up_and_finds_the_slope():
    times = [60.0 * m for m in range(11)]
    rss = [100.0 + (20.0 if m < 2 else 0.0) + 0.5 * m for m in range(11)]  # warm-up jump
    fit = memory_fit(times, rss, warmup_s=120.0)
    assert fit['points'] == 9 and fit['slope_mb_per_min'] == pytest.approx(0.5)
    assert math.isnan(memory_fit(times[:2], rss[:2], 0.0)['slope_mb_per_min'])


def test_targets_flag_growth_slow_rates_and_exits():
    flat = summarise(_samples(30, 0.0), EXECUTABLES, 10.0, 300.0, {})
    assert flat['all_targets_met'], flat['targets']
    node = flat['nodes']['adamtl_multitask']
    assert node['cpu_percent'] == pytest.approx(50.0)
    assert node['rate_min_hz'] == 10.0 and node['rate_ok']
    assert 'rate_ok' not in flat['nodes']['budget_manager']  # not fed by the camera
    growing = summarise(_samples(30, 0.5), EXECUTABLES, 10.0, 300.0, {})
    assert growing['nodes']['adamtl_multitask']['memory']['slope_mb_per_min'] == \
        pytest.approx(0.5)
    assert not growing['targets']['memory_slope'] and growing['targets']['rates']
    slow = summarise(_samples(30, 0.0, rate=9.0), EXECUTABLES, 10.0, 300.0, {})
    assert not slow['targets']['rates']
    assert slow['nodes']['adamtl_multitask']['rate_samples_below'] == 60
    died = summarise(_samples(30, 0.0), EXECUTABLES, 10.0, 300.0,
                     {'budget_manager': [{'t': 100.0, 'code': -9}]})
    assert not died['targets']['no_exits'] and not died['all_targets_met']


def test_process_usage_reads_this_process():
    rss_mb, cpu_s = process_usage(os.getpid())
    assert 10 < rss_mb < 100_000 and cpu_s > 0


def test_two_minute_soak_of_the_edge_pipeline(tmp_path):
    """The bench itself, as in CI: a sample every 10 s, memory fitted after 30 s."""
    out = tmp_path / 'soak'
    run = subprocess.run(
        [sys.executable, '-m', 'adaptive_perception.cli', 'bench', 'soak', '--minutes', '2',
         '--sample-s', '10', '--warmup-minutes', '0.5', '--out', str(out)],
        env={**os.environ, **node_env()}, capture_output=True, text=True, timeout=400)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    data = json.loads((out / 'soak.json').read_text())
    assert len(data['samples']) >= 11, data['samples']
    names = {'budget_manager', 'power_simulator', 'camera_source', 'imu_simulator',
             'adacon_detector', 'adamtl_multitask', 'activity_recognizer'}
    for sample in data['samples']:
        assert set(sample['nodes']) == names
        for values in sample['nodes'].values():
            assert values['state'] == 'running'
            assert math.isfinite(values['rss_mb']) and values['rss_mb'] > 10
            assert math.isfinite(values['cpu_s'])
    summary = data['summary']
    for name in names:
        fit = summary['nodes'][name]['memory']
        assert fit['points'] >= 8 and math.isfinite(fit['slope_mb_per_min']), (name, fit)
    # The camera-fed nodes reported a rate (whatever it is on a loaded machine).
    for name in ('adacon_detector', 'adamtl_multitask'):
        assert summary['nodes'][name]['rate_max_hz'] > 0
        assert math.isfinite(summary['nodes'][name]['latency_p95_max_ms'])
    assert set(summary['targets']) == {'memory_slope', 'rates', 'no_exits'}
    assert summary['targets']['no_exits'], summary['nodes']
    assert (out / 'soak.png').stat().st_size > 10_000
    assert '| adamtl_multitask |' in run.stdout and 'targets: ' in run.stdout
