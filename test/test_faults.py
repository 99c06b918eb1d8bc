"""Faults seen and survived with the pip-world launcher (``adaptive-perception launch edge``).

A killed node is restarted and rejoins (level from the transient-local topic), a node
that cannot start is given up on after its limit, a silent node is never shown as
OK, and no node outlives its launcher whatever signal ends it. The same for
``ros2 launch`` is in test_colcon_build.py (it needs the colcon install).
"""

import json
import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import yaml
from diagnostic_msgs.msg import DiagnosticArray

from adaptive_perception.launcher.monitor import _node_word, node_statuses
from adaptive_perception.launcher.plan import load_plan
from adaptive_perception.launcher.processes import STABLE_RUN_S, RestartPolicy
from adaptive_perception.launcher.report import node_table
from adaptive_perception.launcher.ros_launch import node_options, stop_pids
from adaptive_perception.ros.interfaces import DIAGNOSTICS_QOS
from adaptive_perception.ros.parent_watch import LAUNCHER_PID_ENV, expected_launcher
from adaptive_perception.ros.parent_watch import process_alive as _alive
from ros_harness import REPO, child_processes, node_env


# -- pure parts ----------------------------------------------------------------------
def test_restart_policy_backs_off_gives_up_and_forgives_a_long_run():
    policy = RestartPolicy(enabled=True, delay_s=1.0, max_per_minute=3)
    assert [policy.after_exit(2.0) for _ in range(3)] == [1.0, 2.0, 4.0]
    assert policy.after_exit(2.0) is None  # a fourth quick death: give up
    policy = RestartPolicy(enabled=True, delay_s=1.0, max_per_minute=2)
    assert policy.after_exit(5.0) == 1.0 and policy.after_exit(5.0) == 2.0
    assert policy.after_exit(STABLE_RUN_S + 1) == 1.0  # ran a minute: a fresh count
    assert RestartPolicy(enabled=True, delay_s=20.0, max_per_minute=9).after_exit(
        0.0) == 20.0
    long = RestartPolicy(enabled=True, delay_s=20.0, max_per_minute=9)
    assert [long.after_exit(1.0) for _ in range(3)] == [20.0, 30.0, 30.0]  # capped
    assert RestartPolicy(enabled=False, delay_s=1.0, max_per_minute=5).after_exit(1.0) is None


def test_shipped_plan_respawns_perception_power_and_manager(tmp_path):
    plan = {s.name: s for s in load_plan()}
    for name in ('budget_manager', 'power_simulator', 'adacon_detector', 'adamtl_multitask',
                 'activity_recognizer'):
        assert plan[name].respawn and plan[name].respawn_delay > 0, name
        assert plan[name].respawn_max_per_minute >= 1
    options = node_options(plan['adacon_detector'])
    assert options['respawn'] is True and options['respawn_delay'] == 2.0
    assert options['respawn_max_retries'] == plan['adacon_detector'].respawn_max_per_minute
    assert options['additional_env'] == {LAUNCHER_PID_ENV: str(os.getpid())}
    bad = tmp_path / 'edge.yaml'
    for entry, message in (({'respawn': 'yes'}, 'respawn must be true or false'),
                           ({'respawn_delay': -1}, 'respawn_delay'),
                           ({'respawn_max_per_minute': 0}, 'respawn_max_per_minute')):
        bad.write_text(yaml.safe_dump({'nodes': {'m': {
            'executable': 'budget_manager', 'role': 'core', **entry}}}))
        with pytest.raises(ValueError, match=message):
            load_plan(bad)


class _Process:
    def __init__(self, name, state, restarts=0, codes=()):
        self.name, self._state, self.restarts, self._codes = name, state, restarts, codes

    def state(self):
        return self._state

    def exit_codes(self):
        return list(self._codes)


