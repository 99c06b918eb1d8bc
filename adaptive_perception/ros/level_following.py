"""The piece every adaptive node uses to follow the execution level.

It subscribes to ``/adaptive_perception/execution_level``, owns the parameters
``level_override`` (-1 = follow the manager), ``fallback_level`` (taken when the
manager is silent for ``level_timeout_s``), ``latency_target_ms`` and the node's
*profile* (level -> knob setting), and calls the node's ``apply`` callback with
the knob whenever the applied level changes. ``apply`` must only select among
variants already in memory: its cost is measured and reported.

It also publishes the node's ``/diagnostics`` status: applied level and why,
frames processed, rate, latency p50/p95 (fed by ``record_frame``), apply cost,
and what the node costs: process CPU time per second and per frame, ONNX
Runtime's share, in the last period and per level (``runtime.stats.CpuMeter``).
"""

import time
from collections import deque
from typing import Any, Callable, Sequence

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node

from adaptive_perception.levels import MAX_LEVELS, profile_entry
from adaptive_perception.msg import ExecutionLevel
from adaptive_perception.ros import diagnostics
from adaptive_perception.ros.interfaces import (
    DIAGNOSTICS_QOS,
    DIAGNOSTICS_TOPIC,
    EXECUTION_LEVEL_QOS,
    EXECUTION_LEVEL_TOPIC,
)
from adaptive_perception.ros.params import Param, declare, on_change
from adaptive_perception.ros.run import set_timer_period
from adaptive_perception.runtime.level_follower import FOLLOW_MANAGER, LevelFollower
from adaptive_perception.runtime.stats import CpuMeter, FrameStats


