"""``adaptive-perception launch edge``: what ``ros2 launch ... edge.launch.py`` starts.

Starts the plan's nodes as processes, prints a one-line live status, and - for a
bounded run (``--duration``) or on Ctrl-C - stops everything and writes a report.
"""

import sys
from pathlib import Path

import rclpy
from rclpy.executors import SingleThreadedExecutor

from adaptive_perception.budget.policy import PolicyConfig
from adaptive_perception.launcher.monitor import EdgeMonitor
from adaptive_perception.launcher.plan import load_plan
from adaptive_perception.launcher.processes import start_all, stop_all
from adaptive_perception.launcher.report import (
    activity_line,
    activity_summary,
    multitask_line,
    multitask_summary,
    node_table,
    write_report,
)


def run_edge(params_file=None, power='sim', perception='all', camera='sim', duration_s=None,
             report_dir=Path('reports/edge'), status_period_s=1.0, imu='sim',
             detector_model=None, camera_source=None) -> int:
    """Run the pipeline; return 0 if every node ran and stopped cleanly."""
    specs = load_plan(params_file, power, perception, camera, imu, detector_model,
                      camera_source)
    print(f'starting {", ".join(f"{s.name} ({s.executable})" for s in specs)}; '
          f'logs in {report_dir / "logs"}', flush=True)
    processes = start_all(specs, report_dir / 'logs')
    rclpy.init()
    monitor = EdgeMonitor()
    executor = SingleThreadedExecutor()
    executor.add_node(monitor)
    live = sys.stdout.isatty()
    failed = {}
    try:
        next_status = 0.0
        while duration_s is None or monitor.elapsed() < duration_s:
            executor.spin_once(timeout_sec=0.05)
            for p in processes:
                code = p.returncode()
                if code is not None and p.name not in failed:
                    failed[p.name] = code
                    tail = p.log().strip().splitlines()[-3:]
                    print(f'\n{p.name} exited with code {code}: {" / ".join(tail)}', flush=True)
            if monitor.elapsed() >= next_status:
                next_status += status_period_s if live else 5 * status_period_s
                print(('\r' if live else '') + monitor.status_line(), end='' if live else '\n',
                      flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        codes = stop_all(processes)
        executor.shutdown()
        monitor.destroy_node()
        rclpy.try_shutdown()
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
        report_dir, monitor.samples, monitor.level_events, monitor.statuses,
        manager.get('battery_thresholds', defaults.battery_thresholds),
        manager.get('temperature_thresholds_c', defaults.temperature_thresholds_c),
        manager.get('level_names', defaults.level_names), activity, multitask)
    print(node_table(monitor.statuses))
    print(f'level changes: {len(monitor.level_events) - 1 if monitor.level_events else 0}')
    for event in monitor.level_events:
        print(f'  {event["t"]:6.1f} s  level {event["level"]} ({event["level_name"]}): '
              f'{event["reason"]}')
    if activity is not None:
        print(activity_line(activity_summary(activity['states'], activity['truth_events'])))
    if multitask is not None:
        print(multitask_line(multitask_summary(multitask['outputs'],
                                               monitor.statuses.get(multitask_node))))
    print(f'report: {paths["plot"]}, {paths["table"]}, {paths["data"]}')
    # SIGINT-stopped nodes exit 0; a node that exits on its own with 0 (e.g. power_monitor
    # on a machine without sysfs power data) has said why in its log.
    bad = {n: c for n, c in codes.items() if c not in (0, None)}
    if bad:
        print(f'nodes that failed: {bad}', file=sys.stderr)
    return 1 if bad else 0
