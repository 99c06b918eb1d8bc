"""``adaptive-perception launch edge``: what ``ros2 launch ... edge.launch.py`` starts.

Starts the plan's nodes as processes, restarts those that exit (the plan's respawn
rules), prints a one-line live status, and - for a bounded run (``--duration``), on
Ctrl-C, SIGINT or SIGTERM (also when SIGINT was inherited as ignored) - stops every
node (SIGINT, then SIGTERM, then SIGKILL) and writes a report once they are gone.
"""

import signal
import sys
from pathlib import Path

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions

from adaptive_perception.budget.policy import PolicyConfig
from adaptive_perception.launcher.monitor import EdgeMonitor
from adaptive_perception.launcher.plan import load_plan
from adaptive_perception.launcher.processes import (
    signum_name,
    start_all,
    stop_all,
    stopped_as_asked,
)
from adaptive_perception.launcher.report import (
    activity_line,
    activity_summary,
    multitask_line,
    multitask_summary,
    node_table,
    write_report,
)
from adaptive_perception.middleware import middleware_env

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopRequest:
    """Turns SIGINT / SIGTERM / SIGHUP into a flag the run loop checks.

    Installed explicitly, so that a launcher started in the background by a shell
    (SIGINT inherited as ignored) still stops on SIGINT, and a supervisor's SIGTERM
    stops the nodes instead of orphaning them. The nodes started afterwards get the
    default dispositions back (exec resets caught signals).
    """

    def __init__(self):
        self.signal = None
        self._previous = {s: signal.signal(s, self._on_signal) for s in STOP_SIGNALS}

    def _on_signal(self, signum, frame):
        if self.signal is None:
            self.signal = signum
            print(f'\n{signum_name(signum)} received: stopping every node', flush=True)
        else:
            print(f'\n{signum_name(signum)} received: already stopping', flush=True)

    def restore(self):
        """Put back the handlers that were there before."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def run_edge(params_file=None, power='sim', perception='all', camera='sim', duration_s=None,
             report_dir=Path('reports/edge'), status_period_s=1.0, imu='sim',
             detector_model=None, camera_source=None) -> int:
    """Run the pipeline; return 0 if every node ran, and nothing failed for good."""
    specs = load_plan(params_file, power, perception, camera, imu, detector_model,
                      camera_source)
    print(f'starting {", ".join(f"{s.name} ({s.executable})" for s in specs)}; '
          f'logs in {report_dir / "logs"}', flush=True)
    stop = StopRequest()
    try:
        # The same middleware settings ros2 launch gives (camera-sized frames get through).
        processes = start_all(specs, report_dir / 'logs', env=middleware_env())
    except BaseException:
        stop.restore()
        raise
    try:
        # The launcher's own handlers decide what a signal does, not rclpy's.
        rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
        monitor = EdgeMonitor(processes=processes)
        executor = SingleThreadedExecutor()
        executor.add_node(monitor)
    except BaseException:
        stop_all(processes, say=print)
        stop.restore()
        raise
    live = sys.stdout.isatty()
    try:
        next_status = 0.0
        while (duration_s is None or monitor.elapsed() < duration_s) and stop.signal is None:
            executor.spin_once(timeout_sec=0.05)
            for p in processes:
                # Ctrl-C reaches the nodes too: their exits then are no news.
                event = p.supervise() if stop.signal is None else None
                if event:
                    print(f'\n[{monitor.elapsed():6.1f}s] {event}', flush=True)
            if monitor.elapsed() >= next_status:
                next_status += status_period_s if live else 5 * status_period_s
                print(('\r' if live else '') + monitor.status_line(), end='' if live else '\n',
                      flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        statuses = monitor.node_statuses()  # as the run ends, before the nodes are stopped
        codes = stop_all(processes, say=print)
        executor.shutdown()
        monitor.destroy_node()
        rclpy.try_shutdown()
        stop.restore()
    print()
    manager = next((s.parameters for s in specs if s.executable == 'budget_manager'), {})
    defaults = PolicyConfig()
    # The activity section when the recognizer was started (or another one published).
    recognizer = any(s.executable == 'activity_recognizer' for s in specs)
    activity = ({'states': monitor.activity_states, 'truth_events': monitor.truth_events}
                if recognizer or monitor.activity_states else None)
    # The multi-task section likewise; its diagnostics are found under the node's name.
    multitask_node = next((s.name for s in specs if s.executable == 'adamtl_multitask'),
                          'adamtl_multitask' if monitor.multitask_outputs else None)
    multitask = ({'node': multitask_node, 'outputs': monitor.multitask_outputs}
                 if multitask_node else None)
    paths = write_report(
        report_dir, monitor.samples, monitor.level_events, statuses,
        manager.get('battery_thresholds', defaults.battery_thresholds),
        manager.get('temperature_thresholds_c', defaults.temperature_thresholds_c),
        manager.get('level_names', defaults.level_names), activity, multitask,
        processes={p.name: {'restarts': p.restarts, 'gave_up': p.gave_up, 'exits': [
            {**e, 't': e['t'] - monitor.start} for e in p.exits], 'final_code': codes[p.name]}
            for p in processes})
    print(node_table(statuses))
    for p in processes:
        for e in p.exits:
            print(f'  {p.name}: exit code {e["code"]} after {e["ran_s"]:.1f} s: {e["action"]}')
    print(f'level changes: {len(monitor.level_events) - 1 if monitor.level_events else 0}')
    for event in monitor.level_events:
        print(f'  {event["t"]:6.1f} s  level {event["level"]} ({event["level_name"]}): '
              f'{event["reason"]}')
    if activity is not None:
        print(activity_line(activity_summary(activity['states'], activity['truth_events'])))
    if multitask is not None:
        print(multitask_line(multitask_summary(multitask['outputs'],
                                               statuses.get(multitask_node))))
    print(f'report: {paths["plot"]}, {paths["table"]}, {paths["data"]}')
    # SIGINT-stopped nodes exit 0. A node that exits on its own - with 0 too, as launch_ros
    # does it (e.g. power_monitor on a machine without sysfs power data, which says why in
    # its log) - is restarted; it counts as failed only when the launcher gave up on it.
    bad = {p.name: codes[p.name] for p in processes if not stopped_as_asked(p, codes[p.name])}
    bad.update({p.name: f'gave up after {p.restarts} restarts' for p in processes if p.gave_up})
    if bad:
        print(f'nodes that failed: {bad}', file=sys.stderr)
    restarted = {p.name: p.restarts for p in processes if p.restarts}
    if restarted:
        print(f'nodes restarted: {restarted}')
    if stop.signal is not None:
        print(f'stopped by {signum_name(stop.signal)}; every node is gone')
    return 1 if bad else 0
