"""``run_node``: how every executable's main() ends."""

import random

import pytest
import rclpy
from rclpy.node import Node
from std_msgs.msg import String

from adaptive_perception.ros.run import run_node


@pytest.fixture(autouse=True)
def local_ros(monkeypatch):
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    monkeypatch.setenv('ROS_DOMAIN_ID', str(random.randint(1, 200)))
    yield
    rclpy.try_shutdown()


class PublishesAfterShutdown(Node):
    """A timer callback that meets a context shut down under it (Ctrl-C mid-publish)."""

    def __init__(self):
        super().__init__('publishes_after_shutdown')
        self.publisher = self.create_publisher(String, 'run_node_test', 1)
        self.create_timer(0.01, self.tick)

    def tick(self):
        rclpy.shutdown()
        self.publisher.publish(String(data='late'))  # raises: the context is invalid


class FailsWhileRunning(Node):
    def __init__(self):
        super().__init__('fails_while_running')
        self.create_timer(0.01, self.tick)

    def tick(self):
        raise RuntimeError('a real bug')


def test_a_publish_that_races_shutdown_ends_cleanly():
    assert run_node(PublishesAfterShutdown) == 0


def test_an_error_while_running_still_fails():
    with pytest.raises(RuntimeError, match='a real bug'):
        run_node(FailsWhileRunning)


HANGS_IN_SHUTDOWN = '''
import sys, time
import rclpy
from rclpy.node import Node
from adaptive_perception.ros import run

run.SHUTDOWN_DEADLINE_S = 1.0


class HangsInShutdown(Node):
    def __init__(self):
        super().__init__('hangs_in_shutdown')
        self.create_timer(0.05, lambda: print('spinning', flush=True))

    def destroy_node(self):
        time.sleep(60)  # a stuck teardown


sys.exit(run.run_node(HangsInShutdown))
'''


def test_a_node_stuck_in_its_shutdown_exits_with_where_it_hung(tmp_path):
    """It ignores the later signals, so only its own deadline ends it: code 1 and stacks."""
    import os
    import signal
    import subprocess
    import sys
    import time
    log = open(tmp_path / 'node.log', 'w+')
    proc = subprocess.Popen([sys.executable, '-c', HANGS_IN_SHUTDOWN], stdout=log,
                            stderr=subprocess.STDOUT, env={**os.environ})
    try:
        deadline = time.monotonic() + 60
        while 'spinning' not in (tmp_path / 'node.log').read_text():
            assert proc.poll() is None and time.monotonic() < deadline, \
                (tmp_path / 'node.log').read_text()
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)  # ignored: the node is already stopping
        code = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = (tmp_path / 'node.log').read_text()
    assert code == 1, text
    assert 'Timeout' in text and 'in destroy_node' in text, text
