"""Where the package's data files (config/, launch/, models/) are, in every install kind.

Kept apart from the launcher so that nodes, the command line and tests find the
shipped models and config without importing launch code (and without rclpy).
"""

import sys
from pathlib import Path

PACKAGE = 'adaptive_perception'


def share_dir() -> Path:
    """Where config/, launch/ and models/ are: the checkout, this install, or ament_index.

    An installed package finds the share/ folder of its own install prefix first
    (``<prefix>/lib/pythonX.Y/site-packages/adaptive_perception`` -> ``<prefix>/share``),
    so that a colcon install does not read the files of a pip install in its underlay.
    """
    here = Path(__file__).resolve()
    checkout = here.parents[1]
    if (checkout / 'config' / 'edge.yaml').is_file() and (checkout / 'package.xml').is_file():
        return checkout
    if len(here.parents) > 4 and here.parents[3].name == 'lib':
        own_share = here.parents[4] / 'share' / PACKAGE
        if (own_share / 'config' / 'edge.yaml').is_file():
            return own_share
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
