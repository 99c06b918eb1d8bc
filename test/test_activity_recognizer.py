"""activity_recognizer over DDS: with the IMU simulator as its driver, and fed directly."""

import math

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import Vector3
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Imu
from std_msgs.msg import Header

from adaptive_perception.activity.classifier import ActivityManifest
from adaptive_perception.activity.dataset import synthetic_recording
from adaptive_perception.activity.recognizer_node import (
    ACTIVITY_TOPIC,
    OUTPUT_QOS,
    parse_sensing,
)
from adaptive_perception.activity.sensor import THESIS_PARETO, parse_config
from adaptive_perception.msg import ActivityState
from adaptive_perception.ros.diagnostics import as_float, values_of
from adaptive_perception.ros.interfaces import DIAGNOSTICS_QOS, DIAGNOSTICS_TOPIC
from ros_harness import REPO

MODEL = str(REPO / 'models' / 'activity')
TIMEOUT_S = 30.0
RELIABLE = QoSProfile(depth=200, history=HistoryPolicy.KEEP_LAST,
                      reliability=ReliabilityPolicy.RELIABLE)


def newest_values(diagnostics: list, node: str) -> dict:
    for array_msg in reversed(diagnostics):
        for status in array_msg.status:
            if status.name.endswith(node):
                return {**values_of(status), '_level': status.level, '_message': status.message}
    return {}


def test_level_sensing_entries():
    states = list(THESIS_PARETO)
    assert parse_sensing('F100_A128', states) == (0, None)
    assert parse_sensing('F12.5_A16:2', states) == (2, 2)
    for bad, reason in [('F25_A8', 'not one of the sensor states'), ('F50_A16:x', 'integer'),
                        ('F50_A16:0', 'integer'), ('fast', 'F<hz>_A<window>')]:
        with pytest.raises(ValueError, match=reason):
            parse_sensing(bad, states)


def test_walking_steps_the_driver_down_through_every_state(launch, probe):
    """SPOT with threshold 2 on a steady walk: the simulator ends at the cheapest state.

    The thesis's SPOT (margin_threshold 0): margin SPOT may step up again on one
    unclear window, so the cheapest state would not be held for the rate check.
    """
    states = probe.subscribe(ActivityState, ACTIVITY_TOPIC, OUTPUT_QOS)
    imu = probe.subscribe(Imu, '/imu/data_raw', RELIABLE)
    launch('activity_recognizer', params={'model_dir': MODEL, 'stability_threshold': 2,
                                          'qos': 'reliable', 'level_override': 0,
                                          'margin_threshold': 0.0})
    probe.wait_for_publishers(ACTIVITY_TOPIC)  # the first state must not be missed
    # wearer 1005: a typical walk (wearer 1000's is called upstairs in a third of its
    # windows at the cheap states, so SPOT keeps jumping back: the model card's limits)
    launch('imu_simulator', params={'activity': 'walk', 'subject': 1005, 'seed': 3,
                                    'qos': 'reliable'})
    model_states = ActivityManifest.load(MODEL).states
    cheapest = model_states[-1]
    probe.spin_until(lambda: any(s.sensor_state == cheapest for s in states), TIMEOUT_S,
                     f'the driver to confirm {cheapest}')
    names = [s.sensor_state for s in states if s.sensor_state]
    assert names[0] == model_states[0]
    visited = list(dict.fromkeys(names))          # first appearance order
    assert visited == model_states, visited
    labels = [s.label for s in states]
    assert labels.count('walk') >= 0.8 * len(labels), labels
    last = states[-1]
    assert last.class_names[last.label_id] == last.label
    assert math.isclose(sum(last.probabilities), 1.0, abs_tol=1e-4)
    assert last.confidence == pytest.approx(max(last.probabilities))
    assert last.sampling_hz == 12.5 and last.averaging_window == 8
    assert last.sensor_current_ua == pytest.approx(parse_config(cheapest).current_ua)
    assert last.header.frame_id == 'imu'
    stamps = [s.header.stamp.sec + s.header.stamp.nanosec * 1e-9 for s in states]
    assert np.allclose(np.diff(stamps), 1.0, atol=1e-6)   # one window per second of data
    # the simulator really samples at 12.5 Hz now
    count = len(imu)
    probe.spin_until(lambda: len(imu) >= count + 5, TIMEOUT_S, 'IMU samples at 12.5 Hz')
    tail = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in imu[-4:]]
    assert np.allclose(np.diff(tail), 0.08, atol=1e-6)


