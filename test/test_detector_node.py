"""adacon_detector as a separate process, over DDS, on the fake exported model."""

import io
from array import array

import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from PIL import Image as PilImage
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

import fake_adacon as fake
from adaptive_perception.msg import DetectionArray
from adaptive_perception.ros.diagnostics import as_float, values_of
from adaptive_perception.ros.interfaces import (
    DETECTIONS_TOPIC,
    DIAGNOSTICS_QOS,
    DIAGNOSTICS_TOPIC,
    OUTPUT_QOS,
    OVERLAY_TOPIC,
)
from adaptive_perception.runtime.images import rgb_to_image_fields
from bad_images import bad_camera_frames
from ros_harness import start_node

TIMEOUT_S = 15.0
CAMERA = '/camera/image_raw'
COMPRESSED = '/camera/image_raw/compressed'
COLOUR = (102, 153, 128)  # controller probabilities 0.27, 0.73, 0.50 (fake_adacon)
RGB = fake.colour_image(COLOUR, 2 * fake.INPUT)


@pytest.fixture(scope='module')
def detector(tmp_path_factory):
    """One detector for the module: starting it is the slow part."""
    # work_channels: about 10 ms of real work per frame, so a flood outruns it.
    model = fake.build(tmp_path_factory.mktemp('model'), work_channels=192, int8=True)
    node = start_node('adacon_detector', tmp_path_factory.mktemp('logs'), params={
        'model_dir': str(model), 'compressed_topic': COMPRESSED, 'error_hold_s': 2.0,
        'level_modes': ['static', 'multi:0.3', 'multi:0.6', 'single', f'static@{fake.HALF:g}',
                        'static/int8', 'cascade:context=0.3:single/int8>static']})
    yield node
    assert node.stop() == 0


class Camera:
    """The probe's camera: publishes frames and collects what the detector says."""

    def __init__(self, probe):
        self.probe = probe
        self.raw = probe.node.create_publisher(Image, CAMERA, qos_profile_sensor_data)
        self.compressed = probe.node.create_publisher(CompressedImage, COMPRESSED,
                                                      qos_profile_sensor_data)
        self.outputs = probe.subscribe(DetectionArray, DETECTIONS_TOPIC, OUTPUT_QOS)
        self.diagnostics = probe.subscribe(DiagnosticArray, DIAGNOSTICS_TOPIC, DIAGNOSTICS_QOS)
        probe.wait_for_subscribers(self.raw)
        probe.wait_for_subscribers(self.compressed)

    def outputs_for(self, frame_id: str) -> list:
        return [m for m in self.outputs if m.header.frame_id == frame_id]

    def status(self):
        """Return the detector's newest diagnostics status, or None."""
        for array_msg in reversed(self.diagnostics):
            for status in array_msg.status:
                if status.name.endswith('adacon_detector'):
                    return status
        return None

    def send(self, msg, until, what: str):
        """Publish ``msg`` until ``until()`` holds: best effort may lose the first ones."""
        publisher = self.compressed if isinstance(msg, CompressedImage) else self.raw
        for _ in range(int(TIMEOUT_S / 0.5)):
            publisher.publish(msg)
            try:
                return self.probe.spin_until(until, 0.5, what)
            except AssertionError:
                continue
        raise AssertionError(f'timed out after {TIMEOUT_S} s waiting for {what}')

    def detect(self, msg) -> DetectionArray:
        """Send one frame and return the detections for it."""
        frame_id = msg.header.frame_id
        return self.send(msg, lambda: self.outputs_for(frame_id) and
                         self.outputs_for(frame_id)[-1], f'detections for {frame_id}')

    def expect_error(self, msg, reason: str) -> DiagnosticStatus:
        """Send a bad frame; return the ERROR status that names ``reason``."""
        def error():
            status = self.status()
            return (status if status and status.level == DiagnosticStatus.ERROR and
                    reason in status.message else None)
        return self.send(msg, error, f'a diagnostics ERROR saying {reason!r}')


def frame(frame_id: str, rgb=RGB, sec: int = 1234, nanosec: int = 5678) -> Image:
    return Image(header=Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=frame_id),
                 **rgb_to_image_fields(rgb))


