"""``adamtl_multitask``: camera images in, one dense map per task out, at the level's cost.

The execution level picks an entry of ``level_policies``: a resident policy
(static = every block and token; high / low = the learned budget targets) and the
tasks allowed at that level. Per frame the policy still decides which blocks and
tokens run. A task is computed only when the level allows it and its topic has a
subscriber; with none of those the model does not run at all (``frames_unwatched``).
The camera input (newest frame wins, dropped frames, bad images) is
``ros.camera_frames.CameraFrames``; every output copies the input's header and
has the input's size.

The tasks are the loaded model's (its manifest), each published on its topic of the
contract (``TASK_TOPICS``): a model with a task the contract has no topic or image
encoding for does not start.
"""

import time
from typing import NamedTuple

from rclpy.node import Node
from sensor_msgs.msg import Image

from adaptive_perception.multitask.engine import MultiTaskEngine, MultiTaskResult
from adaptive_perception.multitask.levels import DEFAULT_LEVEL_POLICIES, parse_level_choice
from adaptive_perception.paths import share_dir
from adaptive_perception.ros.camera_frames import CameraFrames
from adaptive_perception.ros.interfaces import OUTPUT_QOS, TASK_TOPICS
from adaptive_perception.ros.level_following import LevelFollowing
from adaptive_perception.ros.params import declare, onnx_model_params
from adaptive_perception.ros.run import run_node
from adaptive_perception.runtime.images import array_to_image_fields

# segmentation: class ids; depth: metres; normals: unit vectors; saliency: 0..255
TASK_ENCODINGS = {'segmentation': 'mono8', 'depth': '32FC1', 'normals': '32FC3',
                  'saliency': 'mono8'}
LEVEL_POLICIES = list(DEFAULT_LEVEL_POLICIES)


class FrameResult(NamedTuple):
    """What the worker hands the executor thread for one published frame."""

    end: float                 # time.monotonic() when the outputs were published
    latency_s: float           # from the frame's arrival to its outputs
    tasks: tuple               # the tasks computed and published
    result: MultiTaskResult    # FLOPs, block and token shares, precision


def task_topics(tasks) -> dict:
    """Map each of a model's ``tasks`` to its topic; ValueError naming a task without one.

    The topics and their image encodings are the contract's: a task the model has and the
    contract lacks would have nowhere to go.
    """
    unknown = [task for task in tasks if task not in TASK_TOPICS or task not in TASK_ENCODINGS]
    if unknown:
        raise ValueError(f'the model has tasks without a topic: {", ".join(unknown)} (topics '
                         f'exist for {", ".join(TASK_TOPICS)})')
    return {task: TASK_TOPICS[task] for task in tasks}


