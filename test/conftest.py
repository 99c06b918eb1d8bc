"""Test-wide settings: DDS on loopback in a random domain; node and probe fixtures."""

import os
import random

import pytest

# Before rclpy initialises anywhere in this process or its children.
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('ROS_DOMAIN_ID', str(random.SystemRandom().randint(1, 101)))


@pytest.fixture
def probe():
    """Provide a ROS node in the test process, shut down after the test."""
    from ros_harness import Probe
    p = Probe()
    yield p
    p.close()


@pytest.fixture
def launch(tmp_path):
    """Start nodes as processes: ``launch('budget_manager', params={...})``; all stopped after."""
    from ros_harness import start_node
    started = []

    def start(executable, **kwargs):
        node = start_node(executable, tmp_path, **kwargs)
        started.append(node)
        return node

    yield start
    for node in started:
        node.stop()
