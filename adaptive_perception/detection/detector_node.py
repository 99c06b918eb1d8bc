"""``adacon_detector``: camera images in, ``DetectionArray`` out, at the level's cost.

The execution level picks a mode from ``level_modes`` (static head, multi-branch
with a threshold, single branch), a backbone width (nested channel set, e.g.
``single@0.5``) and a precision (``single@0.5/int8``), or an exit cascade
(``cascade:context=0.3:single@0.5/int8>static/int8``); every graph of every width
and precision is resident, so a level change only swaps the mode. Per frame the
controller still chooses which branches run, and a cascade whether to escalate.
The camera input (newest frame wins, dropped frames, bad images) is
``ros.camera_frames.CameraFrames``; this node detects and publishes.
``model_dir`` may instead hold the COCO-pretrained FastestDet model, whose levels
are input sizes (``static@224``); ``detection.families`` picks the engine.
"""

import time
from typing import NamedTuple

from rclpy.node import Node
from sensor_msgs.msg import Image

from adaptive_perception.detection.families import default_modes, load_engine, parse_engine_mode
from adaptive_perception.detection.manifest import DEFAULT_MODES
from adaptive_perception.detection.overlay import draw_overlay
from adaptive_perception.msg import Detection, DetectionArray
from adaptive_perception.paths import share_dir
from adaptive_perception.ros.camera_frames import CameraFrames
from adaptive_perception.ros.interfaces import DETECTIONS_TOPIC, OUTPUT_QOS, OVERLAY_TOPIC
from adaptive_perception.ros.level_following import LevelFollowing
from adaptive_perception.ros.params import Param, declare, on_change, onnx_model_params
from adaptive_perception.ros.run import run_node
from adaptive_perception.ros.vision_twin import VisionTwin
from adaptive_perception.runtime.images import rgb_to_image_fields

LEVEL_MODES = list(DEFAULT_MODES)
SETTINGS = ['score_threshold', 'nms_iou', 'max_detections']


class FrameResult(NamedTuple):
    """What the worker hands the executor thread for one detected frame."""

    end: float            # time.monotonic() when the detections were published
    latency_s: float      # from the frame's arrival to its detections
    branches: int         # context branches run
    macs: int             # of every graph the frame ran
    overlay: bool         # an overlay image was drawn (it had a subscriber)
    precision: str        # of the pass whose detections were published
    cascade_exit: int     # 1: the cheap pass was published, 0: the costly one, -1: no cascade


