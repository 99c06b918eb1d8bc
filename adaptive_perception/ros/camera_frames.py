"""Camera frames in, newest first: what every camera-fed node shares.

``CameraFrames`` owns a node's camera input: the parameters ``image_topic``,
``compressed_topic``, ``qos``, ``max_pixels`` and ``error_hold_s``, the
subscriptions, decoding into RGB, and one worker thread. The node only says what
to do with a decoded frame.

Newest frame wins: the input queue holds one message, the subscription callbacks
only keep the latest one, and the worker processes whatever is newest when it is
free, so a slow frame never builds a queue. Frames the camera published that were
never processed (replaced in the queue or in the slot) count as dropped.
The worker hands each frame's result and every problem to the executor thread:
statistics and diagnostics are only touched there. A problem wakes the executor at
once (a guard condition: the node says so in its diagnostics now); a frame's result
waits in a queue until the node next reads its statistics (``collect``, called by
``LevelFollowing`` on its timers). Waking the executor for every frame cost about as
much CPU as the rest of the node's own per-frame work, for statistics nobody reads
between two diagnostics.
"""

import threading
import time
from collections import deque
from typing import Any, Callable

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image

from adaptive_perception.ros.interfaces import CAMERA_TOPIC, camera_qos
from adaptive_perception.ros.params import Param, declare, on_change
from adaptive_perception.runtime.images import (
    MAX_PIXELS,
    BadImage,
    compressed_to_rgb,
    image_to_rgb,
)

SETTINGS = ['max_pixels', 'error_hold_s']  # the ones that take effect at run time


