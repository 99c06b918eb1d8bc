"""The report a bounded edge run leaves behind: a plot, a node table and the raw series."""

import math
import statistics
from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402  (backend must be chosen first)

from adaptive_perception.activity.features import HOP_S, WINDOW_S  # noqa: E402
from adaptive_perception.interfaces import MULTITASK_TASKS  # noqa: E402
from adaptive_perception.runtime.report_io import markdown_table, save_figure, write_json  # noqa: E402

TABLE_COLUMNS = [  # (diagnostics key, header)
    ('severity', 'status'), ('applied_level', 'level'), ('level_source', 'source'),
    ('frames', 'frames'), ('rate_hz', 'rate Hz'), ('latency_p50_ms', 'p50 ms'),
    ('latency_p95_ms', 'p95 ms'), ('apply_cost_max_ms', 'apply max ms'),
    ('level_changes', 'level changes'), ('process', 'process'), ('restarts', 'restarts'),
    ('exit_codes', 'exit codes'),
]


def node_table(statuses: dict) -> str:
    """Markdown table of the latest per-node diagnostics (``EdgeMonitor.node_statuses``).

    A STALE node shows rate 0; the process columns (state, restarts, exit codes of the
    processes that ended on their own) come from the launcher.
    """
    rows = []
    for name, values in sorted(statuses.items()):
        values = {'applied_level': values.get('level', '-'), **values}  # manager: 'level'
        rows.append((name, *(_cell(values.get(key, '-')) for key, _ in TABLE_COLUMNS)))
    return markdown_table(('node', *(h for _, h in TABLE_COLUMNS)), rows)


def _cell(text) -> str:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return str(text)
    if math.isnan(value):
        return '-'
    return f'{value:.0f}' if value == int(value) and abs(value) >= 1 else f'{value:.3g}'


def activity_summary(states: list, truth_events: list, margin_s: float = WINDOW_S) -> dict:
    """Summarise the activity recognizer's ActivityState messages (no ROS).

    ``states``: one dict per message, in arrival order (``t``: arrival, s since the
    start; ``label``, ``confidence``, ``sensor_state``, ``sensor_current_ua``);
    ``truth_events``: the simulator's true activity on change (``t``, ``label``).
    Each message stands for ``HOP_S`` of IMU data, so its share is a time share.
    A state is compared with the latest truth that arrived before it. The window a
    state classifies may straddle an activity change, so a second accuracy ("steady")
    leaves out the states that arrived within ``margin_s`` of a truth change.
    """
    summary = {'messages': len(states), 'timeline': [], 'sensor_states': {},
               'mean_sensor_current_ua': math.nan, 'costliest_sensor_state': None,
               'truth': None}
    for state in states:
        if not summary['timeline'] or summary['timeline'][-1]['label'] != state['label']:
            summary['timeline'].append({key: state[key] for key in (
                't', 'label', 'confidence', 'sensor_state')})
    counts = Counter(state['sensor_state'] or '' for state in states)
    current = {state['sensor_state']: state['sensor_current_ua'] for state in states
               if state['sensor_state']}
    order = sorted(counts, key=lambda name: (name == '', -current.get(name, 0.0), name))
    summary['sensor_states'] = {
        name or 'unconfirmed': {'messages': counts[name], 'share': counts[name] / len(states),
                                'current_ua': current.get(name, math.nan)} for name in order}
    confirmed = [state['sensor_current_ua'] for state in states if state['sensor_state']]
    if confirmed:
        summary['mean_sensor_current_ua'] = sum(confirmed) / len(confirmed)
        costliest = max(current, key=current.get)
        summary['costliest_sensor_state'] = {'name': costliest,
                                             'current_ua': current[costliest]}
    if truth_events:
        changes = [event['t'] for event in truth_events[1:]]
        compared = correct = steady = steady_correct = 0
        for state in states:
            truth = next((e['label'] for e in reversed(truth_events) if e['t'] <= state['t']),
                         None)
            if truth is None:
                continue
            hit = state['label'] == truth
            compared, correct = compared + 1, correct + hit
            if all(abs(state['t'] - change) > margin_s for change in changes):
                steady, steady_correct = steady + 1, steady_correct + hit
        summary['truth'] = {
            'compared': compared, 'correct': correct,
            'accuracy': correct / compared if compared else math.nan,
            'steady_compared': steady, 'steady_correct': steady_correct,
            'steady_accuracy': steady_correct / steady if steady else math.nan,
            'margin_s': margin_s, 'events': truth_events}
    return summary


