"""``adacon_detector``: camera images in, ``DetectionArray`` out, at the level's cost.

The execution level picks a mode from ``level_modes`` (static head, multi-branch
with a threshold, single branch); every graph is resident, so a level change only
swaps the mode. Per frame the controller still chooses which branches run.

Newest frame wins: the input queue holds one message, the subscription callbacks
only keep the latest one, and a worker thread processes whatever is newest when it
is free, so a slow frame never builds a queue. Frames the camera published that
were never processed (replaced in the queue or in the slot) count as dropped.
The worker hands each finished frame's numbers to the executor thread through a
guard condition: statistics and diagnostics are only touched there.
"""

import threading
import time
from collections import deque

from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image

from adaptive_perception.detection.engine import AdaConEngine
from adaptive_perception.detection.images import (
    MAX_PIXELS,
    BadImage,
    compressed_to_rgb,
    draw_overlay,
    image_to_rgb,
    rgb_to_image_fields,
)
from adaptive_perception.detection.manifest import DEFAULT_MODES, parse_mode
from adaptive_perception.launcher.plan import share_dir
from adaptive_perception.msg import Detection, DetectionArray
from adaptive_perception.ros.level_following import LevelFollowing
from adaptive_perception.ros.params import Param, declare, on_change
from adaptive_perception.ros.run import run_node
from adaptive_perception.sources.camera_node import CAMERA_TOPIC, camera_qos

DETECTIONS_TOPIC = '/adaptive_perception/detections'
OVERLAY_TOPIC = '/adaptive_perception/detections/image'
LEVEL_MODES = list(DEFAULT_MODES)
OUTPUT_QOS = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST,
                        reliability=ReliabilityPolicy.RELIABLE)
SETTINGS = ['score_threshold', 'nms_iou', 'max_detections', 'max_pixels', 'error_hold_s']


