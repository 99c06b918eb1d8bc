"""``activity_recognizer``: IMU samples in, ``ActivityState`` out, sensor state requested.

Every second of data (by the samples' stamps) the last 2 s are classified; SPOT
then picks the sensor state for what follows and, when it changes, the node asks
the IMU driver for it by setting the driver's rate and averaging-window
parameters (``set_parameters_atomically``, so both change together). The state
the driver confirmed is what ``sensor_state`` reports; ``requested_sensor_state``
is SPOT's choice, also while a request is pending or refused.

The execution level picks an entry of ``level_sensing``: the costliest sensor
state allowed at that level and, optionally, a tighter stability threshold
(``'F50_A16:3'``). Refused samples, skipped windows, a rate other than the one
requested and an unreachable driver are counted and reported in ``/diagnostics``.
"""

import time
from collections import Counter

from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParametersAtomically
from rclpy.node import Node
from sensor_msgs.msg import Imu

from adaptive_perception.activity.classifier import ActivityClassifier
from adaptive_perception.activity.features import window_features
from adaptive_perception.activity.sensor import SensorConfig, parse_config
from adaptive_perception.activity.spot import Spot
from adaptive_perception.activity.windowing import SampleWindows
from adaptive_perception.msg import ActivityState
from adaptive_perception.paths import share_dir
from adaptive_perception.ros.interfaces import ACTIVITY_TOPIC, IMU_TOPIC, OUTPUT_QOS, imu_qos
from adaptive_perception.ros.level_following import LevelFollowing
from adaptive_perception.ros.params import Param, declare, on_change, onnx_model_params
from adaptive_perception.ros.run import run_node

LEVEL_SENSING = ['F100_A128', 'F100_A128:3', 'F50_A16:3', 'F12.5_A16:2']
SETTINGS = ['stability_threshold', 'use_confidence', 'confidence_threshold',
            'rate_tolerance', 'error_hold_s']
SETTLE_S = 2.5   # after a confirmed change, windows still hold samples of the old rate


def parse_sensing(entry: str, states) -> tuple:
    """``'F50_A16'`` or ``'F50_A16:3'`` -> (index of the cap state, threshold or None)."""
    cap, _, threshold = str(entry).partition(':')
    config = parse_config(cap)
    names = [s.name for s in states]
    if config.name not in names:
        raise ValueError(f'level_sensing entry {entry!r}: {config.name} is not one of the '
                         f'sensor states {names}')
    if threshold and (not threshold.isdigit() or int(threshold) < 1):
        raise ValueError(f'level_sensing entry {entry!r}: the stability threshold after ":" '
                         f'must be an integer >= 1')
    return names.index(config.name), int(threshold) if threshold else None


