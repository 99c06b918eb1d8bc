"""Packaging checks: generated messages, the executables table, setup.py's data files."""

import importlib
import inspect
import os
import runpy
import sys
from pathlib import Path
from unittest import mock

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = 'adaptive_perception'

MESSAGE_FIELDS = {
    'ExecutionLevel': {
        'header', 'level', 'num_levels', 'level_name', 'reason', 'battery_fraction',
        'temperature_c', 'charging',
    },
    'Detection': {
        'class_id', 'class_name', 'score', 'x_min', 'y_min', 'x_max', 'y_max', 'branch',
    },
    'DetectionArray': {
        'header', 'detections', 'level', 'mode', 'branches_run', 'branch_names', 'latency_ms',
        'width', 'precision', 'cascade_exit',
    },
    'ActivityState': {
        'header', 'label', 'label_id', 'confidence', 'class_names', 'probabilities',
        'sensor_state', 'sampling_hz', 'averaging_window', 'requested_sensor_state',
        'sensor_current_ua', 'level',
    },
}


def _sample_messages():
    """Return one populated instance of every message (values exact in float32)."""
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    from adaptive_perception.msg import ActivityState, Detection, DetectionArray, ExecutionLevel

    header = Header(stamp=Time(sec=12, nanosec=345), frame_id='camera_optical')
    level = ExecutionLevel(
        header=header, level=2, num_levels=4, level_name='low', reason='battery below 20 %',
        battery_fraction=0.125, temperature_c=41.5, charging=True)
    detection = Detection(
        class_id=18, class_name='dog', score=0.75, x_min=1.5, y_min=2.0, x_max=100.25,
        y_max=60.0, branch=-1)
    array = DetectionArray(
        header=header, detections=[detection, Detection(class_id=1, branch=3)], level=1,
        mode='multi', branches_run=[0, 3], branch_names=['animals', 'vehicles'],
        latency_ms=12.5, precision='int8', cascade_exit=1)
    activity = ActivityState(
        header=header, label='walk', label_id=1, confidence=0.875,
        class_names=['sit', 'walk'], probabilities=[0.125, 0.875], sensor_state='F50_A16',
        sampling_hz=50.0, averaging_window=16, requested_sensor_state='F25_A8',
        sensor_current_ua=27.5, level=3)
    return [level, detection, array, activity]


@pytest.mark.parametrize('name', sorted(MESSAGE_FIELDS))
def test_message_fields(name):
    """Each generated message imports from adaptive_perception.msg with its fields."""
    import adaptive_perception.msg as msgs

    msg_type = getattr(msgs, name)
    fields = set(msg_type.get_fields_and_field_types())
    missing = MESSAGE_FIELDS[name] - fields
    assert not missing, f'{name} lacks fields {sorted(missing)}'


def test_messages_round_trip_serialization():
    """Populated messages survive rclpy's CDR serialization unchanged."""
    from rclpy.serialization import deserialize_message, serialize_message

    for msg in _sample_messages():
        data = serialize_message(msg)
        assert isinstance(data, bytes) and data
        assert deserialize_message(data, type(msg)) == msg, type(msg).__name__


def _executables():
    return runpy.run_path(str(REPO / PACKAGE / 'executables.py'))['EXECUTABLES']


def test_executables_point_to_modules_with_a_main_taking_ros_arguments():
    """Every executable's module imports and has ``main(args=None)``, as the wrappers call it.

    ``ros2 run`` wrappers and the launcher call ``main()`` with no argument; the
    in-process harnesses pass ROS arguments as ``args``.
    """
    executables = _executables()
    assert executables, 'EXECUTABLES is empty'
    problems = []
    for exe, module in sorted(executables.items()):
        if module.split('.')[0] != PACKAGE:
            problems.append(f'{exe}: {module} is outside {PACKAGE}')
            continue
        main = getattr(importlib.import_module(module), 'main', None)
        if not callable(main):
            problems.append(f'{exe}: {module} has no callable main')
            continue
        try:
            inspect.signature(main).bind()
            inspect.signature(main).bind(args=['--ros-args'])
        except TypeError as error:
            problems.append(f'{exe}: {module}.main{inspect.signature(main)}: {error}')
    assert not problems, '\n'.join(problems)


@pytest.fixture(scope='module')
def setup_kwargs():
    """Capture the keyword arguments setup.py passes to setup(); nothing is built."""
    import setuptools

    captured = {}
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        with mock.patch.object(setuptools, 'setup', lambda **kwargs: captured.update(kwargs)):
            runpy.run_path(str(REPO / 'setup.py'), run_name='__main__')
    finally:
        os.chdir(cwd)
    assert captured, 'setup.py did not call setuptools.setup()'
    return captured


def _installed_files(setup_kwargs):
    return {
        os.path.join(directory, os.path.basename(src))
        for directory, sources in setup_kwargs['data_files']
        for src in sources
    }


def test_setup_metadata(setup_kwargs):
    """Name, version (from package.xml), packages and command line."""
    from catkin_pkg.package import parse_package

    assert setup_kwargs['name'] == PACKAGE
    assert setup_kwargs['version'] == parse_package(str(REPO / 'package.xml')).version
    packages = setup_kwargs['packages']
    assert PACKAGE in packages
    assert all(p == PACKAGE or p.startswith(PACKAGE + '.') for p in packages)
    scripts = setup_kwargs['entry_points']['console_scripts']
    assert any(s.replace(' ', '') == 'adaptive-perception=adaptive_perception.cli:main'
               for s in scripts)


def test_setup_data_files_like_ament_python(setup_kwargs):
    """The ament index marker and package.xml are installed as ament_python does."""
    installed = _installed_files(setup_kwargs)
    assert f'share/ament_index/resource_index/packages/{PACKAGE}' in installed
    assert f'share/{PACKAGE}/package.xml' in installed
    for _directory, sources in setup_kwargs['data_files']:
        for src in sources:
            assert (REPO / src).is_file(), src


@pytest.mark.parametrize('relative', ['config/edge.yaml', 'launch/edge.launch.py'])
def test_setup_data_files_include_launch_and_config(setup_kwargs, relative):
    """config/ and launch/ files land in share/adaptive_perception/."""
    assert (REPO / relative).is_file(), f'{relative} is missing from the source tree'
    assert f'share/{PACKAGE}/{relative}' in _installed_files(setup_kwargs)


def test_share_files_are_installed_in_the_environment(setup_kwargs, monkeypatch):
    """After `make install`, ament_index finds every share/ file in this environment."""
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    monkeypatch.setenv('AMENT_PREFIX_PATH', sys.prefix)
    try:
        share = Path(get_package_share_directory(PACKAGE))
    except PackageNotFoundError:
        pytest.fail(f'{PACKAGE} is not installed into {sys.prefix} (run make install)')
    prefix = share.parents[1]
    missing = sorted(f for f in _installed_files(setup_kwargs) if not (prefix / f).is_file())
    assert not missing, f'not installed under {prefix}: {missing} (run make install)'
