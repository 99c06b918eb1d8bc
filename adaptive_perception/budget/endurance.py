"""``adaptive-perception bench endurance``: how much longer adapting makes the device last.

The real nodes of ``config/edge.yaml`` run in closed loop on the simulated battery:
``power_simulator`` takes its load from what the perception nodes measure they
spend (``load_source: measured``: their process CPU time through a device model;
the camera nodes' CPU time per frame times the scenario's camera rate, because on
this shared host the camera itself falls behind), in accelerated time. For each
scenario three policies run one after the other:

* static: level 0 forever (``override_level: 0``);
* threshold: today's battery and heat thresholds;
* mission: the thresholds plus a mission 1.6x the static run's battery life.

Each run reports battery life (or the battery at the mission's end), time at each
level, level changes per simulated hour, time above each thermal threshold, and
the quality delivered over time: each level's accuracy from the model cards
(detector mAP, AdaMTL delta_m, activity accuracy; equal weights), relative to level 0.
The battery is paused until every perception node is processing frames, so model
loading does not count. Time is simulated time throughout.
"""

import math
import time
from pathlib import Path
from typing import TypedDict

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from std_msgs.msg import Float64

from adaptive_perception.launcher.monitor import EdgeMonitor
from adaptive_perception.launcher.plan import load_plan
from adaptive_perception.launcher.processes import start_all, stop_all
from adaptive_perception.power.device import device
from adaptive_perception.ros.interfaces import EXECUTION_LEVEL_QOS, MISSION_START_TOPIC
from adaptive_perception.runtime.report_io import (
    cell,
    markdown_table,
    pyplot,
    save_figure,
    write_json,
)

PERCEPTION = ('adacon_detector', 'adamtl_multitask', 'activity_recognizer')
# Their load is CPU time per frame x the camera rate: on this shared host the camera
# itself falls behind, and fewer frames must not read as a cheaper level.
CAMERA_NODES = ('adacon_detector', 'adamtl_multitask')
# Quality of each level entry of config/edge.yaml's profiles, from the model cards:
# detector mAP (models/adacon/README.md, the `bench detector` table and the
# `bench channels` table), AdaMTL 1 + delta_m/100 vs static (models/adamtl/README.md;
# a policy that runs 2 of the 4 tasks delivers half the maps), activity accuracy of
# the entry's costliest sensor state, upright held-out wearers
# (models/activity/README.md; ':N', SPOT's stability threshold, does not change it).
# ``level_quality`` reads the entries from the plan the bench runs, so an entry the
# table does not know is an error, never a silent stale figure.
ENTRY_QUALITY = {
    'adacon_detector': {
        'static': 0.658, 'static/int8': 0.657, 'multi:0.1/int8': 0.644,
        'multi:0.03/int8': 0.646, 'static@0.5/int8': 0.610, 'single@0.5/int8': 0.551,
        'cascade:context=0.5:single@0.5/int8>static/int8': 0.566,
        'multi:0.03': 0.649, 'multi:0.03@0.5': 0.578, 'single@0.5': 0.552},
    'adamtl_multitask': {
        'static': 1.0, 'low_agnostic': 1 - 0.0176, 'low': 1 - 0.0184,
        'low:segmentation+depth': 0.5 * (1 - 0.0184)},
    'activity_recognizer': {'F100_A128': 0.9118, 'F50_A8': 0.9128, 'F25_A8': 0.9015,
                            'F12.5_A8': 0.8673},
}
# The parameter that holds each node's level profile.
PROFILE_PARAMETER = {'adacon_detector': 'level_modes', 'adamtl_multitask': 'level_policies',
                     'activity_recognizer': 'level_sensing'}
SCENARIOS = {
    'heavy': {'camera_hz': 30.0, 'device': 'laptop_cpu', 'capacity_wh': 10.0},
    'light': {'camera_hz': 10.0, 'device': 'laptop_cpu', 'capacity_wh': 10.0},
}
POLICIES = ('static', 'threshold', 'mission')
MISSION_FACTOR = 1.6