def activity_section(summary: dict, max_timeline: int = 40) -> str:
    """Return the report's markdown section on the activity recognizer."""
    lines = ['## Activity (activity_recognizer)', '',
             f'- ActivityState messages: {summary["messages"]} (one per {HOP_S:g} s of IMU '
             f'data, each classifying the last {WINDOW_S:g} s)']
    if not summary['messages']:
        lines.append('- no ActivityState arrived on /adaptive_perception/activity: see '
                     'logs/activity_recognizer.log')
        return '\n'.join(lines) + '\n'
    timeline = summary['timeline']
    lines.append(f'- recognised activity timeline ({len(timeline) - 1} label changes):')
    lines += [f'  - {e["t"]:.1f} s: {e["label"]} (confidence {e["confidence"]:.2f}, sensor '
              f'{e["sensor_state"] or "unconfirmed"})' for e in timeline[:max_timeline]]
    if len(timeline) > max_timeline:
        lines.append(f'  - ... {len(timeline) - max_timeline} more in edge_report.json')
    lines += ['', markdown_table(
        ('sensor state', 'messages', 'time share', 'modelled current uA'),
        ((name, v['messages'], f'{100 * v["share"]:.0f}%', _cell(v['current_ua']))
         for name, v in summary['sensor_states'].items()))]
    lines.append('')
    mean, costliest = summary['mean_sensor_current_ua'], summary['costliest_sensor_state']
    if costliest:
        saving = 1 - mean / costliest['current_ua'] if costliest['current_ua'] else 0.0
        lines.append(f'- mean modelled sensor current: {mean:.1f} uA ({costliest["name"]} all '
                     f'the time: {costliest["current_ua"]:.1f} uA, {100 * saving:.0f}% less)')
    else:
        lines.append('- mean modelled sensor current: - (the driver never confirmed a state)')
    truth = summary['truth']
    if truth is None:
        lines.append('- accuracy: - (no /imu/activity_truth: the simulator did not run)')
    else:
        lines.append(f'- accuracy against /imu/activity_truth: {_ratio(truth, "")}; away from '
                     f'truth changes (more than {truth["margin_s"]:g} s): '
                     f'{_ratio(truth, "steady_")}')
        lines.append('- true activity: ' + ', '.join(
            f'{e["t"]:.1f} s {e["label"]}' for e in truth['events']))
        lines.append(f'- note: each state is compared with the latest true label that arrived '
                     f'before it; a state classifies the {WINDOW_S:g} s window before its '
                     f'stamp, so around a change the truth leads or lags the window by up to '
                     f'{WINDOW_S:g} s and some disagreement there is expected.')
    return '\n'.join(lines) + '\n'


def _number(text) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def _ratio(truth: dict, prefix: str) -> str:
    compared = truth[f'{prefix}compared']
    if not compared:
        return '- (nothing to compare)'
    return f'{truth[f"{prefix}accuracy"]:.2f} ({truth[f"{prefix}correct"]}/{compared})'


def activity_line(summary: dict) -> str:
    """One line for the console: messages, label changes, current, accuracy."""
    text = (f'activity: {summary["messages"]} states, '
            f'{max(len(summary["timeline"]) - 1, 0)} label changes, mean sensor current '
            f'{_cell(summary["mean_sensor_current_ua"])} uA')
    if summary['truth'] is not None:
        text += (f', accuracy {_ratio(summary["truth"], "")} '
                 f'({_ratio(summary["truth"], "steady_")} away from changes)')
    return text


def multitask_summary(outputs: list, status: dict | None) -> dict:
    """Summarise the multi-task node's output images and its last diagnostics (no ROS).

    ``outputs``: one dict per image as ``EdgeMonitor`` received it (``t``: arrival, s
    since the start; ``task``; ``age_ms``: arrival minus the header stamp, i.e. the
    camera frame's age). ``status``: the node's last diagnostics values, or None.
    """
    tasks = {}
    for task in MULTITASK_TASKS:
        times = [o['t'] for o in outputs if o['task'] == task]
        ages = [o['age_ms'] for o in outputs if o['task'] == task]
        span = times[-1] - times[0] if times else 0.0
        tasks[task] = {'messages': len(times),
                       'rate_hz': (len(times) - 1) / span if span > 0 else math.nan,
                       'age_p50_ms': statistics.median(ages) if ages else math.nan}
    return {'messages': len(outputs), 'tasks': tasks, 'node': status}