def test_level_caps_the_costliest_state_requested(launch, probe):
    states = probe.subscribe(ActivityState, ACTIVITY_TOPIC, OUTPUT_QOS)
    launch('activity_recognizer', params={'model_dir': MODEL, 'qos': 'reliable',
                                          'level_override': 3, 'stability_threshold': 50})
    probe.wait_for_publishers(ACTIVITY_TOPIC)  # the first state must not be missed
    launch('imu_simulator', params={'activity': 'walk', 'subject': 1001, 'qos': 'reliable'})
    # level 3 of the default level_sensing caps at the model's third state (shipped:
    # 'F25_A8:2'), and the level's threshold of 2 (not the parameter's 50) steps down
    # to the cheapest
    cap, cheapest = ActivityManifest.load(MODEL).states[2:4]
    probe.spin_until(lambda: any(s.sensor_state == cheapest for s in states),
                     TIMEOUT_S, f'the driver to confirm {cheapest}')
    requested = [s.requested_sensor_state for s in states]
    assert requested[0] == cap and set(requested) == {cap, cheapest}
    assert {s.sensor_state for s in states} <= {'', cap, cheapest}
    assert all(s.level == 3 for s in states)


def test_a_rate_other_than_the_confirmed_one_is_reported(launch, probe):
    diagnostics = probe.subscribe(DiagnosticArray, DIAGNOSTICS_TOPIC, DIAGNOSTICS_QOS)
    states = probe.subscribe(ActivityState, ACTIVITY_TOPIC, OUTPUT_QOS)
    launch('imu_simulator', params={'activity': 'stand', 'subject': 1002, 'qos': 'reliable'})
    launch('activity_recognizer', params={'model_dir': MODEL, 'qos': 'reliable',
                                          'stability_threshold': 1000, 'level_override': 0})
    probe.spin_until(lambda: len(states) >= 4, TIMEOUT_S, 'activity states')
    # someone else changes the driver behind the recognizer's back
    assert probe.set_parameters('imu_simulator', {'sampling_hz': 25.0})[0].successful
    values = probe.spin_until(
        lambda: 'measured 25.00 Hz' in (v := newest_values(
            diagnostics, 'activity_recognizer')).get('_message', '') and v,
        TIMEOUT_S, 'a rate mismatch in diagnostics')   # the first window mixes both rates
    assert values['_level'] == DiagnosticStatus.WARN
    assert 'confirmed F100_A128 (100 Hz)' in values['_message']
    assert as_float(values['rate_mismatch']) >= 1
    assert values['sensor_state'] == 'F100_A128'


def imu(t: float, acc, frame_id: str = 'wrist') -> Imu:
    sec = math.floor(t)
    return Imu(header=Header(stamp=Time(sec=int(sec), nanosec=int(round((t - sec) * 1e9))),
                             frame_id=frame_id),
               linear_acceleration=Vector3(x=float(acc[0]), y=float(acc[1]), z=float(acc[2])))


def test_bad_samples_are_refused_and_counted_and_good_windows_still_classified(launch, probe):
    """NaN, duplicate and backwards stamps, and a gap: reported, never a crash."""
    states = probe.subscribe(ActivityState, ACTIVITY_TOPIC, OUTPUT_QOS)
    diagnostics = probe.subscribe(DiagnosticArray, DIAGNOSTICS_TOPIC, DIAGNOSTICS_QOS)
    node = launch('activity_recognizer', params={'model_dir': MODEL, 'qos': 'reliable',
                                                 'driver_node': '', 'error_hold_s': 60.0})
    publisher = probe.node.create_publisher(Imu, '/imu/data_raw', RELIABLE)
    probe.wait_for_subscribers(publisher)
    # a walk (seed 7): lying or sitting alone would not say which way is up for this
    # wearer, and telling them from standing is not what this test is about
    recording = synthetic_recording(0.5, 60.0, subject=1003, seed=7,
                                    config=parse_config('F50_A16'))
    t0 = 1000.0
    samples = [(t0 + t, a) for t, a in zip(recording.t, recording.acc, strict=True)]
    bad = {100: ('nan', None), 200: ('duplicate', None), 300: ('backwards', None)}
    gap = (t0 + 12.0, t0 + 15.0)
    sent = 0
    for i, (t, acc) in enumerate(samples):
        if gap[0] <= t < gap[1]:
            continue
        publisher.publish(imu(t, acc))
        kind = bad.get(i, (None,))[0]
        if kind == 'nan':
            publisher.publish(imu(t + 0.001, [math.nan, 0.0, 9.8]))
        elif kind == 'duplicate':
            publisher.publish(imu(t, acc))
        elif kind == 'backwards':
            publisher.publish(imu(t - 0.5, acc))
        sent += 1
        if sent % 50 == 0:
            probe.spin_for(0.02)   # let the reliable stream drain
    last_end = math.floor(samples[-1][0] - t0)
    probe.spin_until(lambda: states and states[-1].header.stamp.sec >= t0 + last_end - 1,
                     TIMEOUT_S, 'the windows up to the end of the data')
    ends = np.array([s.header.stamp.sec + s.header.stamp.nanosec * 1e-9 - t0 for s in states])
    assert ends[0] == pytest.approx(2.0, abs=0.03)       # the first full 2 s window
    assert not any(gap[0] - t0 < e < gap[1] - t0 + 2.0 for e in ends)  # none across the gap
    assert np.all(np.diff(ends) > 0)
    assert all(s.header.frame_id == 'wrist' and s.sensor_state == '' for s in states)
    truth = recording.labels[np.searchsorted(recording.t, ends - 1.0)]
    assert np.mean([s.label for s in states] == truth) >= 0.8
    values = probe.spin_until(
        lambda: (v := newest_values(diagnostics, 'activity_recognizer')).get(
            'samples_refused_out_of_order') and v, TIMEOUT_S, 'the refusals in diagnostics')
    assert as_float(values['samples_refused_non_finite']) == 1
    assert as_float(values['samples_refused_duplicate_stamp']) == 1
    assert as_float(values['samples_refused_out_of_order']) == 1
    assert as_float(values['windows_skipped_gap']) >= 2
    assert values['_level'] == DiagnosticStatus.WARN and 'refused' in values['_message']
    assert node.returncode() is None