def test_silent_or_dead_node_is_stale_with_rate_zero_never_ok():
    last = {'severity': 'OK', 'message': 'level 1', 'rate_hz': '10.1', 'frames': '110'}
    statuses = {'adacon_detector': dict(last), 'adamtl_multitask': dict(last)}
    heard = {'adacon_detector': 10.0, 'adamtl_multitask': 15.5}
    marked = node_statuses(statuses, heard, now=16.0, stale_timeout_s=5.0)
    assert marked['adacon_detector']['severity'] == 'STALE'
    assert marked['adacon_detector']['rate_hz'] == '0'
    assert marked['adacon_detector']['message'] == 'no diagnostics for 6.0 s'
    assert marked['adacon_detector']['last_message'] == 'level 1'
    assert marked['adamtl_multitask']['severity'] == 'OK'
    # The launcher knows the process died before the timeout: STALE at once, "down".
    processes = [_Process('adacon_detector', 'restarting', 1, [-9]),
                 _Process('adamtl_multitask', 'running'), _Process('camera_source', 'running')]
    marked = node_statuses(statuses, {**heard, 'adacon_detector': 15.0}, 16.0, 5.0, processes)
    dead = marked['adacon_detector']
    assert (dead['severity'], dead['rate_hz'], dead['restarts'], dead['exit_codes']) == (
        'STALE', '0', 1, '-9')
    assert _node_word('adacon_detector', dead) == 'adacon_detector down'
    assert _node_word('adamtl_multitask', marked['adamtl_multitask']) == \
        'adamtl_multitask 10.1Hz'
    assert _node_word('camera_source', marked['camera_source']) == 'camera_source up'
    failed = node_statuses({}, {}, 0.0, 5.0, [_Process('adacon_detector', 'failed', 2, [1, 1, 1])])
    assert _node_word('adacon_detector', failed['adacon_detector']) == 'adacon_detector failed'
    table = node_table(marked)
    assert '| adacon_detector | STALE |' in table and '| restarting | 1 | -9 |' in table


def test_launcher_variable_counts_only_for_the_direct_parent():
    parent = os.getppid()
    assert expected_launcher({LAUNCHER_PID_ENV: str(parent)}) == parent
    assert expected_launcher({LAUNCHER_PID_ENV: str(os.getpid())}) is None  # not our parent
    gone = subprocess.Popen(['true'])
    gone.wait()
    # A launcher that died before the node could watch it: the node must still stop.
    assert expected_launcher({LAUNCHER_PID_ENV: str(gone.pid)}) == gone.pid
    assert expected_launcher({}) is None
    assert expected_launcher({LAUNCHER_PID_ENV: 'x'}) is None


def test_stop_pids_escalates_to_sigkill_for_a_process_that_ignores_sigint_and_sigterm():
    stubborn = subprocess.Popen([sys.executable, '-c', (
        'import signal, sys, time\n'
        'signal.signal(signal.SIGINT, signal.SIG_IGN)\n'
        'signal.signal(signal.SIGTERM, signal.SIG_IGN)\n'
        'print("ready", flush=True)\n'
        'time.sleep(60)\n')], stdout=subprocess.PIPE, text=True)
    assert stubborn.stdout.readline().strip() == 'ready'
    said = []
    start = time.monotonic()
    killed = stop_pids([stubborn.pid], 0.5, 0.5, say=said.append)
    assert killed == [stubborn.pid]
    assert stubborn.wait(5) == -signal.SIGKILL
    assert time.monotonic() - start < 5
    assert any('SIGTERM' in s for s in said) and any('SIGKILL' in s for s in said)


# -- the launcher with real nodes ---------------------------------------------------------
def _children(pid: int) -> dict:
    """Return the running child processes of ``pid``: child pid -> command line."""
    return {child: ' '.join(argv) for child, argv in child_processes(pid).items()}


def _wait(condition, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f'timed out after {timeout_s} s waiting for {what}')


def _node_pid(launcher_pid, module):
    return next((p for p, cmd in _children(launcher_pid).items() if module in cmd), None)


