"""``adaptive-perception bench budget``: how fast a level change reaches a node, and its cost.

Across processes, over DDS: this process publishes ``BatteryState`` readings that
cross a threshold; ``budget_manager`` runs in its own process and publishes the
new level; a ``LevelFollowing`` node back in this process applies it. The time
from publishing the reading to the follower's apply callback is the end-to-end
level-change latency. A ``power_simulator`` process (outputs remapped so they do
not disturb the manager) follows the same levels, and its measured apply cost is
read from ``/diagnostics`` next to this process's own follower.

Targets: median latency under 50 ms; apply cost under 1 ms per node.
"""

import statistics
import time
from pathlib import Path
from typing import TypedDict

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.logging import LoggingSeverity
from sensor_msgs.msg import BatteryState

from adaptive_perception.launcher.plan import NodeSpec
from adaptive_perception.launcher.processes import NodeProcess, stop_all
from adaptive_perception.ros import diagnostics
from adaptive_perception.ros.interfaces import (
    BATTERY_TOPIC,
    DIAGNOSTICS_QOS,
    DIAGNOSTICS_TOPIC,
    POWER_QOS,
)
from adaptive_perception.ros.level_following import LevelFollowing
from adaptive_perception.runtime.report_io import markdown_table, write_json

LATENCY_TARGET_MS = 50.0
APPLY_TARGET_MS = 1.0
MANAGER_PARAMS = {'dwell_s': 0.0, 'require_temperature': False, 'stale_timeout_s': 600.0,
                  'use_latency_objective': False}
LOW, HIGH = (0.3, 2), (0.9, 0)  # (battery fraction, level the default thresholds give)
PAUSE_S = 0.05  # between crossings, so every follower sees each level


class _Harness:
    """This process's side: battery publisher, probe follower, diagnostics reader."""

    def __init__(self):
        self.node = rclpy.create_node('bench_budget')
        self.node.get_logger().set_level(LoggingSeverity.WARN)  # no log line per switch
        self.applied = []  # (perf_counter, level)
        self.follower = LevelFollowing(
            self.node, profile_param='level_profile', profile_default=['a', 'b', 'c', 'd'],
            profile_description='Probe profile (the bench only times the switch).',
            parse_entry=str, apply=lambda knob, a: self.applied.append((time.perf_counter(),
                                                                         a.level)),
            fallback_level=0, level_timeout_s=60.0)
        self.battery = self.node.create_publisher(BatteryState, BATTERY_TOPIC, POWER_QOS)
        self.statuses = {}  # node name -> (monotonic arrival time, values)
        self.node.create_subscription(DiagnosticArray, DIAGNOSTICS_TOPIC, self._on_diag,
                                      DIAGNOSTICS_QOS)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)

    def _on_diag(self, msg):
        for status in msg.status:
            self.statuses[status.name.lstrip('/')] = (time.monotonic(),
                                                      diagnostics.values_of(status))

    def spin_until(self, condition, timeout_s, what):
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f'bench budget: timed out waiting for {what}')
            self.executor.spin_once(timeout_sec=0.01)

    def spin_for(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.005)

    def cross(self, fraction, level, timeout_s=5.0) -> float:
        """Publish a reading; return ms until the follower applied ``level``."""
        seen = len(self.applied)
        start = time.perf_counter()
        self.battery.publish(BatteryState(
            percentage=fraction,
            power_supply_status=BatteryState.POWER_SUPPLY_STATUS_DISCHARGING))
        self.spin_until(lambda: any(lv == level for _, lv in self.applied[seen:]), timeout_s,
                        f'level {level}')
        return (next(t for t, lv in self.applied[seen:] if lv == level) - start) * 1e3


