"""Test-wide settings: DDS on loopback in a random domain; node and probe fixtures."""

import os
import random

import pytest

# Before rclpy initialises anywhere in this process or its children.
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('ROS_DOMAIN_ID', str(random.SystemRandom().randint(1, 101)))
# What both launchers give every node (camera-sized frames get through); the test process
# and the nodes it starts itself use it too, as a camera driver beside the pipeline must.
os.environ.setdefault('FASTDDS_DEFAULT_PROFILES_FILE', os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'config',
    'fastdds_large_data.xml'))


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


@pytest.fixture(scope='session')
def colcon_install(tmp_path_factory):
    """Build a copy of the repository with colcon once per session; return install/<pkg>."""
    from ros_tools import build_workspace
    return build_workspace(tmp_path_factory.mktemp('colcon_ws'))


@pytest.fixture
def ros_tools():
    """Require the upstream ROS 2 launch stack and CLI (skip only where none can exist)."""
    from ros_tools import require_ros_tools
    require_ros_tools()
