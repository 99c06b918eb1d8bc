"""A node that watches the running pipeline: power, level, outputs and node diagnostics.

Used by ``adaptive-perception launch edge`` for its one-line live status and the
report written at exit. It only subscribes. One subscription has an effect:
``adamtl_multitask`` computes a task only while its topic has a subscriber, so
the monitor, standing in for the application that uses the maps, makes it compute
every task its level allows.

A node whose diagnostics stopped for longer than ``stale_timeout_s`` is shown as
STALE (the ``diagnostic_msgs`` level the ROS diagnostic aggregator uses) with rate 0,
never with its last values as if it were well; a node whose process is not running
(the launcher tells the monitor through ``processes``) is shown as "down".
"""

import math
import time

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import BatteryState, Image, Temperature
from std_msgs.msg import String

from adaptive_perception.msg import ActivityState, ExecutionLevel
from adaptive_perception.ros import diagnostics
from adaptive_perception.ros.interfaces import (
    ACTIVITY_TOPIC,
    ACTIVITY_TRUTH_QOS,
    ACTIVITY_TRUTH_TOPIC,
    BATTERY_TOPIC,
    DIAGNOSTICS_QOS,
    DIAGNOSTICS_TOPIC,
    EXECUTION_LEVEL_QOS,
    EXECUTION_LEVEL_TOPIC,
    OUTPUT_QOS,
    POWER_QOS,
    TASK_TOPICS,
    TEMPERATURE_TOPIC,
)

SEVERITY_NAMES = {0: 'OK', 1: 'WARN', 2: 'ERROR', 3: 'STALE'}
STALE_TIMEOUT_S = 5.0  # five missed 1 Hz diagnostics


def node_key(status_name: str) -> str:
    """'/ns/adacon_detector' -> 'adacon_detector': the name the plan and the launcher use."""
    return status_name.strip('/').rsplit('/', 1)[-1]


def node_statuses(statuses: dict, heard: dict, now: float, stale_timeout_s: float,
                  processes=()) -> dict:
    """Return the latest diagnostics per node as known at ``now`` (no ROS).

    ``statuses``: node -> last diagnostics (severity name, message, values);
    ``heard``: node -> when they arrived. A node silent longer than ``stale_timeout_s``
    is STALE with rate 0 (its last message kept under ``last_message``). Nodes the
    launcher runs (``processes``: ``NodeProcess``-like, with name, state(), restarts,
    exit_codes()) carry their process state, restarts and exit codes, also when they
    never published; one that is not running is STALE with rate 0 whatever it said last.
    """
    result = {}
    for name, status in statuses.items():
        status = dict(status)
        silent = now - heard.get(name, now)
        if silent > stale_timeout_s:
            status.update(severity='STALE', rate_hz='0', last_message=status['message'],
                          message=f'no diagnostics for {silent:.1f} s')
        status['silent_s'] = f'{silent:.1f}'
        result[name] = status
    for process in processes:
        # camera_source and imu_simulator publish no diagnostics: their state is the
        # process's alone.
        status = result.setdefault(process.name, {
            'severity': '-', 'message': 'no diagnostics from this node'})
        state = process.state()
        status.update(process=state, restarts=process.restarts,
                      exit_codes=','.join(str(c) for c in process.exit_codes()) or '-')
        if state != 'running':
            status.update(severity='STALE', rate_hz='0')
    return result


