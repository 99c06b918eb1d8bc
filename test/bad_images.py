"""The bad camera frames every image node must reject, each with the reason it must name."""

from array import array

from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header


def bad_camera_frames() -> list:
    """Fresh (message, reason) pairs; message ``i`` has frame_id ``bad-<i>``."""
    frames = [
        (Image(encoding='16UC1', width=4, height=4, step=8, data=array('B', bytes(32))),
         "unsupported encoding '16UC1'"),
        (Image(encoding='rgb8', width=32, height=32, step=90, data=array('B', bytes(2880))),
         'step 90 is less than width x channels'),
        (Image(encoding='rgb8', width=0, height=0, step=0), 'zero-size image 0x0'),
        (Image(encoding='rgb8', width=100_000, height=100_000, step=300_000,
               data=array('B', bytes(30))), 'over max_pixels'),
        (Image(encoding='rgb8', width=32, height=32, step=96, data=array('B', bytes(1000))),
         'truncated data: 1000 bytes'),
        (CompressedImage(format='jpeg', data=array('B', b'definitely not a jpeg')),
         'undecodable compressed image'),
    ]
    for i, (msg, _) in enumerate(frames):
        msg.header = Header(frame_id=f'bad-{i}')
    return frames
