"""Running a node from ``main()`` the same way in every executable.

Written against the rclpy API common to Humble, Jazzy and Kilted (no context
managers on ``rclpy.init``), in the style of ``demo_nodes_py``: Ctrl-C and an
external shutdown end the node cleanly with exit code 0.
"""

import rclpy
from rclpy.executors import ExternalShutdownException

from adaptive_perception.ros.parent_watch import watch_launcher


def run_node(node_class, args=None) -> int:
    """Create ``node_class()`` and spin it until shutdown.

    A node with nothing to do (e.g. ``power_monitor`` on a machine without
    battery or thermal zones) sets ``active = False`` in its constructor, after
    saying why; it is then destroyed without spinning.
    """
    rclpy.init(args=args)
    watch = watch_launcher()  # ends the node when the launcher that started it is gone
    node = None
    try:
        node = node_class()
        if watch is not None:
            watch.node_name = node.get_name()
        if getattr(node, 'active', True):
            rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        # Ctrl-C shuts the context down from the signal handler, possibly while a
        # callback is publishing: that publish then fails on the invalid context.
        # That is a shutdown too; an error while the context is still up is not.
        if rclpy.ok():
            raise
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


def set_timer_period(timer, period_s: float) -> None:
    """Change a running timer's period at once (a parameter changed at run time)."""
    timer.timer_period_ns = int(period_s * 1e9)
    timer.reset()
