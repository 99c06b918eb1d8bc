"""Running nodes as child processes (the pip-world stand-in for ``ros2 launch``)."""

import os
import signal
import subprocess
import sys
from pathlib import Path

from adaptive_perception.launcher.plan import NodeSpec, write_ros_params


class NodeProcess:
    """One node started as ``python -m <module> --ros-args ...``, output to a log file."""

    def __init__(self, spec: NodeSpec, log_dir: Path, remaps: dict | None = None,
                 env: dict | None = None):
        self.spec = spec
        log_dir.mkdir(parents=True, exist_ok=True)
        params = write_ros_params(spec, log_dir / f'{spec.name}.params.yaml')
        self.log_path = log_dir / f'{spec.name}.log'
        args = [sys.executable, '-m', spec.module, '--ros-args', '-r', f'__node:={spec.name}',
                '--params-file', str(params)]
        for src, dst in (remaps or {}).items():
            args += ['-r', f'{src}:={dst}']
        self._log = open(self.log_path, 'w')
        self.proc = subprocess.Popen(args, env={**os.environ, 'PYTHONUNBUFFERED': '1',
                                                **(env or {})},
                                     stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def name(self) -> str:
        """The node's name."""
        return self.spec.name

    def returncode(self):
        """Exit code, or None while running."""
        return self.proc.poll()

    def log(self) -> str:
        """Everything the node printed so far."""
        self._log.flush()
        return self.log_path.read_text()

    def stop(self, timeout_s: float = 10.0) -> int:
        """SIGINT (a clean ROS shutdown), SIGKILL if it does not exit; return the code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def start_all(specs, log_dir: Path, env: dict | None = None) -> list:
    """Start every spec; on a failure, stop the ones already started."""
    started = []
    try:
        for spec in specs:
            started.append(NodeProcess(spec, log_dir, env=env))
    except BaseException:
        stop_all(started)
        raise
    return started


def stop_all(processes) -> dict:
    """Stop processes in reverse start order; return name -> exit code."""
    return {p.name: p.stop() for p in reversed(processes)}
