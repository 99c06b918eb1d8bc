"""adamtl_multitask as a separate process, over DDS, on a small untrained exported model."""

import io
import json
import shutil
from array import array

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from PIL import Image as PilImage
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from adaptive_perception.multitask.node import TASK_ENCODINGS, task_topics
from adaptive_perception.multitask.scenes import CLASS_NAMES, TASKS
from adaptive_perception.ros.diagnostics import as_float, values_of
from adaptive_perception.ros.interfaces import (
    DIAGNOSTICS_QOS,
    DIAGNOSTICS_TOPIC,
    OUTPUT_QOS,
    TASK_TOPICS,
)
from adaptive_perception.runtime.images import rgb_to_image_fields
from bad_images import bad_camera_frames
from ros_harness import start_node

TIMEOUT_S = 15.0
NODE = 'adamtl_multitask'
CAMERA = '/camera/image_raw'
COMPRESSED = '/camera/image_raw/compressed'
RGB = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)  # not 32x32
LEVELS = ['static', 'high', 'low', 'low:segmentation+depth']


@pytest.fixture(scope='module')
def multitask(tmp_path_factory, random_adamtl):
    """One node for the module: starting it is the slow part."""
    model = random_adamtl[0]
    node = start_node(NODE, tmp_path_factory.mktemp('logs'), params={
        'model_dir': str(model), 'compressed_topic': COMPRESSED, 'error_hold_s': 2.0,
        'level_policies': LEVELS, 'level_override': 0})
    yield node
    assert node.stop() == 0


class Camera:
    """The probe's camera: publishes frames, collects task outputs and diagnostics."""

    def __init__(self, probe, tasks=()):
        self.probe = probe
        self.raw = probe.node.create_publisher(Image, CAMERA, qos_profile_sensor_data)
        self.compressed = probe.node.create_publisher(CompressedImage, COMPRESSED,
                                                      qos_profile_sensor_data)
        self.outputs = {task: probe.subscribe(Image, TASK_TOPICS[task], OUTPUT_QOS)
                        for task in tasks}
        self.diagnostics = probe.subscribe(DiagnosticArray, DIAGNOSTICS_TOPIC, DIAGNOSTICS_QOS)
        probe.wait_for_subscribers(self.raw)
        probe.wait_for_subscribers(self.compressed)

    def outputs_for(self, task: str, frame_id: str) -> list:
        return [m for m in self.outputs[task] if m.header.frame_id == frame_id]

    def values(self) -> dict:
        """Return the newest diagnostics values (+ '_level', '_message'); {} if none."""
        for array_msg in reversed(self.diagnostics):
            for status in array_msg.status:
                if status.name.endswith(NODE):
                    return {**values_of(status), '_level': status.level,
                            '_message': status.message}
        return {}

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

    def infer(self, msg, tasks) -> dict:
        """Send one frame until every task of ``tasks`` answered it; task -> Image."""
        frame_id = msg.header.frame_id
        self.send(msg, lambda: all(self.outputs_for(t, frame_id) for t in tasks),
                  f'{", ".join(tasks)} for {frame_id}')
        return {t: self.outputs_for(t, frame_id)[-1] for t in tasks}

    def wait_values(self, condition, what: str) -> dict:
        """Spin until the node's diagnostics satisfy ``condition(values)``."""
        return self.probe.spin_until(lambda: (v := self.values()) and condition(v) and v,
                                     TIMEOUT_S, what)


def frame(frame_id: str, rgb=RGB, sec: int = 1234, nanosec: int = 5678) -> Image:
    return Image(header=Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=frame_id),
                 **rgb_to_image_fields(rgb))


def pixels(image: Image) -> np.ndarray:
    """Read an output image's pixels as its encoding and byte order say."""
    dtype = np.dtype(np.uint8 if image.encoding == 'mono8' else np.float32)
    dtype = dtype.newbyteorder('>' if image.is_bigendian else '<')
    channels = 3 if image.encoding == '32FC3' else 1
    data = np.frombuffer(bytes(image.data), dtype)
    return data.reshape(image.height, image.width, channels).squeeze(-1) if channels == 1 \
        else data.reshape(image.height, image.width, channels)


