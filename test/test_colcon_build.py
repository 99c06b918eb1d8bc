"""The colcon world: build the package in a workspace and run a node as `ros2 run` would.

The venv is the underlay (what /opt/ros/<distro> is elsewhere). The checks follow
how ROS 2 tools find things: the ament index under AMENT_PREFIX_PATH, executables
in lib/<package>/, launch and parameter files in share/<package>/.
"""

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
PACKAGE = 'adaptive_perception'
VENV = Path(sys.prefix)
COPY_IGNORE = shutil.ignore_patterns(
    '.git', '.venv', 'build', 'install', 'log', 'reports', '__pycache__', '*.pyc',
    '*.egg-info', '.pytest_cache', '.hypothesis', '.ruff_cache')


def _executables():
    import runpy

    return runpy.run_path(str(REPO / PACKAGE / 'executables.py'))['EXECUTABLES']


from ros_tools import site_packages as _site_packages  # noqa: E402


def test_package_is_in_the_ament_index(colcon_install, monkeypatch):
    """get_package_prefix (what ros2 run uses) resolves to the workspace install."""
    from ament_index_python.packages import get_package_prefix

    marker = colcon_install / 'share' / 'ament_index' / 'resource_index' / 'packages' / PACKAGE
    assert marker.is_file()
    monkeypatch.setenv('AMENT_PREFIX_PATH', os.pathsep.join([str(colcon_install), str(VENV)]))
    assert Path(get_package_prefix(PACKAGE)) == colcon_install


def test_executables_are_installed(colcon_install):
    """lib/<package>/<exe> exists and is executable for every entry of EXECUTABLES."""
    executables = _executables()
    assert executables
    for exe, module in executables.items():
        path = colcon_install / 'lib' / PACKAGE / exe
        assert path.is_file(), f'{path} missing'
        assert os.access(path, os.X_OK), f'{path} is not executable'
        assert f'from {module} import main' in path.read_text()


def test_share_files_are_installed(colcon_install):
    """package.xml, the launch file and the parameter file are in share/<package>/."""
    share = colcon_install / 'share' / PACKAGE
    assert (share / 'package.xml').is_file()
    for relative in ('launch/edge.launch.py', 'config/edge.yaml'):
        assert (REPO / relative).is_file(), f'{relative} is missing from the source tree'
        assert (share / relative).is_file(), f'{relative} not installed'


def test_python_package_holds_sources_and_messages(colcon_install):
    """One installed package: our modules, our __init__.py and the generated msg/."""
    installed = _site_packages(colcon_install) / PACKAGE
    assert (installed / 'budget').is_dir()
    assert (installed / 'executables.py').is_file()
    assert (installed / 'msg' / '__init__.py').is_file()
    assert list(installed.glob('msg/_execution_level.py'))
    # Ours replaced the empty __init__.py generated with the messages.
    assert (installed / '__init__.py').read_text() == (REPO / PACKAGE / '__init__.py').read_text()


def test_budget_manager_runs_from_the_install(colcon_install, tmp_path):
    """lib/<package>/budget_manager starts and publishes the execution level."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    from adaptive_perception.msg import ExecutionLevel

    domain_id = random.SystemRandom().randint(1, 100)
    site_packages = _site_packages(colcon_install)
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join(
            p for p in [str(site_packages), env.get('PYTHONPATH', '')] if p),
        # Prepended: this process's value also holds the wheels' ros_*.libs folders,
        # which the wheels' start-up hook added (and will not add again in the child).
        LD_LIBRARY_PATH=os.pathsep.join(
            p for p in [str(colcon_install / 'lib'), str(VENV / 'lib'),
                        env.get('LD_LIBRARY_PATH', '')] if p),
        AMENT_PREFIX_PATH=os.pathsep.join([str(colcon_install), str(VENV)]),
        ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
        ROS_DOMAIN_ID=str(domain_id),
        PYTHONUNBUFFERED='1',
    )
    log_path = tmp_path / 'budget_manager.log'
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain_id)
    with open(log_path, 'w') as log:
        proc = subprocess.Popen([str(colcon_install / 'lib' / PACKAGE / 'budget_manager')],
                                env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
        node = None
        executor = None
        try:
            node = rclpy.create_node('test_colcon_build_probe', context=context)
            received = []
            qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
            node.create_subscription(ExecutionLevel, '/adaptive_perception/execution_level',
                                     received.append, qos)
            executor = SingleThreadedExecutor(context=context)
            executor.add_node(node)
            deadline = time.monotonic() + 15.0
            while not received and time.monotonic() < deadline and proc.poll() is None:
                executor.spin_once(timeout_sec=0.1)
            if not received:
                state = (f'exited with {proc.returncode}' if proc.poll() is not None
                         else 'still running')
                pytest.fail(f'no ExecutionLevel within 15 s; budget_manager {state}:\n'
                            f'{log_path.read_text()[-4000:]}')
            msg = received[0]
            assert msg.num_levels >= 1 and msg.level < msg.num_levels
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if executor is not None:
                executor.shutdown()
            if node is not None:
                node.destroy_node()
            rclpy.shutdown(context=context)


# -- ros2 launch: restarts and no orphans (the launch file's respawn and signal guard) --
def _launch_env(colcon_install) -> dict:
    site_packages = _site_packages(colcon_install)
    env = dict(os.environ)
    env.update(
        PATH=os.pathsep.join([str(VENV / 'bin'), env.get('PATH', '')]),
        PYTHONPATH=os.pathsep.join(p for p in [str(site_packages), env.get('PYTHONPATH', '')]
                                   if p),
        LD_LIBRARY_PATH=os.pathsep.join(
            p for p in [str(colcon_install / 'lib'), str(VENV / 'lib'),
                        env.get('LD_LIBRARY_PATH', '')] if p),
        AMENT_PREFIX_PATH=os.pathsep.join([str(colcon_install), str(VENV)]),
        ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST', PYTHONUNBUFFERED='1')
    return env


def _ros2_launch(colcon_install, tmp_path, ignore_sigint=False):
    ros2 = VENV / 'bin' / 'ros2'
    if not ros2.is_file():
        pytest.fail(f'{ros2} is missing: run ../shared/vendor/ros2/install.sh .venv')
    log = open(tmp_path / 'launch.log', 'w')
    preexec = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_sigint else None
    return subprocess.Popen(
        [str(ros2), 'launch', PACKAGE, 'edge.launch.py', 'perception:=adacon_detector',
         'imu:=none'], env=_launch_env(colcon_install), cwd=tmp_path, stdout=log,
        stderr=subprocess.STDOUT, preexec_fn=preexec)


def _launched_nodes(launch_pid) -> dict:
    """Return node name -> pid of the package's running nodes started by ``launch_pid``."""
    from ros_harness import child_processes
    nodes = {}
    for child, argv in child_processes(launch_pid).items():
        script = next((a for a in argv if f'lib/{PACKAGE}/' in a), None)
        if script:
            nodes[Path(script).name] = child
    return nodes


