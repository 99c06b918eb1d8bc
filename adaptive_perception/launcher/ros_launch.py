"""What ``launch/edge.launch.py`` adds to ``ros2 launch`` so that no node is orphaned.

Upstream ``launch`` ends on SIGTERM without stopping its processes, and a launch
started in the background by a non-interactive shell inherits SIGINT as ignored, so
SIGINT does nothing. Both leave this package's nodes
running. The launch file therefore, from inside the launch process:

* gives every node the respawn rules of the plan and the launch process's pid
  (``parent_watch``: a node ends itself when that process is gone, also after SIGKILL);
* puts back Python's SIGINT handler when SIGINT was inherited as ignored, so that
  ``launch`` sees SIGINT and shuts down as after Ctrl-C;
* on SIGTERM, stops its nodes itself - SIGINT, then SIGTERM, then SIGKILL, each after
  a timeout - before ``launch`` goes on to end the process.

Nothing here imports ``launch``: the functions take the launch context and the
``Node`` actions, so the module also loads where ``launch`` is missing.
"""

import os
import signal
import sys
import time

from adaptive_perception.launcher.plan import NodeSpec
from adaptive_perception.ros.parent_watch import launcher_env
from adaptive_perception.ros.parent_watch import process_alive as _alive

SIGINT_TIMEOUT_S = 5.0   # launch's own sigterm_timeout
SIGTERM_TIMEOUT_S = 5.0  # launch's own sigkill_timeout


def node_options(spec: NodeSpec) -> dict:
    """Return the ``launch_ros`` ``Node`` arguments for the plan's respawn rules."""
    return {'respawn': spec.respawn, 'respawn_delay': spec.respawn_delay,
            'respawn_max_retries': spec.respawn_max_per_minute if spec.respawn else -1,
            'additional_env': launcher_env()}


def stop_pids(pids, sigint_timeout_s=SIGINT_TIMEOUT_S, sigterm_timeout_s=SIGTERM_TIMEOUT_S,
              say=print) -> list:
    """SIGINT, then SIGTERM, then SIGKILL to ``pids``; return the pids that needed SIGKILL."""
    killed = []
    for signum, timeout in ((signal.SIGINT, sigint_timeout_s),
                            (signal.SIGTERM, sigterm_timeout_s), (signal.SIGKILL, 2.0)):
        alive = [pid for pid in pids if _alive(pid)]
        if not alive:
            break
        if signum != signal.SIGINT:
            say(f'still running: pids {alive}; sending {signal.Signals(signum).name}')
        if signum == signal.SIGKILL:
            killed = alive
        for pid in alive:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while any(_alive(pid) for pid in alive) and time.monotonic() < deadline:
            time.sleep(0.05)
    return killed


def guard_signals(context, node_actions) -> bool:
    """Install the SIGINT / SIGTERM handling described above; False if it could not be.

    ``context``: the launch context (its shutdown flag stops respawns once SIGTERM
    came); ``node_actions``: the ``Node`` actions, whose ``process_details`` give the
    pids of the processes running now.
    """
    def say(text):
        print(f'[edge.launch.py] {text}', file=sys.stderr, flush=True)

    def on_sigterm(signum, frame):
        # No respawn from now on: launch's own shutdown sets the same flag.
        set_shutdown = getattr(context, '_set_is_shutdown', None)
        if set_shutdown is not None:
            set_shutdown(True)
        pids = [d['pid'] for d in (getattr(a, 'process_details', None) for a in node_actions)
                if d and d.get('pid')]
        say(f'{signal.Signals(signum).name}: stopping {len(pids)} node(s) before launch '
            'exits (SIGINT, then SIGTERM, then SIGKILL)')
        killed = stop_pids(pids, say=say)
        say('every node has stopped' + (f' ({len(killed)} needed SIGKILL)' if killed else ''))

    try:
        if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
            say('SIGINT was inherited as ignored: handling it again')
            signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, on_sigterm)
    except ValueError:  # not the main thread (a launch service run in a thread)
        say('not in the main thread: SIGTERM will not stop the nodes; they stop '
            'themselves once the launch process is gone')
        return False
    return True
