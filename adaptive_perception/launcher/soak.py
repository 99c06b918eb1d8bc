"""``adaptive-perception bench soak``: run the edge pipeline for a long time and watch it.

Starts the plan's nodes as ``adaptive-perception launch edge`` does (same restart
rules), and every ``sample_s`` records for each node its resident memory and CPU
time (from ``/proc``), and from its diagnostics its rate, latency p95 and dropped
frames. At the end it fits a straight line to each node's memory after the warm-up
(``scipy.stats.linregress``: slope in MB/minute with its standard error) and checks
the targets:

* every node's memory slope after the warm-up under ``max_slope_mb_per_min``;
* every camera-fed node's rate within ``rate_tolerance`` of the camera rate at
  every sample after the first;
* no exit that the bench did not ask for.

Writes ``soak.json`` (every sample, the fits, the targets) and ``soak.png``.
"""

import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import TypedDict

from adaptive_perception.runtime.report_io import markdown_table, pyplot, save_figure, write_json

CAMERA_FED = ('adacon_detector', 'adamtl_multitask')  # executables that take every frame
PAGE_MB = os.sysconf('SC_PAGE_SIZE') / 2 ** 20 if hasattr(os, 'sysconf') else 4096 / 2 ** 20
CLOCK_TICKS = os.sysconf('SC_CLK_TCK') if hasattr(os, 'sysconf') else 100


def process_usage(pid: int):
    """Return (resident MB, CPU seconds user+system) of ``pid`` from /proc; None if gone."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            fields = f.read().rsplit(')', 1)[1].split()
        with open(f'/proc/{pid}/statm') as f:
            resident_pages = int(f.read().split()[1])
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return None
    if fields[0] == 'Z':
        return None
    # fields[0] is /proc/pid/stat field 3 (state): utime, stime are fields 14, 15.
    cpu_s = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return resident_pages * PAGE_MB, cpu_s


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


class NodeSample(TypedDict):
    """One node at one sampling instant (NaN where the process or its diagnostics lack it)."""

    pid: int | None
    state: str
    restarts: int
    rss_mb: float
    cpu_s: float
    rate_hz: float
    latency_p95_ms: float
    frames_dropped: float
    severity: str


def sample_nodes(processes, statuses: dict) -> dict[str, NodeSample]:
    """One sample: node -> rss_mb, cpu_s, rate_hz, latency_p95_ms, frames_dropped, pid."""
    sample = {}
    for p in processes:
        usage = process_usage(p.pid) if p.running() else None
        status = statuses.get(p.name, {})
        sample[p.name] = {
            'pid': p.pid, 'state': p.state(), 'restarts': p.restarts,
            'rss_mb': usage[0] if usage else math.nan,
            'cpu_s': usage[1] if usage else math.nan,
            'rate_hz': _number(status.get('rate_hz')),
            'latency_p95_ms': _number(status.get('latency_p95_ms')),
            'frames_dropped': _number(status.get('frames_dropped')),
            'severity': status.get('severity', '-')}
    return sample


class MemoryFit(TypedDict):
    """Resident memory's trend after warm-up: slope and its standard error, first and last."""

    points: int
    slope_mb_per_min: float
    stderr: float
    start_mb: float
    end_mb: float


def memory_fit(times_s, rss_mb, warmup_s: float) -> MemoryFit:
    """Slope (MB/minute) of resident memory after ``warmup_s``, with its standard error."""
    from scipy.stats import linregress
    points = [(t / 60.0, m) for t, m in zip(times_s, rss_mb, strict=True)
              if t >= warmup_s and math.isfinite(m)]
    if len(points) < 3:
        return {'points': len(points), 'slope_mb_per_min': math.nan, 'stderr': math.nan,
                'start_mb': math.nan, 'end_mb': math.nan}
    fit = linregress([p[0] for p in points], [p[1] for p in points])
    return {'points': len(points), 'slope_mb_per_min': float(fit.slope),
            'stderr': float(fit.stderr), 'start_mb': points[0][1], 'end_mb': points[-1][1]}


class SoakSummary(TypedDict):
    """Per node the fits and checks, the targets and the settings they were checked with."""

    nodes: dict[str, dict]
    targets: dict[str, bool]
    all_targets_met: bool
    max_slope_mb_per_min: float
    rate_tolerance: float
    camera_rate_hz: float
    warmup_s: float


