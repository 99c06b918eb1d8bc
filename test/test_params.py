"""Parameters as users type them: ints where doubles are declared, wrong kinds refused by name."""

import os
import subprocess
import sys

import pytest
import rclpy
from rclpy.node import Node
from rclpy.parameter import Parameter

from adaptive_perception.executables import EXECUTABLES
from adaptive_perception.ros.params import Param, ParameterError, declare, on_change
from ros_harness import node_env

PARAMS = [
    Param('period_s', 1.0, 'a double', 0.0, 100.0),
    Param('count', 3, 'an integer', 0, 10),
    Param('name', 'x', 'a string'),
    Param('gains', [1.0, 2.0], 'a double array'),
    Param('flag', True, 'a boolean'),
    Param('source', 'generator', 'a text that may be an index', integer_as_text=True),
]


@pytest.fixture
def context():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)


def _node(context, **overrides):
    node = Node('params_probe', context=context,
                parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
    applied = []
    values = declare(node, PARAMS)
    on_change(node, [p.name for p in PARAMS], lambda c: None, applied.append)
    return node, values, applied


def test_integers_for_doubles_are_converted_at_start_and_at_run_time(context):
    node, values, applied = _node(context, period_s=10, gains=[3, 4], source=0)
    assert values['period_s'] == 10.0 and isinstance(values['period_s'], float)
    assert values['gains'] == [3.0, 4.0] and all(isinstance(v, float) for v in values['gains'])
    assert values['source'] == '0'
    result = node.set_parameters([Parameter('period_s', value=30)])[0]
    assert result.successful, result.reason
    stored = node.get_parameter('period_s')
    assert stored.type_ == Parameter.Type.DOUBLE and stored.value == 30.0
    assert applied[-1]['period_s'] == 30.0 and isinstance(applied[-1]['period_s'], float)
    node.destroy_node()


@pytest.mark.parametrize('name, value, expected', [
    ('period_s', 'fast', "parameter 'period_s' takes a floating-point number (double), "
                         "got a string 'fast'"),
    ('count', 2.5, "parameter 'count' takes an integer, got a floating-point number 2.5"),
    ('name', 7, "parameter 'name' takes a string, got an integer 7"),
    ('gains', ['a'], "parameter 'gains' takes a list of floating-point numbers"),
    ('flag', 1, "parameter 'flag' takes a boolean (true/false), got an integer 1"),
])
def test_a_wrong_kind_is_refused_with_the_name_and_the_type(context, name, value, expected):
    node, _, applied = _node(context)
    before = node.get_parameter(name).value
    result = node.set_parameters([Parameter(name, value=value)])[0]
    assert not result.successful and expected in result.reason, result.reason
    assert node.get_parameter(name).value == before and not applied
    node.destroy_node()
    with pytest.raises(ParameterError, match=expected.replace('(', r'\(').replace(')', r'\)')):
        _node(context, **{name: value})


def test_an_out_of_range_start_value_names_the_parameter(context):
    with pytest.raises(ParameterError, match="parameter 'count': 11 refused"):
        _node(context, count=11)


# One float parameter (and its kind) per executable: started with a string for it, every
# node must stop at once with one FATAL line naming it, exit code 1 and no traceback.
WRONG_KIND = {
    'budget_manager': 'dwell_s', 'power_monitor': 'publish_rate_hz',
    'power_simulator': 'publish_rate_hz',
    'adacon_detector': 'level_timeout_s', 'adamtl_multitask': 'level_timeout_s',
    'camera_source': 'rate_hz', 'imu_simulator': 'sampling_hz',
    'activity_recognizer': 'level_timeout_s',
}


def test_every_executable_refuses_a_wrong_kind_on_the_command_line_without_a_traceback():
    assert set(WRONG_KIND) == set(EXECUTABLES)
    procs = {exe: subprocess.Popen(
        [sys.executable, '-m', module, '--ros-args', '-p', f'{WRONG_KIND[exe]}:=fast'],
        env={**os.environ, **node_env()}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
        for exe, module in EXECUTABLES.items()}
    for exe, proc in procs.items():
        output, _ = proc.communicate(timeout=120)
        assert proc.returncode == 1, (exe, output)
        assert 'Traceback' not in output, (exe, output)
        assert f"cannot start: parameter '{WRONG_KIND[exe]}' takes a floating-point number" \
            in output, (exe, output)


def test_an_integer_rate_on_the_command_line_is_taken():
    proc = subprocess.run(
        [sys.executable, '-c', 'import sys; from adaptive_perception.sources.camera_node import '
         'CameraSource; import rclpy; rclpy.init(args=sys.argv); n = CameraSource(); '
         "print('rate', n.get_parameter('rate_hz').value, n.get_parameter('source').value)",
         '--ros-args', '-p', 'rate_hz:=10'],
        env={**os.environ, **node_env()}, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert 'rate 10.0 generator' in proc.stdout
