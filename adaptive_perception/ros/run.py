"""Running a node from ``main()`` the same way in every executable.

Written against the rclpy API common to Humble, Jazzy and Kilted (no context
managers on ``rclpy.init``), in the style of ``demo_nodes_py``: Ctrl-C and an
external shutdown end the node cleanly with exit code 0.

Why the signal handling: Ctrl-C in a terminal sends SIGINT to the whole process
group, and ``ros2 launch`` forwards its own SIGINT to every node, then SIGTERM after
its timeout. So a node gets SIGINT twice, and on a loaded machine the second one
lands while it is already tearing down. Python's default handler turns each into a
``KeyboardInterrupt`` wherever the main thread happens to be (inside
``destroy_node``, say): a traceback and exit code -2. rclpy's own handler (installed
by ``rclpy.init``) is what stops the node: it shuts the context down and wakes the
executor (and then calls the Python-level handler it found). So the Python-level
handlers here never raise: the first signal makes the process ignore SIGINT and
SIGTERM from then on, and the node finishes its clean shutdown undisturbed. (Restoring
the old handlers at the end would not do: Python resets them to the default while it
exits, and a late second SIGINT then kills the process: exit code -2, no traceback.)

Ignoring the later signals means a node stuck in its shutdown would wait for SIGKILL
(10 s after SIGINT under ``ros2 launch``, 15 s under ``launch edge``) and say nothing.
So the first signal also arms a deadline (``faulthandler``, a C thread that needs no
GIL): a node not gone ``SHUTDOWN_DEADLINE_S`` later prints every thread's stack to its
log and exits with code 1 - a failed stop, with where it hung.
"""

import faulthandler
import os
import signal
import sys

import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException

from adaptive_perception.ros.params import ParameterError
from adaptive_perception.ros.parent_watch import watch_launcher

SHUTDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM)
SHUTDOWN_DEADLINE_S = 8.0  # before either launcher's SIGKILL


class _Signals:
    """Python-level SIGINT/SIGTERM handlers that note the signal instead of raising."""

    def __init__(self):
        self.received = []
        self._previous = {}

    def install(self) -> None:
        for signum in SHUTDOWN_SIGNALS:
            try:
                self._previous[signum] = signal.signal(signum, self._note)
            except ValueError:  # not the main thread (tests): leave the handlers alone
                return

    def _note(self, signum, frame) -> None:
        if not self.received:
            faulthandler.dump_traceback_later(SHUTDOWN_DEADLINE_S, exit=True)
        self.received.append(signum)
        for other in SHUTDOWN_SIGNALS:
            signal.signal(other, signal.SIG_IGN)
        # Nothing else: rclpy's handler (it ran first) shuts the context down from its
        # own thread; a second shutdown from here could race it. A signal that came
        # before rclpy.init is seen by run_node, which then does not start the node.

    def restore(self) -> None:
        """Put the old handlers back, unless a signal is ending the process."""
        if self.received:
            return
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


def run_node(node_class, args=None) -> int:
    """Create ``node_class()`` and spin it until shutdown; return the exit code.

    A node with nothing to do (e.g. ``power_monitor`` on a machine without
    battery or thermal zones) sets ``active = False`` in its constructor, after
    saying why; it is then destroyed without spinning. A parameter the node cannot
    take at start-up (wrong kind, out of range) is one FATAL line and exit code 1.
    """
    signals = _Signals()
    signals.install()  # before rclpy.init: rclpy chains to the handlers it finds
    rclpy.init(args=args)
    watch = watch_launcher()  # ends the node when the launcher that started it is gone
    node = None
    code = 0
    try:
        if signals.received:  # stopped before rclpy was there to notice
            return 0
        node = node_class()
        if watch is not None:
            watch.node_name = node.get_name()
        if getattr(node, 'active', True):
            rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (ParameterError, ParameterException) as error:
        name = getattr(error, 'node_name', '') or getattr(node_class, '__name__', 'node')
        rclpy.logging.get_logger(name).fatal(f'cannot start: {error}')
        code = 1
    except Exception:
        # Ctrl-C shuts the context down from the signal handler, possibly while a
        # callback is publishing: that publish then fails on the invalid context.
        # That is a shutdown too; an error while the context is still up is not.
        if rclpy.ok():
            raise
    finally:
        try:
            if node is not None:
                node.destroy_node()
            rclpy.try_shutdown()
        finally:
            signals.restore()
    if signals.received:
        _exit_now(code)
    return code


def _exit_now(code: int) -> None:
    """End a process that a signal stopped, once the node is down, without finalization.

    The node is destroyed and rclpy shut down; what is left is Python freeing every
    object, and with every model variant resident (dozens of ONNX Runtime sessions)
    that alone took 2-5 s on a loaded 2-core machine: past ``ros2 launch``'s SIGTERM
    timeout, for nothing. Output is flushed first.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def set_timer_period(timer, period_s: float) -> None:
    """Change a running timer's period at once (a parameter changed at run time)."""
    timer.timer_period_ns = int(period_s * 1e9)
    timer.reset()