@pytest.fixture
def camera(probe, detector):
    return Camera(probe)


def test_detections_carry_the_input_header_names_level_and_mode(camera, probe):
    assert probe.set_parameters('adacon_detector', {'level_override': 1})[0].successful
    out = camera.detect(frame('cam_a', sec=1700000000, nanosec=123456789))
    assert (out.header.stamp.sec, out.header.stamp.nanosec) == (1700000000, 123456789)
    assert out.header.frame_id == 'cam_a'
    assert out.level == 1 and out.mode == 'multi'   # level 1 = multi:0.3
    assert list(out.branches_run) == [1, 2]
    assert list(out.branch_names) == ['home', 'park']
    assert {d.class_name for d in out.detections} == {'dog', 'person', 'cup'}
    assert all(d.class_name == fake.CLASSES[d.class_id] for d in out.detections)
    assert {d.branch for d in out.detections} == {1, 2}
    assert out.latency_ms > 0
    dog = max((d for d in out.detections if d.class_name == 'dog'), key=lambda d: d.score)
    # The 64 px frame is scaled by 0.5 into the 32 px input: boxes come back doubled.
    assert (dog.x_min, dog.y_min, dog.x_max, dog.y_max) == pytest.approx((28, 28, 44, 44))


def test_level_override_switches_mode_and_width_without_reloading(camera, probe, detector):
    assert probe.set_parameters('adacon_detector', {'level_override': 0})[0].successful
    out = camera.detect(frame('cam_static'))
    assert (out.level, out.mode, out.width, list(out.branches_run)) == (0, 'static', 1.0, [])
    assert {d.branch for d in out.detections} == {-1}
    assert len(out.detections) == len(fake.STATIC_PEAKS)
    assert probe.set_parameters('adacon_detector', {'level_override': 4})[0].successful
    out = camera.detect(frame('cam_half'))
    assert (out.level, out.mode, out.width) == (4, 'static', fake.HALF)
    assert len(out.detections) == fake.HALF_STATIC_PEAKS  # the half width's own graphs ran
    assert probe.set_parameters('adacon_detector', {'level_override': 3})[0].successful
    out = camera.detect(frame('cam_single'))
    assert (out.level, out.mode, list(out.branches_run)) == (3, 'single', [1])
    status = probe.spin_until(lambda: (s := camera.status()) and values_of(s)[
        'level_modes'] == 'single' and s, TIMEOUT_S, 'diagnostics in single mode')
    assert as_float(values_of(status)['apply_cost_max_ms']) < 5.0
    assert detector.log().count('providers CPUExecutionProvider') == 1  # loaded once
    bad = probe.set_parameters('adacon_detector', {'level_modes': ['static', 'fast']})[0]
    assert not bad.successful and "mode 'fast'" in bad.reason
    bad = probe.set_parameters('adacon_detector', {'level_modes': ['static', 'single@0.75']})[0]
    assert not bad.successful and 'backbone widths 1, 0.5' in bad.reason
    bad = probe.set_parameters('adacon_detector', {'level_modes': ['static', 'static/int4']})[0]
    assert not bad.successful and "mode 'static/int4'" in bad.reason


def test_precision_and_cascade_levels_say_what_ran(camera, probe):
    assert probe.set_parameters('adacon_detector', {'level_override': 0})[0].successful
    out = camera.detect(frame('cam_fp32'))
    assert (out.precision, out.cascade_exit) == ('fp32', -1)
    assert probe.set_parameters('adacon_detector', {'level_override': 5})[0].successful
    out = camera.detect(frame('cam_int8'))
    assert (out.mode, out.precision, out.cascade_exit) == ('static', 'int8', -1)
    assert len(out.detections) == fake.INT8_STATIC_PEAKS  # the INT8 graphs ran
    # context margin of COLOUR: 0.73 - 0.50 < 0.3, so the cascade escalates to FP32 static
    assert probe.set_parameters('adacon_detector', {'level_override': 6})[0].successful
    out = camera.detect(frame('cam_cascade'))
    assert (out.mode, out.precision, out.cascade_exit) == ('static', 'fp32', 0)
    assert len(out.detections) == len(fake.STATIC_PEAKS)
    status = probe.spin_until(lambda: (s := camera.status()) and as_float(
        values_of(s).get('cascade_frames', '0')) >= 1 and s, TIMEOUT_S, 'cascade diagnostics')
    values = values_of(status)
    assert as_float(values['cascade_exit_rate']) == 0.0
    assert values['precision'] == 'fp32' and values['cascade_exit_last_frame'] == '0'
    # back to the single-branch level the tests below expect
    assert probe.set_parameters('adacon_detector', {'level_override': 3})[0].successful


