"""imu_simulator as a separate process: rate, posture, run-time sensor changes, truth.

The sample-grid logic (``SensorStream``) is checked without ROS first.
"""


import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Imu
from std_msgs.msg import String

from adaptive_perception.activity.generator import ACTIVITIES, Subject, schedule
from adaptive_perception.activity.sensor import SensorConfig, SensorModel, parse_config
from adaptive_perception.activity.simulator_node import (
    ACTIVITY_TRUTH_QOS,
    ACTIVITY_TRUTH_TOPIC,
    IMU_TOPIC,
    ActivitySource,
    SensorStream,
    imu_qos,
)
from adaptive_perception.ros.diagnostics import values_of
from adaptive_perception.ros.interfaces import DIAGNOSTICS_QOS, DIAGNOSTICS_TOPIC

TIMEOUT_S = 15.0
NODE = 'imu_simulator'


def stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def spacings_ms(msgs) -> np.ndarray:
    return np.diff([stamp_ns(m) for m in msgs]) / 1e6


def latest_status(diags, key='sensor_state'):
    """Values of the newest imu_simulator status that has ``key``."""
    for array in reversed(diags):
        for status in array.status:
            if status.name.endswith(NODE) and key in values_of(status):
                return values_of(status)
    return None


# -- without ROS -------------------------------------------------------------------
def test_sensor_stream_keeps_one_grid_per_config_and_never_goes_back():
    source = ActivitySource('', 0.2, Subject.sample(0), 0, horizon_s=2.0)
    sensor = SensorStream(source, SensorConfig(100.0, 128), SensorModel(), 0)
    times, rates, now = [], [], 0.0
    for tick in range(120):
        now += 0.05
        if tick == 40:
            sensor.switch(SensorConfig(12.5, 8), now - 0.013)
        if tick == 80:  # two switches in one tick interval
            sensor.switch(SensorConfig(1600.0, 1), now - 0.03)
            sensor.switch(SensorConfig(50.0, 16), now - 0.01)
        for batch in sensor.advance(now):
            assert np.all(batch.t <= now + 1e-9)
            times += batch.t.tolist()
            rates += [batch.config.sampling_hz] * len(batch.t)
            grid = batch.t * batch.config.sampling_hz
            np.testing.assert_allclose(grid, np.round(grid), atol=1e-6)
    assert np.all(np.diff(times) > 0)
    assert times[0] == 0.0 and times[-1] == pytest.approx(6.0)
    assert [r for i, r in enumerate(rates) if i == 0 or r != rates[i - 1]] == [
        100.0, 12.5, 1600.0, 50.0]
    assert source.stream.duration_s > 6.0  # the script grew past its first horizon


def test_activity_source_growth_keeps_the_signal_and_checks_the_activity():
    short = ActivitySource('', 5.0, Subject.sample(1), 3, horizon_s=20.0)
    t = np.arange(0.0, 15.0, 0.01)
    before = short.stream.signal(t)[0]
    short.covering(400.0)
    np.testing.assert_array_equal(short.stream.signal(t)[0], before)
    assert len(short.stream.segments) > 60
    assert {s.activity for s in ActivitySource('lie', 5.0, Subject.sample(0), 0)
            .covering(100.0).segments} == {'lie'}
    with pytest.raises(ValueError, match="expected '' .*walk"):
        ActivitySource('dance', 60.0, Subject.sample(0), 0)


# -- over DDS ------------------------------------------------------------------------
def test_publishes_at_the_rate_with_the_posture_of_the_activity(probe, launch):
    samples = probe.subscribe(Imu, IMU_TOPIC, imu_qos('reliable'))
    launch(NODE, params={'activity': 'sit', 'seed': 1, 'subject': 0, 'qos': 'reliable',
                         'frame_id': 'test_imu'})
    probe.spin_until(lambda: len(samples) >= 150, TIMEOUT_S, '150 samples')
    assert np.all(spacings_ms(samples) == 10.0)  # 1/100 s, strictly increasing
    latest = stamp_ns(samples[-1]) * 1e-9
    assert abs(probe.node.get_clock().now().nanoseconds * 1e-9 - latest) < 0.5  # real time
    first = samples[0]
    assert first.header.frame_id == 'test_imu'
    assert first.orientation_covariance[0] == -1.0
    assert first.angular_velocity_covariance[0] == -1.0
    variance = SensorModel().noise_rms(parse_config('F100_A128')) ** 2   # normal mode
    np.testing.assert_allclose(first.linear_acceleration_covariance,
                               np.diag([variance] * 3).ravel())
    acc = np.array([[m.linear_acceleration.x, m.linear_acceleration.y,
                     m.linear_acceleration.z] for m in samples])
    mean = acc.mean(axis=0)
    assert 9.3 <= np.linalg.norm(mean) <= 10.3
    assert mean[0] < -3.0  # sitting: pelvis tilted back, gravity on -x
    t = np.array([stamp_ns(m) - stamp_ns(first) for m in samples]) * 1e-9
    expected = ActivitySource('sit', 60.0, Subject.sample(0), 1).stream.signal(t)[0]
    np.testing.assert_allclose(mean, expected.mean(axis=0), atol=0.3)


