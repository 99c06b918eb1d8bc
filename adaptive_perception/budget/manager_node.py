"""``budget_manager``: battery, thermal and latency state in, execution levels out.

The node is a thin shell around ``budget.policy.BudgetPolicy``: it checks and
feeds readings, republishes the decision as ``ExecutionLevel`` (on change and as
a heartbeat, reliable + transient-local) and explains it on ``/diagnostics``.
Every policy threshold is a parameter that can be changed at run time; a change
that makes the set inconsistent is rejected with the reason, keeping the old set.

It also knows who follows it: every node whose diagnostics carry an applied level is
a follower. The diagnostics list the followers heard within ``follower_timeout_s``
(and the level topic's subscriber count); a follower that falls silent turns the
status to WARN until it is back, and its last latency stops weighing on the level.
A mission (``mission_duration_s`` > 0, or a duration on ``MISSION_START_TOPIC``)
adds the plan of ``budget.mission``; the nodes' measured CPU time per level,
through the device model (``power.device``), is the prior of its drain estimate.
"""

import math
import time

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import BatteryState, Temperature
from std_msgs.msg import Float64, Header

from adaptive_perception.budget import inputs
from adaptive_perception.budget.mission import diagnostic_values as mission_diagnostics
from adaptive_perception.budget.policy import BudgetPolicy, PolicyConfig
from adaptive_perception.levels import DEFAULT_LEVEL_NAMES, MAX_LEVELS
from adaptive_perception.msg import ExecutionLevel
from adaptive_perception.power.device import PRESETS, device
from adaptive_perception.ros import diagnostics
from adaptive_perception.ros.interfaces import (
    BATTERY_TOPIC,
    DIAGNOSTICS_QOS,
    DIAGNOSTICS_TOPIC,
    EXECUTION_LEVEL_QOS,
    EXECUTION_LEVEL_TOPIC,
    MISSION_START_TOPIC,
    POWER_QOS,
    TEMPERATURE_TOPIC,
)
from adaptive_perception.ros.params import Param, declare, on_change
from adaptive_perception.ros.run import run_node, set_timer_period
from adaptive_perception.runtime.stats import level_costs