def _plan_file(tmp_path, **changes):
    """edge.yaml with quicker restarts; ``changes``: node -> dict merged into its entry."""
    document = yaml.safe_load((REPO / 'config' / 'edge.yaml').read_text())
    for name, entry in changes.items():
        params = entry.pop('parameters', {})
        document['nodes'][name].update(entry)
        document['nodes'][name]['parameters'].update(params)
    path = tmp_path / 'edge.yaml'
    path.write_text(yaml.safe_dump(document))
    return path


def _launch(tmp_path, params_file, *args, preexec_fn=None):
    report = tmp_path / 'report'
    out = open(tmp_path / 'launcher.out', 'w')
    proc = subprocess.Popen(
        [sys.executable, '-m', 'adaptive_perception.cli', 'launch', 'edge', '--params-file',
         str(params_file), '--report-dir', str(report), *args],
        env={**os.environ, **node_env()}, stdout=out, stderr=subprocess.STDOUT,
        preexec_fn=preexec_fn)
    return proc, report


def _run_text(tmp_path, report) -> str:
    """Return the launcher's output and the end of each node's log (a failure message)."""
    parts = ['launcher: ' + (tmp_path / 'launcher.out').read_text()[-3000:]]
    for log in sorted((report / 'logs').glob('*.log')):
        parts.append(f'{log.stem}: ' + log.read_text(errors='replace')[-2000:])
    return '\n'.join(parts)


def _stop(proc):
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def _latest(diagnostics, node):
    for array in reversed(diagnostics):
        for status in array.status:
            if status.name == f'/{node}':
                return {kv.key: kv.value for kv in status.values}
    return None


def test_killed_nodes_restart_rejoin_and_are_counted(tmp_path, probe):
    """SIGKILL and SIGTERM to the detector (two restarts in a row), SIGKILL to the manager."""
    params = _plan_file(tmp_path, adacon_detector={'respawn_delay': 1.0},
                        budget_manager={'respawn_delay': 4.0})
    diagnostics = probe.subscribe(DiagnosticArray, '/diagnostics', DIAGNOSTICS_QOS)
    proc, report = _launch(tmp_path, params, '--perception', 'adacon_detector', '--imu', 'none')
    try:
        def following(source, after=0):
            del diagnostics[:after]
            return probe.spin_until(lambda: (_latest(diagnostics, 'adacon_detector') or {}).get(
                'level_source') == source, 60.0, f'adacon_detector level_source {source}')

        following('manager')
        for signum in (signal.SIGKILL, signal.SIGTERM):
            old = _node_pid(proc.pid, 'detection.detector_node')
            killed_at = time.monotonic()
            os.kill(old, signum)
            new = _wait(lambda old=old: (p := _node_pid(proc.pid, 'detection.detector_node'))
                        != old and p, 20.0, 'a new adacon_detector process')
            diagnostics.clear()
            # Back: it took the current level from the transient-local topic and counts
            # new frames (its frame counter starts again).
            probe.spin_until(lambda: (v := _latest(diagnostics, 'adacon_detector')) and
                             v['level_source'] == 'manager' and int(v['frames']) > 0, 60.0,
                             'the restarted detector following the manager and detecting')
            assert new != old
            print(f'{signal.Signals(signum).name}: detector back after '
                  f'{time.monotonic() - killed_at:.1f} s')
        manager = _node_pid(proc.pid, 'budget.manager_node')
        os.kill(manager, signal.SIGKILL)
        following('fallback', after=len(diagnostics))  # followers fall back, as before
        following('manager', after=len(diagnostics))   # and the restarted manager leads again
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, (tmp_path / 'launcher.out').read_text()
    finally:
        _stop(proc)
    out = (tmp_path / 'launcher.out').read_text()
    data = json.loads((report / 'edge_report.json').read_text())
    detector = data['processes']['adacon_detector']
    assert detector['restarts'] == 2 and not detector['gave_up'], detector
    assert [e['code'] for e in detector['exits']] == [-9, 0], detector  # SIGTERM: clean exit
    assert data['processes']['budget_manager']['restarts'] == 1
    assert data['statuses']['adacon_detector']['restarts'] == 2
    assert data['statuses']['adacon_detector']['exit_codes'] == '-9,0'
    assert 'adacon_detector: restarted (restart 2' in out
    assert 'SIGTERM received: stopping every node' in out
    assert "nodes restarted: {'budget_manager': 1, 'adacon_detector': 2}" in out \
        or "nodes restarted: {'adacon_detector': 2, 'budget_manager': 1}" in out
    assert '## Exits and restarts' in (report / 'edge_report.md').read_text()


