"""Running nodes as child processes (the pip-world stand-in for ``ros2 launch``).

Each node is a ``NodeProcess``: started as ``python -m <module> --ros-args ...``
with its output in a log file, restarted when it exits on its own (the plan's
``respawn`` rules, with backoff and a limit), and stopped the way ``ros2 launch``
stops a node: SIGINT, then SIGTERM, then SIGKILL, each after a timeout. Every node
gets this process's pid in its environment, so that it ends itself if this
launcher dies without stopping it (``adaptive_perception.ros.parent_watch``).
"""

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from adaptive_perception.launcher.plan import NodeSpec, write_ros_params
from adaptive_perception.ros.parent_watch import launcher_env

STABLE_RUN_S = 60.0      # a node that ran this long before exiting starts a fresh count
MAX_RESPAWN_DELAY_S = 30.0
SIGINT_TIMEOUT_S = 10.0  # what ros2 launch waits before escalating (its sigterm_timeout: 5)
SIGTERM_TIMEOUT_S = 5.0


@dataclass
class RestartPolicy:
    """When to restart an exited node, and when to give up (no processes, no clock).

    A node that dies again within ``STABLE_RUN_S`` of its start counts toward
    ``max_per_minute``; each such restart doubles the delay (up to
    ``MAX_RESPAWN_DELAY_S``). After ``max_per_minute`` restarts in a row that did not
    last a minute, the policy gives up. A run of a minute or more resets both.
    """

    enabled: bool
    delay_s: float
    max_per_minute: int
    quick_restarts: int = 0

    def after_exit(self, ran_s: float):
        """Seconds to wait before restarting, or None to give up (or not restart at all)."""
        if not self.enabled:
            return None
        if ran_s >= STABLE_RUN_S:
            self.quick_restarts = 0
        if self.quick_restarts >= self.max_per_minute:
            return None
        delay = min(self.delay_s * 2 ** self.quick_restarts, MAX_RESPAWN_DELAY_S)
        self.quick_restarts += 1
        return max(delay, self.delay_s)


class NodeProcess:
    """One node of the plan: its current process, its restarts and exit codes."""

    def __init__(self, spec: NodeSpec, log_dir: Path, remaps: dict | None = None,
                 env: dict | None = None, respawn: bool | None = None):
        self.spec = spec
        log_dir.mkdir(parents=True, exist_ok=True)
        params = write_ros_params(spec, log_dir / f'{spec.name}.params.yaml')
        self.log_path = log_dir / f'{spec.name}.log'
        self._args = [sys.executable, '-m', spec.module, '--ros-args', '-r',
                      f'__node:={spec.name}', '--params-file', str(params)]
        for src, dst in (remaps or {}).items():
            self._args += ['-r', f'{src}:={dst}']
        self._env = {**os.environ, 'PYTHONUNBUFFERED': '1', **launcher_env(), **(env or {})}
        self.policy = RestartPolicy(spec.respawn if respawn is None else respawn,
                                    spec.respawn_delay, spec.respawn_max_per_minute)
        self.restarts = 0
        self.exits = []        # dicts: t (monotonic), code, ran_s, action
        self.gave_up = False
        self.stopping = False
        self.stop_signals = []  # what stop_all sent, in order
        self._restart_at = None
        self._log = open(self.log_path, 'w')
        self._spawn()

    def _spawn(self) -> None:
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(self._args, env=self._env, stdout=self._log,
                                     stderr=subprocess.STDOUT)

    @property
    def name(self) -> str:
        """The node's name."""
        return self.spec.name

    @property
    def pid(self) -> int:
        """Pid of the current (or last) process."""
        return self.proc.pid

    def returncode(self):
        """Exit code of the current process, or None while it runs."""
        return self.proc.poll()

    def running(self) -> bool:
        """Return True while the current process has not exited."""
        return self.proc.poll() is None

    def state(self) -> str:
        """Return 'running', 'restarting' (in the delay), 'failed' (gave up) or 'exited'."""
        if self.running():
            return 'running'
        if self.gave_up:
            return 'failed'
        return 'restarting' if self._restart_at is not None else 'exited'

    def exit_codes(self) -> list:
        """Exit codes of every process that ended on its own, in order."""
        return [e['code'] for e in self.exits]

    def supervise(self, now: float | None = None):
        """Notice an exit and restart when due; return a line to print when something happened."""
        now = time.monotonic() if now is None else now
        if self.stopping or self.gave_up:
            return None
        if self._restart_at is not None:
            if now < self._restart_at:
                return None
            self._restart_at = None
            self.restarts += 1
            self._log.write(f'\n--- restart {self.restarts} by the launcher ---\n')
            self._log.flush()
            self._spawn()
            return f'{self.name}: restarted (restart {self.restarts}, pid {self.proc.pid})'
        code = self.proc.poll()
        if code is None:
            return None
        ran = now - self.started_at
        delay = self.policy.after_exit(ran)
        tail = ' / '.join(self.log().strip().splitlines()[-3:])
        if delay is None and self.policy.enabled:
            self.gave_up = True
            action = (f'gave up: {self.policy.quick_restarts} restarts in a row each ended '
                      f'within {STABLE_RUN_S:g} s (respawn_max_per_minute '
                      f'{self.policy.max_per_minute}); not restarted again')
        elif delay is None:
            action = 'respawn is off: not restarted'
        else:
            self._restart_at = now + delay
            action = f'restarting in {delay:g} s'
        self.exits.append({'t': now, 'code': code, 'ran_s': ran, 'action': action})
        return f'{self.name} exited with code {code} after {ran:.1f} s: {action} | {tail}'

    def log(self) -> str:
        """Everything the node printed so far (over all its restarts)."""
        self._log.flush()
        return self.log_path.read_text(errors='replace')

    def signal(self, signum) -> None:
        """Send ``signum`` to the current process if it still runs."""
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signum)
            except ProcessLookupError:
                pass

    def stop(self, timeout_s: float = SIGINT_TIMEOUT_S) -> int:
        """Stop (no more restarts): SIGINT, then SIGTERM, then SIGKILL; return the exit code."""
        return stop_all([self], timeout_s)[self.name]


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


