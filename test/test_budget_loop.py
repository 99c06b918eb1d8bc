"""The budget loop across processes: simulator -> manager -> level-following node."""

import time

from diagnostic_msgs.msg import DiagnosticArray

from adaptive_perception.msg import ExecutionLevel
from adaptive_perception.ros.interfaces import DIAGNOSTICS_QOS, EXECUTION_LEVEL_QOS

# Heat kept negligible (tiny thermal resistance) so only the battery drives the level.
SIM = {'time_scale': 600.0, 'initial_fraction': 0.7, 'thermal_resistance_c_per_w': 0.1,
       'publish_rate_hz': 20.0, 'level_timeout_s': 2.0, 'fallback_level': 3}
MANAGER = {'dwell_s': 0.0, 'heartbeat_s': 0.5}


def simulator_status(probe, diagnostics, predicate, timeout_s, what, since=0):
    """Wait for a power_simulator status matching ``predicate``, among arrays ``since`` on."""
    def found():
        for array in reversed(diagnostics[since:]):
            for status in array.status:
                values = {kv.key: kv.value for kv in status.values}
                if status.name == '/power_simulator' and predicate(values):
                    return values
        return None
    return probe.spin_until(found, timeout_s, what)


def test_draining_battery_steps_through_the_levels(probe, launch):
    levels = probe.subscribe(ExecutionLevel, '/adaptive_perception/execution_level',
                             EXECUTION_LEVEL_QOS)
    launch('budget_manager', params=MANAGER)
    launch('power_simulator', params={**SIM, 'time_scale': 0.0})  # paused until discovered
    probe.spin_until(lambda: any(m.reason.startswith('within budget: battery 0.700')
                                 for m in levels), 20.0, 'the manager hearing the simulator')
    [result] = probe.set_parameters('power_simulator', {'time_scale': SIM['time_scale']})
    assert result.successful
    probe.spin_until(lambda: any(m.level == 3 for m in levels), 40.0, 'level 3 (critical)')
    sequence = [m.level for m in levels]
    changes = [b for a, b in zip(sequence, sequence[1:], strict=False) if a != b]
    assert changes == sorted(changes), f'a draining battery only makes levels cheaper: {sequence}'
    assert {1, 2, 3} <= set(changes)
    battery_driven = [m for m in levels if m.level > 0]
    assert all(m.reason.startswith('battery') for m in battery_driven), \
        {m.reason for m in battery_driven}


def test_follower_falls_back_when_manager_is_killed_and_recovers_on_restart(probe, launch):
    diagnostics = probe.subscribe(DiagnosticArray, '/diagnostics', DIAGNOSTICS_QOS)
    manager = launch('budget_manager', name='budget_manager', params={
        **MANAGER, 'override_level': 1})
    launch('power_simulator', params={**SIM, 'time_scale': 1.0})
    simulator_status(probe, diagnostics, lambda v: v['level_source'] == 'manager'
                     and v['applied_level'] == '1', 20.0, 'simulator following level 1')
    manager.proc.kill()  # no clean shutdown: the manager just disappears
    manager.proc.wait()
    stopped = time.monotonic()
    # only statuses sent after the kill: a loaded machine may have reported a fallback
    # at start-up, before the manager's first level arrived
    fallback = simulator_status(probe, diagnostics, lambda v: v['level_source'] == 'fallback',
                                15.0, 'fallback after the manager stopped',
                                since=len(diagnostics))
    assert fallback['applied_level'] == '3'
    assert time.monotonic() - stopped >= SIM['level_timeout_s'] - 0.5
    launch('budget_manager', name='budget_manager', params={**MANAGER, 'override_level': 2})
    simulator_status(probe, diagnostics, lambda v: v['level_source'] == 'manager'
                     and v['applied_level'] == '2', 20.0, 'following the restarted manager')


def test_follower_parameters_apply_at_run_time_and_bad_profiles_are_rejected(probe, launch):
    diagnostics = probe.subscribe(DiagnosticArray, '/diagnostics', DIAGNOSTICS_QOS)
    launch('power_simulator', params={**SIM, 'time_scale': 1.0})
    simulator_status(probe, diagnostics, lambda v: v['level_source'] == 'fallback', 20.0,
                     'simulator running on its fallback level')
    [result] = probe.set_parameters('power_simulator', {'level_power_w': [5.0, -1.0]})
    assert not result.successful and 'level_power_w' in result.reason
    [result] = probe.set_parameters('power_simulator', {'level_override': 0})
    assert result.successful
    simulator_status(probe, diagnostics, lambda v: v['level_source'] == 'override'
                     and v['applied_level'] == '0', 10.0, 'override applied')