def test_node_that_cannot_start_is_given_up_on_and_reported_failed(tmp_path):
    params = _plan_file(tmp_path, adacon_detector={
        'respawn_delay': 0.2, 'respawn_max_per_minute': 2,
        'parameters': {'model_dir': str(tmp_path / 'no_such_model')}})
    proc, report = _launch(tmp_path, params, '--perception', 'adacon_detector', '--imu', 'none',
                           '--camera', 'none', '--power', 'none', '--duration', '90')
    try:
        _wait(lambda: 'gave up' in (tmp_path / 'launcher.out').read_text(), 80.0,
              'the launcher to give up')
        proc.send_signal(signal.SIGINT)
        code = proc.wait(60)
    finally:
        _stop(proc)
    out = (tmp_path / 'launcher.out').read_text()
    assert code == 1, out
    detector = json.loads((report / 'edge_report.json').read_text())['processes'][
        'adacon_detector']
    assert detector['gave_up'] and detector['restarts'] == 2
    assert [e['code'] for e in detector['exits']] == [1, 1, 1]
    assert 'cannot start' in (report / 'logs' / 'adacon_detector.log').read_text()
    assert "'adacon_detector': 'gave up after 2 restarts'" in out
    assert '| adacon_detector | STALE |' in out and '| failed | 2 | 1,1,1 |' in out


def _ignore_sigint():
    signal.signal(signal.SIGINT, signal.SIG_IGN)


# Run as a separate process that is a child subreaper (prctl PR_SET_CHILD_SUBREAPER):
# the orphaned nodes become its children, so their exit status can be read.
SUBREAPER = """
import ctypes, json, os, signal, subprocess, sys, time
ctypes.CDLL('libc.so.6', use_errno=True).prctl(36, 1, 0, 0, 0)
sys.path.insert(0, sys.argv[1])
from test_faults import _children
launcher = subprocess.Popen(sys.argv[3:], stdout=open(sys.argv[2], 'w'),
                            stderr=subprocess.STDOUT)
deadline = time.monotonic() + 60
while len(_children(launcher.pid)) < 3 and time.monotonic() < deadline:
    time.sleep(0.1)
nodes = _children(launcher.pid)
logs = os.path.join(os.path.dirname(sys.argv[2]), 'report', 'logs')
def up():
    read = lambda n: open(os.path.join(logs, n + '.log')).read()
    return 'following budget_manager' in read('power_simulator') and \
        'publishing' in read('camera_source')
while not up() and time.monotonic() < deadline:
    time.sleep(0.1)
time.sleep(2.0)  # the manager's first level change: its log has a line before ours
launcher.kill()
start = time.monotonic()
launcher.wait()  # from now on its orphans are ours
codes = {}
for pid in nodes:
    _, status = os.waitpid(pid, 0)
    codes[pid] = os.waitstatus_to_exitcode(status)
print(json.dumps({'launcher': launcher.pid, 'codes': codes,
                  'gone_after_s': time.monotonic() - start}))
"""