def multitask_section(summary: dict, node_name: str = 'adamtl_multitask') -> str:
    """Return the report's markdown section on the multi-task node."""
    lines = [f'## Multi-task ({node_name})', '']
    if not summary['messages']:
        lines.append(f'- no task output arrived on /adaptive_perception/multitask/*: see '
                     f'logs/{node_name}.log')
    else:
        lines.append(markdown_table(
            ('task', 'images', 'rate Hz', 'frame age on arrival p50 ms'),
            ((task, v['messages'], _cell(v['rate_hz']), _cell(v['age_p50_ms']))
             for task, v in summary['tasks'].items())))
        lines.append('')
    node = summary['node']
    if node is None:
        lines.append('- no diagnostics from the node')
    else:
        lines.append(
            f'- last diagnostics: policy {node.get("policy", "-")}, tasks allowed '
            f'{node.get("tasks") or "-"}; {_cell(node.get("frames", "-"))} frames run, '
            f'{_cell(node.get("frames_unwatched", "-"))} unwatched; latency p50 '
            f'{_cell(node.get("latency_p50_ms", "-"))} ms, p95 '
            f'{_cell(node.get("latency_p95_ms", "-"))} ms; mean block share '
            f'{_cell(node.get("block_share_mean", "-"))}, token share '
            f'{_cell(node.get("token_share_mean", "-"))}, MFLOPs/frame '
            f'{_cell(_number(node.get("flops_mean")) / 1e6)}')
    return '\n'.join(lines) + '\n'


def energy_rows(statuses: dict, preset: str = 'laptop_cpu') -> list:
    """Per node and level: knob, CPU s/s, ms/frame, ONNX Runtime and executor s/s, modelled W.

    From the ``cpu_*_level_<i>`` values every level-following node reports; watts
    of the CPU demand (inputs dropped counted at the cost per frame) through the
    device model ``preset`` (``power.device``), above the device's idle.
    """
    from adaptive_perception.power.device import device
    model = device(preset)
    rows = []
    for name, values in sorted(statuses.items()):
        if name == 'power_simulator' or 'sim_time_s' in values:
            continue
        for key in sorted(k for k in values if k.startswith('cpu_s_per_s_level_')):
            level = key.rsplit('_', 1)[1]
            cpu = _number(values[key])
            demand = _number(values.get(f'cpu_demand_s_per_s_level_{level}', cpu))
            rows.append({'node': name, 'level': int(level),
                         'knob': values.get(f'knob_level_{level}', '-'), 'cpu_s_per_s': cpu,
                         'cpu_demand_s_per_s': demand,
                         'cpu_ms_per_frame': _number(values.get(
                             f'cpu_ms_per_frame_level_{level}')),
                         'ort_cpu_s_per_s': _number(values.get(
                             f'ort_cpu_s_per_s_level_{level}')),
                         'executor_cpu_s_per_s': _number(values.get(
                             f'executor_cpu_s_per_s_level_{level}')),
                         'watts': model.load_w(demand) if math.isfinite(demand) else math.nan})
    return rows


def energy_section(statuses: dict, preset: str = 'laptop_cpu') -> str:
    """Return the report's markdown section on energy per node and level."""
    rows = energy_rows(statuses, preset)
    lines = [f'## Energy per node and level (process CPU time; W modelled for {preset})', '']
    if not rows:
        return '\n'.join(lines + ['- no node reported CPU time per level']) + '\n'
    lines.append(markdown_table(
        ('node', 'level', 'knob', 'CPU s/s', 'demand s/s', 'CPU ms/frame', 'ONNX Runtime s/s',
         'executor s/s', 'W'),
        ((r['node'], r['level'], r['knob'], _cell(r['cpu_s_per_s']),
          _cell(r['cpu_demand_s_per_s']), _cell(r['cpu_ms_per_frame']),
          _cell(r['ort_cpu_s_per_s']), _cell(r['executor_cpu_s_per_s']), _cell(r['watts']))
         for r in rows)))
    return '\n'.join(lines) + '\n'


def multitask_line(summary: dict) -> str:
    """One line for the console: images per task, the policy, the mean block share."""
    counts = ', '.join(f'{task} {v["messages"]}' for task, v in summary['tasks'].items())
    node = summary['node'] or {}
    return (f'multitask: {counts} images; policy {node.get("policy", "-")}, mean block share '
            f'{_cell(node.get("block_share_mean", "-"))}, token share '
            f'{_cell(node.get("token_share_mean", "-"))}')