def _wait_all(processes, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while any(p.running() for p in processes):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def stop_all(processes, sigint_timeout_s: float = SIGINT_TIMEOUT_S,
             sigterm_timeout_s: float = SIGTERM_TIMEOUT_S, say=None) -> dict:
    """Stop every process and return name -> exit code; returns only once all are gone.

    All nodes get SIGINT together (a clean ROS shutdown); those still running after
    ``sigint_timeout_s`` get SIGTERM, and after ``sigterm_timeout_s`` SIGKILL.
    ``say`` (e.g. ``print``) is told about each escalation.
    """
    for p in processes:
        p.stopping = True
    previous = None
    for signum, timeout in ((signal.SIGINT, sigint_timeout_s),
                            (signal.SIGTERM, sigterm_timeout_s), (signal.SIGKILL, None)):
        alive = [p for p in processes if p.running()]
        if not alive:
            break
        if previous is not None and say is not None:
            say(f'still running {previous[1]:g} s after {signum_name(previous[0])}: '
                f'{", ".join(p.name for p in alive)}; sending {signum_name(signum)}')
        for p in alive:
            p.stop_signals.append(signum)
            p.signal(signum)
        if timeout is None:
            for p in alive:
                p.proc.wait()
        else:
            _wait_all(alive, timeout)
        previous = (signum, timeout)
    codes = {}
    for p in reversed(processes):
        p.proc.wait()
        if not p._log.closed:
            p._log.close()
        codes[p.name] = p.proc.returncode
    return codes


def stopped_as_asked(process, code) -> bool:
    """Return True when ``code`` is what stopping ``process`` should give.

    0 (a clean ROS shutdown), or death by the SIGINT the launcher sent: a node still
    importing when SIGINT comes dies of KeyboardInterrupt, which Python reports as
    death by SIGINT. A node that needed SIGTERM or SIGKILL did not stop as asked.
    """
    return code in (0, None) or (code == -signal.SIGINT
                                 and signal.SIGINT in process.stop_signals)


def signum_name(signum) -> str:
    """'SIGINT' for signal.SIGINT."""
    return signal.Signals(signum).name