class AdaMtlMultitask(Node):
    """Runs the AdaMTL engine on the newest camera frame for the watched, allowed tasks."""

    def __init__(self, **kwargs):
        super().__init__('adamtl_multitask', **kwargs)
        self.camera = None  # destroy_node may meet a node that failed to start
        values = declare(self, onnx_model_params(
            str(share_dir() / 'models' / 'adamtl'),
            'Exported AdaMTL model directory (manifest.json + ONNX graphs).'))
        self.frames_unwatched = 0
        self.task_frames = {}  # frames published per task of the model
        self._totals = {'flops': 0, 'block_share': 0.0, 'token_share': 0.0}
        self._last = {'flops': 0, 'block_share': 0.0, 'token_share': 0.0, 'tasks': ()}
        self._active = None  # (LevelChoice, level), swapped whole by _apply

        try:  # a bad model directory or parameter: one clear message, exit code 1
            self.camera = CameraFrames(self, self._handle, self._record,
                                       lambda: self.following.publish_diagnostics(),
                                       'adamtl_worker')
            self.engine = MultiTaskEngine(values['model_dir'], values['providers'],
                                          values['threads'], warn=self.get_logger().warning)
            topics = task_topics(self.engine.tasks)
            self.task_frames = dict.fromkeys(self.engine.tasks, 0)
            self.following = LevelFollowing(
                self, profile_param='level_policies', profile_default=LEVEL_POLICIES,
                profile_description="Policy per level (index = level): '<policy>' or "
                                    "'<policy>:<task>+<task>...' to compute only those tasks "
                                    'there; policies and tasks come from the model '
                                    f'({", ".join(self.engine.tasks)}).',
                parse_entry=self._parse_level, apply=self._apply,
                extra_values=self._diagnostic_values, health=self.camera.health,
                collect=self.camera.collect)
        except ValueError as error:
            self.get_logger().fatal(f'cannot start: {error}')
            raise SystemExit(1) from None
        self.engine.warm_up()

        # Only the model's tasks get a topic; a level can narrow them further.
        self._outputs = {task: self.create_publisher(Image, topic, OUTPUT_QOS)
                         for task, topic in topics.items()}
        self.camera.start()
        self.get_logger().info(
            f'model {self.engine.model_dir} (tasks {", ".join(self.engine.tasks)}; policies '
            f'{", ".join(self.engine.policies)}), providers {", ".join(self.engine.providers)}, '
            f'input {self.camera.describe()}')

    # -- parameters -------------------------------------------------------------
    def _parse_level(self, text):
        """Parse a level_policies entry; a policy the loaded model lacks is refused too."""
        choice = parse_level_choice(text)
        if choice.policy not in self.engine.policies:
            raise ValueError(f'level policy entry {str(text).strip()!r}: policy '
                             f'{choice.policy!r} is not in the model (it has '
                             f'{", ".join(self.engine.policies)})')
        if choice.precision not in self.engine.precisions:
            raise ValueError(f'level policy entry {str(text).strip()!r}: the model has no '
                             f'{choice.precision} graphs (it has '
                             f'{", ".join(self.engine.precisions)})')
        return choice

    def _apply(self, choice, applied) -> None:
        self._active = (choice, applied.level)

    def _allowed(self, choice) -> tuple:
        """Return the model's tasks that ``choice`` allows, in the model's order."""
        return tuple(task for task in self.engine.tasks
                     if choice.tasks is None or task in choice.tasks)

    # -- the frame path ------------------------------------------------------------
    def _handle(self, msg, rgb, start: float) -> FrameResult | None:
        """Worker thread: infer the watched tasks and publish them; None if none is watched."""
        choice, _ = self._active
        tasks = tuple(task for task in self._allowed(choice)
                      if self._outputs[task].get_subscription_count() > 0)
        if not tasks:
            return None
        result = self.engine.infer(rgb, choice.policy, tasks, precision=choice.precision)
        images = {task: Image(header=msg.header,
                              **array_to_image_fields(result.outputs[task], TASK_ENCODINGS[task]))
                  for task in tasks}
        latency_s = time.perf_counter() - start
        for task, image in images.items():
            self._outputs[task].publish(image)
        return FrameResult(time.monotonic(), latency_s, tasks, result)

    # -- statistics and diagnostics (executor thread) ----------------------------
    def _record(self, finished: FrameResult | None) -> None:
        if finished is None:
            self.frames_unwatched += 1
            return
        self.following.stats.record(finished.end, finished.latency_s)
        for task in finished.tasks:
            self.task_frames[task] += 1
        result = finished.result
        self._last = {'flops': result.flops, 'block_share': result.block_share,
                      'token_share': result.token_share, 'tasks': finished.tasks,
                      'precision': result.precision}
        for key in self._totals:
            self._totals[key] += self._last[key]

    def _diagnostic_values(self) -> dict:
        frames = self.following.stats.frames
        choice = self._active[0]
        values = {'policy': choice.policy, 'tasks': ','.join(self._allowed(choice)),
                  'tasks_last': ','.join(self._last['tasks']), 'precision': choice.precision,
                  'precision_last': self._last.get('precision', '')}
        for key in ('block_share', 'token_share', 'flops'):
            values[f'{key}_last'] = self._last[key]
            values[f'{key}_mean'] = self._totals[key] / frames if frames else 0.0
        values.update({f'frames_{task}': count for task, count in self.task_frames.items()})
        return {**values, 'frames_unwatched': self.frames_unwatched, **self.camera.values(),
                'providers': ','.join(self.engine.providers),
                'model_dir': str(self.engine.model_dir)}

    def destroy_node(self):
        """Stop the worker before the node's publishers go away."""
        if self.camera is not None:
            self.camera.stop()
        return super().destroy_node()


def main(args=None):
    """Run ``adamtl_multitask`` until Ctrl-C or shutdown."""
    return run_node(AdaMtlMultitask, args)


if __name__ == '__main__':
    raise SystemExit(main())