def write_report(out_dir: Path, samples: list, level_events: list, statuses: dict,
                 battery_thresholds=(), temperature_thresholds_c=(), level_names=(),
                 activity: dict | None = None, multitask: dict | None = None,
                 processes: dict | None = None) -> dict:
    """Write edge_report.png / .md / .json into ``out_dir``; return their paths.

    ``activity`` (when the recognizer ran): ``{'states': [...], 'truth_events': [...]}``
    as ``EdgeMonitor`` records them; adds the activity section, panel and series.
    ``multitask`` (when the multi-task node ran): ``{'node': its name, 'outputs': [...]}``;
    adds the multi-task section and series.
    ``processes`` (from the launcher): node -> restarts, exits (t, code, ran_s, action),
    whether it gave up, the final exit code; adds the restarts section.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {'plot': out_dir / 'edge_report.png', 'table': out_dir / 'edge_report.md',
             'data': out_dir / 'edge_report.json'}
    summary = (activity_summary(activity['states'], activity['truth_events'])
               if activity is not None else None)
    _plot(paths['plot'], samples, level_events, battery_thresholds, temperature_thresholds_c,
          level_names, activity['states'] if summary else None)
    changes = '\n'.join(f'- {e["t"]:.1f} s: level {e["level"]} ({e["level_name"]}): '
                        f'{e["reason"]}' for e in level_events)
    section = f'\n{activity_section(summary)}' if summary else ''
    tasks = (multitask_summary(multitask['outputs'], statuses.get(multitask['node']))
             if multitask is not None else None)
    if tasks is not None:
        section += f'\n{multitask_section(tasks, multitask["node"])}'
    exits = '\n'.join(f'- {e["t"]:.1f} s: {name} exited with code {e["code"]} after '
                      f'{e["ran_s"]:.1f} s: {e["action"]}'
                      for name, p in (processes or {}).items() for e in p['exits'])
    section += f'\n{energy_section(statuses)}'
    paths['table'].write_text(f'# Edge run report\n\n## Nodes (last diagnostics)\n\n'
                              f'{node_table(statuses)}\n\n## Exits and restarts\n\n'
                              f'{exits or "- none"}\n\n## Level changes\n\n'
                              f'{changes or "- none"}\n{section}')
    data = {'samples': samples, 'level_events': level_events, 'statuses': statuses,
            'processes': processes or {}}
    if summary:
        data['activity'] = {'summary': summary, 'states': activity['states'],
                            'truth_events': activity['truth_events']}
    if tasks is not None:
        data['multitask'] = {'summary': tasks, 'outputs': multitask['outputs']}
    data['energy'] = energy_rows(statuses)
    write_json(paths['data'], data)
    return paths


def _plot(path, samples, level_events, battery_thresholds, temperature_thresholds_c,
          level_names, activity_states=None):
    t = [s['t'] for s in samples]
    rows = 4 if activity_states else 3
    fig, axes = plt.subplots(rows, 1, sharex=True, figsize=(9, 2.3 * rows + 0.1))
    ax_b, ax_t, ax_l = axes[:3]
    ax_b.plot(t, [s['battery'] for s in samples], color='tab:green')
    for th in battery_thresholds:
        ax_b.axhline(th, color='gray', linestyle=':', linewidth=1)
    ax_b.set_ylabel('battery (0..1)')
    ax_t.plot(t, [s['temperature_c'] for s in samples], color='tab:red')
    for th in temperature_thresholds_c:
        ax_t.axhline(th, color='gray', linestyle=':', linewidth=1)
    ax_t.set_ylabel('temperature (C)')
    ax_l.step(t, [s['level'] for s in samples], where='post', color='tab:blue')
    for event in level_events:
        ax_l.axvline(event['t'], color='tab:blue', alpha=0.2)
    if level_names:
        ax_l.set_yticks(range(len(level_names)), [f'{i} {n}' for i, n in enumerate(level_names)])
    ax_l.invert_yaxis()
    ax_l.set_ylabel('execution level')
    if activity_states:
        _plot_activity(axes[3], activity_states)
    axes[-1].set_xlabel('time since start (s)')
    ax_b.set_title('adaptive_perception edge run: power state, execution level'
                   + (' and IMU sensor state' if activity_states else ''))
    save_figure(fig, path, dpi=100)


def _plot_activity(ax, states):
    """Modelled sensor current over time, the recognised activity written at each change."""
    ax.step([s['t'] for s in states], [s['sensor_current_ua'] for s in states], where='post',
            color='tab:purple')
    label = None
    for state in states:
        if state['label'] != label:
            label = state['label']
            ax.axvline(state['t'], color='tab:purple', alpha=0.2)
            ax.annotate(label, (state['t'], 1.0), xycoords=('data', 'axes fraction'),
                        fontsize=7, rotation=90, va='top', ha='right')
    ax.set_ylabel('sensor current (uA)')
