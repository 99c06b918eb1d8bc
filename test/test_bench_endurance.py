"""bench endurance: the metrics (pure) and a smoke run of the real closed loop."""

import json
import subprocess
import sys

import pytest

from adaptive_perception.budget.endurance import (
    PERCEPTION,
    level_quality,
    node_level_quality,
    summarise,
)
from adaptive_perception.launcher.plan import load_plan


def test_level_quality_is_relative_to_level_0_and_falls_with_the_level():
    quality = level_quality()
    assert quality[0] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(quality, quality[1:], strict=False))
    only_detector = level_quality({name: float(name == 'adacon_detector')
                                   for name in PERCEPTION})
    detector = node_level_quality()['adacon_detector']
    assert only_detector[3] == pytest.approx(detector[3] / detector[0])


def test_level_quality_follows_the_shipped_profiles_entry_by_entry():
    specs = {s.name: s for s in load_plan(power='sim', perception='all', camera='sim',
                                          imu='sim')}
    modes = specs['adacon_detector'].parameters['level_modes']
    per_node = node_level_quality()
    assert set(per_node) == set(PERCEPTION)
    assert all(len(q) == len(modes) for q in per_node.values())
    changed = {'adacon_detector': ['static', 'single@0.5/int8', 'single@0.5/int8',
                                   'single@0.5/int8'],
               'adamtl_multitask': ['static'] * 4, 'activity_recognizer': ['F100_A128:3'] * 4}
    assert node_level_quality(changed)['adacon_detector'] == [0.658, 0.551, 0.551, 0.551]
    with pytest.raises(ValueError, match=r"no model-card quality .*'single@0.75'"):
        node_level_quality({**changed, 'adacon_detector': ['static', 'single@0.75']})


def test_summarise_counts_life_levels_changes_heat_and_quality():
    quality = [1.0, 0.9, 0.8, 0.5]
    samples = [(0.0, 1.0, 60.0, 0), (1800.0, 0.5, 70.0, 0), (3600.0, 0.3, 70.0, 1),
               (5400.0, 0.0, 50.0, 2), (7200.0, 0.0, 40.0, 2)]
    m = summarise(samples, quality, (65.0, 75.0), horizon_s=7200.0)
    assert m['battery_life_s'] == 5400.0
    assert m['time_at_level_s'] == {'0': 3600.0, '1': 1800.0}
    assert m['level_changes'] == 2 and m['level_changes_per_h'] == pytest.approx(2 / 1.5)
    assert m['time_above_c_s'] == {'65.0': 3600.0, '75.0': 0.0}
    assert m['quality_time_s'] == pytest.approx(3600.0 + 0.9 * 1800.0)
    assert m['battery_at_horizon'] == 0.0


def test_smoke_run_of_the_closed_loop(tmp_path):
    """Real nodes, measured load, accelerated time: the battery drains and is reported."""
    run = subprocess.run([sys.executable, '-m', 'adaptive_perception.cli', 'bench', 'endurance',
                          '--smoke', '--scenarios', 'light', '--static-wall-s', '20',
                          '--out', str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    result = json.loads((tmp_path / 'bench_endurance.json').read_text())
    entry = result['scenarios']['light']
    static = entry['runs']['static']
    assert static['samples'][-1][1] < 1.0, 'the measured load drained the simulated battery'
    assert 0.0 < entry['perception_share_static'] < 1.0
    assert static['node_power']['adacon_detector']['0']['cpu_s_per_s'] > 0
    assert entry['runs']['mission']['mission_s'] > 0
    assert (tmp_path / 'bench_endurance.png').stat().st_size > 0
    assert 'perception share of device power' in run.stdout


def test_edge_report_energy_section_per_node_and_level():
    from adaptive_perception.launcher.report import energy_rows, energy_section
    statuses = {
        'adacon_detector': {'cpu_s_per_s_level_0': '0.2', 'cpu_demand_s_per_s_level_0': '0.25',
                            'cpu_ms_per_frame_level_0': '7.0', 'ort_cpu_s_per_s_level_0': '0.1',
                            'knob_level_0': 'static', 'cpu_s_per_s_level_3': '0.1'},
        'power_simulator': {'cpu_s_per_s_level_0': '0.01', 'sim_time_s': '5'},
    }
    rows = energy_rows(statuses, 'laptop_cpu')
    assert [(r['node'], r['level']) for r in rows] == [('adacon_detector', 0),
                                                       ('adacon_detector', 3)]
    from adaptive_perception.power.device import device
    assert rows[0]['watts'] == pytest.approx(device('laptop_cpu').load_w(0.25))
    assert rows[0]['watts'] > rows[1]['watts'] > 0
    text = energy_section(statuses)
    assert '| adacon_detector | 0 | static | 0.2 | 0.25 | 7 | 0.1 |' in text
    assert 'no node reported' in energy_section({})
