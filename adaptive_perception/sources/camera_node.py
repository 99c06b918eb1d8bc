"""``camera_source``: a camera stand-in that publishes ``sensor_msgs/Image`` (rgb8).

Frames come from the scene generator, a folder of images or a video file
(``sources.frames``), at ``rate_hz``, stamped with the time they are published.
``rate_hz``, ``frame_id`` and ``loop`` take effect at once when set at run time.
"""

from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from adaptive_perception.ros.interfaces import CAMERA_TOPIC, camera_qos
from adaptive_perception.ros.params import Param, declare, on_change
from adaptive_perception.ros.run import run_node, set_timer_period
from adaptive_perception.runtime.images import rgb_to_image_fields
from adaptive_perception.sources.frames import open_source


class CameraSource(Node):
    """Publishes the next frame of its source on every timer tick."""

    def __init__(self):
        super().__init__('camera_source')
        self.frames = None  # destroy_node also runs when opening the source fails
        values = declare(self, [
            Param('source', 'generator',
                  "'generator' (seeded context scenes), a folder of .png/.jpg images "
                  '(sorted by name), a video file, or a V4L2 camera: /dev/videoN or an '
                  'index (0).', read_only=True, integer_as_text=True),
            Param('seed', 0, 'Seed of the scene generator.', read_only=True),
            Param('image_size', 128, 'Side (px) of generated scenes.', 16, 4096,
                  read_only=True),
            Param('loop', True, 'Start a folder or video again at its end.'),
            Param('rate_hz', 10.0, 'Frames per second.', 0.1, 1000.0),
            Param('frame_id', 'camera', 'header.frame_id of every image.'),
            Param('topic', CAMERA_TOPIC, 'Image output topic.', read_only=True),
            Param('qos', 'sensor_data', "'sensor_data' (best effort) or 'reliable'.",
                  read_only=True),
        ])
        try:
            qos = camera_qos(values['qos'])
            self.frames = open_source(values['source'], values['seed'], values['image_size'],
                                      values['loop'])
        except ValueError as error:
            self.get_logger().fatal(f'cannot start: {error}')
            raise SystemExit(1) from None
        self._rate_hz = values['rate_hz']
        self._frame_id = values['frame_id']
        self.published = 0
        self._publisher = self.create_publisher(Image, values['topic'], qos)
        self._timer = self.create_timer(1.0 / self._rate_hz, self._tick)
        on_change(self, ['loop', 'rate_hz', 'frame_id'], lambda candidate: None,
                  self._on_params)  # the descriptors check the ranges
        self.get_logger().info(f'publishing {values["source"]} on {values["topic"]} at '
                               f'{self._rate_hz:g} Hz')

    def _on_params(self, candidate: dict) -> None:
        self.frames.loop = candidate['loop']
        self._frame_id = candidate['frame_id']
        if candidate['rate_hz'] != self._rate_hz or self._timer.is_canceled():
            self._rate_hz = candidate['rate_hz']
            set_timer_period(self._timer, 1.0 / self._rate_hz)  # also restarts a stopped one

    def _tick(self) -> None:
        try:
            rgb = self.frames.read()
        except ValueError as error:  # one unreadable file: say so, go on with the next
            self.get_logger().warning(f'skipped a frame: {error}', throttle_duration_sec=5.0)
            return
        if rgb is None:
            self._timer.cancel()
            self.get_logger().info(f'source exhausted after {self.published} frames; '
                                   f'set loop to true to start it again')
            return
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=self._frame_id)
        self._publisher.publish(Image(header=header, **rgb_to_image_fields(rgb)))
        self.published += 1

    def destroy_node(self):
        """Release the source (a video decoder) with the node."""
        if self.frames is not None:
            self.frames.close()
        return super().destroy_node()


def main(args=None):
    """Run ``camera_source`` until Ctrl-C or shutdown."""
    return run_node(CameraSource, args)


if __name__ == '__main__':
    raise SystemExit(main())