class LevelFollowing:
    """Makes ``node`` follow the execution level through a profile of knob settings.

    ``parse_entry`` turns one profile entry into a knob (raise ValueError to
    reject it); ``apply(knob, applied)`` switches the node to it. ``extra_values``
    adds node-specific diagnostics values; ``health`` returns (severity 0/1/2,
    message) for node-specific problems such as rejected inputs. ``collect``, if
    given, is called before the statistics are read (on every level check and
    diagnostics): a node that hands its frames' results over lazily (``CameraFrames``)
    records them then.
    """

    def __init__(self, node: Node, *, profile_param: str, profile_default: Sequence,
                 profile_description: str, parse_entry: Callable[[Any], Any],
                 apply: Callable[[Any, Any], None], fallback_level: int = 1,
                 level_timeout_s: float = 3.0, latency_target_ms: float = 0.0,
                 extra_values: Callable[[], dict] | None = None,
                 health: Callable[[], tuple] | None = None,
                 collect: Callable[[], None] | None = None,
                 diagnostics_period_s: float = 1.0):
        self._node = node
        self._profile_param = profile_param
        self._parse = parse_entry
        self._apply = apply
        self._extra_values = extra_values or dict
        self._health = health or (lambda: (0, ''))
        self._collect = collect or (lambda: None)
        values = declare(node, [
            Param('level_override', FOLLOW_MANAGER,
                  'Level to apply regardless of the manager; -1 follows budget_manager.',
                  -1, MAX_LEVELS - 1),
            Param('fallback_level', fallback_level,
                  'Level this node takes by itself while budget_manager is silent.',
                  0, MAX_LEVELS - 1),
            Param('level_timeout_s', level_timeout_s,
                  'Silence (s) after which the manager counts as gone.', 0.1, 3600.0),
            Param('latency_target_ms', latency_target_ms,
                  'p95 frame latency objective reported to budget_manager; 0 = none.',
                  0.0, 1e6),
            Param(profile_param, list(profile_default), profile_description),
        ])
        self._profile = self._parse_profile(values[profile_param])
        self.latency_target_ms = values['latency_target_ms']
        self.follower = LevelFollower(values['fallback_level'], values['level_timeout_s'],
                                      values['level_override'])
        on_change(node, values.keys(), lambda c: self._parse_profile(c[profile_param]),
                  self._on_params)

        self.stats = FrameStats()
        self.cpu = CpuMeter()
        self._apply_costs = deque(maxlen=200)
        self.level_changes = 0
        self.applied = None
        self.knob = None
        self._manager_msg = None
        node.create_subscription(ExecutionLevel, EXECUTION_LEVEL_TOPIC, self._on_level,
                                 EXECUTION_LEVEL_QOS)
        self._diagnostics = node.create_publisher(DiagnosticArray,
                                                  DIAGNOSTICS_TOPIC, DIAGNOSTICS_QOS)
        self._check_timer = node.create_timer(check_period_s(values['level_timeout_s']),
                                              self._reevaluate)
        node.create_timer(diagnostics_period_s, self.publish_diagnostics)
        self._reevaluate()

    # -- level handling --------------------------------------------------------
    def _on_level(self, msg: ExecutionLevel) -> None:
        self._manager_msg = msg
        self.follower.on_manager_level(msg.level, time.monotonic())
        self._reevaluate()

    def _reevaluate(self, force: bool = False) -> None:
        self._collect()  # the frames so far count for the level they ran at
        applied = self.follower.decide(time.monotonic())
        if not force and self.applied is not None and applied.level == self.applied.level:
            self.applied = applied  # same level, maybe a new source (e.g. fallback)
            return
        knob = profile_entry(self._profile, applied.level)
        start = time.perf_counter()
        self._apply(knob, applied)
        self._apply_costs.append(time.perf_counter() - start)
        self.cpu.switch(applied.level, knob, self.stats.frames, self._dropped())
        if self.applied is not None:
            self.level_changes += 1
            self._node.get_logger().info(
                f'level {self.applied.level} -> {applied.level} ({applied.source}: '
                f'{applied.reason}), {self._profile_param}={knob!r}')
        self.applied, self.knob = applied, knob

    def _dropped(self) -> int:
        """Return the inputs the node dropped so far (its ``frames_dropped``; 0 if none).

        Before the first frame the node may still be constructing what its
        ``extra_values`` reads, and nothing is being counted yet anyway.
        """
        if not self.stats.frames:
            return 0
        return _count(self._extra_values().get('frames_dropped'))

    def _parse_profile(self, entries) -> list:
        if not entries:
            raise ValueError(f'{self._profile_param} needs at least one entry')
        return [self._parse(e) for e in entries]

    def _on_params(self, candidate: dict) -> None:
        profile = self._parse_profile(candidate[self._profile_param])
        self._profile = profile
        self.latency_target_ms = candidate['latency_target_ms']
        self.follower.override = candidate['level_override']
        self.follower.fallback_level = candidate['fallback_level']
        if candidate['level_timeout_s'] != self.follower.timeout_s:
            set_timer_period(self._check_timer, check_period_s(candidate['level_timeout_s']))
        self.follower.timeout_s = candidate['level_timeout_s']
        self._reevaluate(force=True)

    # -- statistics and diagnostics -------------------------------------------
    def record_frame(self, latency_s: float) -> None:
        """Count one processed input and its latency."""
        self.stats.record(time.monotonic(), latency_s)

    def apply_cost_ms(self) -> tuple:
        """(p50, max) of the measured cost of applying a level, in ms."""
        if not self._apply_costs:
            return float('nan'), float('nan')
        costs = np.fromiter(self._apply_costs, float) * 1e3
        return float(np.percentile(costs, 50)), float(costs.max())

    def publish_diagnostics(self) -> None:
        """Publish this node's status on /diagnostics."""
        self._collect()
        now = time.monotonic()
        snap = self.stats.snapshot(now)
        cost_p50, cost_max = self.apply_cost_ms()
        applied = self.applied
        level = 1 if applied.source == 'fallback' else 0
        values = {
            'applied_level': applied.level, 'level_source': applied.source,
            'level_reason': applied.reason, self._profile_param: self.knob,
            'manager_level': self._manager_msg.level if self._manager_msg else -1,
            'manager_age_s': self.follower.manager_age_s(now),
            'frames': snap.frames, 'rate_hz': snap.rate_hz,
            'latency_p50_ms': snap.latency_p50_ms, 'latency_p95_ms': snap.latency_p95_ms,
            'latency_target_ms': self.latency_target_ms,
            'apply_cost_p50_ms': cost_p50, 'apply_cost_max_ms': cost_max,
            'level_changes': self.level_changes,
        }
        extra = self._extra_values()
        values.update(self.cpu.values(self.stats.frames, _count(extra.get('frames_dropped'))))
        values.update(extra)
        name = self._node.get_fully_qualified_name()
        message = f'level {applied.level} ({applied.source}): {applied.reason}'
        severity, problem = self._health()
        if problem:
            message += f' | {problem}'
        self._diagnostics.publish(diagnostics.array(self._node, [
            diagnostics.status(name, name, max(level, severity), message, values)]))


def check_period_s(level_timeout_s: float) -> float:
    """How often to look for the manager's silence: a tenth of the timeout, 0.1-0.5 s.

    A manager message and a parameter change are handled when they arrive; the timer
    only notices silence, so the fallback comes at most a tenth of the timeout late.
    Each tick wakes the executor (a Python pass over the node's wait set), CPU that
    a node at its cheapest level notices.
    """
    return min(0.5, max(0.1, level_timeout_s / 10))


def _count(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