class ActivityRecognizer(Node):
    """Classifies IMU windows and moves the accelerometer between its Pareto states."""

    def __init__(self, **kwargs):
        super().__init__('activity_recognizer', **kwargs)
        values = declare(self, [
            *onnx_model_params(str(share_dir() / 'models' / 'activity'),
                               'Exported activity classifier (manifest.json + '
                               'classifier.onnx).'),
            Param('states', [''],
                  "Sensor states SPOT moves between, costliest first, e.g. ['F100_A128', "
                  "'F50_A16']; [''] = the states the model was trained at.", read_only=True),
            Param('imu_topic', IMU_TOPIC, 'sensor_msgs/Imu input topic.', read_only=True),
            Param('qos', 'sensor_data', "Input QoS: 'sensor_data' or 'reliable'.",
                  read_only=True),
            Param('driver_node', 'imu_simulator',
                  "IMU driver whose parameters set the sensor state; '' = do not request.",
                  read_only=True),
            Param('rate_param', 'sampling_hz', "Driver's sampling-rate parameter (double, Hz).",
                  read_only=True),
            Param('window_param', 'averaging_window',
                  "Driver's averaging-window parameter (integer, samples).", read_only=True),
            Param('stability_threshold', 5,
                  'Equal predictions in a row before stepping to a cheaper state.', 1, 3600),
            Param('use_confidence', False,
                  'SPOT with confidence: only a change predicted above confidence_threshold '
                  'sends the sensor back to the top state. Saves more, but misses more '
                  'changes (bench activity); off by default.'),
            Param('confidence_threshold', 0.85, 'See use_confidence.', 0.0, 0.999),
            Param('max_gap_s', 0.5, 'A window with a longer gap between samples is skipped.',
                  0.01, 60.0, read_only=True),
            Param('rate_tolerance', 0.2,
                  'Relative difference between measured and confirmed rate that is reported.',
                  0.0, 10.0),
            Param('request_timeout_s', 2.0, 'Time to wait for the driver to answer a request.',
                  0.1, 60.0, read_only=True),
            Param('error_hold_s', 5.0, 'Diagnostics stay WARN this long (s) after a problem.',
                  0.0, 3600.0),
        ])
        self._settings = {name: values[name] for name in SETTINGS}
        self._driver = values['driver_node']
        self._rate_param, self._window_param = values['rate_param'], values['window_param']
        self._request_timeout_s = values['request_timeout_s']
        self.confirmed: SensorConfig | None = None   # what the driver accepted last
        self._confirmed_at = None
        self._pending = None                          # (config, future, sent at)
        self.conditions = Counter()
        self.problems = Counter()
        self._problem, self._problem_time = '', None
        self.published = 0
        self._last = None                             # (label, confidence)
        self._charge_ua_s = self._charged_s = 0.0   # modelled current, integrated
        self._charged_at = time.monotonic()
        self._client = (self.create_client(SetParametersAtomically,
                                           f'{self._driver}/set_parameters_atomically')
                        if self._driver else None)
        try:
            qos = imu_qos(values['qos'])
            self.classifier = ActivityClassifier(values['model_dir'], values['providers'],
                                                 values['threads'],
                                                 warn=self.get_logger().warning)
            names = [s for s in values['states'] if s]
            self.states = ([parse_config(s) for s in names] if names
                           else list(self.classifier.states))
            self.spot = Spot(len(self.states), self._settings['stability_threshold'],
                             self._confidence(self._settings))
            self._cap_threshold = None
            self.windows = SampleWindows(values['max_gap_s'])
            self.following = LevelFollowing(
                self, profile_param='level_sensing', profile_default=LEVEL_SENSING,
                profile_description="Per level (index = level): the costliest sensor state "
                                    "allowed, optionally ':<stability threshold>' to step "
                                    "down sooner, e.g. 'F50_A16:3'.",
                parse_entry=lambda e: parse_sensing(e, self.states), apply=self._apply,
                extra_values=self._diagnostic_values, health=self._health)
        except ValueError as error:
            self.get_logger().fatal(f'cannot start: {error}')
            raise SystemExit(1) from None
        on_change(self, SETTINGS, self._check_settings, self._set_settings)

        self._publisher = self.create_publisher(ActivityState, ACTIVITY_TOPIC, OUTPUT_QOS)
        self.create_subscription(Imu, values['imu_topic'], self._on_imu, qos)
        self.create_timer(0.2, self._poll_request)
        self._request(self.states[self.spot.state])
        self.get_logger().info(
            f'model {self.classifier.model_dir} ({len(self.classifier.class_names)} classes), '
            f'states {" -> ".join(s.name for s in self.states)}, input {values["imu_topic"]}, '
            f'driver {self._driver or "(none)"}')

    # -- parameters ------------------------------------------------------------------
    @staticmethod
    def _confidence(settings: dict) -> float | None:
        return settings['confidence_threshold'] if settings['use_confidence'] else None

    def _check_settings(self, candidate: dict) -> None:
        Spot(len(self.states), candidate['stability_threshold'], self._confidence(candidate))

    def _set_settings(self, candidate: dict) -> None:
        self._settings = {**self._settings, **candidate}
        self._configure_spot()

    def _configure_spot(self) -> None:
        threshold = self._cap_threshold or self._settings['stability_threshold']
        self.spot.configure(threshold, self._confidence(self._settings))

    def _apply(self, knob, applied) -> None:
        cap, self._cap_threshold = knob
        before = self.spot.state
        self.spot.set_top(cap)
        self._configure_spot()
        if self.spot.state != before:
            self._request(self.states[self.spot.state])

    # -- the driver ------------------------------------------------------------------
    def _request(self, config: SensorConfig) -> None:
        """Ask the driver for ``config`` unless it already has it or is being asked."""
        if self._client is None:
            return
        if self._pending is not None and self._pending[0] == config:
            return
        if self._pending is None and self.confirmed == config:
            return
        if not self._client.service_is_ready():
            self._pending = (config, None, time.monotonic())   # sent once it appears
            return
        request = SetParametersAtomically.Request(parameters=[
            Parameter(name=self._rate_param, value=ParameterValue(
                type=ParameterType.PARAMETER_DOUBLE, double_value=float(config.sampling_hz))),
            Parameter(name=self._window_param, value=ParameterValue(
                type=ParameterType.PARAMETER_INTEGER,
                integer_value=int(config.averaging_window)))])
        self._pending = (config, self._client.call_async(request), time.monotonic())
        self.problems['requests'] += 1

    def _poll_request(self) -> None:
        if self._pending is None:
            return
        config, future, sent = self._pending
        if future is None:   # the driver was not there yet
            if self._client.service_is_ready():
                self._pending = None
                self._request(config)
            elif time.monotonic() - sent > self._request_timeout_s:
                self._report('driver_unreachable', f'driver {self._driver} does not offer '
                             f'set_parameters_atomically; cannot request {config.name}')
                self._pending = (config, None, time.monotonic())
            return
        if future.done():
            self._pending = None
            result = future.result().result if future.exception() is None else None
            if result is not None and result.successful:
                if self.confirmed != config:
                    self.get_logger().info(
                        f'sensor {self.confirmed.name if self.confirmed else "?"} -> '
                        f'{config.name} ({config.current_ua:.1f} uA)')
                self._account()
                self.confirmed, self._confirmed_at = config, time.monotonic()
            else:
                reason = result.reason if result is not None else repr(future.exception())
                self._report('request_refused', f'driver refused {config.name}: {reason}')
            wanted = self.states[self.spot.state]
            if wanted != self.confirmed:
                self._request(wanted)
        elif time.monotonic() - sent > self._request_timeout_s:
            self._client.remove_pending_request(future)   # asked again at the next window
            self._pending = None
            self._report('request_timeout', f'driver {self._driver} did not answer the '
                         f'request for {config.name} within {self._request_timeout_s:g} s')

    def _account(self) -> None:
        """Integrate the modelled sensor current up to now (for the mean in diagnostics)."""
        now = time.monotonic()
        if self.confirmed is not None:
            self._charge_ua_s += self.confirmed.current_ua * (now - self._charged_at)
            self._charged_s += now - self._charged_at
        self._charged_at = now

    # -- the sample path -------------------------------------------------------------
    def _on_imu(self, msg: Imu) -> None:
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        a = msg.linear_acceleration
        accepted = self.windows.accepted
        for window in self.windows.push(stamp, (a.x, a.y, a.z)):
            self._classify(window, msg.header.frame_id)
        if self.windows.accepted == accepted:
            self._report('bad_samples', f'refused a sample at stamp {stamp:.6f} '
                         f'(refused so far: {dict(self.windows.refused)})')

    def _classify(self, window, frame_id: str) -> None:
        start = time.perf_counter()
        probabilities = self.classifier.probabilities(window_features(window.t, window.acc))[0]
        label = int(probabilities.argmax())
        step = self.spot.update(label, float(probabilities[label]))
        self.conditions[step.condition] += 1
        wanted = self.states[self.spot.state]
        self._request(wanted)
        self._check_rate(window)
        sensor = self.confirmed
        msg = ActivityState(
            label=self.classifier.class_names[label], label_id=label,
            confidence=float(probabilities[label]), class_names=self.classifier.class_names,
            probabilities=[float(p) for p in probabilities],
            sensor_state=sensor.name if sensor else '',
            sampling_hz=float(sensor.sampling_hz) if sensor else 0.0,
            averaging_window=sensor.averaging_window if sensor else 0,
            requested_sensor_state=wanted.name,
            sensor_current_ua=float(sensor.current_ua) if sensor else 0.0,
            level=self.following.applied.level)
        msg.header.frame_id = frame_id
        msg.header.stamp.sec = int(window.end)
        msg.header.stamp.nanosec = int(round((window.end - int(window.end)) * 1e9)) % 10**9
        self._publisher.publish(msg)
        self.published += 1
        self._last = (msg.label, msg.confidence)
        self.following.record_frame(time.perf_counter() - start)

    def _check_rate(self, window) -> None:
        if (self.confirmed is None or self._confirmed_at is None
                or time.monotonic() - self._confirmed_at < SETTLE_S or self._pending):
            return
        expected = self.confirmed.sampling_hz
        if abs(window.rate_hz - expected) > self._settings['rate_tolerance'] * expected:
            self._report('rate_mismatch', f'measured {window.rate_hz:.2f} Hz, the driver '
                         f'confirmed {self.confirmed.name} ({expected:g} Hz)')

    # -- diagnostics -------------------------------------------------------------------
    def _report(self, kind: str, message: str) -> None:
        self.problems[kind] += 1
        self._problem, self._problem_time = message, time.monotonic()
        self.get_logger().warning(message, throttle_duration_sec=5.0)

    def _health(self) -> tuple:
        if (self._problem_time is not None
                and time.monotonic() - self._problem_time <= self._settings['error_hold_s']):
            return 1, self._problem
        return 0, ''

    def _diagnostic_values(self) -> dict:
        self._account()
        label, confidence = self._last or ('', float('nan'))
        values = {
            'activity': label, 'confidence': confidence, 'windows_published': self.published,
            'sensor_state': self.confirmed.name if self.confirmed else '',
            'requested_sensor_state': self.states[self.spot.state].name,
            'sensor_current_ua': self.confirmed.current_ua if self.confirmed else float('nan'),
            'mean_sensor_current_ua': (self._charge_ua_s / self._charged_s
                                       if self._charged_s else float('nan')),
            'stability_threshold': self.spot.stability_threshold,
            'confidence_threshold': self.spot.confidence_threshold,
            'top_state': self.states[self.spot.top].name,
            'samples_accepted': self.windows.accepted, 'last_problem': self._problem,
        }
        values.update({f'samples_refused_{k}': v for k, v in self.windows.refused.items()})
        values.update({f'windows_skipped_{k}': v for k, v in self.windows.skipped.items()})
        values.update({f'spot_{k}': v for k, v in self.conditions.items()})
        values.update(self.problems)
        return values


def main(args=None):
    """Run ``activity_recognizer`` until Ctrl-C or shutdown."""
    return run_node(ActivityRecognizer, args)


if __name__ == '__main__':
    raise SystemExit(main())
