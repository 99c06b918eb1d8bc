"""The main job: the shipped demo settings change level, and the launcher reports it."""

import json
import os
import subprocess
import sys

import yaml

from adaptive_perception.budget.manager_node import POLICY_PARAMS, policy_config
from adaptive_perception.budget.policy import BudgetPolicy
from adaptive_perception.launcher.plan import load_plan
from adaptive_perception.power.model import PowerConfig, PowerModel
from ros_harness import REPO, node_env


def test_shipped_demo_settings_change_level_within_a_minute():
    """Closed loop without ROS: edge.yaml's simulator + policy, 60 wall seconds at 10 Hz."""
    plan = {s.executable: s.parameters for s in load_plan()}
    sim, manager = plan['power_simulator'], plan['budget_manager']
    config = PowerConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in sim.items()
                            if k in PowerConfig.__dataclass_fields__})
    model = PowerModel(config)
    policy = BudgetPolicy(policy_config({p.name: manager.get(p.name, p.default)
                                         for p in POLICY_PARAMS}), 0.0)
    level, reasons = 0, []
    for step in range(600):
        now = step / 10
        model.step(0.1 * sim['time_scale'], config.level_power(level))
        policy.battery(model.fraction, False, now)
        policy.temperature('/thermal/temperature', model.temperature_c, now)
        decision = policy.decide(now)
        if decision.changed:
            reasons.append(decision.reason)
        level = decision.level
    assert any(r.startswith('battery') for r in reasons), reasons
    assert any(r.startswith('temperature') for r in reasons), reasons


def test_launch_edge_runs_bounded_and_writes_the_report(tmp_path):
    params = yaml.safe_load((REPO / 'config' / 'edge.yaml').read_text())
    params['nodes']['power_simulator']['parameters']['time_scale'] = 600.0
    params_file = tmp_path / 'edge.yaml'
    params_file.write_text(yaml.safe_dump(params))
    report = tmp_path / 'report'
    env = {**os.environ, **node_env()}
    run = subprocess.run([sys.executable, '-m', 'adaptive_perception.cli', 'launch', 'edge',
                          '--params-file', str(params_file), '--duration', '12',
                          '--report-dir', str(report)], env=env, capture_output=True,
                         text=True, timeout=90)
    assert run.returncode == 0, run.stdout + run.stderr
    assert 'battery' in run.stdout and '| power_simulator |' in run.stdout
    data = json.loads((report / 'edge_report.json').read_text())
    assert len(data['level_events']) >= 2, data['level_events']
    assert len(data['samples']) > 20
    assert (report / 'edge_report.png').stat().st_size > 10_000
    markdown = (report / 'edge_report.md').read_text()
    assert '## Level changes' in markdown
    assert (report / 'logs' / 'budget_manager.log').exists()
    # The IMU activity pipeline ran in the same run: imu_simulator -> activity_recognizer.
    logs = (report / 'logs' / 'activity_recognizer.log').read_text()
    activity = data['activity']
    states = activity['states']
    assert len(states) >= 3, (activity['summary'], logs)   # one per second after the first 2 s
    assert activity['summary']['messages'] == len(states)
    assert {s['label'] for s in states} <= {'walk', 'upstairs', 'downstairs', 'sit', 'stand',
                                             'lie'}
    assert all(s['sensor_current_ua'] > 0 for s in states if s['sensor_state'])
    assert activity['truth_events'] and activity['summary']['truth']['compared'] > 0
    assert '## Activity (activity_recognizer)' in markdown
    assert f'ActivityState messages: {len(states)}' in markdown
    assert 'accuracy against /imu/activity_truth' in markdown
    assert 'activity: ' in run.stdout and '| activity_recognizer |' in run.stdout