def node_level_quality(profiles: dict | None = None) -> dict:
    """Node -> quality per level of its profile (``profiles``: node -> level entries).

    The profiles default to the perception nodes' entries in the plan ``bench
    endurance`` starts (config/edge.yaml). Raises ValueError for an entry without a
    card figure in ``ENTRY_QUALITY``.
    """
    if profiles is None:
        specs = {s.name: s for s in load_plan(power='sim', perception='all', camera='sim',
                                              imu='sim')}
        profiles = {n: specs[n].parameters[PROFILE_PARAMETER[n]] for n in PERCEPTION}
    out = {}
    for name, entries in profiles.items():
        known = ENTRY_QUALITY[name]
        keys = [str(e).split(':')[0] if name == 'activity_recognizer' else str(e)
                for e in entries]
        missing = [e for e, k in zip(entries, keys, strict=True) if k not in known]
        if missing:
            raise ValueError(f'{name}: no model-card quality for level entries {missing}; '
                             f'add them to ENTRY_QUALITY')
        out[name] = [known[k] for k in keys]
    return out


def level_quality(weights=None, profiles: dict | None = None) -> list:
    """Quality of each level relative to level 0, averaged over the nodes (weights)."""
    per_node = node_level_quality(profiles)
    weights = weights or {name: 1.0 for name in per_node}
    total = sum(weights.values())
    levels = len(next(iter(per_node.values())))
    return [sum(weights[n] * q[lv] / q[0] for n, q in per_node.items()) / total
            for lv in range(levels)]


class RunMetrics(TypedDict):
    """One simulated mission: battery life, level time shares and changes, quality-time."""

    battery_life_s: float | None
    end_s: float
    battery_at_horizon: float
    time_at_level_s: dict[str, float]
    level_changes: int
    level_changes_per_h: float
    time_above_c_s: dict[str, float]
    quality_time_s: float
    mean_quality: float


def summarise(samples, quality, thresholds_c, horizon_s=None) -> RunMetrics:
    """Metrics of one run from its samples [(sim_s, fraction, temperature_c, level)]."""
    life = next((s[0] for s in samples if s[1] <= 0.0), None)
    end_s = samples[-1][0]
    horizon = end_s if horizon_s is None else horizon_s
    at_level, above, quality_time = {}, {t: 0.0 for t in thresholds_c}, 0.0
    changes = 0
    for a, b in zip(samples, samples[1:], strict=False):
        dt = b[0] - a[0]
        if a[3] is None or (life is not None and a[0] >= life) or a[0] >= horizon:
            continue
        dt = min(dt, horizon - a[0])
        at_level[a[3]] = at_level.get(a[3], 0.0) + dt
        quality_time += quality[a[3]] * dt
        for t in thresholds_c:
            above[t] += dt if a[2] >= t else 0.0
        changes += b[3] is not None and b[3] != a[3]
    alive = sum(at_level.values())
    return {'battery_life_s': life, 'end_s': end_s,
            'battery_at_horizon': _fraction_at(samples, horizon),
            'time_at_level_s': {str(k): v for k, v in sorted(at_level.items())},
            'level_changes': changes,
            'level_changes_per_h': changes / (alive / 3600.0) if alive else math.nan,
            'time_above_c_s': {str(k): v for k, v in above.items()},
            'quality_time_s': quality_time,
            'mean_quality': quality_time / alive if alive else math.nan}


def _fraction_at(samples, t):
    before = [s for s in samples if s[0] <= t]
    return before[-1][1] if before else math.nan