class CameraFrames:
    """The camera input of ``node``: subscriptions, newest-frame worker, input problems.

    ``handle(msg, rgb, start)`` runs on the worker thread for every decoded frame
    (``start``: ``time.perf_counter()`` before decoding, so latencies include it); it
    processes and publishes, and returns a result for ``on_result``, which runs on
    the executor thread when ``collect()`` is called there. ``on_problem()`` runs there
    too, as soon as a bad input or a failed frame was recorded (results before it are
    collected first): the node says so in its diagnostics at once.
    Construct it in the node's ``__init__`` (ValueError on a bad ``qos``), call
    ``start()`` once the node is complete and ``stop()`` from ``destroy_node``.
    """

    def __init__(self, node: Node, handle: Callable[[Any, np.ndarray, float], Any],
                 on_result: Callable[[Any], None], on_problem: Callable[[], None],
                 thread_name: str):
        self._node = node
        self._handle = handle
        self._on_result = on_result
        self._on_problem = on_problem
        self._lock = threading.Lock()
        self._pending = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        # Started by start(); stop() may also meet it unstarted (the node failed to start).
        self._worker = threading.Thread(target=self._work, name=thread_name, daemon=True)
        values = declare(node, [
            Param('image_topic', CAMERA_TOPIC, 'sensor_msgs/Image input topic.',
                  read_only=True),
            Param('compressed_topic', '',
                  "sensor_msgs/CompressedImage input topic (jpeg/png); '' = none.",
                  read_only=True),
            Param('qos', 'sensor_data',
                  "Input QoS: 'sensor_data' (best effort) or 'reliable'.", read_only=True),
            Param('max_pixels', MAX_PIXELS, 'Larger input images are refused.', 1, 1 << 40),
            Param('error_hold_s', 5.0,
                  'Diagnostics stay ERROR this long (s) after a bad input.', 0.0, 3600.0),
        ])
        self.image_topic = values['image_topic']
        self.compressed_topic = values['compressed_topic']
        self._settings = {name: values[name] for name in SETTINGS}
        on_change(node, SETTINGS, lambda candidate: None,  # descriptors check the ranges
                  self._set_settings)
        self._qos = camera_qos(values['qos'])
        self.frames_dropped = 0
        self._last_sequence = {}  # publisher gid -> last publication sequence number
        self.bad_inputs = 0
        self._problem, self._problem_time = '', None
        self._results = deque()   # worker -> executor thread: handle()'s results
        self._problems = deque()  # worker -> executor thread: (is a bad input, reason)
        self._handoff = node.create_guard_condition(self._take)

    def _set_settings(self, candidate: dict) -> None:
        self._settings = {**self._settings, **candidate}

    def start(self) -> None:
        """Subscribe to the camera and start the worker."""
        self._node.create_subscription(Image, self.image_topic, self._on_image, self._qos)
        if self.compressed_topic:
            self._node.create_subscription(CompressedImage, self.compressed_topic,
                                           self._on_image, self._qos)
        self._worker.start()

    def describe(self) -> str:
        """Name the input topics, for the node's start-up line."""
        return self.image_topic + (f' + {self.compressed_topic}' if self.compressed_topic
                                   else '')

    def decode(self, msg) -> np.ndarray:
        """Image or CompressedImage -> RGB uint8 (H, W, 3); BadImage says what is wrong."""
        max_pixels = self._settings['max_pixels']
        if isinstance(msg, CompressedImage):
            return compressed_to_rgb(msg.format, msg.data, max_pixels)
        return image_to_rgb(msg.encoding, msg.width, msg.height, msg.step, msg.data,
                            max_pixels)

    # -- the frame path ------------------------------------------------------------
    def _on_image(self, msg, info) -> None:
        # Dropped = replaced here before the worker took it, or never seen at all:
        # the depth-1 queue keeps only the newest, so count the publisher's sequence gaps.
        sequence, gid = info.get('publication_sequence_number'), info.get('publisher_gid')
        if sequence is not None and gid is not None:
            key = bytes(gid['data'])
            last = self._last_sequence.get(key)
            if last is not None and sequence > last + 1:
                self.frames_dropped += sequence - last - 1
            self._last_sequence[key] = sequence
        with self._lock:
            if self._pending is not None:
                self.frames_dropped += 1
            self._pending = msg
        self._wake.set()

    def _work(self) -> None:
        while True:
            self._wake.wait()
            if self._stop.is_set():
                return
            with self._lock:
                msg, self._pending = self._pending, None
                self._wake.clear()
            if msg is None:
                continue
            try:
                start = time.perf_counter()
                try:
                    rgb = self.decode(msg)
                except BadImage as error:
                    self._problems.append((True, f'bad input: {error.reason}'))
                else:
                    self._results.append(self._handle(msg, rgb, start))
                    continue  # collected when the node reads its statistics
            except Exception as error:  # whatever it is, one frame must not end the worker
                if not self._node.context.ok():
                    return  # shutting down: the context went away mid-frame
                self._node.get_logger().error(f'processing a frame failed: {error!r}')
                self._problems.append((False, f'processing failed: {error!r}'))
            self._handoff.trigger()

    # -- results and problems (executor thread) ----------------------------------
    def collect(self) -> None:
        """Pass the results of the frames finished so far to ``on_result`` (executor thread)."""
        while self._results:
            self._on_result(self._results.popleft())

    def _take(self) -> None:
        self.collect()
        if not self._problems:
            return
        while self._problems:
            is_bad_input, self._problem = self._problems.popleft()
            if is_bad_input:
                self.bad_inputs += 1
        self._problem_time = time.monotonic()
        self._node.get_logger().warning(self._problem, throttle_duration_sec=5.0)
        self._on_problem()  # an error is news: say it now

    def health(self) -> tuple:
        """(2, the last problem) for ``error_hold_s`` after it, else (0, '')."""
        if (self._problem_time is not None
                and time.monotonic() - self._problem_time <= self._settings['error_hold_s']):
            return 2, self._problem
        return 0, ''

    def values(self) -> dict:
        """Diagnostics values: frames_dropped, bad_inputs, last_problem."""
        return {'frames_dropped': self.frames_dropped, 'bad_inputs': self.bad_inputs,
                'last_problem': self._problem}

    def stop(self) -> None:
        """Stop the worker; call before the node's publishers go away."""
        self._stop.set()
        self._wake.set()
        if self._worker.is_alive():
            self._worker.join()