_DEFAULTS = PolicyConfig()
POLICY_PARAMS = [
    Param('level_names', list(DEFAULT_LEVEL_NAMES),
          'Names of the levels, from 0 (full quality) to N-1 (most frugal).'),
    Param('battery_thresholds', list(_DEFAULTS.battery_thresholds),
          'Battery fractions (0..1, descending, N-1 values): below entry i means at least '
          'level i+1.'),
    Param('battery_hysteresis', _DEFAULTS.battery_hysteresis,
          'The battery must rise this far above a threshold before it stops counting.',
          0.0, 0.5),
    Param('temperature_thresholds_c', list(_DEFAULTS.temperature_thresholds_c),
          'Temperatures (C, ascending, N-1 values): at or above entry i means at least '
          'level i+1. Heat overrides battery.'),
    Param('temperature_hysteresis_c', _DEFAULTS.temperature_hysteresis_c,
          'A temperature must fall this far below a threshold before it stops counting.',
          0.0, 50.0),
    Param('charging_lifts_battery_limit', _DEFAULTS.charging_lifts_battery_limit,
          'While charging, the battery does not limit the level.'),
    Param('dwell_s', _DEFAULTS.dwell_s,
          'Seconds a level is held before returning to a costlier one (cheaper is immediate).',
          0.0, 3600.0),
    Param('latency_window_s', _DEFAULTS.latency_window_s,
          'A node p95 latency above its target for this long costs one level.', 0.1, 3600.0),
    Param('latency_recover_ratio', _DEFAULTS.latency_recover_ratio,
          'The level comes back once every p95 stayed below ratio x target for a window.',
          0.01, 1.0),
    Param('stale_timeout_s', _DEFAULTS.stale_timeout_s,
          'A required input silent this long is stale.', 0.1, 3600.0),
    Param('stale_level', _DEFAULTS.stale_level,
          'Safe level (at least) while a required input is stale.', 0, MAX_LEVELS - 1),
    Param('require_battery', _DEFAULTS.require_battery,
          'Treat a silent battery topic as stale (false on mains-powered robots).'),
    Param('require_temperature', _DEFAULTS.require_temperature,
          'Treat a silent temperature topic as stale.'),
    Param('override_level', _DEFAULTS.override_level,
          'Manual override: -1 follows the policy, 0..N-1 forces that level.',
          -1, MAX_LEVELS - 1),
    Param('mission_duration_s', _DEFAULTS.mission_duration_s,
          'Mission length (mission seconds) the battery must last; 0 = no mission. '
          'Setting it (re)starts the mission now.', 0.0, 1e7),
    Param('mission_reserve', _DEFAULTS.mission_reserve,
          'Battery fraction to have left at the end of the mission.', 0.0, 0.99),
    Param('mission_margin', _DEFAULTS.mission_margin,
          'A costlier level is taken only if it fits with every drain estimate this '
          'share higher (hysteresis against noisy readings).', 0.0, 0.99),
    Param('mission_dwell_s', _DEFAULTS.mission_dwell_s,
          'Mission seconds at a level before the plan may return to a costlier one.',
          0.0, 1e6),
    Param('mission_time_scale', _DEFAULTS.mission_time_scale,
          'Mission seconds per wall second: 1 on a robot; a simulated battery in '
          'accelerated time sets its time_scale.', 1e-3, 1e6),
    Param('mission_estimate_tau_s', _DEFAULTS.mission_estimate_tau_s,
          'Time constant (mission s) of the drain estimate.', 1.0, 1e6),
    Param('mission_prior_power_w', [0.0],
          'Device power (W) per level assumed before measuring; [0.0] = from the nodes\' '
          'measured CPU time through device_preset.'),
]
NODE_PARAMS = [
    Param('battery_topic', BATTERY_TOPIC, 'sensor_msgs/BatteryState input.', read_only=True),
    Param('temperature_topics', [TEMPERATURE_TOPIC],
          'sensor_msgs/Temperature inputs; the hottest fresh one counts.', read_only=True),
    Param('use_latency_objective', True,
          'Read node latency (latency_p95_ms / latency_target_ms) from /diagnostics.'),
    Param('temperature_min_valid_c', -40.0, 'Readings below this are sensor faults.',
          -273.15, 1000.0),
    Param('temperature_max_valid_c', 150.0, 'Readings above this are sensor faults.',
          -273.15, 1000.0),
    Param('heartbeat_s', 1.0, 'Republish the current level this often.', 0.05, 60.0),
    Param('update_period_s', 0.1, 'Re-evaluate the policy this often (time-based rules).',
          0.01, 10.0),
    Param('follower_timeout_s', 5.0,
          'A node that reported an applied level on /diagnostics and is then silent this '
          'long counts as gone: WARN, and its latency no longer counts.', 0.1, 3600.0),
    Param('problem_hold_s', 5.0,
          'A rejected or corrected input stays reported in /diagnostics this long.',
          0.0, 3600.0),
    Param('device_preset', 'laptop_cpu',
          f'Device model turning node CPU time into watts: {", ".join(sorted(PRESETS))}.'),
    Param('cpu_time_scale', 0.0,
          'Device core-seconds per measured CPU second; 0 = clock ratio.', 0.0, 1000.0),
]


def policy_config(values: dict) -> PolicyConfig:
    """Build a PolicyConfig from parameter values (lists become tuples)."""
    config = {p.name: tuple(values[p.name]) if isinstance(values[p.name], list)
              else values[p.name] for p in POLICY_PARAMS}
    if all(w == 0 for w in config['mission_prior_power_w']):
        config['mission_prior_power_w'] = ()
    return PolicyConfig(**config)


def _check_node_params(candidate: dict) -> None:
    if candidate['temperature_min_valid_c'] >= candidate['temperature_max_valid_c']:
        raise ValueError('temperature_min_valid_c must be below temperature_max_valid_c')
    device(candidate['device_preset'], candidate['cpu_time_scale'] or None)