class _Run:
    """One closed-loop run: processes, a monitor, the battery paused until frames flow."""

    def __init__(self, scenario, policy, out_dir, time_scale, mission_s=None, prior_w=None):
        cfg = SCENARIOS[scenario]
        self.model = device(cfg['device'])
        specs = load_plan(power='sim', perception='all', camera='sim', imu='sim')
        for spec in specs:
            p = spec.parameters
            if spec.name == 'power_simulator':
                p.update(load_source='measured', device_preset=cfg['device'],
                         base_power_w=self.model.idle_w, capacity_wh=cfg['capacity_wh'],
                         initial_fraction=1.0, time_scale=0.0,
                         measured_nodes=[f'/{n}' for n in PERCEPTION],
                         frame_rates_hz=[f'{n}={cfg["camera_hz"]:g}' for n in CAMERA_NODES])
            elif spec.name == 'camera_source':
                p['rate_hz'] = cfg['camera_hz']
            elif spec.name == 'budget_manager':
                p.update(device_preset=cfg['device'], mission_time_scale=float(time_scale),
                         stale_timeout_s=30.0, use_latency_objective=False)
                if policy == 'static':
                    p['override_level'] = 0
                if prior_w:
                    p['mission_prior_power_w'] = [float(w) for w in prior_w]
            elif spec.name in PERCEPTION:
                p['level_timeout_s'] = 30.0
        self.processes = start_all(specs, out_dir / f'logs_{scenario}_{policy}')
        self.node = EdgeMonitor(sample_period_s=0.1)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.sim_params = AsyncParameterClient(self.node, 'power_simulator')
        self.mission_pub = self.node.create_publisher(Float64, MISSION_START_TOPIC,
                                                      EXECUTION_LEVEL_QOS)
        self.time_scale = time_scale
        self.mission_s = mission_s

    def spin_until(self, condition, timeout_s, what):
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f'bench endurance: timed out waiting for {what}')
            self.executor.spin_once(timeout_sec=0.05)

    def _frames_flow(self):
        statuses = self.node.statuses
        return all(_num(statuses.get(n, {}).get('rate_hz')) > 0 and
                   math.isfinite(_num(statuses.get(n, {}).get('cpu_s_per_s')))
                   for n in PERCEPTION)

    def run(self, max_sim_s, stop_on_empty=True):
        self.spin_until(self._frames_flow, 120.0, 'every perception node to process frames')
        self.spin_until(lambda: self.node.level is not None, 30.0, 'the execution level')
        self.spin_until(lambda: self.sim_params.services_are_ready(), 30.0,
                        'power_simulator parameters')
        if self.mission_s:  # planned while the battery is still paused
            self.spin_until(lambda: self.mission_pub.get_subscription_count() > 0, 30.0,
                            'budget_manager to subscribe to the mission start')
            self.mission_pub.publish(Float64(data=float(self.mission_s)))
            self.spin_until(lambda: self.node.statuses.get('budget_manager', {}).get(
                'mission_active') == 'True', 30.0, 'the mission to start')
        future = self.sim_params.set_parameters([Parameter('time_scale',
                                                           value=float(self.time_scale))])
        self.spin_until(future.done, 10.0, 'time_scale to be set')
        start = self.node.elapsed()
        first = len(self.node.samples)
        while True:
            self.executor.spin_once(timeout_sec=0.05)
            sim = (self.node.elapsed() - start) * self.time_scale
            if sim >= max_sim_s or (stop_on_empty and self.node.battery <= 0.0):
                break
        self.node._sample()  # the state the run stopped at (an empty battery)
        samples = [((s['t'] - start) * self.time_scale, s['battery'], s['temperature_c'],
                    None if math.isnan(s['level']) else int(s['level']))
                   for s in self.node.samples[first:] if s['t'] >= start]
        return samples, dict(self.node.statuses)

    def close(self):
        try:
            self.executor.shutdown()
            self.node.destroy_node()
        finally:
            stop_all(self.processes)


def _num(text) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def node_power(statuses: dict, model, camera_hz: float) -> dict:
    """Per node and level: what it measured, and its W as ``power_simulator`` counts it."""
    out = {}
    for name in PERCEPTION:
        values = statuses.get(name, {})
        levels = {}
        for key, value in values.items():
            if key.startswith('cpu_demand_s_per_s_level_'):
                level = key.rsplit('_', 1)[1]
                demand = _num(value)
                per_frame = _num(values.get(f'cpu_ms_per_frame_level_{level}'))
                load = per_frame * camera_hz / 1e3 if name in CAMERA_NODES else demand
                levels[level] = {
                    'cpu_demand_s_per_s': demand, 'watts': model.load_w(load),
                    'cpu_s_per_s': _num(values.get(f'cpu_s_per_s_level_{level}')),
                    'cpu_ms_per_frame': per_frame,
                    'ort_cpu_s_per_s': _num(values.get(f'ort_cpu_s_per_s_level_{level}')),
                    'executor_cpu_s_per_s': _num(
                        values.get(f'executor_cpu_s_per_s_level_{level}')),
                    'knob': values.get(f'knob_level_{level}')}
        out[name] = levels
    return out