class AdaConDetector(Node):
    """Runs the AdaCon engine on the newest camera frame, in the level's mode."""

    def __init__(self, **kwargs):
        super().__init__('adacon_detector', **kwargs)
        self.camera = None  # destroy_node may meet a node that failed to start
        values = declare(self, [
            *onnx_model_params(str(share_dir() / 'models' / 'adacon'),
                               'Exported detector model directory (manifest.json + ONNX '
                               'graphs): AdaCon (generated scenes, models/adacon) or '
                               'FastestDet (COCO, models/coco_fastestdet).'),
            Param('score_threshold', 0.3, 'Minimum detection score.', 0.0, 1.0),
            Param('nms_iou', 0.5, 'IoU above which NMS removes the weaker box of a class.',
                  0.0, 1.0),
            Param('max_detections', 100, 'Most detections per frame.', 1, 10000),
        ])
        self._settings = {name: values[name] for name in SETTINGS}
        on_change(self, SETTINGS, lambda candidate: None,  # descriptors check the ranges
                  self._set_settings)
        self.overlay_frames = 0
        self._branches_total = 0
        self._macs_total = 0
        self._macs_last = 0
        self._precision_last = ''
        self._cascade = {'frames': 0, 'exited': 0, 'last': -1}
        self._active = None  # (Mode, level), swapped whole by _apply

        try:  # a bad model directory or parameter: one clear message, exit code 1
            self.camera = CameraFrames(self, self._handle, self._record,
                                       lambda: self.following.publish_diagnostics(),
                                       'adacon_worker')
            self.engine = load_engine(values['model_dir'], values['providers'],
                                      values['threads'], warn=self.get_logger().warning)
            self.following = LevelFollowing(
                self, profile_param='level_modes', profile_default=default_modes(self.engine),
                profile_description="Mode per level (index = level). AdaCon: 'static', "
                                    "'multi:<0..1>' (branches whose probability passes) or "
                                    "'single', each optionally at a backbone width of the "
                                    "model ('single@0.5') and in a precision it has "
                                    "('single@0.5/int8'); or an exit cascade "
                                    "'cascade:<context|score>=<0..1>:<cheap>><costly>'. "
                                    "FastestDet: 'static@<input size>' ('static@224'), "
                                    "optionally '/int8'.",
                parse_entry=self._parse_mode, apply=self._apply,
                extra_values=self._diagnostic_values, health=self.camera.health,
                collect=self.camera.collect)
        except ValueError as error:
            self.get_logger().fatal(f'cannot start: {error}')
            raise SystemExit(1) from None
        self.engine.warm_up()

        self._detections_pub = self.create_publisher(DetectionArray, DETECTIONS_TOPIC,
                                                     OUTPUT_QOS)
        self._overlay_pub = self.create_publisher(Image, OVERLAY_TOPIC, OUTPUT_QOS)
        self.vision = VisionTwin(self)
        self.camera.start()
        self.get_logger().info(
            f'model {self.engine.model_dir} ({len(self.engine.branch_names)} branches), '
            f'providers {", ".join(self.engine.providers)}, input {self.camera.describe()}')

    # -- parameters -------------------------------------------------------------
    def _parse_mode(self, text: str):
        return parse_engine_mode(self.engine, text)

    def _apply(self, mode, applied) -> None:
        self._active = (mode, applied.level)

    def _set_settings(self, candidate: dict) -> None:
        self._settings = {**self._settings, **candidate}

    # -- the frame path ------------------------------------------------------------
    def process(self, msg) -> DetectionArray:
        """Image or CompressedImage in -> DetectionArray out: the whole per-frame work.

        Raises BadImage for an input that cannot be used.
        """
        start = time.perf_counter()
        return self._detect(msg, self.camera.decode(msg), start)[0]

    def _detect(self, msg, rgb, start: float) -> tuple:
        settings = self._settings
        mode, level = self._active
        result = self.engine.detect(rgb, mode, settings['score_threshold'],
                                    settings['nms_iou'], settings['max_detections'])
        names = self.engine.branch_names
        ran = result.mode  # for a cascade: the pass whose detections are published
        out = DetectionArray(
            header=msg.header, level=level, mode=ran.kind, width=ran.width,
            precision=ran.precision,
            cascade_exit=-1 if result.exited is None else int(result.exited),
            branches_run=result.branches_run,
            branch_names=[names[i] for i in result.branches_run],
            detections=[Detection(class_id=d.class_id, class_name=d.class_name, score=d.score,
                                  x_min=d.x_min, y_min=d.y_min, x_max=d.x_max, y_max=d.y_max,
                                  branch=d.branch) for d in result.detections])
        out.latency_ms = (time.perf_counter() - start) * 1e3
        return out, result

    def _handle(self, msg, rgb, start: float) -> FrameResult:
        """Worker thread: detect, publish (and draw the overlay if it is watched)."""
        out, result = self._detect(msg, rgb, start)
        self._detections_pub.publish(out)
        self.vision.publish(out)
        overlay = self._overlay_pub.get_subscription_count() > 0
        if overlay:
            image = draw_overlay(rgb, out.detections)
            self._overlay_pub.publish(Image(header=msg.header, **rgb_to_image_fields(image)))
        return FrameResult(time.monotonic(), out.latency_ms / 1e3, len(result.branches_run),
                           result.macs, overlay, out.precision, out.cascade_exit)

    # -- statistics and diagnostics (executor thread) ----------------------------
    def _record(self, finished: FrameResult) -> None:
        self.following.stats.record(finished.end, finished.latency_s)
        self._precision_last = finished.precision
        self._cascade['last'] = finished.cascade_exit
        if finished.cascade_exit >= 0:
            self._cascade['frames'] += 1
            self._cascade['exited'] += finished.cascade_exit
        self._branches_total += finished.branches
        self._macs_total += finished.macs
        self._macs_last = finished.macs
        self.overlay_frames += finished.overlay

    def _diagnostic_values(self) -> dict:
        frames = self.following.stats.frames
        return {
            'mode': str(self._active[0]),
            'width': self._active[0].width,
            'precision': self._active[0].precision,
            'precision_last_frame': self._precision_last,
            'cascade_frames': self._cascade['frames'],
            'cascade_exit_rate': (self._cascade['exited'] / self._cascade['frames']
                                  if self._cascade['frames'] else 0.0),
            'cascade_exit_last_frame': self._cascade['last'],
            'mean_branches_per_frame': self._branches_total / frames if frames else 0.0,
            'macs_last': self._macs_last,
            'macs_mean': self._macs_total / frames if frames else 0.0,
            **self.camera.values(),
            'overlay_frames': self.overlay_frames,
            'vision_msgs': self.vision.status(),
            'providers': ','.join(self.engine.providers),
            'model_dir': str(self.engine.model_dir),
        }

    def destroy_node(self):
        """Stop the worker before the node's publishers go away."""
        if self.camera is not None:
            self.camera.stop()
        return super().destroy_node()


def main(args=None):
    """Run ``adacon_detector`` until Ctrl-C or shutdown."""
    return run_node(AdaConDetector, args)


if __name__ == '__main__':
    raise SystemExit(main())
