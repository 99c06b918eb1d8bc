"""``imu_simulator``: a low-power accelerometer driver stand-in (Bosch BMI160-like).

It publishes ``sensor_msgs/Imu`` on ``/imu/data_raw``: the synthetic activity
stream (``activity.generator``) as the sensor outputs it at the configuration its
parameters name (``activity.sensor.emulate``: averaging window, output data rate,
averaged noise). ``activity_recognizer`` changes ``sampling_hz`` and
``averaging_window`` at run time through the standard parameter services to save
power; a change takes effect at the next output sample, both at once when one
request sets both.

Stream time 0 is the node's start. Output samples sit on the global grid
``n / sampling_hz`` of stream time (``sensor.output_indices``); after a switch the
samples go on on the new grid, strictly after the last one published, so stamps
never repeat or go back. ``header.stamp`` = ROS time at start + sample time, i.e. the
instant the sample stands for. Samples are generated and published in batches: on
every ``publish_period_s`` tick, every sample whose time has come.

The activity is scripted (``activity`` = '': a new activity about every
``segment_s``) or constant. The true activity of the latest published sample goes
to ``/imu/activity_truth`` (``std_msgs/String``) on change and at least once a
second, for evaluation. ``/diagnostics`` reports the sensor state, its modelled
current and counts every second.
"""

import math
import time
from dataclasses import dataclass

import numpy as np
from builtin_interfaces.msg import Time
from rclpy.exceptions import ParameterException
from rclpy.node import Node
from sensor_msgs.msg import Imu
from std_msgs.msg import Header, String

from adaptive_perception.activity.generator import ACTIVITIES, ActivityStream, Subject, schedule
from adaptive_perception.activity.sensor import (
    INTERNAL_HZ,
    SensorConfig,
    SensorModel,
    emulate,
    raw_span,
)
from adaptive_perception.interfaces import IMU_QOS_DEPTH
from adaptive_perception.ros import diagnostics
from adaptive_perception.ros.interfaces import (  # noqa: F401 (names others import from here)
    ACTIVITY_TRUTH_QOS,
    ACTIVITY_TRUTH_TOPIC,
    DIAGNOSTICS_QOS,
    DIAGNOSTICS_TOPIC,
    IMU_TOPIC,
    imu_qos,
)
from adaptive_perception.ros.params import Param, declare, on_change
from adaptive_perception.ros.run import run_node, set_timer_period

TRUTH_REPEAT_S = 1.0
# Two grid instants closer than this many output periods are one instant (float error
# of n / ODR for stream times of days is ~1e-8 periods).
GRID_TOLERANCE = 1e-6
NOISE_STREAM = 0x5E  # keeps the noise draws apart from the generator's (0x5B..0x5D)



class ActivitySource:
    """The true acceleration of an endless stream: scripted or one constant activity.

    ``generator.schedule`` is built for a horizon that doubles when the stream gets
    near its end. Every segment but the last of a schedule is the same for any
    longer horizon (the last one is cut at the horizon), so the signal only ever
    comes from segments that stay the same. A constant activity is a chain of
    segments of that one activity (posture redrawn at each, as a person shifts),
    which keeps the per-segment cost of the generator's fidgets small.
    """

    def __init__(self, activity: str, segment_s: float, subject: Subject, seed: int,
                 horizon_s: float = 3600.0):
        if activity and activity not in ACTIVITIES:
            raise ValueError(f"activity {activity!r}: expected '' (scripted) or one of "
                             f"{', '.join(ACTIVITIES)}")
        if not segment_s > 0:
            raise ValueError(f'segment_s must be > 0, got {segment_s}')
        self.activity = activity
        self.segment_s = float(segment_s)
        self.subject = subject
        self.seed = seed
        self._activities = (activity,) if activity else ACTIVITIES
        self._horizon_s = max(float(horizon_s), 20 * self.segment_s)
        self.stream = self._build()

    def _build(self) -> ActivityStream:
        segments = schedule(self._horizon_s, self.segment_s, self.seed, self._activities)
        return ActivityStream(segments, self.subject, self.seed)

    def covering(self, end_s: float) -> ActivityStream:
        """Return the stream, grown until ``end_s`` lies before its last segment."""
        while self.stream.segments[-1].start <= end_s:
            self._horizon_s *= 2
            self.stream = self._build()
        return self.stream


@dataclass
class Batch:
    """Output samples of one configuration: numbers on its grid, times, readings, labels."""

    config: SensorConfig
    n: np.ndarray        # (k,) sample numbers on the grid n / sampling_hz
    t: np.ndarray        # (k,) stream time, s
    acc: np.ndarray      # (k, 3) m/s^2
    labels: np.ndarray   # (k,) index into generator.ACTIVITIES