def run_endurance(out_dir: Path, scenarios=('heavy', 'light'), static_wall_s: float = 40.0,
                  smoke: bool = False) -> dict:
    """Run every scenario x policy; write JSON, PNG and a table; return the result."""
    out_dir.mkdir(parents=True, exist_ok=True)
    quality = level_quality()
    thresholds_c = (65.0, 75.0, 85.0)
    result = {'level_quality': quality, 'scenarios': {}}
    rclpy.init()
    try:
        for scenario in scenarios:
            cfg = SCENARIOS[scenario]
            model = device(cfg['device'])
            # time scale: a static run takes about static_wall_s wall seconds, from a guess
            # of the static draw (0.02 busy cores per camera Hz); it sets only the wall time
            guess_w = model.power_w(0.02 * cfg['camera_hz'] / model.cpu_time_scale)
            time_scale = cfg['capacity_wh'] * 3600.0 / guess_w / static_wall_s
            entry = result['scenarios'][scenario] = {'config': cfg, 'time_scale': time_scale,
                                                     'device': model.__dict__, 'runs': {}}
            static_life = None
            for policy in POLICIES if not smoke else ('static', 'mission'):
                mission_s = None
                if policy == 'mission':
                    mission_s = MISSION_FACTOR * static_life
                horizon = (mission_s if mission_s else
                           (MISSION_FACTOR * static_life if static_life else None))
                run = _Run(scenario, policy, out_dir, time_scale, mission_s,
                           _prior(entry['runs'].get('threshold'), model))
                try:
                    max_sim = (MISSION_FACTOR * 1.05 * static_life if static_life
                               else 8 * static_wall_s * time_scale)
                    if smoke:
                        max_sim = min(max_sim, 8 * time_scale)
                    samples, statuses = run.run(max_sim, stop_on_empty=policy != 'mission')
                finally:
                    run.close()
                metrics = summarise(samples, quality, thresholds_c, horizon)
                sim = statuses.get('power_simulator', {})
                perception_w = model.load_w(_num(sim.get('measured_cpu_s_per_s')))
                metrics.update(samples=samples,
                               node_power=node_power(statuses, model, cfg['camera_hz']),
                               last_load_w=_num(sim.get('load_w')),
                               perception_share_last=perception_w / (perception_w
                                                                    + model.idle_w))
                if policy == 'mission':
                    metrics['mission_s'] = mission_s
                    metrics['mission_plan_last'] = statuses.get('budget_manager', {}).get(
                        'mission_plan')
                entry['runs'][policy] = metrics
                if policy == 'static':
                    static_life = metrics['battery_life_s'] or samples[-1][0]
                    load = sum(levels.get('0', {}).get('watts', 0.0)
                               for levels in metrics['node_power'].values())
                    entry['perception_w_static'] = load
                    entry['device_w_static'] = load + model.idle_w
                    entry['perception_share_static'] = load / (load + model.idle_w)
                print(f'[{scenario}] {policy}: {_run_line(metrics)}', flush=True)
            _ratios(entry)
    finally:
        rclpy.try_shutdown()
    _write(out_dir, result)
    return result


def _prior(threshold_run, model):
    """Device W per level measured in the threshold run (which visits every level)."""
    if not threshold_run:
        return None
    levels = [set(v) for v in threshold_run['node_power'].values()]
    common = sorted(set.intersection(*levels), key=int) if levels else []
    if len(common) < 4:
        return None
    return [model.idle_w + sum(v[lv]['watts'] for v in threshold_run['node_power'].values())
            for lv in common]


