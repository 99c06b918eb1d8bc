"""budget_manager over DDS: levels from battery/heat, bad input, run-time parameters."""

import math

import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from sensor_msgs.msg import BatteryState, Temperature

from adaptive_perception.msg import ExecutionLevel
from adaptive_perception.ros.interfaces import DIAGNOSTICS_QOS, EXECUTION_LEVEL_QOS, POWER_QOS

FAST = {'dwell_s': 0.0, 'stale_timeout_s': 2.0, 'heartbeat_s': 0.5, 'problem_hold_s': 30.0}


class Bench:
    """The manager's surroundings: battery and temperature publishers, level and diag logs."""

    def __init__(self, probe):
        self.probe = probe
        self.levels = probe.subscribe(ExecutionLevel, '/adaptive_perception/execution_level',
                                      EXECUTION_LEVEL_QOS)
        self.diagnostics = probe.subscribe(DiagnosticArray, '/diagnostics', DIAGNOSTICS_QOS)
        self.battery_pub = probe.node.create_publisher(BatteryState, '/battery_state', POWER_QOS)
        self.temp_pub = probe.node.create_publisher(Temperature, '/thermal/temperature',
                                                    POWER_QOS)
        probe.wait_for_subscribers(self.battery_pub)
        probe.wait_for_subscribers(self.temp_pub)

    def send(self, percentage=0.9, celsius=40.0,
             status=BatteryState.POWER_SUPPLY_STATUS_DISCHARGING, stamp_s=None):
        stamp = self.probe.node.get_clock().now().to_msg()
        if stamp_s is not None:
            stamp.sec, stamp.nanosec = int(stamp_s), 0
        if percentage is not None:
            msg = BatteryState(percentage=float(percentage), power_supply_status=status)
            msg.header.stamp = stamp
            self.battery_pub.publish(msg)
        if celsius is not None:
            msg = Temperature(temperature=float(celsius))
            msg.header.stamp = stamp
            self.temp_pub.publish(msg)

    def level_becomes(self, level, timeout_s=10.0, **send):
        """Keep sending readings until the manager publishes ``level``; return that message."""
        start = len(self.levels)

        def reached():
            if send:
                self.send(**send)
            return next((m for m in self.levels[start:] if m.level == level), None)
        return self.probe.spin_until(reached, timeout_s, f'execution level {level}')

    def manager_status(self, predicate, timeout_s=10.0, what='manager diagnostics', **send):
        """Wait for a budget_manager status that satisfies ``predicate``."""
        def found():
            if send:
                self.send(**send)
            for array in reversed(self.diagnostics):
                for status in array.status:
                    if status.name == '/budget_manager' and predicate(status):
                        return status
            return None
        return self.probe.spin_until(found, timeout_s, what)


@pytest.fixture
def bench(probe, launch):
    launch('budget_manager', params=FAST)
    return Bench(probe)


def test_levels_follow_battery_and_heat(bench):
    first = bench.probe.spin_until(lambda: bench.levels, 15.0, 'the first (latched) level')
    assert first[0].num_levels == 4
    assert bench.level_becomes(0, percentage=0.9, celsius=40.0).level_name == 'full'
    low = bench.level_becomes(2, percentage=0.3, celsius=40.0)
    assert 'battery 0.300' in low.reason and low.battery_fraction == pytest.approx(0.3)
    hot = bench.level_becomes(3, percentage=0.9, celsius=90.0)
    assert 'temperature 90.0 C' in hot.reason and hot.temperature_c == pytest.approx(90.0)
    charging = BatteryState.POWER_SUPPLY_STATUS_CHARGING
    back = bench.level_becomes(0, percentage=0.1, celsius=40.0, status=charging)
    assert back.charging


@pytest.mark.parametrize('send, severity, text', [
    ({'percentage': 55.0}, DiagnosticStatus.WARN, 'looks like 0..100'),
    ({'percentage': math.nan}, DiagnosticStatus.ERROR, 'NaN'),
    ({'percentage': 0.9, 'status': 42}, DiagnosticStatus.WARN, 'status 42 unknown'),
    ({'celsius': -500.0}, DiagnosticStatus.ERROR, 'sensor fault'),
    ({'celsius': 400.0}, DiagnosticStatus.ERROR, 'sensor fault'),
])
def test_bad_readings_are_reported_and_level_stays_defined(bench, send, severity, text):
    bench.level_becomes(0, percentage=0.9, celsius=40.0)
    readings = {'percentage': 0.9, 'celsius': 40.0, **send}
    status = bench.manager_status(lambda s: text in s.message, what=f'"{text}"', **readings)
    assert status.level == severity
    assert bench.levels[-1].level in range(4)


def test_percent_scale_battery_is_corrected_not_misread(bench):
    """55 (percent) must mean 0.55, i.e. level 1, not a full battery."""
    msg = bench.level_becomes(1, percentage=55.0, celsius=40.0)
    assert msg.battery_fraction == pytest.approx(0.55)


def test_out_of_order_messages_are_dropped(bench):
    bench.level_becomes(0, percentage=0.9, celsius=40.0, stamp_s=2_000_000_000)
    status = bench.manager_status(lambda s: 'older than the last' in s.message,
                                  percentage=0.1, celsius=None, stamp_s=1_000_000_000)
    assert status.level == DiagnosticStatus.WARN
    assert bench.levels[-1].level == 0, 'the stale 10 % reading must not count'


