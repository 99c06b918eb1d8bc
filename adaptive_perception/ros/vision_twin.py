"""The detections as ``vision_msgs/Detection2DArray`` too, for the ecosystem's tools.

rviz, Foxglove and tracking or navigation stacks read the standard message, not
``adaptive_perception/DetectionArray``. Where ``vision_msgs`` is importable the
detector also publishes each result on ``adaptive_perception/detections/vision_msgs``:
header = the input's header, one ``Detection2D`` per detection with the class name as
the hypothesis id, its score, and the box centre and size in input pixels. Parameter
``publish_vision_msgs`` (run time) turns it off; it is built only while someone
subscribes. Where vision_msgs is missing the node says so once in its log and keeps
saying it in its diagnostics (``vision_msgs``).
"""

from adaptive_perception.ros.interfaces import OUTPUT_QOS, VISION_DETECTIONS_TOPIC
from adaptive_perception.ros.params import Param, declare, on_change

try:
    from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose
except ImportError:  # an optional dependency: the custom message still flows
    Detection2DArray = None


def to_detection2d_array(out):
    """DetectionArray -> Detection2DArray (same header, class names as hypothesis ids)."""
    array = Detection2DArray(header=out.header)
    for d in out.detections:
        detection = Detection2D(header=out.header)
        detection.bbox.center.position.x = (d.x_min + d.x_max) / 2.0
        detection.bbox.center.position.y = (d.y_min + d.y_max) / 2.0
        detection.bbox.size_x = float(d.x_max - d.x_min)
        detection.bbox.size_y = float(d.y_max - d.y_min)
        hypothesis = ObjectHypothesisWithPose()
        hypothesis.hypothesis.class_id = d.class_name
        hypothesis.hypothesis.score = float(d.score)
        detection.results.append(hypothesis)
        array.detections.append(detection)
    return array


class VisionTwin:
    """Owns the parameter, the publisher and the status of the Detection2DArray twin."""

    def __init__(self, node):
        self._node = node
        values = declare(node, [Param(
            'publish_vision_msgs', True,
            f'Also publish vision_msgs/Detection2DArray on {VISION_DETECTIONS_TOPIC} '
            '(while subscribed; needs vision_msgs).')])
        self.enabled = values['publish_vision_msgs']
        on_change(node, ['publish_vision_msgs'], lambda candidate: None, self._set)
        self._publisher = None
        if Detection2DArray is None:
            node.get_logger().warning('vision_msgs is not installed: no Detection2DArray '
                                      f'on {VISION_DETECTIONS_TOPIC}')
        else:
            self._publisher = node.create_publisher(Detection2DArray, VISION_DETECTIONS_TOPIC,
                                                    OUTPUT_QOS)

    def _set(self, candidate: dict) -> None:
        self.enabled = candidate['publish_vision_msgs']

    def publish(self, out) -> None:
        """Publish the twin of ``out`` if it is on, possible and wanted (worker thread)."""
        if (self.enabled and self._publisher is not None
                and self._publisher.get_subscription_count() > 0):
            self._publisher.publish(to_detection2d_array(out))

    def status(self) -> str:
        """For the diagnostics: 'on', 'off' or why it cannot be."""
        if Detection2DArray is None:
            return 'not installed (no Detection2DArray twin)'
        return 'on' if self.enabled else 'off'