def summarise(samples: list, executables: dict, camera_rate_hz: float, warmup_s: float,
              exits: dict, max_slope_mb_per_min: float = 0.1,
              rate_tolerance: float = 0.05) -> SoakSummary:
    """Fit memory, check rates and exits against the targets (no ROS, no processes).

    ``samples``: ``{'t_s': ..., 'nodes': sample_nodes(...)}`` in time order;
    ``executables``: node -> executable; ``exits``: node -> list of exit dicts.
    """
    nodes = {}
    for name, executable in executables.items():
        times = [s['t_s'] for s in samples if name in s['nodes']]
        series = [s['nodes'][name] for s in samples if name in s['nodes']]
        rss = [v['rss_mb'] for v in series]
        fit = memory_fit(times, rss, warmup_s)
        cpu = [(t, v['cpu_s']) for t, v in zip(times, series, strict=True)
               if math.isfinite(v['cpu_s'])]
        span = cpu[-1][0] - cpu[0][0] if len(cpu) > 1 else 0.0
        rates = [v['rate_hz'] for v in series[1:]]  # the first sample: a window not full yet
        node = {'executable': executable, 'memory': fit,
                'rss_first_mb': next((m for m in rss if math.isfinite(m)), math.nan),
                'rss_last_mb': next((m for m in reversed(rss) if math.isfinite(m)), math.nan),
                'cpu_percent': 100 * (cpu[-1][1] - cpu[0][1]) / span if span > 0 else math.nan,
                'rate_min_hz': min(rates, default=math.nan),
                'rate_max_hz': max(rates, default=math.nan),
                'latency_p95_max_ms': max((v['latency_p95_ms'] for v in series
                                           if math.isfinite(v['latency_p95_ms'])),
                                          default=math.nan),
                'frames_dropped_last': series[-1]['frames_dropped'] if series else math.nan,
                'exits': exits.get(name, [])}
        node['slope_ok'] = (math.isfinite(fit['slope_mb_per_min'])
                            and fit['slope_mb_per_min'] < max_slope_mb_per_min)
        if executable in CAMERA_FED:
            low = camera_rate_hz * (1 - rate_tolerance)
            node['rate_ok'] = bool(rates) and all(math.isfinite(r) and r >= low for r in rates)
            node['rate_samples_below'] = sum(1 for r in rates if not r >= low)
        nodes[name] = node
    targets = {
        'memory_slope': all(n['slope_ok'] for n in nodes.values()),
        'rates': all(n.get('rate_ok', True) for n in nodes.values()),
        'no_exits': not any(n['exits'] for n in nodes.values())}
    return {'nodes': nodes, 'targets': targets, 'all_targets_met': all(targets.values()),
            'max_slope_mb_per_min': max_slope_mb_per_min, 'rate_tolerance': rate_tolerance,
            'camera_rate_hz': camera_rate_hz, 'warmup_s': warmup_s}