def test_each_task_comes_back_with_the_input_header_size_and_encoding(multitask, probe):
    camera = Camera(probe, TASKS)
    out = camera.infer(frame('cam_a', sec=1700000000, nanosec=123456789), TASKS)
    for task, image in out.items():
        assert (image.header.stamp.sec, image.header.stamp.nanosec) == (1700000000, 123456789)
        assert image.header.frame_id == 'cam_a'
        assert (image.encoding, image.height, image.width) == (TASK_ENCODINGS[task], 48, 64)
        itemsize = {'mono8': 1, '32FC1': 4, '32FC3': 12}[image.encoding]
        assert image.step == 64 * itemsize and len(image.data) == 48 * image.step
    assert pixels(out['segmentation']).max() < len(CLASS_NAMES)
    assert np.isfinite(pixels(out['depth'])).all()
    norms = np.linalg.norm(pixels(out['normals']), axis=-1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-3)
    assert pixels(out['saliency']).dtype == np.uint8
    values = camera.wait_values(lambda v: v['tasks_last'] == ','.join(TASKS),
                                'diagnostics after a frame with every task')
    assert values['policy'] == 'static' and values['level_policies'] == 'static'
    # the static policy runs every block on every token
    assert as_float(values['block_share_last']) == as_float(values['token_share_last']) == 1.0
    assert as_float(values['flops_last']) > 0 and as_float(values['latency_p50_ms']) > 0
    assert values['providers'] == 'CPUExecutionProvider'

    # the same frame as a JPEG on the compressed topic
    jpeg = io.BytesIO()
    PilImage.fromarray(RGB).save(jpeg, format='JPEG')
    compressed = CompressedImage(header=Header(stamp=Time(sec=42, nanosec=7),
                                               frame_id='jpeg_cam'),
                                 format='jpeg', data=array('B', jpeg.getvalue()))
    depth = camera.infer(compressed, ['depth'])['depth']
    assert (depth.header.stamp.sec, depth.width, depth.height) == (42, 64, 48)


def test_only_subscribed_tasks_are_computed_and_none_means_no_model_run(multitask, probe):
    camera = Camera(probe)
    # No task output has a subscriber: the frame is counted, the model does not run.
    before = camera.wait_values(lambda v: True, 'diagnostics')
    unwatched = as_float(before['frames_unwatched'])
    values = camera.send(frame('nobody'), lambda: (v := camera.values()) and as_float(
        v['frames_unwatched']) > unwatched and v, 'an unwatched frame')
    assert values['frames'] == before['frames']

    camera.outputs['depth'] = probe.subscribe(Image, TASK_TOPICS['depth'], OUTPUT_QOS)
    camera.infer(frame('depth_only'), ['depth'])
    values = camera.send(frame('depth_only'), lambda: (v := camera.values()) and v[
        'tasks_last'] == 'depth' and v, 'a frame that computed depth alone')
    counts = {task: as_float(values[f'frames_{task}']) for task in TASKS}
    camera.infer(frame('depth_again'), ['depth'])
    values = camera.wait_values(lambda v: as_float(v['frames_depth']) > counts['depth'],
                                'the next depth frame counted')
    for task in ('segmentation', 'normals', 'saliency'):
        assert as_float(values[f'frames_{task}']) == counts[task], task
    assert values['tasks_last'] == 'depth'


