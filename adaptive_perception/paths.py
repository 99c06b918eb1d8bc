"""Where the package's data files (config/, launch/, models/) are, in every install kind.

Kept apart from the launcher so that nodes, the command line and tests find the
shipped models and config without importing launch code (and without rclpy).
"""

import sys
from pathlib import Path

PACKAGE = 'adaptive_perception'


def share_dir() -> Path:
    """Where config/, launch/ and models/ are: the checkout, this prefix, or ament_index."""
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / 'config' / 'edge.yaml').is_file() and (checkout / 'package.xml').is_file():
        return checkout
    prefix_share = Path(sys.prefix) / 'share' / PACKAGE  # pip install
    if prefix_share.is_dir():
        return prefix_share
    from ament_index_python.packages import get_package_share_directory  # colcon install
    return Path(get_package_share_directory(PACKAGE))


def default_params_file() -> Path:
    """Return the path of the shipped config/edge.yaml."""
    return share_dir() / 'config' / 'edge.yaml'


def fastdds_profile_file() -> Path:
    """Return the shipped Fast DDS profile that lets camera-sized frames through."""
    return share_dir() / 'config' / 'fastdds_large_data.xml'