def test_missing_model_dir_fails_at_start_with_one_message(launch, tmp_path):
    node = launch('activity_recognizer', params={'model_dir': str(tmp_path / 'nowhere')})
    assert node.proc.wait(TIMEOUT_S) == 1
    log = node.log()
    assert log.count('cannot start') == 1
    assert 'manifest.json: no such file' in log and 'Traceback' not in log


# -- real drivers: open loop, own labels, units, resynchronisation -----------------------

from adaptive_perception.activity.dataset import emulate_states  # noqa: E402
from adaptive_perception.activity.generator import ActivityStream, Subject, constant  # noqa: E402
from adaptive_perception.activity.sensor import SensorConfig  # noqa: E402
from test_activity_own_data import own_data  # noqa: E402,F401  (the fixture)


def walking_samples(rate_hz: float, seconds: float, subject: int = 1005, jitter_s=0.0,
                    scale: float = 1.0):
    """(t, acc) of a steady walk sampled at ``rate_hz``, stamps jittered by up to ``jitter_s``."""
    stream = ActivityStream(constant('walk', seconds), Subject.sample(subject), seed=subject)
    [(t, acc)] = emulate_states(stream, [SensorConfig(rate_hz, 16)],
                                np.random.default_rng(subject))
    t = t + np.random.default_rng(1).uniform(-jitter_s, jitter_s, len(t))
    return t, acc * scale


def publish_all(probe, publisher, samples, t0: float) -> None:
    for i, (t, acc) in enumerate(zip(*samples, strict=True)):
        publisher.publish(imu(t0 + t, acc))
        if i % 50 == 49:
            probe.spin_for(0.02)   # let the reliable stream drain


def test_without_a_driver_the_node_runs_open_loop_ok_and_names_own_classes(
        launch, probe, own_data):  # noqa: F811
    """A 64 Hz jittered stream, no driver taking parameters, a model with its own labels."""
    states = probe.subscribe(ActivityState, ACTIVITY_TOPIC, OUTPUT_QOS)
    diagnostics = probe.subscribe(DiagnosticArray, DIAGNOSTICS_TOPIC, DIAGNOSTICS_QOS)
    node = launch('activity_recognizer', params={
        'model_dir': str(own_data['model']), 'qos': 'reliable', 'request_timeout_s': 0.5,
        'level_override': 0})
    probe.spin_until(lambda: newest_values(diagnostics, 'activity_recognizer').get(
        'open_loop') == 'True', TIMEOUT_S, 'open loop in diagnostics')
    publisher = probe.node.create_publisher(Imu, '/imu/data_raw', RELIABLE)
    probe.wait_for_subscribers(publisher)
    publish_all(probe, publisher, walking_samples(64.0, 20.0, jitter_s=0.002), 500.0)
    probe.spin_until(lambda: len(states) >= 15, TIMEOUT_S, 'activity states')
    labels = [s.label for s in states]
    assert labels.count('walking') >= 0.8 * len(labels), labels
    assert all(s.class_names == ['sit', 'stand', 'lying', 'walking'] for s in states)
    assert all(s.open_loop and s.requested_sensor_state == '' and s.sensor_state == ''
               for s in states)
    assert all(s.measured_hz == pytest.approx(64.0, rel=0.03) for s in states)
    assert all(0.3 < s.stamp_jitter_ms < 3.0 for s in states)
    values = probe.spin_until(
        lambda: (v := newest_values(diagnostics, 'activity_recognizer')).get(
            'input_rate_hz') and v, TIMEOUT_S, 'the input rate in diagnostics')
    assert values['_level'] == DiagnosticStatus.OK, values
    assert 'open loop' in values['_message'] and 'Hz' in values['_message']
    assert as_float(values['input_rate_hz']) == pytest.approx(64.0, rel=0.03)
    assert values['requested_sensor_state'] == ''
    log = node.log()
    assert log.count('running open loop') == 1, log
    assert log.count('does not offer') == 1, log  # said once, in the open-loop line