def test_level_switches_policy_without_reloading_and_drops_tasks(multitask, probe):
    camera = Camera(probe, TASKS)
    assert probe.set_parameters(NODE, {'level_override': 2})[0].successful
    camera.infer(frame('low'), TASKS)
    values = camera.wait_values(lambda v: v['tasks_last'] == ','.join(TASKS) and v[
        'policy'] == 'low', 'diagnostics with policy low')
    # export_random_model's policies drop some tokens; the static one dropped none
    assert as_float(values['token_share_last']) < 1.0
    assert as_float(values['apply_cost_max_ms']) < 5.0

    assert probe.set_parameters(NODE, {'level_override': 3})[0].successful
    camera.infer(frame('two_tasks'), ['segmentation', 'depth'])
    values = camera.wait_values(lambda v: v['tasks_last'] == 'segmentation,depth',
                                'diagnostics with two tasks')
    assert (values['policy'], values['tasks']) == ('low', 'segmentation,depth')
    assert values['level_policies'] == 'low:segmentation+depth'
    camera.infer(frame('two_tasks_2'), ['segmentation', 'depth'])
    probe.spin_for(0.3)  # the dropped tasks would have been published with the others
    for task in ('normals', 'saliency'):
        assert not [m for m in camera.outputs[task]
                    if m.header.frame_id.startswith('two_tasks')], task
    assert multitask.log().count('providers CPUExecutionProvider') == 1  # loaded once

    for profile, reason in [(['static', 'medium'], "policy 'medium' is not in the model"),
                            (['static', 'low:colour'], "unknown task 'colour'"),
                            (['static', 'low:'], 'empty task name')]:
        result = probe.set_parameters(NODE, {'level_policies': profile})[0]
        assert not result.successful and reason in result.reason, result.reason
    assert probe.set_parameters(NODE, {'level_override': 0})[0].successful
    camera.infer(frame('back_to_static'), TASKS)


def test_each_bad_input_is_an_error_and_good_frames_still_pass(multitask, probe):
    camera = Camera(probe, ['depth'])
    bad_frames = bad_camera_frames()
    for i, (msg, reason) in enumerate(bad_frames):
        values = camera.send(msg, lambda reason=reason: (v := camera.values()) and v[
            '_level'] == DiagnosticStatus.ERROR and reason in v['_message'] and v,
            f'a diagnostics ERROR saying {reason!r}')
        assert as_float(values['bad_inputs']) >= i + 1 and reason in values['last_problem']
        camera.infer(frame(f'good-{i}'), ['depth'])
    assert not [m for m in camera.outputs['depth'] if m.header.frame_id.startswith('bad-')]
    # The error clears by itself once error_hold_s (2 s here) has passed.
    camera.wait_values(lambda v: v['_level'] == DiagnosticStatus.OK, 'diagnostics back to OK')


def test_a_policy_the_model_lacks_stops_the_start_with_one_message(launch, multitask):
    model = multitask.spec.parameters['model_dir']
    node = launch(NODE, name='adamtl_bad_profile',
                  params={'model_dir': model, 'level_policies': ['static', 'medium']})
    assert node.proc.wait(TIMEOUT_S) != 0
    log = node.log()
    assert log.count('cannot start') == 1 and 'Traceback' not in log
    assert "policy 'medium' is not in the model (it has static, high, low" in log


def test_the_tasks_are_the_models_and_each_needs_a_topic_of_the_contract():
    assert task_topics(('depth', 'segmentation')) == {
        'depth': TASK_TOPICS['depth'], 'segmentation': TASK_TOPICS['segmentation']}
    assert list(task_topics(TASKS)) == list(TASKS)
    with pytest.raises(ValueError, match='tasks without a topic: colour'):
        task_topics(('depth', 'colour'))


def test_a_model_task_without_a_topic_stops_the_start_with_one_message(launch, multitask,
                                                                       tmp_path):
    model = tmp_path / 'model'
    shutil.copytree(multitask.spec.parameters['model_dir'], model)
    manifest = json.loads((model / 'manifest.json').read_text())
    manifest['config']['tasks'] = ['colour' if t == 'depth' else t
                                   for t in manifest['config']['tasks']]
    manifest['decoders']['colour'] = manifest['decoders'].pop('depth')
    (model / 'manifest.json').write_text(json.dumps(manifest))
    node = launch(NODE, name='adamtl_bad_tasks', params={'model_dir': str(model)})
    assert node.proc.wait(TIMEOUT_S) != 0
    log = node.log()
    assert log.count('cannot start') == 1 and 'Traceback' not in log
    assert 'the model has tasks without a topic: colour' in log
