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

Real IMU drivers mostly do not take our two parameters. Where no driver accepts
them (none offers ``set_parameters_atomically`` within ``request_timeout_s``, it
refuses a request, or ``driver_node`` is ''), the node says so once and runs
open loop: it stops requesting states, classifies the stream at whatever rate
it comes, and reports the measured input rate and stamp jitter in diagnostics
and in every ActivityState; that is a normal way to run, so the status stays OK.
A driver that appears later is used from then on.

Input checks: data that look like g rather than m/s^2 (``input_units`` converts)
or have no gravity in them are reported with the fix; the device axis that
carries gravity is reported (the model measures relative to gravity, so any
orientation works). Stream resynchronisation (a pause, a restarted driver clock)
is done by ``windowing.SampleWindows`` and counted here. Repeated warnings of one
kind are logged once per ``warn_interval_s`` with a count of the ones in between.
"""

import time
from collections import Counter

import numpy as np
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParametersAtomically
from rclpy.node import Node
from sensor_msgs.msg import Imu

from adaptive_perception.activity.classifier import ActivityClassifier
from adaptive_perception.activity.features import UprightReference
from adaptive_perception.activity.recordings import ACC_UNITS, G_RANGE, MS2_RANGE
from adaptive_perception.activity.sensor import SensorConfig, parse_config
from adaptive_perception.activity.spot import Spot
from adaptive_perception.activity.windowing import CLOCK_RESET, SampleWindows
from adaptive_perception.msg import ActivityState
from adaptive_perception.paths import share_dir
from adaptive_perception.ros.interfaces import ACTIVITY_TOPIC, IMU_TOPIC, OUTPUT_QOS, imu_qos
from adaptive_perception.ros.level_following import LevelFollowing
from adaptive_perception.ros.params import Param, declare, on_change, onnx_model_params
from adaptive_perception.ros.run import run_node

LEVEL_SENSING = ['F100_A128', 'F100_A128:3', 'F50_A16:3', 'F12.5_A16:2']
SETTINGS = ['stability_threshold', 'use_confidence', 'confidence_threshold',
            'margin_threshold', 'rate_tolerance', 'error_hold_s', 'warn_interval_s']
AXIS_NAMES = ('x', 'y', 'z')


def model_states(names, trained) -> list:
    """Return the states SPOT may use: ``names`` (all trained at), or all trained ones."""
    names = [n for n in names if n]
    if not names:
        return list(trained)
    configs = [parse_config(n) for n in names]
    untrained = [c.name for c in configs if c not in trained]
    if untrained:
        raise ValueError(f'states {", ".join(untrained)}: the model was not trained at '
                         f'{"it" if len(untrained) == 1 else "them"}; it was trained at '
                         f'{", ".join(c.name for c in trained)}')
    return configs


def default_sensing(states) -> list:
    """Return the default level_sensing for these states: the shipped model's gives LEVEL_SENSING.

    Level 0 and 1 allow the costliest state (1 steps down after 3), level 2 the
    second (after 3), level 3 the third (after 2); a model with fewer states uses
    its cheapest where it has no such state, so any model starts with a valid profile.
    """
    names = [s.name for s in states]
    pick = [names[min(i, len(names) - 1)] for i in (0, 0, 1, 2)]
    return [pick[0], f'{pick[1]}:3', f'{pick[2]}:3', f'{pick[3]}:2']


def gravity_axis(mean) -> str:
    """Return the signed device axis closest to the mean acceleration, e.g. '+z'."""
    mean = np.asarray(mean, dtype=np.float64)
    axis = int(np.argmax(np.abs(mean)))
    return ('+' if mean[axis] >= 0 else '-') + AXIS_NAMES[axis]


MARGIN_DEFAULT = 0.3   # chosen on training wearers; models/activity/README.md has the bench
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
            Param('margin_threshold', MARGIN_DEFAULT,
                  'Margin SPOT (bench activity): a change, or the same activity predicted '
                  'with top-1 minus top-2 probability below this, steps the sensor up one '
                  'state instead of back to the top; 0 = thesis SPOT (every change to the '
                  'top). Overrides use_confidence.',
                  0.0, 1.0),
            Param('max_gap_s', 0.5, 'A window with a longer gap between samples is skipped.',
                  0.01, 60.0, read_only=True),
            Param('rate_tolerance', 0.2,
                  'Relative difference between measured and confirmed rate that is reported.',
                  0.0, 10.0),
            Param('request_timeout_s', 2.0, 'Time to wait for the driver to answer a request.',
                  0.1, 60.0, read_only=True),
            Param('error_hold_s', 5.0, 'Diagnostics stay WARN this long (s) after a problem.',
                  0.0, 3600.0),
            Param('warn_interval_s', 60.0,
                  'A warning of one kind is logged at most once per this many seconds '
                  '(with a count of the repeats); diagnostics count every one.', 0.0, 86400.0),
            Param('clock_grace_s', 1.0,
                  'Stamps more than a window behind the last one for this long (their own '
                  'time) mean the driver clock restarted: the window buffer is reset.',
                  0.0, 60.0, read_only=True),
            Param('input_units', 'm/s2',
                  "Unit of linear_acceleration: 'm/s2' (REP 103) or 'g' (converted).",
                  read_only=True),
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
        self.open_loop = False                        # no driver takes sensor states
        self._warned = {}                             # kind -> (last log time, repeats since)
        self._input = {}                              # measured rate, jitter, gravity ...
        self._reference = UprightReference()
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
            if values['input_units'] not in ACC_UNITS:
                raise ValueError(f"input_units must be one of {', '.join(ACC_UNITS)}, got "
                                 f"{values['input_units']!r}")
            self._scale = ACC_UNITS[values['input_units']]
            self.states = model_states(values['states'], self.classifier.states)
            self.spot = Spot(len(self.states), self._settings['stability_threshold'],
                             self._confidence(self._settings))
            self._cap_threshold = None
            self.windows = SampleWindows(values['max_gap_s'], values['clock_grace_s'])
            self.following = LevelFollowing(
                self, profile_param='level_sensing',
                profile_default=default_sensing(self.states),
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
        if self._client is None:
            self._go_open_loop('driver_node is empty')
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
    def _go_open_loop(self, why: str) -> None:
        """Stop requesting states: the input rate is whatever the driver sends."""
        if not self.open_loop:
            self.open_loop = True
            self._pending = None
            self.confirmed = None
            self.get_logger().info(
                f'running open loop ({why}): no sensor states are requested; the measured '
                f'input rate and jitter are in diagnostics and in every ActivityState')

    def _request(self, config: SensorConfig) -> None:
        """Ask the driver for ``config`` unless it already has it or is being asked."""
        if self._client is None or self.open_loop:
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
        if self.open_loop:
            if self._client is not None and self._client.service_is_ready():
                self.open_loop = False
                self.get_logger().info(f'driver {self._driver} offers set_parameters_atomically'
                                       f' now: requesting sensor states again')
                self._request(self.states[self.spot.state])
            return
        if self._pending is None:
            return
        config, future, sent = self._pending
        if future is None:   # the driver was not there yet
            if self._client.service_is_ready():
                self._pending = None
                self._request(config)
            elif time.monotonic() - sent > self._request_timeout_s:
                self.problems['driver_unreachable'] += 1
                self._go_open_loop(f'driver {self._driver} does not offer '
                                   f'set_parameters_atomically')
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
                self._go_open_loop(f'driver {self._driver} refused {config.name}')
                return
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
        windows = self.windows.push(stamp, (a.x * self._scale, a.y * self._scale,
                                            a.z * self._scale))
        for reason, message in self.windows.events:
            self.spot.reset()   # the history is of another stretch of data
            if reason == CLOCK_RESET:
                self._report(reason, message)
            else:
                self._info(reason, message)
        self.windows.events.clear()
        for window in windows:
            self._classify(window, msg.header.frame_id)
        if self.windows.accepted == accepted:
            self._report('bad_samples', f'refused a sample at stamp {stamp:.6f} '
                         f'(refused so far: {dict(self.windows.refused)})')

    def _measure(self, window) -> None:
        """Input rate, stamp jitter, gravity: what the stream really is, and its checks."""
        steps = np.diff(window.t)
        mean = window.acc.mean(axis=0)
        norm = float(np.linalg.norm(mean))
        self._input = {'input_rate_hz': float(window.rate_hz),
                       'input_jitter_ms': float(steps.std() * 1000.0),
                       'gravity_norm_ms2': norm, 'gravity_axis': gravity_axis(mean),
                       'upright_reference_known': self._reference.vector is not None}
        if G_RANGE[0] <= norm <= G_RANGE[1]:
            self._report('units', f'input looks like g, not m/s^2 (|mean a| = {norm:.2f} over '
                         f'a 2 s window; gravity is 9.81 m/s^2): convert in the driver or '
                         f'set input_units:=g')
        elif not MS2_RANGE[0] <= norm <= MS2_RANGE[1]:
            self._report('units', f'|mean a| = {norm:.3g} m/s^2 over a 2 s window: the model '
                         f'expects m/s^2 with gravity included (about 9.81)')

    def _classify(self, window, frame_id: str) -> None:
        start = time.perf_counter()
        self._measure(window)
        features = self._reference(window.t, window.acc)
        probabilities = self.classifier.probabilities(features)[0]
        label = int(probabilities.argmax())
        if self._settings['margin_threshold'] > 0.0:
            top2 = np.sort(probabilities)[-2:]
            step = self.spot.update_with_margin(label, float(top2[1] - top2[0]),
                                                self._settings['margin_threshold'])
        else:
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
            requested_sensor_state='' if self.open_loop else wanted.name,
            sensor_current_ua=float(sensor.current_ua) if sensor else 0.0,
            level=self.following.applied.level,
            measured_hz=self._input['input_rate_hz'],
            stamp_jitter_ms=self._input['input_jitter_ms'], open_loop=self.open_loop)
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
    def _throttled(self, kind: str) -> str | None:
        """None while ``kind`` was logged within warn_interval_s; else a repeat count note."""
        now = time.monotonic()
        last, repeats = self._warned.get(kind, (None, 0))
        if last is not None and now - last < self._settings['warn_interval_s']:
            self._warned[kind] = (last, repeats + 1)
            return None
        self._warned[kind] = (now, 0)
        return f' ({repeats} more like this since the last log)' if repeats else ''

    def _report(self, kind: str, message: str) -> None:
        self.problems[kind] += 1
        self._problem, self._problem_time = message, time.monotonic()
        note = self._throttled(kind)
        if note is not None:
            self.get_logger().warning(message + note)

    def _info(self, kind: str, message: str) -> None:
        self.problems[kind] += 1
        note = self._throttled(kind)
        if note is not None:
            self.get_logger().info(message + note)

    def _health(self) -> tuple:
        if (self._problem_time is not None
                and time.monotonic() - self._problem_time <= self._settings['error_hold_s']):
            return 1, self._problem
        if self.open_loop and self._input:
            return 0, (f"open loop at the input's rate: {self._input['input_rate_hz']:.2f} Hz, "
                       f"stamp jitter {self._input['input_jitter_ms']:.2f} ms")
        return 0, ''

    def _diagnostic_values(self) -> dict:
        self._account()
        label, confidence = self._last or ('', float('nan'))
        values = {
            'activity': label, 'confidence': confidence, 'windows_published': self.published,
            'sensor_state': self.confirmed.name if self.confirmed else '',
            'requested_sensor_state': '' if self.open_loop else self.states[self.spot.state].name,
            'open_loop': self.open_loop,
            'sensor_current_ua': self.confirmed.current_ua if self.confirmed else float('nan'),
            'mean_sensor_current_ua': (self._charge_ua_s / self._charged_s
                                       if self._charged_s else float('nan')),
            'stability_threshold': self.spot.stability_threshold,
            'confidence_threshold': self.spot.confidence_threshold,
            'margin_threshold': self._settings['margin_threshold'],
            'top_state': self.states[self.spot.top].name,
            'samples_accepted': self.windows.accepted, 'last_problem': self._problem,
        }
        values.update({f'samples_refused_{k}': v for k, v in self.windows.refused.items()})
        values.update({f'windows_skipped_{k}': v for k, v in self.windows.skipped.items()})
        values.update({f'spot_{k}': v for k, v in self.conditions.items()})
        values.update(self._input)
        values.update({f'resync_{k}': v for k, v in self.windows.resyncs.items()})
        values.update(self.problems)
        return values


def main(args=None):
    """Run ``activity_recognizer`` until Ctrl-C or shutdown."""
    return run_node(ActivityRecognizer, args)


if __name__ == '__main__':
    raise SystemExit(main())
