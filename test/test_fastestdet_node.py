"""adacon_detector running the COCO model (models/coco_fastestdet) on a real photograph.

A separate process over DDS: COCO names, boxes inside the image, levels = input sizes.
"""

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from PIL import Image as PilImage
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from adaptive_perception.detection.evaluate import load_rgb
from adaptive_perception.detection.fastestdet.manifest import FastestDetManifest
from adaptive_perception.msg import DetectionArray
from adaptive_perception.ros.diagnostics import values_of
from adaptive_perception.ros.interfaces import (
    DETECTIONS_TOPIC,
    DIAGNOSTICS_QOS,
    DIAGNOSTICS_TOPIC,
    OUTPUT_QOS,
)
from adaptive_perception.runtime.images import rgb_to_image_fields
from ros_harness import start_node
from test_fastestdet import COCO128, MODEL_DIR, needs_shared

TIMEOUT_S = 20.0
CAMERA = '/camera/image_raw'


@needs_shared
def test_a_real_photo_gets_coco_names_and_boxes_inside_it_at_every_level(probe, tmp_path):
    # A kitchen table (bowls, broccoli, an orange), as a 640x480 rgb8 camera frame.
    rgb = load_rgb(COCO128 / 'images' / '000000000009.jpg')
    rgb = np.asarray(PilImage.fromarray(rgb).resize((640, 480)))
    node = start_node('adacon_detector', tmp_path, params={'model_dir': str(MODEL_DIR),
                                                           'level_override': 0})
    try:
        camera = probe.node.create_publisher(Image, CAMERA, qos_profile_sensor_data)
        outputs = probe.subscribe(DetectionArray, DETECTIONS_TOPIC, OUTPUT_QOS)
        diagnostics = probe.subscribe(DiagnosticArray, DIAGNOSTICS_TOPIC, DIAGNOSTICS_QOS)
        probe.wait_for_subscribers(camera)
        names = set(FastestDetManifest.load(MODEL_DIR).classes.values())

        def detect(frame_id: str) -> DetectionArray:
            msg = Image(header=Header(stamp=Time(sec=7, nanosec=9), frame_id=frame_id),
                        **rgb_to_image_fields(rgb))
            for _ in range(int(TIMEOUT_S / 0.5)):
                camera.publish(msg)  # best effort: the first ones may be lost
                try:
                    return probe.spin_until(lambda: [m for m in outputs
                                                     if m.header.frame_id == frame_id],
                                            0.5, frame_id)[-1]
                except AssertionError:
                    continue
            raise AssertionError(f'no detections for {frame_id}')

        sizes = {}
        for level, size in enumerate([352, 288, 224, 160]):
            assert probe.set_parameters('adacon_detector',
                                        {'level_override': level})[0].successful
            out = detect(f'photo_{size}')
            assert (out.level, out.mode, out.width) == (level, 'static', 1.0)
            assert (out.header.stamp.sec, out.header.stamp.nanosec) == (7, 9)
            assert out.detections and {d.class_name for d in out.detections} <= names
            for d in out.detections:
                assert 0 <= d.x_min < d.x_max <= 640 and 0 <= d.y_min < d.y_max <= 480
                assert d.branch == -1 and 0.3 <= d.score <= 1
            sizes[size] = {d.class_name for d in out.detections}
        assert 'bowl' in sizes[352] and 'broccoli' in sizes[352]
        status = probe.spin_until(
            lambda: next((s for a in reversed(diagnostics) for s in a.status
                          if s.name.endswith('adacon_detector')
                          and values_of(s).get('mode') == 'static@160'), None),
            TIMEOUT_S, 'diagnostics naming the level entry static@160')
        assert values_of(status)['model_dir'] == str(MODEL_DIR)
        assert 'Traceback' not in node.log()
    finally:
        assert node.stop() == 0


def test_a_level_entry_of_the_other_family_is_refused_at_start(launch):
    node = launch('adacon_detector', params={'model_dir': str(MODEL_DIR),
                                             'level_modes': ['static@352', 'single@0.5']})
    assert node.proc.wait(TIMEOUT_S) != 0
    log = node.log()
    assert "mode 'single@0.5'" in log and 'Traceback' not in log
