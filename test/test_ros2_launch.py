"""The package the way a ROS 2 user runs it: colcon build, ros2 launch, ros2 topic / param.

Uses the upstream launch stack and CLI (a ROS install, or the vendored copy that
`make ros-tools` installs); skips only where neither exists.
"""

import os
import re
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import BatteryState, Image, Temperature
from std_msgs.msg import Header

from adaptive_perception import interfaces
from adaptive_perception.msg import ActivityState, DetectionArray, ExecutionLevel
from adaptive_perception.paths import default_params_file
from adaptive_perception.ros.interfaces import (
    DIAGNOSTICS_QOS,
    EXECUTION_LEVEL_QOS,
    OUTPUT_QOS,
    POWER_QOS,
    camera_qos,
)
from ros_tools import LAUNCH_SIGTERM_TIMEOUT_S, VENV, CpuHog, LaunchRun, ros2, ros_env

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures('ros_tools')]

EDGE_NODES = ['budget_manager', 'power_simulator', 'camera_source', 'imu_simulator',
              'adacon_detector', 'adamtl_multitask', 'activity_recognizer']


def _integers_for_whole_floats(value):
    """Write whole floats as users type them: 10 for 10.0 (ROS 2 alone refuses that)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_integers_for_whole_floats(v) for v in value]
    if isinstance(value, dict):
        return {k: _integers_for_whole_floats(v) for k, v in value.items()}
    return value


def _params_file(tmp_path, name='edge.yaml', **overrides) -> str:
    """config/edge.yaml with whole floats written as integers and per-node overrides."""
    document = yaml.safe_load(default_params_file().read_text())
    for node, values in overrides.items():
        document['nodes'][node]['parameters'].update(values)
    for entry in document['nodes'].values():
        entry['parameters'] = _integers_for_whole_floats(entry.get('parameters') or {})
    path = tmp_path / name
    path.write_text(yaml.safe_dump(document))
    return str(path)


def _assert_clean_stop(run: LaunchRun, code: int, seconds: float, nodes: list):
    log = run.log()
    assert code == 0, log[-4000:]
    assert 'Traceback' not in log, log[-6000:]
    assert 'process has died' not in log, log[-4000:]
    assert 'SIGTERM' not in log and 'SIGKILL' not in log, log[-4000:]
    for node in nodes:
        assert re.search(rf'\[{node}-\d+\]: process has finished cleanly', log), (
            node, log[-4000:])
    assert seconds < LAUNCH_SIGTERM_TIMEOUT_S, seconds


def _param(env, verb: str, *args: str):
    # Without a daemon the CLI spins a fresh node for --spin-time, twice per call, whatever
    # it has discovered; --timeout then waits for the named node (and the call for its
    # services, 5 s), so a short spin and a long timeout wait only as long as discovery.
    return ros2(env, 'param', verb, '--no-daemon', '--spin-time', '1', '--timeout', '30',
                *args)


def _echo(env, topic: str, msg_type: str, *extra: str):
    # The type given: without a daemon, looking it up can race discovery.
    return ros2(env, 'topic', 'echo', '--once', '--no-daemon', topic, msg_type, *extra,
                timeout_s=90)


def test_edge_launch_runs_answers_the_cli_and_stops_cleanly_under_load(
        colcon_install, probe, tmp_path):
    env = ros_env(colcon_install)
    # Real time for the simulated battery: the level then moves only for the test's reasons.
    params = _params_file(tmp_path, power_simulator={'time_scale': 1.0})
    run = LaunchRun(env, tmp_path / 'launch.log', f'params_file:={params}')
    hog = None
    try:
        levels = probe.subscribe(ExecutionLevel, '/adaptive_perception/execution_level',
                                 EXECUTION_LEVEL_QOS)
        detections = probe.subscribe(DetectionArray, '/adaptive_perception/detections',
                                     OUTPUT_QOS)
        activity = probe.subscribe(ActivityState, '/adaptive_perception/activity', OUTPUT_QOS)
        segmentation = probe.subscribe(Image, '/adaptive_perception/multitask/segmentation',
                                       OUTPUT_QOS)
        probe.spin_until(lambda: levels and detections and activity and segmentation, 180,
                         f'every output flowing; launch log:\n{run.log()[-3000:]}')
        assert 'process has died' not in run.log()

        # ros2 topic echo on each output, all at once: each waits mostly on discovery
        echoes = [
            ('/adaptive_perception/execution_level', 'adaptive_perception/msg/ExecutionLevel',
             'level_name', ''),
            ('/adaptive_perception/detections', 'adaptive_perception/msg/DetectionArray',
             'header.frame_id', 'camera'),
            ('/adaptive_perception/activity', 'adaptive_perception/msg/ActivityState',
             'label', ''),
            ('/adaptive_perception/multitask/segmentation', 'sensor_msgs/msg/Image',
             'encoding', 'mono8'),
            ('/adaptive_perception/multitask/depth', 'sensor_msgs/msg/Image', 'encoding',
             '32FC1'),
            ('/adaptive_perception/multitask/normals', 'sensor_msgs/msg/Image', 'encoding',
             '32FC3'),
            ('/adaptive_perception/multitask/saliency', 'sensor_msgs/msg/Image',
             'encoding', 'mono8'),
            ('/adaptive_perception/detections/vision_msgs',
             'vision_msgs/msg/Detection2DArray', 'header.frame_id', 'camera'),
            ('/diagnostics', 'diagnostic_msgs/msg/DiagnosticArray', 'header.frame_id', '')]
        with ThreadPoolExecutor(len(echoes)) as pool:
            results = list(pool.map(lambda e: _echo(env, e[0], e[1], '--field', e[2]), echoes))
        for (topic, _, _, expected), result in zip(echoes, results, strict=True):
            assert result.returncode == 0 and result.stdout.strip(), (topic, result.stdout)
            assert expected in result.stdout, (topic, result.stdout)

        # parameters as users type them, from the CLI
        result = _param(env, 'set', '/budget_manager', 'dwell_s', '30')
        assert 'Set parameter successful' in result.stdout, result.stdout
        result = _param(env, 'get', '/budget_manager', 'dwell_s')
        assert 'Double value is: 30.0' in result.stdout, result.stdout
        result = _param(env, 'set', '/budget_manager', 'dwell_s', 'fast')
        assert ("parameter 'dwell_s' takes a floating-point number (double), got a string "
                "'fast'") in result.stdout, result.stdout
        # a threshold changed at run time takes effect: every simulated temperature is hot
        result = _param(env, 'set', '/budget_manager',
                      'temperature_thresholds_c', '[1, 5, 10]')
        assert 'Set parameter successful' in result.stdout, result.stdout
        probe.spin_until(lambda: levels[-1].level == 3 and 'at or above 10' in levels[-1].reason,
                         30, 'level 3 for the temperature after the thresholds changed: '
                         f'{[(m.level, m.reason) for m in levels[-3:]]}')

        # Ctrl-C with every core busy
        hog = CpuHog()
        time.sleep(2.0)  # let the hogs take the cores
        code, seconds = run.interrupt()
        _assert_clean_stop(run, code, seconds, EDGE_NODES)
        print(f'ros2 launch edge.launch.py: Ctrl-C under load stopped in {seconds:.2f} s, '
              f'exit code {code}')
    finally:
        if hog:
            hog.stop()
        run.close()


def test_external_camera_and_power_at_camera_size_without_simulators(
        colcon_install, probe, tmp_path):
    """power:=none camera:=none: a driver publishes 640x480 rgb8 frames, sensor-data QoS."""
    env = ros_env(colcon_install)
    run = LaunchRun(env, tmp_path / 'launch.log', 'power:=none', 'camera:=none', 'imu:=none',
                    'perception:=adacon_detector')
    try:
        battery = probe.node.create_publisher(BatteryState, '/battery_state', POWER_QOS)
        temperature = probe.node.create_publisher(Temperature, '/thermal/temperature',
                                                  POWER_QOS)
        camera = probe.node.create_publisher(Image, '/camera/image_raw',
                                             camera_qos('sensor_data'))
        detections = probe.subscribe(DetectionArray, '/adaptive_perception/detections',
                                     OUTPUT_QOS)
        levels = probe.subscribe(ExecutionLevel, '/adaptive_perception/execution_level',
                                 EXECUTION_LEVEL_QOS)
        probe.wait_for_subscribers(camera, timeout_s=120)
        probe.wait_for_subscribers(battery, timeout_s=60)
        rgb = np.zeros((480, 640, 3), np.uint8)
        rgb[100:300, 200:400] = (220, 40, 40)
        sent = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len({d.header.frame_id for d in detections}) < 5:
            stamp = probe.node.get_clock().now().to_msg()
            battery.publish(BatteryState(percentage=0.8, present=True,
                                         power_supply_status=2, header=Header(stamp=stamp)))
            temperature.publish(Temperature(temperature=40.0, header=Header(stamp=stamp)))
            frame_id = f'cam{len(sent)}'
            camera.publish(Image(header=Header(stamp=stamp, frame_id=frame_id), height=480,
                                 width=640, encoding='rgb8', step=640 * 3,
                                 data=rgb.tobytes()))
            sent.append(frame_id)
            probe.spin_for(0.3)
        assert len({d.header.frame_id for d in detections}) >= 5, (len(sent), run.log()[-3000:])
        assert {d.header.frame_id for d in detections} <= set(sent)
        probe.spin_until(lambda: levels and levels[-1].level == 0, 30,
                         'level 0 from the probe battery and temperature')
        code, seconds = run.interrupt()
        _assert_clean_stop(run, code, seconds, ['budget_manager', 'adacon_detector'])
    finally:
        run.close()


def test_two_namespaced_pipelines_in_one_domain_do_not_cross_talk(
        colcon_install, probe, tmp_path):
    env = ros_env(colcon_install)
    charge = {'robot1': 0.9, 'robot2': 0.2}
    runs = {ns: LaunchRun(env, tmp_path / f'{ns}.log', f'namespace:={ns}', 'camera:=none',
                          'imu:=none', 'perception:=none',
                          'params_file:=' + _params_file(
                              tmp_path, f'{ns}.yaml',
                              power_simulator={'initial_fraction': charge[ns],
                                               'time_scale': 1.0}))
            for ns in charge}
    try:
        levels = {ns: probe.subscribe(ExecutionLevel,
                                      interfaces.resolved(interfaces.EXECUTION_LEVEL_TOPIC, ns),
                                      EXECUTION_LEVEL_QOS) for ns in charge}
        diagnostics = {ns: probe.subscribe(DiagnosticArray, f'/{ns}/diagnostics',
                                           DIAGNOSTICS_QOS) for ns in charge}
        root = probe.subscribe(ExecutionLevel, '/adaptive_perception/execution_level',
                               EXECUTION_LEVEL_QOS)
        probe.spin_until(lambda: all(levels.values()) and all(diagnostics.values()), 120,
                         'a level in each namespace')
        probe.spin_for(3.0)  # both keep publishing: heartbeat, diagnostics
        assert levels['robot1'][-1].level == 0, levels['robot1'][-1]
        assert levels['robot2'][-1].level == 2, levels['robot2'][-1]
        assert 'battery 0.2' in levels['robot2'][-1].reason, levels['robot2'][-1].reason
        assert not root, 'a pipeline published in the root namespace'
        for ns, arrays in diagnostics.items():
            names = {s.name for a in arrays for s in a.status}
            assert names and all(n.startswith(f'/{ns}/') for n in names), (ns, names)
        # Without a daemon the CLI lists what it discovered in --spin-time: ask again
        # until both pipelines are there rather than spin a fixed long time once.
        wanted = {f'/{ns}/{topic}' for ns in charge
                  for topic in ('adaptive_perception/execution_level', 'battery_state')}
        topics = probe.spin_until(
            lambda: wanted <= set(listed := ros2(env, 'topic', 'list', '--no-daemon',
                                                 '--spin-time', '2').stdout.split()) and listed,
            30, f'ros2 topic list to show {sorted(wanted)}')
        # (the probe's own subscription is listed there; nothing publishes on it)
        assert probe.node.count_publishers('/adaptive_perception/execution_level') == 0
        assert not any(t.startswith('/adaptive_perception/') or t == '/battery_state'
                       for t in topics if t != '/adaptive_perception/execution_level'), topics
        for run in runs.values():
            code, seconds = run.interrupt()
            _assert_clean_stop(run, code, seconds, ['budget_manager', 'power_simulator'])
    finally:
        for run in runs.values():
            run.close()


def test_ros2_run_with_a_standard_remap(colcon_install, probe, tmp_path):
    env = ros_env(colcon_install)
    images = probe.subscribe(Image, '/my_cam/image', camera_qos('sensor_data'))
    default = probe.subscribe(Image, '/camera/image_raw', camera_qos('sensor_data'))
    proc = subprocess.Popen([str(VENV / 'bin' / 'ros2'), 'run', 'adaptive_perception',
                             'camera_source', '--ros-args', '-r',
                             'camera/image_raw:=/my_cam/image', '-p', 'rate_hz:=20'],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        probe.spin_until(lambda: len(images) >= 3, 60, 'frames on the remapped topic')
        assert not default
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and 'Traceback' not in output, output


def test_launch_testing_form(colcon_install):
    """The standard launch_testing integration test, run the way launch_test runs it."""
    env = ros_env(colcon_install)
    result = subprocess.run(
        [str(VENV / 'bin' / 'launch_test'),
         str(Path(__file__).parent / 'launch_tests' / 'launch_edge_level.py')],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-5000:]
    assert 'Ran 1 test' in result.stdout and 'OK' in result.stdout, result.stdout[-3000:]
