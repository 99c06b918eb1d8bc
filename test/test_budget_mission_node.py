"""budget_manager's mission over DDS: run-time parameters, the plan in diagnostics, the topic."""

import pytest
from sensor_msgs.msg import BatteryState
from std_msgs.msg import Float64

from adaptive_perception.ros.interfaces import EXECUTION_LEVEL_QOS, MISSION_START_TOPIC
from test_budget_manager_node import FAST, Bench

VOLTS, AH = 7.4, 20.0 / 7.4  # a 20 Wh battery
PRIOR = [10.0, 8.0, 6.0, 4.5]  # W per level


def values(status) -> dict:
    return {kv.key: kv.value for kv in status.values}


@pytest.fixture
def bench(probe, launch):
    # thresholds low enough that at 0.5 the battery alone does not limit the level
    launch('budget_manager', params={**FAST, 'require_temperature': False,
                                     'stale_timeout_s': 30.0, 'battery_hysteresis': 0.01,
                                     'battery_thresholds': [0.12, 0.08, 0.04]})
    return Bench(probe)


def send_draining(bench, fraction=0.5, watts=10.0):
    msg = BatteryState(percentage=fraction, voltage=VOLTS, current=-watts / VOLTS, capacity=AH,
                       power_supply_status=BatteryState.POWER_SUPPLY_STATUS_DISCHARGING)
    msg.header.stamp = bench.probe.node.get_clock().now().to_msg()
    bench.battery_pub.publish(msg)


def plan_status(bench, predicate, what):
    """Keep the battery draining until a manager status satisfies ``predicate``."""
    return bench.probe.spin_until(lambda: _latest(bench, predicate), 15.0, what)


def _latest(bench, predicate):
    send_draining(bench)
    for array in reversed(bench.diagnostics):
        for status in array.status:
            if status.name == '/budget_manager' and predicate(values(status)):
                return status
    return None


def test_mission_set_at_run_time_plans_and_explains(bench):
    results = bench.probe.set_parameters('budget_manager', {'mission_prior_power_w': PRIOR,
                                                            'mission_duration_s': 3600.0})
    assert all(r.successful for r in results), [r.reason for r in results]
    status = plan_status(bench, lambda v: 'until' in v.get('mission_plan', ''),
                         'a mission plan')
    plan = values(status)['mission_plan']
    # at 0.5 battery, 1 h: level 0 (0.5/h) alone runs out, level 1 (0.4/h) lasts
    assert plan.startswith('mission: level 0 until T+') and 'then 1' in plan, plan
    assert values(status)['mission_estimate_source'] == 'current'
    assert float(values(status)['mission_drain_per_h_level_0']) == pytest.approx(0.5, rel=0.01)


def test_impossible_mission_is_an_error_at_the_cheapest_level(bench):
    results = bench.probe.set_parameters('budget_manager', {'mission_prior_power_w': PRIOR,
                                                            'mission_duration_s': 36000.0})
    assert all(r.successful for r in results)
    status = plan_status(bench, lambda v: 'cannot be met' in v.get('mission_plan', ''),
                         'the impossible mission to be reported')
    assert status.level == b'\x02' and values(status)['level'] == '3'


def test_mission_start_topic_starts_and_ends_a_mission(bench):
    publisher = bench.probe.node.create_publisher(Float64, MISSION_START_TOPIC,
                                                  EXECUTION_LEVEL_QOS)
    bench.probe.wait_for_subscribers(publisher)
    publisher.publish(Float64(data=1800.0))
    plan_status(bench, lambda v: v.get('mission_active') == 'True', 'the mission to start')
    publisher.publish(Float64(data=0.0))
    plan_status(bench, lambda v: v.get('mission_active') == 'False', 'the mission to end')


def test_inconsistent_mission_parameters_are_rejected(bench):
    [bad] = bench.probe.set_parameters('budget_manager', {'mission_prior_power_w': [1.0, 2.0]})
    assert not bad.successful and 'one value per level' in bad.reason
    [bad] = bench.probe.set_parameters('budget_manager', {'mission_time_scale': 0.0})
    assert not bad.successful