def run_soak(minutes: float, out_dir: Path, sample_s: float = 60.0,
             warmup_minutes: float = 5.0, params_file=None, power: str = 'sim',
             perception: str = 'all', max_slope_mb_per_min: float = 0.1,
             rate_tolerance: float = 0.05) -> int:
    """Run the soak; print and write what was measured. 0 when it ran (targets in the JSON)."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    from adaptive_perception.launcher.edge import StopRequest
    from adaptive_perception.launcher.monitor import EdgeMonitor
    from adaptive_perception.launcher.plan import load_plan
    from adaptive_perception.launcher.processes import start_all, stop_all

    if minutes <= 0 or sample_s <= 0 or warmup_minutes < 0 or warmup_minutes >= minutes:
        raise ValueError('need minutes > 0, sample period > 0 and 0 <= warm-up < minutes, '
                         f'got {minutes}, {sample_s}, {warmup_minutes}')
    specs = load_plan(params_file, power=power, perception=perception)
    camera = next((s for s in specs if s.executable == 'camera_source'), None)
    camera_rate = float(camera.parameters.get('rate_hz', 10.0)) if camera else math.nan
    out_dir.mkdir(parents=True, exist_ok=True)
    duration_s, warmup_s = 60.0 * minutes, 60.0 * warmup_minutes
    print(f'soak: {", ".join(s.name for s in specs)} for {minutes:g} min, a sample every '
          f'{sample_s:g} s, memory fitted after {warmup_minutes:g} min; logs in '
          f'{out_dir / "logs"}', flush=True)
    stop = StopRequest()
    processes = []
    try:
        processes = start_all(specs, out_dir / 'logs')
        rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
        monitor = EdgeMonitor(processes=processes)
        # The monitor keeps every output image's arrival for the edge report: not needed.
        monitor.multitask_outputs = _Discard()
        executor = SingleThreadedExecutor()
        executor.add_node(monitor)
    except BaseException:
        stop_all(processes, say=print)
        rclpy.try_shutdown()
        stop.restore()
        raise
    samples = []
    start = time.monotonic()
    next_sample = start + sample_s
    try:
        while time.monotonic() - start < duration_s and stop.signal is None:
            executor.spin_once(timeout_sec=0.05)
            for p in processes:
                # Ctrl-C reaches the nodes too: their exits then are no news.
                event = p.supervise() if stop.signal is None else None
                if event:
                    print(f'[{time.monotonic() - start:7.1f}s] {event}', flush=True)
            now = time.monotonic()
            if now >= next_sample:
                next_sample += sample_s
                sample = {'t_s': now - start,
                          'nodes': sample_nodes(processes, monitor.node_statuses())}
                samples.append(sample)
                print(_sample_line(sample), flush=True)
                monitor.samples.clear()
                monitor.activity_states.clear()
    finally:
        codes = stop_all(processes, say=print)
        executor.shutdown()
        monitor.destroy_node()
        rclpy.try_shutdown()
        stop.restore()
    exits = {p.name: [{**e, 't': e['t'] - start} for e in p.exits] for p in processes}
    summary = summarise(samples, {s.name: s.executable for s in specs}, camera_rate, warmup_s,
                        exits, max_slope_mb_per_min, rate_tolerance)
    result = {'command': ' '.join(sys.argv), 'minutes': minutes, 'sample_s': sample_s,
              'ran_s': samples[-1]['t_s'] if samples else 0.0,
              'stopped_by': signal.Signals(stop.signal).name if stop.signal else None,
              'cpu_count': os.cpu_count(), 'load_average': os.getloadavg(),
              'final_exit_codes': codes, 'summary': summary, 'samples': samples}
    write_json(out_dir / 'soak.json', result)
    _plot(out_dir / 'soak.png', samples, summary)
    print(soak_table(summary))
    met = summary['targets']
    print('targets: ' + ', '.join(f'{k} {"met" if v else "MISSED"}' for k, v in met.items()))
    print(f'load average at the end (1/5/15 min): {os.getloadavg()} on {os.cpu_count()} CPUs')
    print(f'written: {out_dir / "soak.json"}, {out_dir / "soak.png"}')
    return 0


class _Discard(list):
    """A list that keeps nothing (the soak does not need per-image records)."""

    def append(self, item):
        pass


def _sample_line(sample: dict) -> str:
    parts = []
    for name, v in sample['nodes'].items():
        rate = f' {v["rate_hz"]:.1f}Hz' if math.isfinite(v['rate_hz']) else ''
        parts.append(f'{name} {v["rss_mb"]:.1f}MB{rate}' if v['state'] == 'running'
                     else f'{name} {v["state"]}')
    return f'[{sample["t_s"]:7.1f}s] ' + ' | '.join(parts)


def soak_table(summary: dict) -> str:
    """Markdown table: memory fit, CPU, rates, latency, drops and exits per node."""
    return markdown_table(
        ('node', 'RSS first MB', 'RSS last MB', 'slope MB/min (after warm-up)', 'CPU %',
         'rate min-max Hz', 'p95 max ms', 'dropped', 'exits'),
        ((name, f'{n["rss_first_mb"]:.1f}', f'{n["rss_last_mb"]:.1f}',
          f'{n["memory"]["slope_mb_per_min"]:+.3f} ± {n["memory"]["stderr"]:.3f}'
          + ('' if n['slope_ok'] else ' (over)'), f'{n["cpu_percent"]:.1f}',
          _range(n['rate_min_hz'], n['rate_max_hz'])
          + (' (below)' if n.get('rate_ok') is False else ''),
          _fmt(n['latency_p95_max_ms']), _fmt(n['frames_dropped_last']), len(n['exits']))
         for name, n in summary['nodes'].items()))


def _range(low, high) -> str:
    return '-' if not math.isfinite(low) else f'{low:.1f}-{high:.1f}'


def _fmt(value) -> str:
    return '-' if not math.isfinite(value) else f'{value:.1f}'


def _plot(path, samples, summary):
    plt = pyplot()
    fig, axes = plt.subplots(4, 1, sharex=True, figsize=(9, 10))
    t = [s['t_s'] / 60 for s in samples]
    for name in summary['nodes']:
        series = [s['nodes'].get(name, {}) for s in samples]
        rss = [v.get('rss_mb', math.nan) for v in series]
        axes[0].plot(t, rss, marker='.', label=name)
        cpu = [v.get('cpu_s', math.nan) for v in series]
        dt = [b - a for a, b in zip([0.0] + t[:-1], t, strict=True)]
        share = [math.nan] + [100 * (b - a) / (60 * d) if d > 0 else math.nan
                              for a, b, d in zip(cpu[:-1], cpu[1:], dt[1:], strict=True)]
        axes[1].plot(t, share, marker='.', label=name)
        axes[2].plot(t, [v.get('rate_hz', math.nan) for v in series], marker='.', label=name)
        axes[3].plot(t, [v.get('latency_p95_ms', math.nan) for v in series], marker='.',
                     label=name)
    warmup = summary['warmup_s'] / 60
    for ax in axes:
        ax.axvline(warmup, color='gray', linestyle=':', linewidth=1)
    axes[0].set_ylabel('resident MB')
    axes[0].legend(fontsize=7, ncol=2)
    axes[1].set_ylabel('CPU % (one core)')
    axes[2].set_ylabel('rate Hz')
    axes[2].axhline(summary['camera_rate_hz'] * (1 - summary['rate_tolerance']), color='gray',
                    linestyle='--', linewidth=1)
    axes[3].set_ylabel('latency p95 ms')
    axes[3].set_xlabel('minutes since start (dotted: end of warm-up)')
    axes[0].set_title('adaptive_perception soak: memory, CPU, rate, latency per node')
    save_figure(fig, path, dpi=90)