def run_budget_bench(repeats: int, out_path: Path) -> int:
    """Run the benchmark, print a table, write JSON; return 1 if a target is missed."""
    log_dir = out_path.parent / 'bench_budget_logs'
    processes = [
        NodeProcess(NodeSpec('budget_manager', 'budget_manager', 'core', MANAGER_PARAMS),
                    log_dir),
        NodeProcess(NodeSpec('power_simulator', 'power_simulator', 'core',
                             {'publish_rate_hz': 5.0}), log_dir,
                    remaps={'/battery_state': '/bench/simulated_battery',
                            '/thermal/temperature': '/bench/simulated_temperature'}),
    ]
    rclpy.init()
    harness = _Harness()
    try:
        harness.spin_until(lambda: harness.battery.get_subscription_count() >= 1, 30.0,
                           'budget_manager to subscribe to /battery_state')
        for warm_up in (LOW, HIGH):  # the first crossings also wait for discovery
            harness.cross(*warm_up, timeout_s=30.0)
        harness.spin_until(lambda: harness.statuses.get('power_simulator', (0, {}))[1].get(
            'level_source') == 'manager', 30.0, 'power_simulator to follow the manager')
        latencies = []
        for i in range(repeats):
            latencies.append(harness.cross(*(LOW if i % 2 == 0 else HIGH)))
            harness.spin_for(PAUSE_S)
        # The simulator follows the same levels; switches 2 ms apart may reach it
        # coalesced (keep-last-1 QoS: the newest level wins), so it reports how many
        # it applied. Wait for a status sent after the last switch.
        done = time.monotonic()
        harness.spin_until(lambda: harness.statuses.get('power_simulator', (0,))[0] > done,
                           10.0, 'power_simulator diagnostics')
        sim = harness.statuses['power_simulator'][1]
        apply_costs = {
            'bench_budget (this process)': (*harness.follower.apply_cost_ms(),
                                            harness.follower.level_changes),
            'power_simulator': (float(sim['apply_cost_p50_ms']),
                                float(sim['apply_cost_max_ms']), int(sim['level_changes']))}
    finally:
        harness.executor.shutdown()
        harness.node.destroy_node()
        rclpy.try_shutdown()
        stop_all(processes)
    result = _summarise(latencies, apply_costs)
    write_json(out_path, result, indent=2)
    _print(result, out_path)
    return 0 if result['targets_met'] else 1


class LevelChangeLatency(TypedDict):
    """Battery crossing to applied level over DDS: samples, p50/p95/max and the target."""

    n: int
    p50_ms: float
    p95_ms: float
    max_ms: float
    target_p50_ms: float


class BudgetBenchResult(TypedDict):
    """What ``bench budget`` writes: the level-change latency, each node's apply cost."""

    level_change_latency: LevelChangeLatency
    apply_cost: dict[str, dict]
    targets_met: bool
    latencies_ms: list[float]


def _summarise(latencies, apply_costs) -> BudgetBenchResult:
    lat = np.asarray(latencies)
    latency = {'n': len(latencies), 'p50_ms': statistics.median(latencies),
               'p95_ms': float(np.percentile(lat, 95)), 'max_ms': float(lat.max()),
               'target_p50_ms': LATENCY_TARGET_MS}
    apply = {name: {'n': n, 'p50_ms': p50, 'max_ms': mx, 'target_ms': APPLY_TARGET_MS}
             for name, (p50, mx, n) in apply_costs.items()}
    met = latency['p50_ms'] < LATENCY_TARGET_MS and all(
        a['p50_ms'] < APPLY_TARGET_MS for a in apply.values())
    return {'level_change_latency': latency, 'apply_cost': apply, 'targets_met': met,
            'latencies_ms': latencies}


def _print(result, out_path):
    lat = result['level_change_latency']
    rows = [('BatteryState crossing -> node applied level (2 DDS hops)', lat['n'],
             f'{lat["p50_ms"]:.2f}', f'{lat["p95_ms"]:.2f}', f'{lat["max_ms"]:.2f}',
             f'p50 < {LATENCY_TARGET_MS:g}', 'yes' if lat['p50_ms'] < LATENCY_TARGET_MS else 'NO')]
    rows += [(f'apply a level: {name}', a['n'], f'{a["p50_ms"]:.4f}', '-', f'{a["max_ms"]:.4f}',
              f'p50 < {APPLY_TARGET_MS:g}', 'yes' if a['p50_ms'] < APPLY_TARGET_MS else 'NO')
             for name, a in result['apply_cost'].items()]
    print(markdown_table(('measurement', 'n', 'p50 ms', 'p95 ms', 'max ms', 'target', 'met'),
                         rows))
    print(f'written {out_path}')