def test_nodes_end_cleanly_when_the_launcher_is_killed(tmp_path):
    """SIGKILL to the launcher: every node logs why and exits 0 (a clean ROS shutdown)."""
    params = _plan_file(tmp_path)
    command = [sys.executable, '-m', 'adaptive_perception.cli', 'launch', 'edge',
               '--params-file', str(params), '--report-dir', str(tmp_path / 'report'),
               '--perception', 'none', '--imu', 'none']
    run = subprocess.run([sys.executable, '-c', SUBREAPER, str(REPO / 'test'),
                          str(tmp_path / 'launcher.out'), *command],
                         env={**os.environ, **node_env()}, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    print(f'SIGKILL: nodes gone after {result["gone_after_s"]:.2f} s, exit codes '
          f'{sorted(result["codes"].values())}')
    assert len(result['codes']) == 3 and set(result['codes'].values()) == {0}, result
    assert result['gone_after_s'] < 3.0
    for name in ('budget_manager', 'power_simulator', 'camera_source'):
        log = (tmp_path / 'report' / 'logs' / f'{name}.log').read_text()
        assert f'[{name}]: launcher (pid {result["launcher"]}) is gone: shutting down' in log


@pytest.mark.parametrize('signum, ignore_sigint', [
    (signal.SIGKILL, False), (signal.SIGTERM, False), (signal.SIGINT, True)])
def test_no_node_outlives_the_launcher(tmp_path, signum, ignore_sigint):
    """SIGKILL: the nodes end themselves; SIGTERM / ignored SIGINT: the launcher stops them."""
    params = _plan_file(tmp_path)
    proc, report = _launch(tmp_path, params, '--perception', 'none', '--imu', 'none',
                           '--camera', 'sim', preexec_fn=_ignore_sigint if ignore_sigint else None)
    try:
        nodes = _wait(lambda: (c := _children(proc.pid)) and len(c) == 3 and c, 30.0,
                      'three nodes')
        logs = report / 'logs'
        # Every node is up: the level arrives, the simulators follow and publish.
        _wait(lambda: 'level ?' not in (tmp_path / 'launcher.out').read_text().splitlines()[-1]
              and 'following budget_manager' in (logs / 'power_simulator.log').read_text()
              and 'publishing' in (logs / 'camera_source.log').read_text(), 60.0, 'nodes up')
        start = time.monotonic()
        proc.send_signal(signum)
        try:
            _wait(lambda: not any(_alive(pid) for pid in nodes), 15.0, 'every node gone')
        except AssertionError as error:
            raise AssertionError(f'{error}\n{_run_text(tmp_path, report)}') from None
        gone_after = time.monotonic() - start
        code = proc.wait(15)
    finally:
        _stop(proc)
        for pid in nodes:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    out = (tmp_path / 'launcher.out').read_text()
    print(f'{signal.Signals(signum).name}: nodes gone after {gone_after:.2f} s')
    if signum == signal.SIGKILL:
        assert gone_after < 3.0
        logs = [(report / 'logs' / f'{n}.log').read_text()
                for n in ('budget_manager', 'power_simulator', 'camera_source')]
        assert all(f'launcher (pid {proc.pid}) is gone: shutting down' in log
                   for log in logs), logs
    else:
        assert code == 0, out
        assert f'{signal.Signals(signum).name} received: stopping every node' in out
        assert 'every node is gone' in out


def test_a_node_stopped_while_importing_is_not_a_failure():
    from adaptive_perception.launcher.processes import stopped_as_asked
    stopped = SimpleNamespace(stop_signals=[signal.SIGINT])
    assert stopped_as_asked(stopped, 0) and stopped_as_asked(stopped, -signal.SIGINT)
    assert not stopped_as_asked(stopped, 1)
    assert not stopped_as_asked(SimpleNamespace(stop_signals=[]), -signal.SIGINT)  # not asked
    killed = SimpleNamespace(stop_signals=[signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
    assert not stopped_as_asked(killed, -signal.SIGKILL)
