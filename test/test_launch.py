"""One source of truth: config/edge.yaml feeds both ros2 launch and the pip-world launcher."""


import pytest
import yaml

from adaptive_perception.budget.manager_node import NODE_PARAMS, POLICY_PARAMS
from adaptive_perception.cli import build_parser
from adaptive_perception.launcher.plan import (
    load_plan,
    share_dir,
)


def test_plan_selects_power_source_and_perception_nodes(tmp_path):
    names = [s.name for s in load_plan()]
    assert names == ['budget_manager', 'power_simulator', 'camera_source', 'imu_simulator',
                     'adacon_detector', 'adamtl_multitask', 'activity_recognizer']
    assert [s.name for s in load_plan(power='real', camera='none', perception='none',
                                      imu='none')] == ['budget_manager', 'power_monitor']
    assert [s.name for s in load_plan(power='none', perception='adacon_detector')] == [
        'budget_manager', 'camera_source', 'imu_simulator', 'adacon_detector']
    # imu:=none: a real IMU driver publishes; the recognizer still runs
    assert [s.name for s in load_plan(power='none', camera='none', imu='none')] == [
        'budget_manager', 'adacon_detector', 'adamtl_multitask', 'activity_recognizer']
    assert [s.name for s in load_plan(perception='activity_recognizer', camera='none')] == [
        'budget_manager', 'power_simulator', 'imu_simulator', 'activity_recognizer']
    custom = tmp_path / 'edge.yaml'
    custom.write_text(yaml.safe_dump({'nodes': {
        'budget_manager': {'executable': 'budget_manager', 'role': 'core'},
        'cam_a': {'executable': 'power_simulator', 'role': 'perception'},
        'cam_b': {'executable': 'power_simulator', 'role': 'perception'}}}))
    assert [s.name for s in load_plan(custom, 'none', 'cam_b')] == ['budget_manager', 'cam_b']
    assert len(load_plan(custom, 'none', 'all')) == 3
    assert len(load_plan(custom, 'none', 'none')) == 1


@pytest.mark.parametrize('document, kwargs, message', [
    ({'nodes': {'x': {'executable': 'nope', 'role': 'core'}}}, {}, 'unknown executable'),
    ({'nodes': {'x': {'executable': 'budget_manager', 'role': 'boss'}}}, {}, 'role'),
    ({'other': 1}, {}, 'nodes'),
    ({'nodes': {'x': {'executable': 'budget_manager', 'role': 'core'}}},
     {'perception': 'detector'}, 'unknown perception'),
    ({'nodes': {'x': {'executable': 'budget_manager', 'role': 'core'}}},
     {'power': 'solar'}, 'power'),
    ({'nodes': {'x': {'executable': 'budget_manager', 'role': 'core'}}},
     {'camera': 'usb'}, 'camera'),
    ({'nodes': {'x': {'executable': 'budget_manager', 'role': 'core'}}},
     {'imu': 'bmi160'}, r"imu must be one of \['none', 'sim'\], got 'bmi160'"),
])
def test_bad_plans_are_rejected_with_reason(tmp_path, document, kwargs, message):
    path = tmp_path / 'edge.yaml'
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ValueError, match=message):
        load_plan(path, **kwargs)


def test_shipped_manager_parameters_exist_and_are_consistent():
    [manager] = [s for s in load_plan() if s.executable == 'budget_manager']
    declared = {p.name for p in POLICY_PARAMS + NODE_PARAMS}
    assert set(manager.parameters) <= declared, set(manager.parameters) - declared
    from adaptive_perception.budget.manager_node import policy_config
    values = {p.name: manager.parameters.get(p.name, p.default) for p in POLICY_PARAMS}
    policy_config(values).validate()


def test_shipped_activity_parameters_fit_the_model_and_the_simulator():
    from adaptive_perception.activity.classifier import ActivityManifest
    from adaptive_perception.activity.recognizer_node import parse_sensing
    from adaptive_perception.activity.sensor import SensorConfig, parse_config
    plan = {s.name: s for s in load_plan()}
    sim, recognizer = plan['imu_simulator'].parameters, plan['activity_recognizer'].parameters
    assert plan['imu_simulator'].role == 'imu_sim'
    # ROS 2 parameters are statically typed: a float written as 100 would be refused.
    assert all(isinstance(sim[k], float) for k in ('sampling_hz', 'segment_s'))
    assert all(isinstance(recognizer[k], float)
               for k in ('confidence_threshold', 'level_timeout_s'))
    states = [parse_config(s) for s in ActivityManifest.load(
        share_dir() / 'models' / 'activity').states]
    # The simulator starts in the recognizer's top state; every level names a known state,
    # and a higher (more frugal) level never allows a costlier one.
    assert SensorConfig(sim['sampling_hz'], sim['averaging_window']) == states[0]
    caps = [parse_sensing(e, states)[0] for e in recognizer['level_sensing']]
    assert caps == sorted(caps) and caps[0] == 0, caps
    levels = plan['budget_manager'].parameters['level_names']
    assert len(recognizer['level_sensing']) == len(levels)
    assert recognizer['driver_node'] == 'imu_simulator'  # relative: follows a namespace


def test_shipped_multitask_parameters_parse_one_entry_per_level():
    from adaptive_perception.multitask.levels import parse_level_choice
    plan = {s.name: s for s in load_plan()}
    multitask = plan['adamtl_multitask']
    assert multitask.role == 'perception' and multitask.parameters['threads'] == 1
    assert isinstance(multitask.parameters['level_timeout_s'], float)
    choices = [parse_level_choice(e) for e in multitask.parameters['level_policies']]
    assert len(choices) == len(plan['budget_manager'].parameters['level_names'])
    assert choices[0].policy == 'static' and choices[0].tasks is None


