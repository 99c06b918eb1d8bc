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