def _until(condition, timeout_s, what, proc=None, log=None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    tail = log.read_text()[-3000:] if log is not None and log.is_file() else ''
    pytest.fail(f'timed out after {timeout_s} s waiting for {what}\n{tail}')


def _end(proc, pids):
    from adaptive_perception.ros.parent_watch import process_alive
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    for pid in pids:
        if process_alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_ros2_launch_restarts_a_killed_node_and_stops_every_node_on_sigterm(
        colcon_install, tmp_path, probe):
    """SIGKILL to the detector: launch_ros respawns it, it follows the level again; SIGTERM."""
    from diagnostic_msgs.msg import DiagnosticArray

    from adaptive_perception.ros.interfaces import DIAGNOSTICS_QOS
    from adaptive_perception.ros.parent_watch import process_alive
    log = tmp_path / 'launch.log'
    diagnostics = probe.subscribe(DiagnosticArray, '/diagnostics', DIAGNOSTICS_QOS)
    proc = _ros2_launch(colcon_install, tmp_path)
    seen = set()
    try:
        nodes = _until(lambda: len(n := _launched_nodes(proc.pid)) == 4 and n, 60.0,
                       'four nodes', log=log)
        seen.update(nodes.values())

        def detector(**wanted):
            for array in reversed(diagnostics):
                for status in array.status:
                    if status.name == '/adacon_detector':
                        values = {kv.key: kv.value for kv in status.values}
                        return all(check(values) for check in wanted.values())
            return False

        probe.spin_until(lambda: detector(manager=lambda v: v['level_source'] == 'manager'),
                         60.0, 'the detector following the manager')
        old = nodes['adacon_detector']
        killed_at = time.monotonic()
        os.kill(old, signal.SIGKILL)
        new = _until(lambda: (p := _launched_nodes(proc.pid).get('adacon_detector')) != old
                     and p, 30.0, 'a respawned adacon_detector', log=log)
        seen.add(new)
        diagnostics.clear()
        probe.spin_until(lambda: detector(manager=lambda v: v['level_source'] == 'manager',
                                          frames=lambda v: int(v['frames']) > 0), 60.0,
                         'the respawned detector following the level and detecting')
        print(f'ros2 launch: detector back after {time.monotonic() - killed_at:.1f} s')
        nodes = _launched_nodes(proc.pid)
        seen.update(nodes.values())
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        stopped_after = time.monotonic() - start
        assert not [pid for pid in seen if process_alive(pid)], 'nodes outlived ros2 launch'
    finally:
        _end(proc, seen)
    text = log.read_text()
    assert 'process has died' in text and 'exit code -9' in text
    assert 'SIGTERM: stopping 4 node(s) before launch exits' in text, text[-3000:]
    assert 'every node has stopped' in text
    print(f'ros2 launch: SIGTERM -> launch and nodes gone after {stopped_after:.1f} s')


@pytest.mark.parametrize('signum, ignore_sigint', [(signal.SIGKILL, False),
                                                   (signal.SIGINT, True)])
def test_no_node_outlives_ros2_launch(colcon_install, tmp_path, signum, ignore_sigint):
    """SIGKILL: the nodes end themselves; SIGINT inherited as ignored: launch stops them."""
    from adaptive_perception.ros.parent_watch import process_alive
    log = tmp_path / 'launch.log'
    proc = _ros2_launch(colcon_install, tmp_path, ignore_sigint)
    nodes = {}
    try:
        nodes = _until(lambda: len(n := _launched_nodes(proc.pid)) == 4 and n, 60.0,
                       'four nodes', log=log)
        _until(lambda: 'level 1 -> 0 (manager' in log.read_text(), 60.0, 'nodes following',
               log=log)
        start = time.monotonic()
        proc.send_signal(signum)
        _until(lambda: not any(process_alive(p) for p in nodes.values()), 15.0,
               'every node gone', log=log)
        gone_after = time.monotonic() - start
        proc.wait(15)
    finally:
        _end(proc, list(nodes.values()))
    print(f'ros2 launch {signal.Signals(signum).name}: nodes gone after {gone_after:.2f} s')
    assert gone_after < 10.0
    if ignore_sigint:
        assert 'SIGINT was inherited as ignored' in log.read_text()