class SensorStream:
    """The sensor's output in stream time, at a configuration that can change (no ROS).

    ``advance(now_s)`` returns every sample with time <= ``now_s`` not returned
    before; ``switch(config, at_s)`` makes the samples after ``at_s`` use ``config``.
    Samples are strictly increasing in time across switches.
    """

    def __init__(self, source: ActivitySource, config: SensorConfig, model: SensorModel,
                 seed: int):
        self.source = source
        self.config = config
        self.model = model
        self.seed = seed
        self.last_t = None       # time of the last sample returned
        self._pending = []       # [(at_s, config)] switches not yet reached
        self._chunk = 0

    @property
    def target(self) -> SensorConfig:
        """The configuration the newest samples will have (pending switches included)."""
        return self._pending[-1][1] if self._pending else self.config

    def switch(self, config: SensorConfig, at_s: float) -> None:
        """From stream time ``at_s`` on, sample at ``config``."""
        self._pending.append((float(at_s), config))

    def advance(self, now_s: float) -> list:
        """Batches of every new sample with time <= ``now_s``, oldest first."""
        batches = []
        for at_s, config in self._pending:
            batches.append(self._emit(min(at_s, now_s)))
            self.config = config
        self._pending = []
        batches.append(self._emit(now_s))
        return [b for b in batches if b is not None]

    def _emit(self, end_s: float):
        config = self.config
        hz = config.sampling_hz
        first = (0 if self.last_t is None
                 else math.floor(self.last_t * hz + GRID_TOLERANCE) + 1)
        last = math.floor(end_s * hz + GRID_TOLERANCE)
        if last < first:
            return None
        # Half a period either side: output_indices then selects exactly first..last.
        start_s, stop_s = (first - 0.5) / hz, (last + 0.5) / hz
        raw_t0, count = raw_span(config, start_s, stop_s)
        stream = self.source.covering(raw_t0 + count / INTERNAL_HZ)
        _, raw, _ = stream.raw(raw_t0, count)
        rng = np.random.default_rng([self.seed, self._chunk, NOISE_STREAM])
        self._chunk += 1
        t, acc = emulate(raw_t0, raw, config, start_s, stop_s, rng, self.model)
        self.last_t = float(t[-1])
        return Batch(config, np.arange(first, last + 1), t, acc, stream.label_at(t))


def _stamp(ns: int) -> Time:
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