def test_overlay_is_published_only_while_subscribed(camera, probe):
    camera.detect(frame('cam_no_overlay'))
    status = probe.spin_until(lambda: (s := camera.status()) and as_float(
        values_of(s)['frames']) >= 1 and s, TIMEOUT_S, 'diagnostics after a frame')
    assert values_of(status)['overlay_frames'] == '0'

    overlays = probe.subscribe(Image, OVERLAY_TOPIC, OUTPUT_QOS)
    overlay = camera.send(frame('cam_overlay'), lambda: [
        m for m in overlays if m.header.frame_id == 'cam_overlay'], 'an overlay image')[-1]
    assert (overlay.encoding, overlay.width, overlay.height) == ('rgb8', 64, 64)
    assert (overlay.header.stamp.sec, overlay.header.stamp.nanosec) == (1234, 5678)
    assert bytes(overlay.data) != bytes(frame('x').data)  # boxes were drawn


def test_each_bad_input_is_an_error_and_good_frames_still_pass(camera, probe):
    good = frame('good')
    bad_frames = bad_camera_frames()
    for i, (msg, reason) in enumerate(bad_frames):
        status = camera.expect_error(msg, reason)
        assert as_float(values_of(status)['bad_inputs']) >= i + 1
        good.header.frame_id = f'good-{i}'
        assert camera.detect(good).detections
    assert not [m for m in camera.outputs if m.header.frame_id.startswith('bad-')]
    # The error clears by itself once error_hold_s (2 s here) has passed.
    probe.spin_until(lambda: camera.status().level == DiagnosticStatus.OK, TIMEOUT_S,
                     'diagnostics back to OK')


def test_compressed_input(camera):
    jpeg = io.BytesIO()
    PilImage.fromarray(RGB).save(jpeg, format='JPEG')
    msg = CompressedImage(header=Header(stamp=Time(sec=42, nanosec=7), frame_id='jpeg_cam'),
                          format='jpeg', data=array('B', jpeg.getvalue()))
    out = camera.detect(msg)
    assert (out.header.stamp.sec, out.header.stamp.nanosec, out.header.frame_id) == (
        42, 7, 'jpeg_cam')
    assert {d.class_name for d in out.detections} >= {'dog', 'cup'}


def test_newest_frame_wins_and_nothing_queues(camera, probe):
    camera.detect(frame('flood-warm'))
    count = 40
    for i in range(count):
        camera.raw.publish(frame(f'flood-{i}'))
    last = f'flood-{count - 1}'
    camera.send(frame(last), lambda: camera.outputs_for(last), 'the newest flood frame')
    probe.spin_for(0.5)  # a queue would still be draining now
    flood = [m.header.frame_id for m in camera.outputs if m.header.frame_id.startswith(
        'flood-') and m.header.frame_id != 'flood-warm']
    assert flood[-1] == last and len(flood) < count
    indices = [int(f.split('-')[1]) for f in flood]
    assert indices == sorted(indices)
    status = probe.spin_until(lambda: (s := camera.status()) and as_float(
        values_of(s)['frames_dropped']) > 0 and s, TIMEOUT_S, 'dropped frames in diagnostics')
    assert as_float(values_of(status)['macs_mean']) > 0


def test_missing_model_dir_fails_at_start_with_one_message(launch, tmp_path):
    node = launch('adacon_detector', params={'model_dir': str(tmp_path / 'nowhere')})
    assert node.proc.wait(TIMEOUT_S) != 0
    log = node.log()
    assert log.count('cannot start') == 1
    assert 'manifest.json not found' in log and 'Traceback' not in log