class AdaConDetector(Node):
    """Runs the AdaCon engine on the newest camera frame, in the level's mode."""

    def __init__(self, **kwargs):
        super().__init__('adacon_detector', **kwargs)
        self._lock = threading.Lock()
        self._pending = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        # Started once the node is complete; destroy_node may also meet it unstarted.
        self._worker = threading.Thread(target=self._work, name='adacon_worker', daemon=True)
        values = declare(self, [
            Param('model_dir', str(share_dir() / 'models' / 'adacon'),
                  'Exported AdaCon model directory (manifest.json + ONNX graphs).',
                  read_only=True),
            Param('providers', ['CPUExecutionProvider'],
                  'ONNX Runtime execution providers in order of preference; missing ones '
                  'are dropped with a warning, CPU is always the last resort.', read_only=True),
            Param('threads', 1,
                  'Intra-op threads per graph; 0 = the onnxruntime default (one per core). '
                  'The graphs are small and other nodes share the CPU: 1 was several times '
                  'faster than the default on a loaded 2-core machine.', 0, 1024,
                  read_only=True),
            Param('image_topic', CAMERA_TOPIC, 'sensor_msgs/Image input topic.',
                  read_only=True),
            Param('compressed_topic', '',
                  "sensor_msgs/CompressedImage input topic (jpeg/png); '' = none.",
                  read_only=True),
            Param('qos', 'sensor_data',
                  "Input QoS: 'sensor_data' (best effort) or 'reliable'.", read_only=True),
            Param('score_threshold', 0.3, 'Minimum detection score.', 0.0, 1.0),
            Param('nms_iou', 0.5, 'IoU above which NMS removes the weaker box of a class.',
                  0.0, 1.0),
            Param('max_detections', 100, 'Most detections per frame.', 1, 10000),
            Param('max_pixels', MAX_PIXELS, 'Larger input images are refused.', 1, 1 << 40),
            Param('error_hold_s', 5.0,
                  'Diagnostics stay ERROR this long (s) after a bad input.', 0.0, 3600.0),
        ])
        self._settings = {name: values[name] for name in SETTINGS}
        on_change(self, SETTINGS, lambda candidate: None,  # descriptors check the ranges
                  self._set_settings)
        self.frames_dropped = 0
        self._last_sequence = {}  # publisher gid -> last publication sequence number
        self.bad_inputs = 0
        self.overlay_frames = 0
        self._branches_total = 0
        self._macs_total = 0
        self._macs_last = 0
        self._problem, self._problem_time = '', None
        # worker -> executor thread: (end, latency, branches, macs, overlay drawn)
        self._finished = deque()
        self._problems = deque()  # worker -> executor thread: (is a bad input, reason)
        self._handoff = self.create_guard_condition(self._take_results)
        self._active = None  # (Mode, level), swapped whole by _apply

        try:  # a bad model directory or parameter: one clear message, exit code 1
            qos = camera_qos(values['qos'])
            self.engine = AdaConEngine(values['model_dir'], values['providers'],
                                       values['threads'], warn=self.get_logger().warning)
            self.following = LevelFollowing(
                self, profile_param='level_modes', profile_default=LEVEL_MODES,
                profile_description="Mode per level (index = level): 'static', "
                                    "'multi:<0..1>' (branches whose probability passes) or "
                                    "'single'.",
                parse_entry=parse_mode, apply=self._apply,
                extra_values=self._diagnostic_values, health=self._health)
        except ValueError as error:
            self.get_logger().fatal(f'cannot start: {error}')
            raise SystemExit(1) from None
        self.engine.warm_up()

        self._detections_pub = self.create_publisher(DetectionArray, DETECTIONS_TOPIC,
                                                     OUTPUT_QOS)
        self._overlay_pub = self.create_publisher(Image, OVERLAY_TOPIC, OUTPUT_QOS)
        self.create_subscription(Image, values['image_topic'], self._on_image, qos)
        if values['compressed_topic']:
            self.create_subscription(CompressedImage, values['compressed_topic'],
                                     self._on_image, qos)

        self._worker.start()
        self.get_logger().info(
            f'model {self.engine.model_dir} ({len(self.engine.branch_names)} branches), '
            f'providers {", ".join(self.engine.providers)}, input {values["image_topic"]}'
            + (f' + {values["compressed_topic"]}' if values['compressed_topic'] else ''))

    # -- parameters -------------------------------------------------------------
    def _apply(self, mode, applied) -> None:
        self._active = (mode, applied.level)

    def _set_settings(self, candidate: dict) -> None:
        self._settings = {**self._settings, **candidate}

    # -- the frame path ------------------------------------------------------------
    def _on_image(self, msg, info) -> None:
        # Dropped = replaced here before the worker took it, or never seen at all:
        # the depth-1 queue keeps only the newest, so count the publisher's sequence gaps.
        sequence, gid = info.get('publication_sequence_number'), info.get('publisher_gid')
        if sequence is not None and gid is not None:
            key = bytes(gid['data'])
            last = self._last_sequence.get(key)
            if last is not None and sequence > last + 1:
                self.frames_dropped += sequence - last - 1
            self._last_sequence[key] = sequence
        with self._lock:
            if self._pending is not None:
                self.frames_dropped += 1
            self._pending = msg
        self._wake.set()

    def process(self, msg) -> DetectionArray:
        """Image or CompressedImage in -> DetectionArray out: the whole per-frame work.

        Raises BadImage for an input that cannot be used.
        """
        return self._process(msg)[0]

    def _process(self, msg) -> tuple:
        start = time.perf_counter()
        settings = self._settings
        if isinstance(msg, CompressedImage):
            rgb = compressed_to_rgb(msg.format, msg.data, settings['max_pixels'])
        else:
            rgb = image_to_rgb(msg.encoding, msg.width, msg.height, msg.step, msg.data,
                               settings['max_pixels'])
        mode, level = self._active
        result = self.engine.detect(rgb, mode, settings['score_threshold'],
                                    settings['nms_iou'], settings['max_detections'])
        names = self.engine.branch_names
        out = DetectionArray(
            header=msg.header, level=level, mode=mode.kind, branches_run=result.branches_run,
            branch_names=[names[i] for i in result.branches_run],
            detections=[Detection(class_id=d.class_id, class_name=d.class_name, score=d.score,
                                  x_min=d.x_min, y_min=d.y_min, x_max=d.x_max, y_max=d.y_max,
                                  branch=d.branch) for d in result.detections])
        out.latency_ms = (time.perf_counter() - start) * 1e3
        return out, rgb, result

    def _work(self) -> None:
        while True:
            self._wake.wait()
            if self._stop.is_set():
                return
            with self._lock:
                msg, self._pending = self._pending, None
                self._wake.clear()
            if msg is None:
                continue
            try:
                self._handle(msg)
            except Exception as error:  # whatever it is, one frame must not end the worker
                if not self.context.ok():
                    return  # shutting down: the context went away mid-frame
                self.get_logger().error(f'processing a frame failed: {error!r}')
                self._problems.append((False, f'processing failed: {error!r}'))
                self._handoff.trigger()

    def _handle(self, msg) -> None:
        try:
            out, rgb, result = self._process(msg)
        except BadImage as error:
            self._problems.append((True, f'bad input: {error.reason}'))
            self._handoff.trigger()
            return
        self._detections_pub.publish(out)
        overlay = self._overlay_pub.get_subscription_count() > 0
        if overlay:
            image = draw_overlay(rgb, out.detections)
            self._overlay_pub.publish(Image(header=msg.header, **rgb_to_image_fields(image)))
        self._finished.append((time.monotonic(), out.latency_ms / 1e3,
                               len(result.branches_run), result.macs, overlay))
        self._handoff.trigger()

    # -- statistics and diagnostics (executor thread) ----------------------------
    def _take_results(self) -> None:
        while self._finished:
            end, latency_s, branches, macs, overlay = self._finished.popleft()
            self.following.stats.record(end, latency_s)
            self._branches_total += branches
            self._macs_total += macs
            self._macs_last = macs
            self.overlay_frames += overlay
        if not self._problems:
            return
        while self._problems:
            is_bad_input, self._problem = self._problems.popleft()
            if is_bad_input:
                self.bad_inputs += 1
        self._problem_time = time.monotonic()
        self.get_logger().warning(self._problem, throttle_duration_sec=5.0)
        self.following.publish_diagnostics()  # an error is news: say it now

    def _health(self) -> tuple:
        if (self._problem_time is not None
                and time.monotonic() - self._problem_time <= self._settings['error_hold_s']):
            return 2, self._problem
        return 0, ''

    def _diagnostic_values(self) -> dict:
        frames = self.following.stats.frames
        return {
            'mode': str(self._active[0]),
            'mean_branches_per_frame': self._branches_total / frames if frames else 0.0,
            'macs_last': self._macs_last,
            'macs_mean': self._macs_total / frames if frames else 0.0,
            'frames_dropped': self.frames_dropped,
            'bad_inputs': self.bad_inputs,
            'last_problem': self._problem,
            'overlay_frames': self.overlay_frames,
            'providers': ','.join(self.engine.providers),
            'model_dir': str(self.engine.model_dir),
        }

    def destroy_node(self):
        """Stop the worker before the node's publishers go away."""
        self._stop.set()
        self._wake.set()
        if self._worker.is_alive():
            self._worker.join()
        return super().destroy_node()


def main(args=None):
    """Run ``adacon_detector`` until Ctrl-C or shutdown."""
    return run_node(AdaConDetector, args)


if __name__ == '__main__':
    raise SystemExit(main())