def test_silent_source_goes_to_safe_level(bench):
    bench.level_becomes(0, percentage=0.9, celsius=40.0)
    safe = bench.level_becomes(2, percentage=None, celsius=40.0)
    assert 'stale input: battery' in safe.reason
    status = bench.manager_status(lambda s: 'stale' in s.message)
    assert status.level == DiagnosticStatus.WARN


def test_parameters_take_effect_and_inconsistent_ones_are_rejected(bench):
    bench.level_becomes(0, percentage=0.9, celsius=40.0)
    [result] = bench.probe.set_parameters('budget_manager',
                                          {'battery_thresholds': [0.2, 0.5, 0.1]})
    assert not result.successful and 'descending' in result.reason
    bench.level_becomes(1, percentage=0.5, celsius=40.0)  # old thresholds (0.6, ...) still hold
    [result] = bench.probe.set_parameters('budget_manager',
                                          {'battery_thresholds': [0.4, 0.3, 0.1]})
    assert result.successful
    bench.level_becomes(0, percentage=0.5, celsius=40.0)
    [result] = bench.probe.set_parameters('budget_manager', {'override_level': 3})
    assert result.successful
    assert 'manual override' in bench.level_becomes(3, percentage=0.9, celsius=40.0).reason


def test_atomic_request_is_rejected_whole(bench):
    """A valid override plus an invalid range in one atomic request: neither applies."""
    bench.level_becomes(0, percentage=0.9, celsius=40.0)
    result = bench.probe.set_parameters('budget_manager', {
        'override_level': 3, 'temperature_min_valid_c': 500.0}, atomically=True)
    assert not result.successful and 'temperature_min_valid_c' in result.reason
    bench.probe.spin_for(1.5)  # heartbeats keep coming; none may carry level 3
    bench.send(percentage=0.9, celsius=40.0)
    bench.probe.spin_for(0.5)
    assert bench.levels[-1].level == 0


def test_latency_objective_from_diagnostics(probe, launch):
    """A node whose p95 stays above its target costs a level; meeting it gives it back."""
    launch('budget_manager', params={**FAST, 'latency_window_s': 0.5,
                                     'latency_recover_ratio': 0.8})
    bench = Bench(probe)
    node_diag = probe.node.create_publisher(DiagnosticArray, '/diagnostics', DIAGNOSTICS_QOS)
    probe.wait_for_subscribers(node_diag)

    def report(p95_ms):
        bench.send(percentage=0.9, celsius=40.0)
        node_diag.publish(DiagnosticArray(status=[DiagnosticStatus(
            name='/slow_detector', values=[KeyValue(key='latency_p95_ms', value=str(p95_ms)),
                                           KeyValue(key='latency_target_ms', value='100')])]))

    bench.level_becomes(0, percentage=0.9, celsius=40.0)
    slow = probe.spin_until(lambda: report(180.0) or next(
        (m for m in bench.levels if m.level == 1), None), 10.0, 'a level for latency')
    assert 'latency: /slow_detector p95 180 ms > target 100 ms' in slow.reason
    probe.spin_until(lambda: report(40.0) or bench.levels[-1].level == 0, 10.0,
                     'the level given back')


def test_heartbeat_period_changes_at_run_time(bench):
    bench.level_becomes(0, percentage=0.9, celsius=40.0)
    [result] = bench.probe.set_parameters('budget_manager', {'heartbeat_s': 0.1})
    assert result.successful
    start = len(bench.levels)
    bench.probe.spin_for(1.5)
    assert len(bench.levels) - start >= 10, 'expected ~15 heartbeats at 0.1 s, not ~3 at 0.5 s'


def test_followers_are_listed_and_a_silent_one_is_warned_about(probe, launch):
    """A node reporting an applied level is a follower; once silent it is WARN, not counted."""
    launch('budget_manager', params={**FAST, 'latency_window_s': 0.5, 'follower_timeout_s': 1.5,
                                     'stale_timeout_s': 30.0})
    bench = Bench(probe)
    node_diag = probe.node.create_publisher(DiagnosticArray, '/diagnostics', DIAGNOSTICS_QOS)
    probe.wait_for_subscribers(node_diag)

    def report():
        bench.send(percentage=0.9, celsius=40.0)
        node_diag.publish(DiagnosticArray(status=[DiagnosticStatus(
            name='/slow_detector', values=[KeyValue(key='applied_level', value='0'),
                                           KeyValue(key='latency_p95_ms', value='180'),
                                           KeyValue(key='latency_target_ms', value='100')])]))

    def values(status):
        return {kv.key: kv.value for kv in status.values}

    def listed_now():
        report()
        return next((s for a in reversed(bench.diagnostics) for s in a.status
                     if s.name == '/budget_manager'
                     and values(s).get('followers') == '/slow_detector'), None)

    listed = probe.spin_until(listed_now, 15.0, 'the follower listed')
    assert values(listed)['followers_gone'] == ''
    probe.spin_until(lambda: report() or next(
        (m for m in bench.levels if m.level == 1), None), 10.0, 'a level for its latency')
    # The follower stops (killed): its stale latency must not hold the level.
    gone = bench.manager_status(lambda s: values(s).get('followers_gone') == '/slow_detector',
                                10.0, 'the follower reported gone', percentage=0.9,
                                celsius=40.0)
    assert gone.level == DiagnosticStatus.WARN
    assert 'followers gone: /slow_detector' in gone.message
    assert values(gone)['followers'] == ''
    bench.level_becomes(0, percentage=0.9, celsius=40.0)
    # It comes back (restarted): listed again, no longer WARN for it.
    bench.diagnostics.clear()
    back = probe.spin_until(listed_now, 10.0, 'the follower back')
    assert values(back)['followers_gone'] == ''
