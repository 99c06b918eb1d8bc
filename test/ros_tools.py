"""The colcon world and the upstream ROS 2 tools in tests: build, ros2 launch, ros2 CLI.

The venv is the underlay (what /opt/ros/<distro> is elsewhere); ``ros2 launch``,
``ros2 topic``/``param`` and ``launch_testing`` come from a ROS install or from
the vendored copy (``make ros-tools`` installs it into the venv; CI does).
Tests that need them skip only where neither exists, and say so.
"""

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = 'adaptive_perception'
VENV = Path(sys.prefix)
VENDOR = REPO.parent / 'shared' / 'vendor' / 'ros2'
COPY_IGNORE = shutil.ignore_patterns(
    '.git', '.venv', 'build', 'install', 'log', 'reports', '__pycache__', '*.pyc',
    '*.egg-info', '.pytest_cache', '.hypothesis', '.ruff_cache')
# ros2 launch's own escalation: SIGTERM this long after SIGINT (launch's default).
LAUNCH_SIGTERM_TIMEOUT_S = 5.0


def require_ros_tools() -> None:
    """Skip (no vendor copy and no ROS install) or fail (vendor copy not installed)."""
    if shutil.which('ros2', path=str(VENV / 'bin')) and all(
            importlib.util.find_spec(m) for m in ('launch', 'launch_ros', 'launch_testing')):
        return
    if (VENDOR / 'install.sh').is_file():
        pytest.fail(f'the ROS 2 launch stack and CLI are not installed in {VENV}: '
                    f'run `make ros-tools` ({VENDOR}/install.sh {VENV})')
    pytest.skip('neither ../shared/vendor/ros2 nor a ROS 2 install with ros2 launch, '
                'launch_ros and launch_testing is present')


def site_packages(prefix: Path) -> Path:
    """Return the purelib directory under ``prefix``, computed as ament_cmake_python does."""
    return Path(sysconfig.get_path('purelib', vars={'base': str(prefix)}))


def build_workspace(workspace: Path) -> Path:
    """Copy the repository into ``workspace``/src, colcon build it; return install/<pkg>."""
    colcon = VENV / 'bin' / 'colcon'
    if not colcon.is_file():
        pytest.fail(f'{colcon} is missing: install requirements/build.txt (make venv)')
    shutil.copytree(REPO, workspace / 'src' / PACKAGE, ignore=COPY_IGNORE, symlinks=True)
    env = dict(os.environ, AMENT_PREFIX_PATH=str(VENV), CMAKE_PREFIX_PATH=str(VENV))
    result = subprocess.run(
        [str(colcon), 'build', '--base-paths', 'src', '--event-handlers', 'console_direct-',
         '--cmake-args', f'-DPython3_EXECUTABLE={sys.executable}', '-DBUILD_TESTING=OFF'],
        cwd=workspace, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=900)
    if result.returncode != 0:
        log = workspace / 'log' / 'latest_build' / PACKAGE / 'stdout_stderr.log'
        details = log.read_text()[-6000:] if log.is_file() else ''
        pytest.fail(f'colcon build failed ({result.returncode}):\n'
                    f'{result.stdout[-4000:]}\n{details}')
    return workspace / 'install' / PACKAGE


def ros_env(install: Path, **extra) -> dict:
    """Return the environment `source install/setup.bash` gives (DDS on loopback)."""
    env = dict(os.environ)
    env.update(
        PATH=os.pathsep.join([str(VENV / 'bin'), env.get('PATH', '')]),
        PYTHONPATH=os.pathsep.join(p for p in [str(site_packages(install)),
                                               env.get('PYTHONPATH', '')] if p),
        LD_LIBRARY_PATH=os.pathsep.join(p for p in [str(install / 'lib'), str(VENV / 'lib'),
                                                    env.get('LD_LIBRARY_PATH', '')] if p),
        AMENT_PREFIX_PATH=os.pathsep.join([str(install), str(VENV)]),
        ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
        PYTHONUNBUFFERED='1',
        PYTHONFAULTHANDLER='1',  # a node that crashes says where, in the launch log
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


def ros2(env: dict, *args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess:
    """Run one ``ros2`` command; its output in ``.stdout`` (stderr merged)."""
    return subprocess.run([str(VENV / 'bin' / 'ros2'), *args], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout_s)


class LaunchRun:
    """``ros2 launch adaptive_perception <file> args...`` in its own process group.

    ``interrupt()`` is Ctrl-C in a terminal: SIGINT to the whole group (every node
    and the launch process, which forwards its own SIGINT to the nodes).
    """

    def __init__(self, env: dict, log_path: Path, *arguments: str,
                 launch_file: str = 'edge.launch.py'):
        self.log_path = log_path
        self._log = open(log_path, 'w')
        self.proc = subprocess.Popen(
            [str(VENV / 'bin' / 'ros2'), 'launch', PACKAGE, launch_file, *arguments],
            env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def log(self) -> str:
        """Everything ros2 launch and its nodes printed so far."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors='replace')

    def interrupt(self, timeout_s: float = 30.0) -> tuple:
        """Ctrl-C: SIGINT to the process group; return (exit code, seconds to stop)."""
        start = time.monotonic()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            code = self.proc.wait(timeout_s)
        finally:
            self.close()
        return code, time.monotonic() - start

    def close(self) -> None:
        """Kill whatever is left of the group (after a failed test)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # nodes left behind, if any
        except ProcessLookupError:
            pass
        if not self._log.closed:
            self._log.close()


class CpuHog:
    """Busy processes that keep every core loaded, as a busy robot computer would."""

    def __init__(self, processes: int | None = None):
        count = processes or (os.cpu_count() or 2) + 1
        code = 'while True: pass'
        self.procs = [subprocess.Popen([sys.executable, '-S', '-c', code])
                      for _ in range(count)]

    def stop(self) -> None:
        """End the hogs."""
        for proc in self.procs:
            proc.kill()
            proc.wait()