class ImuSimulator(Node):
    """Publishes the emulated accelerometer samples that are due on every tick."""

    def __init__(self):
        super().__init__('imu_simulator')
        try:
            values = declare(self, [
                Param('sampling_hz', 100.0,
                      'Output data rate (Hz); set at run time, effective at the next sample.',
                      0.78, INTERNAL_HZ),
                Param('averaging_window', 128,
                      'Raw 1600 Hz samples averaged per output, one of 1, 2, 4, ... 128; '
                      'set at run time, effective at the next sample.', 1, 128),
                Param('activity', '',
                      "'' = scripted activities (a new one about every segment_s), or one "
                      f"of {', '.join(ACTIVITIES)} all the time.", read_only=True),
                Param('segment_s', 60.0, 'Mean length (s) of a scripted activity segment.',
                      1.0, 1e6, read_only=True),
                Param('seed', 0, 'Seed of the activity script, signal and noise.',
                      0, 2**31 - 1, read_only=True),
                Param('subject', 0, 'Which simulated wearer (Subject.sample(subject)).',
                      0, 2**31 - 1, read_only=True),
                Param('noise_ms2', SensorModel().single_sample_noise,
                      'rms noise (m/s^2) of one un-averaged sample; averaging A samples '
                      'divides it by sqrt(A).', 0.0, 100.0, read_only=True),
                Param('frame_id', 'imu', 'header.frame_id of every Imu message.'),
                Param('topic', IMU_TOPIC, 'Imu output topic.', read_only=True),
                Param('qos', 'sensor_data',
                      f"'sensor_data' (best effort) or 'reliable', depth {IMU_QOS_DEPTH}.",
                      read_only=True),
                Param('publish_period_s', 0.05,
                      'Period (s) of the publish tick: every due sample goes out in a batch.',
                      0.001, 1.0),
            ])
            qos = imu_qos(values['qos'])
            config = SensorConfig(values['sampling_hz'], values['averaging_window'])
            source = ActivitySource(values['activity'], values['segment_s'],
                                    Subject.sample(values['subject']), values['seed'])
        except (ValueError, ParameterException) as error:
            self.get_logger().fatal(f'cannot start: {error}')
            raise SystemExit(1) from None
        self.sensor = SensorStream(source, config, SensorModel(values['noise_ms2']),
                                   values['seed'])
        self._frame_id = values['frame_id']
        self._period_s = values['publish_period_s']
        self.published = 0
        self.config_changes = 0
        self._truth = None          # label of the latest published sample
        self._truth_sent = None     # (label, monotonic time) of the last truth message
        self._publisher = self.create_publisher(Imu, values['topic'], qos)
        self._truth_pub = self.create_publisher(String, ACTIVITY_TRUTH_TOPIC,
                                                ACTIVITY_TRUTH_QOS)
        self._diagnostics = self.create_publisher(diagnostics.DiagnosticArray,
                                                  DIAGNOSTICS_TOPIC, DIAGNOSTICS_QOS)
        self._start_ns = self.get_clock().now().nanoseconds  # stream time 0
        self._timer = self.create_timer(self._period_s, self._tick)
        self.create_timer(1.0, self._publish_diagnostics)
        on_change(self, ['sampling_hz', 'averaging_window', 'frame_id', 'publish_period_s'],
                  self._check_params, self._on_params)
        what = (f'constant activity {source.activity!r}' if source.activity else
                f'scripted activities (segment_s {source.segment_s:g}, seed {source.seed})')
        self.get_logger().info(f'publishing {what} for subject {values["subject"]} on '
                               f'{values["topic"]} at {config.name} '
                               f'({config.current_ua:.1f} uA)')

    def stream_time_s(self) -> float:
        """Seconds since the start, by the node's clock."""
        return (self.get_clock().now().nanoseconds - self._start_ns) * 1e-9

    @staticmethod
    def _check_params(candidate: dict) -> None:
        SensorConfig(candidate['sampling_hz'], candidate['averaging_window'])  # ValueError

    def _on_params(self, candidate: dict) -> None:
        self._frame_id = candidate['frame_id']
        if candidate['publish_period_s'] != self._period_s:
            self._period_s = candidate['publish_period_s']
            set_timer_period(self._timer, self._period_s)
        old = self.sensor.target
        new = SensorConfig(candidate['sampling_hz'], candidate['averaging_window'])
        if new != old:
            self.sensor.switch(new, self.stream_time_s())
            self.config_changes += 1
            self.get_logger().info(f'sensor {old.name} ({old.current_ua:.1f} uA) -> '
                                   f'{new.name} ({new.current_ua:.1f} uA)')

    def _tick(self) -> None:
        for batch in self.sensor.advance(self.stream_time_s()):
            self._publish(batch)
        if self._truth is None:
            return
        now = time.monotonic()
        sent = self._truth_sent
        if sent is None or sent[0] != self._truth or now - sent[1] >= TRUTH_REPEAT_S:
            self._truth_pub.publish(String(data=self._truth))
            self._truth_sent = (self._truth, now)

    def _publish(self, batch: Batch) -> None:
        variance = self.sensor.model.noise_rms(batch.config) ** 2
        covariance = [variance, 0.0, 0.0, 0.0, variance, 0.0, 0.0, 0.0, variance]
        no_data = [-1.0] + [0.0] * 8
        hz = batch.config.sampling_hz
        for n, acc in zip(batch.n.tolist(), batch.acc.tolist(), strict=True):
            msg = Imu(header=Header(stamp=_stamp(self._start_ns + round(n * 1e9 / hz)),
                                    frame_id=self._frame_id),
                      orientation_covariance=no_data, angular_velocity_covariance=no_data,
                      linear_acceleration_covariance=covariance)
            msg.linear_acceleration.x, msg.linear_acceleration.y, msg.linear_acceleration.z = acc
            self._publisher.publish(msg)
        self.published += len(batch.n)
        self._truth = ACTIVITIES[int(batch.labels[-1])]

    def _publish_diagnostics(self) -> None:
        name = self.get_fully_qualified_name()
        config = self.sensor.target
        activity = self._truth or 'none yet'
        values = {'sensor_state': config.name, 'sampling_hz': config.sampling_hz,
                  'averaging_window': config.averaging_window,
                  'current_ua': config.current_ua,
                  'noise_rms_ms2': self.sensor.model.noise_rms(config),
                  'samples_published': self.published,
                  'config_changes': self.config_changes, 'activity': activity,
                  'stream_time_s': self.stream_time_s()}
        message = f'{config.name} at {config.current_ua:.1f} uA; activity {activity}'
        self._diagnostics.publish(diagnostics.array(self, [
            diagnostics.status(name, 'bmi160_emulated', 0, message, values)]))


def main(args=None):
    """Run ``imu_simulator`` until Ctrl-C or shutdown."""
    return run_node(ImuSimulator, args)


if __name__ == '__main__':
    raise SystemExit(main())