def _ratios(entry):
    runs = entry['runs']
    static = runs.get('static', {})
    life0 = static.get('battery_life_s') or static.get('end_s')
    for metrics in runs.values():
        life = metrics.get('battery_life_s') or metrics.get('end_s')
        metrics['life_ratio_vs_static'] = life / life0 if life0 else math.nan
    if 'threshold' in runs and 'mission' in runs:
        entry['mission_vs_threshold_quality_time'] = (
            runs['mission']['quality_time_s'] / runs['threshold']['quality_time_s']
            if runs['threshold']['quality_time_s'] else math.nan)


def _run_line(m) -> str:
    life = m['battery_life_s']
    return (f'life {"-" if life is None else f"{life / 3600:.2f} h"}, end at '
            f'{m["end_s"] / 3600:.2f} h, battery at horizon {m["battery_at_horizon"]:.3f}, '
            f'mean quality {m["mean_quality"]:.3f}, {m["level_changes"]} level changes '
            f'({m["level_changes_per_h"]:.1f}/h), time at level '
            + ', '.join(f'{k}: {v / 60:.0f} min' for k, v in m['time_at_level_s'].items()))


def table(result) -> str:
    """Markdown table of every run."""
    runs = ((scenario, policy, m) for scenario, entry in result['scenarios'].items()
            for policy, m in entry['runs'].items())
    lines = [markdown_table(
        ('scenario', 'policy', 'battery life h', 'life vs static', 'battery at mission end',
         'mean quality', 'quality-time h', 'level changes /h', 'time at levels (min)'),
        ((scenario, policy,
          cell(None if m['battery_life_s'] is None else m['battery_life_s'] / 3600),
          f'{m.get("life_ratio_vs_static", math.nan):.2f}', f'{m["battery_at_horizon"]:.3f}',
          f'{m["mean_quality"]:.3f}', f'{m["quality_time_s"] / 3600:.2f}',
          f'{m["level_changes_per_h"]:.1f}',
          ', '.join(f'{k}: {v / 60:.0f}' for k, v in m['time_at_level_s'].items()))
         for scenario, policy, m in runs)), '']
    for scenario, entry in result['scenarios'].items():
        lines.append(f'- {scenario}: perception share of device power (static, measured) '
                     f'{100 * entry.get("perception_share_static", math.nan):.0f}%; mission '
                     f'quality-time vs threshold '
                     f'{entry.get("mission_vs_threshold_quality_time", math.nan):.2f}x')
    return '\n'.join(lines)


def _write(out_dir, result):
    write_json(out_dir / 'bench_endurance.json', result)
    text = table(result)
    (out_dir / 'bench_endurance.md').write_text(text + '\n')
    _plot(out_dir / 'bench_endurance.png', result)
    print(text)
    print(f'written {out_dir}/bench_endurance.json, .md, .png')


def _plot(path, result):
    plt = pyplot()
    scenarios = list(result['scenarios'])
    fig, axes = plt.subplots(4, len(scenarios), sharex='col', squeeze=False,
                             figsize=(6 * len(scenarios), 9))
    quality = result['level_quality']
    for col, scenario in enumerate(scenarios):
        for policy, m in result['scenarios'][scenario]['runs'].items():
            s = m['samples']
            t = [x[0] / 3600 for x in s]
            axes[0][col].plot(t, [x[1] for x in s], label=policy)
            axes[1][col].plot(t, [x[2] for x in s], label=policy)
            axes[2][col].step(t, [x[3] if x[3] is not None else math.nan for x in s],
                              where='post', label=policy)
            axes[3][col].step(t, [quality[x[3]] if x[3] is not None and x[1] > 0 else 0.0
                                  for x in s], where='post', label=policy)
        axes[0][col].set_title(f'{scenario}')
        for row, label in enumerate(('battery (0..1)', 'temperature (C)', 'level',
                                     'quality vs level 0')):
            axes[row][col].set_ylabel(label)
        axes[2][col].invert_yaxis()
        axes[0][col].legend()
        axes[3][col].set_xlabel('simulated hours')
    save_figure(fig, path, dpi=90)
