"""Pip packaging of adaptive_perception's Python sources (the pip world).

The ROS 2 messages are built by CMake (``make msgs``) into the same prefix; this
file installs the Python package, the ``adaptive-perception`` command and, like an
ament_python package, the ament index marker, package.xml and the share/ files.
"""

import os
import xml.etree.ElementTree as ET

from setuptools import find_packages, setup

PACKAGE_NAME = 'adaptive_perception'
HERE = os.path.dirname(os.path.abspath(__file__))
SHARE_DIRS = ('config', 'launch', 'models')


def package_version():
    """Return the version from package.xml, the single source of truth."""
    return ET.parse(os.path.join(HERE, 'package.xml')).getroot().findtext('version').strip()


def share_data_files():
    """Return data_files entries installing config/, launch/, models/ under share/."""
    entries = []
    for top in SHARE_DIRS:
        for dirpath, dirnames, filenames in os.walk(os.path.join(HERE, top)):
            dirnames[:] = sorted(d for d in dirnames if d != '__pycache__')
            rel_dir = os.path.relpath(dirpath, HERE)
            files = sorted(
                os.path.join(rel_dir, name) for name in filenames if not name.endswith('.pyc')
            )
            if files:
                entries.append((os.path.join('share', PACKAGE_NAME, rel_dir), files))
    return entries


setup(
    name=PACKAGE_NAME,
    version=package_version(),
    description='Runtime-adaptive perception for ROS 2: compute follows the energy budget.',
    license='Apache-2.0',
    packages=find_packages(include=[PACKAGE_NAME, PACKAGE_NAME + '.*']),
    python_requires='>=3.10',
    install_requires=[
        'numpy>=1.24',
        'pyyaml>=6.0',
        'matplotlib>=3.7',
        'rosbags>=0.10',
        'onnxruntime>=1.17',
        'pycocotools>=2.0.7',
        'scikit-learn>=1.3',
        'scipy>=1.10',
        'networkx>=3.1',
        'pillow>=10',
        'opencv-python-headless>=4.8',
    ],
    # Training and export only; inference runs on ONNX Runtime. Pin the CPU build
    # (requirements/ml.txt) where no GPU is wanted.
    extras_require={'train': ['torch>=2.1', 'onnx>=1.15', 'onnxscript>=0.1', 'skl2onnx>=1.16']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE_NAME]),
        ('share/' + PACKAGE_NAME, ['package.xml']),
        *share_data_files(),
    ],
    entry_points={
        'console_scripts': [
            'adaptive-perception = adaptive_perception.cli:main',
        ],
    },
    zip_safe=False,
)
