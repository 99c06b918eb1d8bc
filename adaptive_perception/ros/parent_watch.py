"""A node started by a launcher ends itself when that launcher is gone.

``ros2 launch`` leaves its nodes running when it is stopped with SIGTERM or SIGKILL
(upstream launch behaviour), and so would any launcher that is killed: the
nodes, reparented to init, would go on holding the camera and draining the battery.
Both launchers of this package therefore put their own pid into the environment of
every node they start (``LAUNCHER_PID_ENV``). A node whose parent process is that
pid watches it:

* on Linux, ``prctl(PR_SET_PDEATHSIG, SIGUSR1)`` makes the kernel signal the node
  the moment its parent exits;
* a daemon thread also polls ``os.getppid()`` (five times a second), for systems
  without ``prctl`` and for a parent that died before the node could call it.

Whichever notices first logs why the node stops and sends the node SIGTERM, once:
SIGTERM is what a supervisor sends too, and rclpy turns it into a clean shutdown.
The kernel's signal is not SIGTERM itself because it can come more than once: a
multi-threaded parent's children are handed to its other threads as they exit, and
each hand-over sends the signal again - a second SIGTERM, arriving after rclpy
restored the default action, would kill the node mid-shutdown.

A node started by hand from a shell has no such variable (or a different parent),
so closing the launcher of something else never stops it.
"""

import atexit
import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time

LAUNCHER_PID_ENV = 'ADAPTIVE_PERCEPTION_LAUNCHER_PID'
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def launcher_env(pid: int | None = None) -> dict:
    """Return the environment entry a launcher gives its nodes (its own pid by default)."""
    return {LAUNCHER_PID_ENV: str(os.getpid() if pid is None else pid)}


def expected_launcher(environ=None) -> int | None:
    """Return the launcher pid to watch, or None when no launcher started this process.

    The launcher counts when it is this process's parent, or when it is already gone
    (it died while this node was still starting: the node must not stay behind). A
    variable that leaked to the child of a shell started from a launched process names
    a live process that is not the parent: that child is left alone.
    """
    text = (os.environ if environ is None else environ).get(LAUNCHER_PID_ENV, '')
    try:
        pid = int(text)
    except ValueError:
        return None
    if pid <= 1:
        return None
    return pid if pid == os.getppid() or not process_alive(pid) else None


def process_alive(pid: int) -> bool:
    """Return True while ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        with open(f'/proc/{pid}/stat') as stat:
            return stat.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    except OSError:  # no /proc: ask the kernel (zombies then count as running)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def _set_parent_death_signal(signum: int) -> bool:
    """Ask Linux to send ``signum`` when the parent exits; False where prctl is missing."""
    if not os.uname().sysname == 'Linux':
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6', use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


PARENT_DEATH_SIGNAL = signal.SIGUSR1


class ParentWatch:
    """Call ``on_gone(pid, act)`` once the launcher that started this process is gone."""

    def __init__(self, launcher_pid: int, on_gone, poll_s: float = 0.2):
        self.launcher_pid = launcher_pid
        self._on_gone = on_gone
        self._poll_s = poll_s
        self._stop = threading.Event()
        self._lock = threading.RLock()  # the signal handler may interrupt a holder
        self.gone = False
        self.node_name = 'parent_watch'
        self.pdeathsig = False
        try:  # the handler first: the signal's default action would kill the node
            signal.signal(PARENT_DEATH_SIGNAL, lambda signum, frame: self.check())
            self.pdeathsig = _set_parent_death_signal(PARENT_DEATH_SIGNAL)
        except ValueError:  # not the main thread: the poll alone
            pass
        self._thread = threading.Thread(target=self._run, name='parent_watch', daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._poll_s):
            if self.check():
                return

    def check(self, act: bool = True) -> bool:
        """Return True (after reporting once) when the launcher is no longer our parent.

        ``act=False``: only report, the shutdown is already under way.
        """
        # One report: the exit path waits for a poll that is reporting right now.
        with self._lock:
            if self.gone:
                return True
            if os.getppid() == self.launcher_pid:
                return False
            self.gone = True
            self._on_gone(self.launcher_pid, act)
            return True

    def close(self) -> None:
        """Stop polling (the node is shutting down anyway)."""
        self._stop.set()


def watch_launcher(context=None):
    """Start watching the launcher when this process was started by one; return the watch.

    Called right after ``rclpy.init``, from the main thread. When the launcher goes
    away the node logs ``launcher (pid N) is gone: shutting down`` and sends itself
    SIGTERM, which ends ``rclpy.spin`` as Ctrl-C does. Set ``watch.node_name`` once the
    node exists so the log line carries its name. Returns None for a node started any
    other way.
    """
    launcher = expected_launcher()
    if launcher is None:
        return None
    import rclpy
    from rclpy.logging import get_logger

    if context is None:
        context = rclpy.get_default_context()

    def gone(pid, act):
        text = f'launcher (pid {pid}) is gone: shutting down'
        if act:
            get_logger(watch.node_name).warning(text)
            os.kill(os.getpid(), signal.SIGTERM)
        else:  # at shutdown or exit, where ROS logging may already be finalised
            print(f'[WARN] [{time.time():.9f}] [{watch.node_name}]: {text}', file=sys.stderr,
                  flush=True)

    watch = ParentWatch(launcher, gone)
    # Should the node stop for another reason meanwhile, say so on the way out. A plain
    # function returning None: rclpy's Context calls a non-method callback while it
    # looks for a weak reference, and then calls whatever that returned.
    def on_shutdown() -> None:
        watch.check(act=False)
        watch.close()

    context.on_shutdown(on_shutdown)
    atexit.register(watch.check, act=False)
    return watch