def _activity_state(t, label, sensor_state='F100_A128', current=180.0):
    return {'t': t, 'stamp': t, 'label': label, 'confidence': 0.9, 'sensor_state': sensor_state,
            'requested_sensor_state': sensor_state, 'sensor_current_ua': current, 'level': 0}


def test_activity_report_section_counts_states_current_and_accuracy():
    from adaptive_perception.launcher.report import activity_section, activity_summary
    states = ([_activity_state(1.0, 'walk', '', 0.0)]
              + [_activity_state(t, 'walk') for t in (2.0, 3.0)]
              + [_activity_state(t, 'walk', 'F50_A16', 20.0) for t in (4.0, 5.0, 6.0)]
              + [_activity_state(t, 'sit', 'F50_A16', 20.0) for t in (7.0, 8.0, 9.0, 10.0)])
    truth = [{'t': 0.5, 'label': 'walk'}, {'t': 6.5, 'label': 'sit'}]
    summary = activity_summary(states, truth)
    assert summary['messages'] == 10
    assert [(e['t'], e['label']) for e in summary['timeline']] == [(1.0, 'walk'), (7.0, 'sit')]
    assert {k: v['messages'] for k, v in summary['sensor_states'].items()} == {
        'F100_A128': 2, 'F50_A16': 7, 'unconfirmed': 1}
    assert summary['sensor_states']['F50_A16']['share'] == 0.7
    assert summary['mean_sensor_current_ua'] == (2 * 180.0 + 7 * 20.0) / 9  # confirmed only
    truth_result = summary['truth']
    assert (truth_result['compared'], truth_result['correct']) == (10, 10)
    # states within 2 s (one window) of the change at 6.5 s are left out of 'steady'
    assert truth_result['steady_compared'] == 10 - 4
    section = activity_section(summary)
    assert section.startswith('## Activity')
    for text in ('ActivityState messages: 10', '1 label changes', '| F50_A16 | 7 | 70% | 20 |',
                 'mean modelled sensor current: 55.6 uA', 'accuracy against /imu/activity_truth: '
                 '1.00 (10/10)', 'leads or lags'):
        assert text in section, (text, section)
    # a wrong label, and no truth at all (imu:=none)
    states[-1] = _activity_state(10.0, 'lie', 'F50_A16', 20.0)
    assert activity_summary(states, truth)['truth']['correct'] == 9
    assert 'accuracy: - (no /imu/activity_truth' in activity_section(
        activity_summary(states, []))
    assert 'no ActivityState arrived' in activity_section(activity_summary([], truth))


def test_cli_parses_the_documented_commands():
    parser = build_parser()
    args = parser.parse_args(['launch', 'edge', '--duration', '60', '--report-dir', 'r'])
    assert (args.pipeline, args.duration, args.power, args.imu) == ('edge', 60.0, 'sim', 'sim')
    assert parser.parse_args(['launch', 'edge', '--imu', 'none']).imu == 'none'
    assert parser.parse_args(['bench', 'budget']).target == 'budget'
    assert parser.parse_args(['run', 'budget_manager']).executable == 'budget_manager'
    with pytest.raises(SystemExit):
        parser.parse_args(['launch', 'edge', '--power', 'solar'])
    with pytest.raises(SystemExit):
        parser.parse_args(['launch', 'edge', '--imu', 'real'])


def test_multitask_report_section_counts_images_per_task():
    from adaptive_perception.launcher.report import (
        multitask_line,
        multitask_section,
        multitask_summary,
    )
    outputs = ([{'t': 1.0 + i / 10, 'task': task, 'age_ms': 20.0 + i} for i in range(11)
                for task in ('segmentation', 'depth')]
               + [{'t': 1.0, 'task': 'normals', 'age_ms': 30.0}])
    status = {'policy': 'low', 'tasks': 'segmentation,depth', 'frames': '11',
              'frames_unwatched': '3', 'latency_p50_ms': '12.5', 'latency_p95_ms': '20',
              'block_share_mean': '0.75', 'token_share_mean': '0.5', 'flops_mean': '2.5e+06'}
    summary = multitask_summary(outputs, status)
    assert summary['messages'] == 23
    tasks = summary['tasks']
    assert [tasks[t]['messages'] for t in ('segmentation', 'depth', 'normals', 'saliency')] == [
        11, 11, 1, 0]
    assert tasks['depth']['rate_hz'] == pytest.approx(10.0)
    assert tasks['depth']['age_p50_ms'] == 25.0
    section = multitask_section(summary)
    for text in ('## Multi-task (adamtl_multitask)', '| depth | 11 | 10 | 25 |',
                 '| normals | 1 | - | 30 |', '| saliency | 0 | - | - |', 'policy low',
                 'tasks allowed segmentation,depth; 11 frames run, 3 unwatched',
                 'latency p50 12.5 ms, p95 20 ms', 'mean block share 0.75, token share 0.5',
                 'MFLOPs/frame 2.5'):
        assert text in section, (text, section)
    assert multitask_line(summary).startswith(
        'multitask: segmentation 11, depth 11, normals 1, saliency 0 images; policy low')
    assert 'no task output arrived' in multitask_section(multitask_summary([], None))
    assert 'no diagnostics from the node' in multitask_section(multitask_summary([], None))