class BudgetManager(Node):
    """Publishes the execution level the policy decides from power and latency state."""

    def __init__(self, **kwargs):
        super().__init__('budget_manager', **kwargs)
        policy_values = declare(self, POLICY_PARAMS)
        self.settings = declare(self, NODE_PARAMS)
        # Resolved (e.g. /robot1/thermal/temperature): the names the reasons quote.
        resolve = getattr(self, 'resolve_topic_name', str)  # rclpy >= Jazzy
        self._temperature_topics = [resolve(t) for t in self.settings['temperature_topics']]
        self.policy = BudgetPolicy(policy_config(policy_values), time.monotonic(),
                                   temperature_sources=self._temperature_topics)
        on_change(self, policy_values.keys(), lambda c: policy_config(c).validate(),
                  self._on_policy_params)
        on_change(self, self.settings.keys(), _check_node_params, self._on_node_params)

        self._order = inputs.StampOrder()
        self._problems = {}  # source -> (severity, text, monotonic time)
        self._rejected = {}  # source -> count
        self._decision = None
        self._published_level = None
        self._followers = {}  # node name -> monotonic time of its last diagnostics
        self._gone = {}  # follower name -> monotonic time it was last heard
        self._device = device(self.settings['device_preset'],
                              self.settings['cpu_time_scale'] or None)
        self._node_costs = {}  # node -> {level: CPU s/s}
        self.create_subscription(Float64, MISSION_START_TOPIC, self._on_mission_start,
                                 EXECUTION_LEVEL_QOS)
        self._level_pub = self.create_publisher(ExecutionLevel, EXECUTION_LEVEL_TOPIC,
                                                EXECUTION_LEVEL_QOS)
        self._diag_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC,
                                               DIAGNOSTICS_QOS)
        self.create_subscription(BatteryState, self.settings['battery_topic'], self._on_battery,
                                 POWER_QOS)
        for topic in self._temperature_topics:
            self.create_subscription(Temperature, topic,
                                     lambda msg, t=topic: self._on_temperature(t, msg),
                                     POWER_QOS)
        self.create_subscription(DiagnosticArray, DIAGNOSTICS_TOPIC, self._on_diagnostics,
                                 DIAGNOSTICS_QOS)
        self._update_timer = self.create_timer(self.settings['update_period_s'], self.evaluate)
        self._heartbeat_timer = self.create_timer(self.settings['heartbeat_s'], self._heartbeat)
        self.create_timer(1.0, self.publish_diagnostics)
        self.evaluate()

    # -- inputs ---------------------------------------------------------------
    def _on_battery(self, msg: BatteryState) -> None:
        if not self._in_order('battery', msg.header.stamp):
            return
        checked = inputs.check_battery(msg.percentage, msg.power_supply_status, msg.charge,
                                       msg.capacity)
        self._note('battery', checked.severity, checked.reason)
        if checked.value is not None:
            self.policy.battery(checked.value, checked.charging, time.monotonic(),
                                msg.current, msg.voltage, msg.capacity)
        self.evaluate()

    def _on_temperature(self, topic: str, msg: Temperature) -> None:
        if not self._in_order(topic, msg.header.stamp):
            return
        checked = inputs.check_temperature(msg.temperature,
                                           self.settings['temperature_min_valid_c'],
                                           self.settings['temperature_max_valid_c'])
        self._note(topic, checked.severity, checked.reason)
        if checked.value is not None:
            self.policy.temperature(topic, checked.value, time.monotonic())
        self.evaluate()

    def _on_mission_start(self, msg: Float64) -> None:
        duration = float(msg.data)
        if not (math.isfinite(duration) and duration >= 0):
            self._note('mission_start', inputs.ERROR, f'mission duration {duration} rejected')
            return
        result = self.set_parameters([Parameter('mission_duration_s', value=duration)])[0]
        if not result.successful:
            self._note('mission_start', inputs.ERROR, result.reason)
            return
        if duration > 0:
            self.policy.start_mission(time.monotonic())
        self.get_logger().info(f'mission of {duration:g} s started' if duration
                               else 'mission ended on request')
        self.evaluate()

    def _node_power_prior(self, msg: DiagnosticArray) -> None:
        """Sum the nodes' CPU time per level into device watts: the mission's prior."""
        me = self.get_fully_qualified_name()
        for status in msg.status:
            values = diagnostics.values_of(status)
            if status.name == me or 'sim_time_s' in values:  # the simulator is not load
                continue
            costs = level_costs(values)
            if costs:
                self._node_costs[status.name] = costs
        if not self._node_costs:
            return
        levels = set.intersection(*(set(c) for c in self._node_costs.values()))
        self.policy.level_power({lv: self._device.power_w(sum(c[lv] for c in
                                                               self._node_costs.values()))
                                 for lv in levels})

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        self._node_power_prior(msg)
        now = time.monotonic()
        own = self.get_fully_qualified_name()
        for status in msg.status:
            values = diagnostics.values_of(status)
            if 'applied_level' in values and status.name != own:
                self._followers[status.name] = now
                if self._gone.pop(status.name, None) is not None:
                    self.get_logger().info(f'follower {status.name} is back')
            if not self.settings['use_latency_objective']:
                continue
            p95 = diagnostics.as_float(values.get('latency_p95_ms'))
            target = diagnostics.as_float(values.get('latency_target_ms'))
            if math.isfinite(p95) and math.isfinite(target):
                self.policy.latency(status.name, p95, target, now)

    def _in_order(self, source: str, stamp) -> bool:
        stamp_ns = stamp.sec * 1_000_000_000 + stamp.nanosec
        if self._order.accept(source, stamp_ns):
            return True
        self._note(source, inputs.WARN, 'message older than the last one taken: dropped')
        return False

    def _note(self, source: str, severity: int, text: str) -> None:
        if severity == inputs.OK:
            return
        self._rejected[source] = self._rejected.get(source, 0) + (severity == inputs.ERROR)
        self._problems[source] = (severity, text, time.monotonic())
        self.get_logger().warning(f'{source}: {text}', throttle_duration_sec=5.0)
        self.publish_diagnostics()

    # -- decisions ------------------------------------------------------------
    def evaluate(self) -> None:
        """Run the policy; publish at once when the level changes."""
        self._decision = self.policy.decide(time.monotonic())
        if self._decision.changed or self._published_level is None:
            self._publish_level()

    def _heartbeat(self) -> None:
        self._publish_level()

    def _publish_level(self) -> None:
        d = self._decision
        if d.level != self._published_level and self._published_level is not None:
            self.get_logger().info(f'level {self._published_level} -> {d.level} '
                                   f'({d.level_name}): {d.reason}')
        self._published_level = d.level
        self._level_pub.publish(ExecutionLevel(
            header=Header(stamp=self.get_clock().now().to_msg()),
            level=d.level, num_levels=d.num_levels, level_name=d.level_name, reason=d.reason,
            battery_fraction=d.battery_fraction, temperature_c=d.temperature_c,
            charging=d.charging))

    def _check_followers(self, now: float) -> None:
        """Move followers silent longer than follower_timeout_s to the gone list."""
        timeout = self.settings['follower_timeout_s']
        for name, heard in list(self._followers.items()):
            if now - heard > timeout:
                del self._followers[name]
                self._gone[name] = heard
                self.policy.forget(name)
                self.get_logger().warning(
                    f'follower {name} silent for {now - heard:.1f} s: gone; its latency no '
                    'longer counts')

    def publish_diagnostics(self) -> None:
        """Explain the current decision, list followers and recent input problems."""
        d = self._decision
        now = time.monotonic()
        self._check_followers(now)
        hold = self.settings['problem_hold_s']
        recent = {s: p for s, p in self._problems.items() if now - p[2] <= hold}
        severity = max([p[0] for p in recent.values()] + [inputs.OK])
        if 'stale' in d.demands or self._gone:
            severity = max(severity, inputs.WARN)
        message = f'level {d.level} ({d.level_name}): {d.reason}'
        if recent:
            message += ' | input problems: ' + '; '.join(f'{s}: {p[1]}'
                                                         for s, p in recent.items())
        if self._gone:
            message += ' | followers gone: ' + ', '.join(
                f'{n} (silent {now - t:.0f} s)' for n, t in sorted(self._gone.items()))
        values = {'level': d.level, 'level_name': d.level_name, 'num_levels': d.num_levels,
                  'reason': d.reason, 'battery_fraction': d.battery_fraction,
                  'temperature_c': d.temperature_c, 'charging': d.charging}
        values.update({f'demand_{rule}': level for rule, level in d.demands.items()})
        values.update(self._mission_values(d))
        if d.mission is not None and d.mission.active:
            severity = max(severity, d.mission.severity)
            if d.mission.severity:
                message += f' | {d.mission.text}'
            problem = self.policy.mission.estimator.problem
            scale = self.policy.config.mission_time_scale
            if problem is not None and (now * scale - problem[2]) / scale <= hold:
                severity = max(severity, problem[0])
                message += f' | battery for the mission: {problem[1]}'
        values.update({f'rejected_{s}': n for s, n in self._rejected.items()})
        values.update(followers=','.join(sorted(self._followers)),
                      followers_gone=','.join(sorted(self._gone)),
                      level_subscribers=self._level_pub.get_subscription_count())
        name = self.get_fully_qualified_name()
        self._diag_pub.publish(diagnostics.array(self, [
            diagnostics.status(name, name, severity, message, values)]))

    def _mission_values(self, d) -> dict:
        if d.mission is None:
            return {}
        return mission_diagnostics(d.mission, self.policy.mission.estimator)

    # -- parameters -----------------------------------------------------------
    def _on_policy_params(self, candidate: dict) -> None:
        self.policy.reconfigure(policy_config(candidate))
        self.evaluate()

    def _on_node_params(self, candidate: dict) -> None:
        for name, timer in (('update_period_s', self._update_timer),
                            ('heartbeat_s', self._heartbeat_timer)):
            if candidate[name] != self.settings[name]:
                set_timer_period(timer, candidate[name])
        self.settings.update(candidate)
        self._device = device(candidate['device_preset'], candidate['cpu_time_scale'] or None)


def main(args=None):
    """Run the budget manager until Ctrl-C or shutdown."""
    return run_node(BudgetManager, args)


if __name__ == '__main__':
    raise SystemExit(main())
