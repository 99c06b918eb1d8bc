"""The report a bounded edge run leaves behind: a plot, a node table and the raw series."""

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402  (backend must be chosen first)

TABLE_COLUMNS = [  # (diagnostics key, header)
    ('severity', 'status'), ('applied_level', 'level'), ('level_source', 'source'),
    ('frames', 'frames'), ('rate_hz', 'rate Hz'), ('latency_p50_ms', 'p50 ms'),
    ('latency_p95_ms', 'p95 ms'), ('apply_cost_max_ms', 'apply max ms'),
    ('level_changes', 'level changes'),
]


def node_table(statuses: dict) -> str:
    """Markdown table of the latest per-node diagnostics."""
    header = '| node | ' + ' | '.join(h for _, h in TABLE_COLUMNS) + ' |'
    rows = [header, '|' + ' --- |' * (len(TABLE_COLUMNS) + 1)]
    for name, values in sorted(statuses.items()):
        values = {'applied_level': values.get('level', '-'), **values}  # manager: 'level'
        cells = [_cell(values.get(key, '-')) for key, _ in TABLE_COLUMNS]
        rows.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(rows)


def _cell(text) -> str:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return str(text)
    if math.isnan(value):
        return '-'
    return f'{value:.0f}' if value == int(value) and abs(value) >= 1 else f'{value:.3g}'


def write_report(out_dir: Path, samples: list, level_events: list, statuses: dict,
                 battery_thresholds=(), temperature_thresholds_c=(), level_names=()) -> dict:
    """Write edge_report.png / .md / .json into ``out_dir``; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {'plot': out_dir / 'edge_report.png', 'table': out_dir / 'edge_report.md',
             'data': out_dir / 'edge_report.json'}
    _plot(paths['plot'], samples, level_events, battery_thresholds, temperature_thresholds_c,
          level_names)
    changes = '\n'.join(f'- {e["t"]:.1f} s: level {e["level"]} ({e["level_name"]}): '
                        f'{e["reason"]}' for e in level_events)
    paths['table'].write_text(f'# Edge run report\n\n## Nodes (last diagnostics)\n\n'
                              f'{node_table(statuses)}\n\n## Level changes\n\n'
                              f'{changes or "- none"}\n')
    paths['data'].write_text(json.dumps({'samples': samples, 'level_events': level_events,
                                         'statuses': statuses}, indent=1, default=str))
    return paths


def _plot(path, samples, level_events, battery_thresholds, temperature_thresholds_c,
          level_names):
    t = [s['t'] for s in samples]
    fig, (ax_b, ax_t, ax_l) = plt.subplots(3, 1, sharex=True, figsize=(9, 7))
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
    ax_l.set_xlabel('time since start (s)')
    ax_b.set_title('adaptive_perception edge run: power state and execution level')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
