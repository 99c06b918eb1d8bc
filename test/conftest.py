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


@pytest.fixture(scope='session')
def random_adamtl(tmp_path_factory):
    """Export a small untrained AdaMTL once per session: (model dir, PyTorch model)."""
    import torch

    from adaptive_perception.multitask.export import export_random_model
    from adaptive_perception.multitask.model import AdaMTL, ModelConfig
    model_dir = export_random_model(tmp_path_factory.mktemp('adamtl'), seed=0)
    checkpoint = torch.load(model_dir / 'model.pt', weights_only=False)
    model = AdaMTL(ModelConfig.from_json(checkpoint['config']))
    model.load_state_dict(checkpoint['state_dict'])
    return model_dir, model.eval()
