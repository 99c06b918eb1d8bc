"""camera_source as a separate process: folder, generator and video sources over DDS."""

import cv2
import numpy as np
import pytest
from PIL import Image as PilImage
from sensor_msgs.msg import Image

from adaptive_perception.detection.scenes import SceneGenerator
from adaptive_perception.interfaces import sensor_qos
from adaptive_perception.ros.interfaces import CAMERA_TOPIC, camera_qos, qos_profile
from adaptive_perception.runtime.images import image_to_rgb
from adaptive_perception.sources.frames import FolderFrames, VideoFrames, open_source

TIMEOUT_S = 15.0
COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]


def rgb_of(msg) -> np.ndarray:
    return image_to_rgb(msg.encoding, msg.width, msg.height, msg.step, msg.data)


def stamp_s(msg) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def rate_hz(frames) -> float:
    """Measure the publishing rate from the header stamps (set when each frame was sent)."""
    return (len(frames) - 1) / (stamp_s(frames[-1]) - stamp_s(frames[0]))


def colour_folder(folder, colours=COLOURS, size=(24, 16)):
    folder.mkdir()
    for i, colour in enumerate(colours):  # names sort in colour order; one non-image
        PilImage.fromarray(np.full((size[1], size[0], 3), colour, np.uint8)).save(
            folder / f'frame_{i:02d}.png')
    (folder / 'notes.txt').write_text('not a frame')
    return folder


def colour_index(rgb) -> int:
    """Which of COLOURS a (possibly lossy) flat frame shows."""
    return int(np.argmin([np.abs(rgb.astype(int) - c).mean() for c in COLOURS]))


def test_folder_source_publishes_in_name_order_at_the_set_rate(probe, launch, tmp_path):
    folder = colour_folder(tmp_path / 'frames')
    # Order is the point here, so nothing may be lost: reliable at both ends and a probe
    # queue deep enough that a slow spin on a loaded machine never overwrites a frame.
    frames = probe.subscribe(Image, CAMERA_TOPIC, qos_profile(sensor_qos('reliable', 100)))
    launch('camera_source', params={'source': str(folder), 'rate_hz': 20.0,
                                    'frame_id': 'test_cam', 'qos': 'reliable'})
    probe.spin_until(lambda: len(frames) >= 12, TIMEOUT_S, '12 frames')
    first = frames[0]
    assert (first.encoding, first.width, first.height) == ('rgb8', 24, 16)
    assert first.header.frame_id == 'test_cam'
    order = [colour_index(rgb_of(m)) for m in frames]
    assert all((b - a) % 3 == 1 for a, b in zip(order, order[1:], strict=False))  # loops
    assert 12 <= rate_hz(frames) <= 30

    # rate_hz and frame_id take effect at run time.
    result = probe.set_parameters('camera_source', {'rate_hz': 50.0, 'frame_id': 'renamed'})
    assert all(r.successful for r in result)
    renamed = probe.spin_until(lambda: (r := [m for m in frames if m.header.frame_id ==
                                              'renamed']) and len(r) >= 20 and r,
                               TIMEOUT_S, '20 renamed frames')
    assert rate_hz(renamed) > 35


def test_folder_source_without_loop_stops_at_the_end_until_loop_is_set(probe, launch,
                                                                         tmp_path):
    folder = colour_folder(tmp_path / 'frames')
    node = launch('camera_source', params={'source': str(folder), 'rate_hz': 50.0,
                                           'loop': False})
    probe.spin_until(lambda: 'source exhausted after 3 frames' in node.log(), TIMEOUT_S,
                     'the end of the folder')
    assert node.returncode() is None  # still running, publishing nothing
    frames = probe.subscribe(Image, CAMERA_TOPIC, camera_qos('sensor_data'))
    assert probe.set_parameters('camera_source', {'loop': True})[0].successful
    probe.spin_until(lambda: len(frames) >= 5, TIMEOUT_S, 'frames again after loop:=true')


def test_generator_source_publishes_the_seeded_scenes(probe, launch):
    frames = probe.subscribe(Image, CAMERA_TOPIC, camera_qos('sensor_data'))
    launch('camera_source', params={'source': 'generator', 'seed': 7, 'image_size': 128,
                                    'rate_hz': 20.0})
    probe.spin_until(lambda: len(frames) >= 10, TIMEOUT_S, '10 generated frames')
    assert (frames[0].width, frames[0].height) == (128, 128)
    assert 12 <= rate_hz(frames) <= 30
    generator = SceneGenerator(7, 128)
    expected = [generator.sample()[0].tobytes() for _ in range(60)]
    index = expected.index(rgb_of(frames[0]).tobytes())  # early ones may predate the match
    assert [rgb_of(m).tobytes() for m in frames[:5]] == expected[index:index + 5]


def test_video_source_plays_and_loops(probe, launch, tmp_path):
    path = tmp_path / 'clip.avi'
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), 10.0, (32, 24))
    for colour in COLOURS:
        writer.write(np.full((24, 32, 3), colour[::-1], np.uint8))  # OpenCV writes BGR
    writer.release()
    frames = probe.subscribe(Image, CAMERA_TOPIC, camera_qos('reliable'))
    launch('camera_source', params={'source': str(path), 'rate_hz': 30.0, 'qos': 'reliable'})
    probe.spin_until(lambda: len(frames) >= 8, TIMEOUT_S, '8 video frames')
    assert (frames[0].width, frames[0].height) == (32, 24)
    order = [colour_index(rgb_of(m)) for m in frames]
    assert all((b - a) % 3 == 1 for a, b in zip(order, order[1:], strict=False))


def test_bad_source_fails_at_start(launch, tmp_path):
    node = launch('camera_source', params={'source': str(tmp_path / 'missing.mp4')})
    assert node.proc.wait(TIMEOUT_S) != 0
    assert node.log().count('cannot start: source') == 1


def test_frame_sources_without_ros(tmp_path):
    folder = FolderFrames(colour_folder(tmp_path / 'frames'), loop=False)
    assert [colour_index(folder.read()) for _ in range(3)] == [0, 1, 2]
    assert folder.read() is None
    folder.loop = True
    assert colour_index(folder.read()) == 0
    (tmp_path / 'broken').mkdir()
    (tmp_path / 'broken' / 'a.png').write_bytes(b'not a png')
    with pytest.raises(ValueError, match='a.png'):
        FolderFrames(tmp_path / 'broken', loop=True).read()
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match='no .png/.jpg/.jpeg images'):
        FolderFrames(tmp_path / 'empty', loop=True)
    with pytest.raises(ValueError, match='cannot be opened as a video'):
        VideoFrames(tmp_path / 'frames' / 'notes.txt', loop=True)
    with pytest.raises(ValueError, match="expected 'generator'"):
        open_source(str(tmp_path / 'nothing'))
    assert open_source('generator', seed=1, image_size=128).read().shape == (128, 128, 3)


@pytest.mark.parametrize('source, named', [('/dev/video99', "camera '/dev/video99'"),
                                           ('7', 'camera 7')])
def test_a_camera_device_that_cannot_be_opened_is_one_clear_error(source, named):
    """source:=/dev/videoN or an index (typed as an integer) opens V4L2 through OpenCV."""
    import os
    import subprocess
    import sys

    from ros_harness import node_env
    proc = subprocess.run(
        [sys.executable, '-m', 'adaptive_perception.sources.camera_node', '--ros-args',
         '-p', f'source:={source}'], env={**os.environ, **node_env()}, capture_output=True,
        text=True, timeout=60)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert f'cannot start: {named} cannot be opened (V4L2 through OpenCV)' in output, output
    assert 'Traceback' not in output, output
