"""One source of truth: config/edge.yaml feeds both ros2 launch and the pip-world launcher."""

import runpy
import sys
import types

import pytest
import yaml

from adaptive_perception.budget.manager_node import NODE_PARAMS, POLICY_PARAMS
from adaptive_perception.cli import build_parser
from adaptive_perception.launcher.plan import default_params_file, load_plan
from ros_harness import REPO


def test_plan_selects_power_source_and_perception_nodes(tmp_path):
    names = [s.name for s in load_plan()]
    assert names == ['budget_manager', 'power_simulator', 'camera_source', 'adacon_detector']
    assert [s.name for s in load_plan(power='real', camera='none', perception='none')] == [
        'budget_manager', 'power_monitor']
    assert [s.name for s in load_plan(power='none', perception='adacon_detector')] == [
        'budget_manager', 'camera_source', 'adacon_detector']
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


def _fake_launch_modules(monkeypatch, share_dir):
    """Minimal stand-ins for launch / launch_ros (not installable here) that record calls."""
    def module(name, **attrs):
        mod = types.ModuleType(name)
        mod.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, name, mod)

    class Recorder:
        def __init__(self, *args, **kwargs):
            self.args, self.kwargs = args, kwargs

    class LaunchConfiguration:
        values = {}

        def __init__(self, name):
            self.name = name

        def perform(self, context):
            return context[self.name]

    module('launch', LaunchDescription=Recorder)
    module('launch.actions', DeclareLaunchArgument=Recorder, OpaqueFunction=Recorder)
    module('launch.substitutions', LaunchConfiguration=LaunchConfiguration)
    module('launch_ros')
    module('launch_ros.actions', Node=Recorder)
    module('ament_index_python')
    module('ament_index_python.packages', get_package_share_directory=lambda pkg: share_dir)


def test_launch_file_starts_what_the_plan_says(monkeypatch):
    _fake_launch_modules(monkeypatch, str(REPO))
    launch_file = runpy.run_path(str(REPO / 'launch' / 'edge.launch.py'))
    description = launch_file['generate_launch_description']()
    [actions] = description.args
    arguments = {a.args[0]: a.kwargs['default_value'] for a in actions[:-1]}
    assert arguments == {'params_file': str(default_params_file()), 'power': 'sim',
                         'camera': 'sim', 'perception': 'all'}
    opaque = actions[-1]
    nodes = opaque.kwargs['function'](arguments)
    plan = load_plan(arguments['params_file'])
    assert [(n.kwargs['executable'], n.kwargs['name'], n.kwargs['parameters'])
            for n in nodes] == [(s.executable, s.name, [s.parameters]) for s in plan]
    assert all(n.kwargs['package'] == 'adaptive_perception' for n in nodes)


def test_cli_parses_the_documented_commands():
    parser = build_parser()
    args = parser.parse_args(['launch', 'edge', '--duration', '60', '--report-dir', 'r'])
    assert (args.pipeline, args.duration, args.power) == ('edge', 60.0, 'sim')
    assert parser.parse_args(['bench', 'budget']).target == 'budget'
    assert parser.parse_args(['run', 'budget_manager']).executable == 'budget_manager'
    with pytest.raises(SystemExit):
        parser.parse_args(['launch', 'edge', '--power', 'solar'])