class EdgeMonitor(Node):
    """Records battery, temperature, level and activity over time, and the node statuses."""

    def __init__(self, sample_period_s: float = 0.25, stale_timeout_s: float = STALE_TIMEOUT_S,
                 processes=()):
        super().__init__('edge_monitor')
        self.start = time.monotonic()
        self.stale_timeout_s = stale_timeout_s
        self.processes = list(processes)  # launcher.processes.NodeProcess, for up/down
        self.heard = {}  # node name -> elapsed() of its last diagnostics
        self.battery = math.nan
        self.temperature = math.nan
        self.level = None
        self.samples = []  # dicts: t, battery, temperature_c, level
        self.level_events = []  # dicts: t, level, level_name, reason
        self.statuses = {}  # node name -> {'severity', 'message', values...}
        # every ActivityState: t, stamp, label, confidence, sensor_state,
        # requested_sensor_state, sensor_current_ua, level
        self.activity_states = []
        self.truth_events = []  # dicts: t, label; the simulator's true activity, on change
        # every multi-task output image: t, task, age_ms (arrival - header stamp)
        self.multitask_outputs = []
        self.create_subscription(BatteryState, BATTERY_TOPIC, self._on_battery, POWER_QOS)
        self.create_subscription(Temperature, TEMPERATURE_TOPIC, self._on_temperature, POWER_QOS)
        self.create_subscription(ExecutionLevel, EXECUTION_LEVEL_TOPIC, self._on_level,
                                 EXECUTION_LEVEL_QOS)
        self.create_subscription(DiagnosticArray, DIAGNOSTICS_TOPIC, self._on_diagnostics,
                                 DIAGNOSTICS_QOS)
        self.create_subscription(ActivityState, ACTIVITY_TOPIC, self._on_activity, OUTPUT_QOS)
        self.create_subscription(String, ACTIVITY_TRUTH_TOPIC, self._on_truth,
                                 ACTIVITY_TRUTH_QOS)
        for task, topic in TASK_TOPICS.items():
            self.create_subscription(Image, topic, lambda msg, task=task: self._on_task_output(
                task, msg), OUTPUT_QOS)
        self.create_timer(sample_period_s, self._sample)

    def elapsed(self) -> float:
        """Seconds since the monitor started."""
        return time.monotonic() - self.start

    def _on_battery(self, msg):
        self.battery = msg.percentage

    def _on_temperature(self, msg):
        self.temperature = msg.temperature

    def _on_level(self, msg):
        if self.level is None or msg.level != self.level.level:
            self.level_events.append({'t': self.elapsed(), 'level': msg.level,
                                      'level_name': msg.level_name, 'reason': msg.reason})
        self.level = msg

    def _on_activity(self, msg):
        self.activity_states.append({
            't': self.elapsed(), 'stamp': msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9,
            'label': msg.label, 'confidence': msg.confidence, 'sensor_state': msg.sensor_state,
            'requested_sensor_state': msg.requested_sensor_state,
            'sensor_current_ua': msg.sensor_current_ua, 'level': msg.level})

    def _on_task_output(self, task, msg):
        stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        self.multitask_outputs.append({
            't': self.elapsed(), 'task': task,
            'age_ms': (self.get_clock().now().nanoseconds - stamp_ns) / 1e6})

    def _on_truth(self, msg):
        if not self.truth_events or self.truth_events[-1]['label'] != msg.data:
            self.truth_events.append({'t': self.elapsed(), 'label': msg.data})

    def _on_diagnostics(self, msg):
        for status in msg.status:
            severity = status.level[0] if isinstance(status.level, bytes) else status.level
            name = node_key(status.name)
            self.statuses[name] = {
                'severity': SEVERITY_NAMES.get(severity, str(severity)),
                'message': status.message, **diagnostics.values_of(status)}
            self.heard[name] = self.elapsed()

    def node_statuses(self) -> dict:
        """Return the latest diagnostics per node, corrected for what is known now."""
        return node_statuses(self.statuses, self.heard, self.elapsed(), self.stale_timeout_s,
                             self.processes)

    def _sample(self):
        self.samples.append({'t': self.elapsed(), 'battery': self.battery,
                             'temperature_c': self.temperature,
                             'level': self.level.level if self.level else math.nan})

    def status_line(self) -> str:
        """One line: battery, temperature, level, activity (if any), per-node rate."""
        level = (f'level {self.level.level} {self.level.level_name}' if self.level
                 else 'level ?')
        rates = ' '.join(_node_word(name, s) for name, s in sorted(self.node_statuses().items())
                         if 'rate_hz' in s or 'process' in s)
        activity = ''
        if self.activity_states:
            last = self.activity_states[-1]
            activity = f'{last["label"]} {last["sensor_state"] or "?"} | '
        return (f'[{self.elapsed():6.1f}s] battery {self.battery:.2f} | '
                f'{self.temperature:5.1f} C | {level} | {activity}'
                f'{rates or "no node rates yet"}')


def _node_word(name: str, status: dict) -> str:
    """'adacon_detector 10.1Hz', 'adacon_detector down', '... failed' or '... STALE'."""
    process = status.get('process', 'running')
    if process in ('restarting', 'exited'):
        return f'{name} down'
    if process == 'failed':
        return f'{name} failed'
    if status['severity'] == 'STALE':
        return f'{name} STALE'
    rate = diagnostics.as_float(status.get('rate_hz'))
    return f'{name} {rate:.1f}Hz' if math.isfinite(rate) else f'{name} up'