def test_sensor_config_changes_at_run_time_without_gaps_or_repeats(probe, launch):
    samples = probe.subscribe(Imu, IMU_TOPIC, imu_qos('sensor_data'))
    diags = probe.subscribe(DiagnosticArray, DIAGNOSTICS_TOPIC, DIAGNOSTICS_QOS)
    node = launch(NODE)
    probe.spin_until(lambda: len(samples) >= 30, TIMEOUT_S, '30 samples at 100 Hz')
    result = probe.set_parameters(NODE, {'sampling_hz': 12.5, 'averaging_window': 8},
                                  atomically=True)
    assert result.successful, result.reason
    asked_ns = probe.node.get_clock().now().nanoseconds
    probe.spin_until(lambda: len(spacings_ms(samples)) and
                     np.sum(spacings_ms(samples) == 80.0) >= 5, TIMEOUT_S,
                     '5 spacings of 80 ms')
    spacing = spacings_ms(samples)
    assert np.all(spacing > 0)  # no repeated or decreasing stamp across the switch
    switch = int(np.argmax(spacing > 10.0))  # samples[switch + 1] is the first at 12.5 Hz
    # best effort on loopback: a lost sample would show as a multiple of the period
    assert np.all(np.mod(spacing[:switch], 10.0) == 0)
    assert np.all(np.mod(spacing[switch + 1:], 80.0) == 0)
    assert np.mean(spacing[switch + 1:] == 80.0) >= 0.8
    first_new = samples[switch + 1]
    assert stamp_ns(first_new) - asked_ns < 2e9  # effective within a second or two
    np.testing.assert_allclose(first_new.linear_acceleration_covariance[0],
                               SensorModel().noise_rms(parse_config('F12.5_A8')) ** 2)
    values = probe.spin_until(lambda: (v := latest_status(diags)) and
                              v['sensor_state'] == 'F12.5_A8' and v, TIMEOUT_S,
                              'diagnostics with F12.5_A8')
    assert values['config_changes'] == '1'
    assert float(values['current_ua']) == pytest.approx(SensorConfig(12.5, 8).current_ua,
                                                        rel=1e-3)
    assert int(values['samples_published']) >= len(samples) - 5
    assert values['activity'] in ACTIVITIES
    assert 'sensor F100_A128 (' in node.log() and '-> F12.5_A8 (' in node.log()


def test_invalid_settings_are_rejected_and_the_old_ones_stay(probe, launch):
    diags = probe.subscribe(DiagnosticArray, DIAGNOSTICS_TOPIC, DIAGNOSTICS_QOS)
    launch(NODE, params={'sampling_hz': 50.0, 'averaging_window': 16})
    probe.spin_until(lambda: latest_status(diags), TIMEOUT_S, 'diagnostics')
    rejected = probe.set_parameters(NODE, {'averaging_window': 10})[0]
    assert not rejected.successful
    assert 'averaging_window must be one of' in rejected.reason
    together = probe.set_parameters(NODE, {'sampling_hz': 25.0, 'averaging_window': 10},
                                    atomically=True)
    assert not together.successful  # taken whole or not at all
    assert not probe.set_parameters(NODE, {'activity': 'walk'})[0].successful  # read-only
    count = len(diags)
    probe.spin_until(lambda: len(diags) > count, TIMEOUT_S, 'fresh diagnostics')
    values = latest_status(diags)
    assert (values['sensor_state'], values['config_changes']) == ('F50_A16', '0')


def test_truth_topic_follows_the_script(probe, launch):
    truth = probe.subscribe(String, ACTIVITY_TRUTH_TOPIC, ACTIVITY_TRUTH_QOS)
    launch(NODE, params={'segment_s': 1.0, 'seed': 3})
    script = [s.activity for s in schedule(60.0, 1.0, 3)]  # each differs from the last
    changes = lambda: [m.data for i, m in enumerate(truth)  # noqa: E731
                       if i == 0 or m.data != truth[i - 1].data]
    probe.spin_until(lambda: len(changes()) >= 4, TIMEOUT_S, '4 truth changes')
    assert changes() == script[:len(changes())]


def test_truth_repeats_a_constant_activity_and_bad_start_fails(probe, launch):
    truth = probe.subscribe(String, ACTIVITY_TRUTH_TOPIC, ACTIVITY_TRUTH_QOS)
    bad = launch(NODE, name='bad_imu', params={'activity': 'dance'})
    launch(NODE, params={'activity': 'walk'})
    probe.spin_until(lambda: len(truth) >= 2, TIMEOUT_S, 'the truth twice')
    assert {m.data for m in truth} == {'walk'}
    assert bad.proc.wait(TIMEOUT_S) == 1
    assert bad.log().count("cannot start: activity 'dance'") == 1
