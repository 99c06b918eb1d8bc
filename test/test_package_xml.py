"""package.xml declares every runtime import with a real rosdep key, checked offline.

The keys come from vendored copies of ros/rosdistro (rosdep's own database needs
the network): a key is valid when it is a top-level key of
rosdep/base.yaml or python.yaml, or a ROS package released in Humble, Jazzy and Kilted.
"""

import ast
import sys
from pathlib import Path

import pytest
import yaml
from catkin_pkg.package import parse_package

REPO = Path(__file__).resolve().parents[1]
ROSDISTRO = REPO.parent / 'shared' / 'vendor' / 'rosdistro'
DISTRIBUTIONS = ('humble', 'jazzy', 'kilted')
LOADER = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)  # the files are large

# Python import -> the rosdep key that provides it (a ROS package: its own name).
RUNTIME_KEYS = {
    'numpy': 'python3-numpy', 'yaml': 'python3-yaml', 'onnxruntime': 'python3-onnxruntime-pip',
    'cv2': 'python3-opencv', 'scipy': 'python3-scipy', 'PIL': 'python3-pil',
    'matplotlib': 'python3-matplotlib', 'sklearn': 'python3-sklearn',
    'networkx': 'python3-networkx', 'rosbags': 'python3-rosbags-pip',
    'rclpy': 'rclpy', 'rcl_interfaces': 'rcl_interfaces', 'std_msgs': 'std_msgs',
    'sensor_msgs': 'sensor_msgs', 'diagnostic_msgs': 'diagnostic_msgs',
    'builtin_interfaces': 'builtin_interfaces', 'ament_index_python': 'ament_index_python',
    'launch': 'launch', 'launch_ros': 'launch_ros', 'vision_msgs': 'vision_msgs',
}
# Training / export / COCO evaluation only: torch is a test dependency (the tests train
# smoke models); the rest have no rosdep key and package.xml must say so.
TRAINING_ONLY = {'torch': 'python3-torch', 'onnx': None, 'onnxscript': None,
                 'pycocotools': None, 'skl2onnx': None}


@pytest.fixture(scope='module')
def rosdistro():
    if not ROSDISTRO.is_dir():
        pytest.skip(f'{ROSDISTRO} (copies of ros/rosdistro) is not here')
    keys = set()
    for name in ('base.yaml', 'python.yaml'):
        keys |= set(yaml.load((ROSDISTRO / 'rosdep' / name).read_text(), Loader=LOADER))
    released = {}
    for distro in DISTRIBUTIONS:
        repos = yaml.load((ROSDISTRO / distro / 'distribution.yaml').read_text(), Loader=LOADER)
        packages = set()
        for repo_name, repo in repos['repositories'].items():
            release = repo.get('release')
            if release:
                packages |= set(release.get('packages') or [repo_name])
        released[distro] = packages
    return keys, released


def _package():
    return parse_package(str(REPO / 'package.xml'))


def _imports() -> set:
    names = set()
    for path in (REPO / 'adaptive_perception').rglob('*.py'):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split('.')[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split('.')[0])
    for path in (REPO / 'launch').glob('*.py'):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module.split('.')[0])
    return names - set(sys.stdlib_module_names) - {'adaptive_perception'}


def test_every_dependency_is_a_real_rosdep_key(rosdistro):
    keys, released = rosdistro
    package = _package()
    deps = {d.name for d in (package.build_depends + package.buildtool_depends
                             + package.exec_depends + package.test_depends)}
    assert deps
    unknown = []
    for dep in sorted(deps):
        if dep in keys:
            continue
        missing = [d for d in DISTRIBUTIONS if dep not in released[d]]
        if missing:
            unknown.append((dep, missing))
    assert not unknown, f'not a rosdep key nor a released ROS package: {unknown}'


def test_every_runtime_import_is_declared():
    package = _package()
    run = {d.name for d in package.exec_depends}
    test = {d.name for d in package.test_depends}
    text = (REPO / 'package.xml').read_text()
    imports = _imports()
    unmapped = imports - set(RUNTIME_KEYS) - set(TRAINING_ONLY)
    assert not unmapped, f'imported but not in RUNTIME_KEYS/TRAINING_ONLY: {unmapped}'
    undeclared = {m: RUNTIME_KEYS[m] for m in imports & set(RUNTIME_KEYS)
                  if RUNTIME_KEYS[m] not in run}
    assert not undeclared, f'runtime imports missing from package.xml: {undeclared}'
    for module, key in TRAINING_ONLY.items():
        if module in imports:
            assert (key in test) if key else (module in text), module