def test_states_the_model_was_not_trained_at_are_refused(launch, own_data):  # noqa: F811
    node = launch('activity_recognizer', params={'model_dir': str(own_data['model']),
                                                 'states': ['F100_A128', 'F50_A16']})
    assert node.proc.wait(TIMEOUT_S) == 1
    log = node.log()
    assert 'states F100_A128: the model was not trained at it' in log
    assert 'Traceback' not in log


def test_input_in_g_is_reported_with_the_fix(launch, probe):
    states = probe.subscribe(ActivityState, ACTIVITY_TOPIC, OUTPUT_QOS)
    diagnostics = probe.subscribe(DiagnosticArray, DIAGNOSTICS_TOPIC, DIAGNOSTICS_QOS)
    launch('activity_recognizer', params={'model_dir': MODEL, 'qos': 'reliable',
                                          'driver_node': '', 'error_hold_s': 60.0})
    publisher = probe.node.create_publisher(Imu, '/imu/data_raw', RELIABLE)
    probe.wait_for_subscribers(publisher)
    publish_all(probe, publisher, walking_samples(50.0, 6.0, scale=1 / 9.80665), 20.0)
    probe.spin_until(lambda: len(states) >= 3, TIMEOUT_S, 'activity states')
    values = probe.spin_until(
        lambda: 'input_units:=g' in (v := newest_values(
            diagnostics, 'activity_recognizer')).get('_message', '') and v,
        TIMEOUT_S, 'the units warning in diagnostics')
    assert values['_level'] == DiagnosticStatus.WARN
    assert 'looks like g' in values['_message']
    assert as_float(values['gravity_norm_ms2']) == pytest.approx(1.0, abs=0.2)


def test_a_pause_starts_fresh_windows_and_a_restarted_clock_resets_after_the_grace(
        launch, probe):
    """10 s without data, then a driver clock that restarted 900 s lower, over DDS."""
    states = probe.subscribe(ActivityState, ACTIVITY_TOPIC, OUTPUT_QOS)
    diagnostics = probe.subscribe(DiagnosticArray, DIAGNOSTICS_TOPIC, DIAGNOSTICS_QOS)
    node = launch('activity_recognizer', params={
        'model_dir': MODEL, 'qos': 'reliable', 'driver_node': '', 'clock_grace_s': 1.0,
        'error_hold_s': 60.0})
    publisher = probe.node.create_publisher(Imu, '/imu/data_raw', RELIABLE)
    probe.wait_for_subscribers(publisher)
    t, acc = walking_samples(50.0, 16.0)
    first, second = t < 6.0, t >= 6.0
    publish_all(probe, publisher, (t[first], acc[first]), 1000.0)           # 1000 .. 1006
    publish_all(probe, publisher, (t[second] + 10.0, acc[second]), 1000.0)  # 1016 .. 1026
    publish_all(probe, publisher, (t, acc), 100.0)                         # 100 .. 116
    probe.spin_until(lambda: states and states[-1].header.stamp.sec >= 114, TIMEOUT_S,
                     'windows on the restarted clock')
    ends = np.array([s.header.stamp.sec + s.header.stamp.nanosec * 1e-9 for s in states])
    before, after, restarted = ends[ends <= 1006.0], ends[(ends > 1006) & (ends < 1100)], \
        ends[ends < 200]
    assert before.max() <= 1006.0 and len(before) >= 3
    # fresh windows: the first after the pause is a full 2 s of new data, none spans it
    assert after.min() == pytest.approx(1016.0 + 2.0, abs=0.05)
    # the clock restart: refused for the 1 s grace, then fresh windows on the new clock
    assert restarted.min() == pytest.approx(100.0 + 1.0 + 2.0, abs=0.1)
    values = probe.spin_until(
        lambda: (v := newest_values(diagnostics, 'activity_recognizer')).get(
            'resync_clock_reset') and v, TIMEOUT_S, 'the resyncs in diagnostics')
    assert as_float(values['resync_pause']) == 1
    assert as_float(values['resync_clock_reset']) == 1
    assert 40 <= as_float(values['samples_refused_clock_jump']) <= 55
    assert values['_level'] == DiagnosticStatus.WARN
    assert 'driver clock restarted' in values['_message']
    log = node.log()
    assert log.count('fresh windows') == 2      # one pause, one restart: each said once
    # 50 refused samples, one warning line (rate-limited), all counted in diagnostics
    assert log.count('refused a sample') == 1, log
