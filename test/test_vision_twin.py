"""adacon_detector's vision_msgs/Detection2DArray twin, frame by frame against DetectionArray."""

import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Header

import fake_adacon as fake
from adaptive_perception.msg import DetectionArray
from adaptive_perception.ros.diagnostics import values_of
from adaptive_perception.ros.interfaces import (
    DETECTIONS_TOPIC,
    DIAGNOSTICS_QOS,
    DIAGNOSTICS_TOPIC,
    OUTPUT_QOS,
    VISION_DETECTIONS_TOPIC,
)
from adaptive_perception.runtime.images import rgb_to_image_fields
from ros_harness import start_node
from ros_tools import VENDOR, VENV


def _vision_msgs():
    """vision_msgs.msg; skip only where nothing could provide it (no vendor copy)."""
    try:
        import vision_msgs.msg
    except ModuleNotFoundError:
        if (VENDOR / 'install.sh').is_file():
            pytest.fail(f'vision_msgs is not installed in {VENV}: run `make ros-tools`')
        pytest.skip('vision_msgs: neither installed nor in ../shared/vendor/ros2')
    return vision_msgs.msg


COLOURS = [(102, 153, 128), (200, 60, 90), (30, 220, 40), (128, 128, 128)]


def test_without_vision_msgs_the_node_says_so_and_publishes_the_custom_message_only(
        monkeypatch):
    import rclpy
    from rclpy.node import Node

    from adaptive_perception.ros import vision_twin
    monkeypatch.setattr(vision_twin, 'Detection2DArray', None)
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = Node('twin_probe', context=context)
        twin = vision_twin.VisionTwin(node)
        assert twin.status() == 'not installed (no Detection2DArray twin)'
        twin.publish(DetectionArray())  # nothing to publish on: no error
        assert node.count_publishers('/' + VISION_DETECTIONS_TOPIC) == 0
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)


def test_twin_matches_the_custom_message_frame_by_frame_and_turns_off(probe, tmp_path):
    vision_msgs = _vision_msgs()
    model = fake.build(tmp_path / 'model')
    node = start_node('adacon_detector', tmp_path / 'logs', params={'model_dir': str(model)})
    try:
        camera = probe.node.create_publisher(Image, '/camera/image_raw', qos_profile_sensor_data)
        custom = probe.subscribe(DetectionArray, DETECTIONS_TOPIC, OUTPUT_QOS)
        twin = probe.subscribe(vision_msgs.Detection2DArray, VISION_DETECTIONS_TOPIC, OUTPUT_QOS)
        diagnostics = probe.subscribe(DiagnosticArray, DIAGNOSTICS_TOPIC, DIAGNOSTICS_QOS)
        probe.wait_for_subscribers(camera)
        probe.wait_for_publishers(VISION_DETECTIONS_TOPIC)
        compared = 0
        for i, colour in enumerate(COLOURS):
            frame_id = f'frame{i}'
            msg = Image(header=Header(stamp=Time(sec=100 + i, nanosec=i), frame_id=frame_id),
                        **rgb_to_image_fields(fake.colour_image(colour, 2 * fake.INPUT)))

            def both(frame_id=frame_id):
                a = [m for m in custom if m.header.frame_id == frame_id]
                b = [m for m in twin if m.header.frame_id == frame_id]
                return (a[-1], b[-1]) if a and b else None
            pair = None
            for _ in range(20):  # best effort: repeat the frame until it arrives
                camera.publish(msg)
                try:
                    pair = probe.spin_until(both, 0.5, f'both outputs for {frame_id}')
                    break
                except AssertionError:
                    continue
            assert pair, f'no outputs for {frame_id}'
            ours, theirs = pair
            assert theirs.header == ours.header == msg.header
            assert len(theirs.detections) == len(ours.detections)
            for d, v in zip(ours.detections, theirs.detections, strict=True):
                [hypothesis] = v.results
                assert hypothesis.hypothesis.class_id == d.class_name
                assert hypothesis.hypothesis.score == pytest.approx(d.score)
                assert v.bbox.center.position.x == pytest.approx((d.x_min + d.x_max) / 2)
                assert v.bbox.center.position.y == pytest.approx((d.y_min + d.y_max) / 2)
                assert v.bbox.size_x == pytest.approx(d.x_max - d.x_min)
                assert v.bbox.size_y == pytest.approx(d.y_max - d.y_min)
                assert v.header == ours.header
                compared += 1
        assert compared >= 3, compared

        def status_says(text):
            for array in reversed(diagnostics):
                for status in array.status:
                    if status.name.endswith('adacon_detector'):
                        return values_of(status).get('vision_msgs') == text
            return False
        probe.spin_until(lambda: status_says('on'), 10, "diagnostics vision_msgs 'on'")
        assert probe.set_parameters('adacon_detector',
                                    {'publish_vision_msgs': False})[0].successful
        before = len(twin)
        msg = Image(header=Header(frame_id='after_off'),
                    **rgb_to_image_fields(fake.colour_image(COLOURS[0], 2 * fake.INPUT)))
        for _ in range(20):
            camera.publish(msg)
            probe.spin_for(0.2)
            if any(m.header.frame_id == 'after_off' for m in custom):
                break
        assert any(m.header.frame_id == 'after_off' for m in custom)
        assert len(twin) == before
        probe.spin_until(lambda: status_says('off'), 10, "diagnostics vision_msgs 'off'")
    finally:
        assert node.stop() == 0
