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
    """SPOT with threshold 2 on a steady walk: the simulator ends at the cheapest state."""
    states = probe.subscribe(ActivityState, ACTIVITY_TOPIC, OUTPUT_QOS)
    imu = probe.subscribe(Imu, '/imu/data_raw', RELIABLE)
    launch('activity_recognizer', params={'model_dir': MODEL, 'stability_threshold': 2,
                                          'qos': 'reliable', 'level_override': 0})
    probe.wait_for_publishers(ACTIVITY_TOPIC)  # the first state must not be missed
    launch('imu_simulator', params={'activity': 'walk', 'subject': 1000, 'seed': 3,
                                    'qos': 'reliable'})
    cheapest = THESIS_PARETO[-1].name
    probe.spin_until(lambda: any(s.sensor_state == cheapest for s in states), TIMEOUT_S,
                     f'the driver to confirm {cheapest}')
    names = [s.sensor_state for s in states if s.sensor_state]
    assert names[0] == THESIS_PARETO[0].name
    visited = list(dict.fromkeys(names))          # first appearance order
    assert visited == [c.name for c in THESIS_PARETO], visited
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
    launch('imu_simulator', params={'activity': 'sit', 'subject': 1001, 'qos': 'reliable'})
    # level 3 of the default level_sensing: 'F12.5_A16:2', so at most F12.5_A16, and
    # the level's threshold of 2 (not the parameter's 50) steps down to F12.5_A8
    probe.spin_until(lambda: any(s.sensor_state == 'F12.5_A8' for s in states),
                     TIMEOUT_S, 'the driver to confirm F12.5_A8')
    requested = [s.requested_sensor_state for s in states]
    assert requested[0] == 'F12.5_A16' and set(requested) == {'F12.5_A16', 'F12.5_A8'}
    assert {s.sensor_state for s in states} <= {'', 'F12.5_A16', 'F12.5_A8'}
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
    recording = synthetic_recording(0.5, 60.0, subject=1003, seed=5,
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
