"""Which nodes the edge pipeline runs, with which parameters: read from one YAML file.

``config/edge.yaml`` is the single source of truth. ``launch/edge.launch.py``
(``ros2 launch``) and ``adaptive-perception launch edge`` (machines without the
``ros2`` command) both call ``load_plan`` and start exactly what it returns.

File format::

    nodes:
      <node name>:
        executable: <one of adaptive_perception.executables.EXECUTABLES>
        role: core | power_sim | power_real | camera_sim | imu_sim | perception
        parameters: {<name>: <value>, ...}
    detector_models:            # optional: detector_model:=<name>; the first is the default
      <model name>:
        <node name>: {<name>: <value>, ...}   # parameters set over the node's own

A relative ``model_dir`` parameter names a folder under the installed package's
share directory (``models/coco_fastestdet``), so one file serves a checkout, a pip
prefix and a colcon install.
"""

import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from adaptive_perception.executables import EXECUTABLES

ROLES = ('core', 'power_sim', 'power_real', 'camera_sim', 'imu_sim', 'perception')
POWER_CHOICES = {'sim': 'power_sim', 'real': 'power_real', 'none': None}
CAMERA_CHOICES = {'sim': 'camera_sim', 'none': None}
IMU_CHOICES = {'sim': 'imu_sim', 'none': None}


@dataclass(frozen=True)
class NodeSpec:
    """One node to start."""

    name: str
    executable: str
    role: str
    parameters: dict = field(default_factory=dict)

    @property
    def module(self) -> str:
        """Python module whose ``main()`` runs this node."""
        return EXECUTABLES[self.executable]


def share_dir() -> Path:
    """Where config/, launch/ and models/ are: the checkout, this prefix, or ament_index."""
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / 'config' / 'edge.yaml').is_file() and (checkout / 'package.xml').is_file():
        return checkout
    prefix_share = Path(sys.prefix) / 'share' / 'adaptive_perception'  # pip install
    if prefix_share.is_dir():
        return prefix_share
    from ament_index_python.packages import get_package_share_directory  # colcon install
    return Path(get_package_share_directory('adaptive_perception'))


def default_params_file() -> Path:
    """Return the path of the shipped config/edge.yaml."""
    return share_dir() / 'config' / 'edge.yaml'


def load_plan(params_file=None, power: str = 'sim', perception: str = 'all',
              camera: str = 'sim', imu: str = 'sim', detector_model: str | None = None,
              camera_source: str | None = None) -> list:
    """Nodes to start: core nodes, the chosen power, camera and IMU sources, perception nodes.

    ``power``: 'sim' (simulated battery and heat), 'real' (sysfs) or 'none';
    ``camera``: 'sim' (camera_source) or 'none' (a real camera publishes);
    ``imu``: 'sim' (imu_simulator) or 'none' (a real IMU driver publishes);
    ``perception``: 'all', 'none' or a comma-separated list of node names;
    ``detector_model``: a name under ``detector_models:`` (default: its first);
    ``camera_source``: what the simulated camera plays instead of its configured
    ``source`` ('generator', a folder of photos, a video file).
    Raises ValueError with the reason for a bad file or argument.
    """
    path = Path(params_file) if params_file else default_params_file()
    document = yaml.safe_load(path.read_text()) or {}
    nodes = document.get('nodes')
    if not isinstance(nodes, dict) or not nodes:
        raise ValueError(f'{path}: expected a non-empty "nodes:" mapping')
    specs = []
    for name, entry in nodes.items():
        entry = entry or {}
        executable, role = entry.get('executable'), entry.get('role')
        if executable not in EXECUTABLES:
            raise ValueError(f'{path}: node {name}: unknown executable {executable!r}; '
                             f'known: {", ".join(sorted(EXECUTABLES))}')
        if role not in ROLES:
            raise ValueError(f'{path}: node {name}: role must be one of {ROLES}, got {role!r}')
        specs.append(NodeSpec(name, executable, role, dict(entry.get('parameters') or {})))
    specs = _with_detector_model(path, specs, document.get('detector_models') or {},
                                 detector_model)
    if camera_source:
        specs = [NodeSpec(s.name, s.executable, s.role, {**s.parameters, 'source': camera_source})
                 if s.role == 'camera_sim' else s for s in specs]
    if power not in POWER_CHOICES:
        raise ValueError(f'power must be one of {sorted(POWER_CHOICES)}, got {power!r}')
    if camera not in CAMERA_CHOICES:
        raise ValueError(f'camera must be one of {sorted(CAMERA_CHOICES)}, got {camera!r}')
    if imu not in IMU_CHOICES:
        raise ValueError(f'imu must be one of {sorted(IMU_CHOICES)}, got {imu!r}')
    wanted = _perception_names(perception, [s.name for s in specs if s.role == 'perception'])
    sources = {POWER_CHOICES[power], CAMERA_CHOICES[camera], IMU_CHOICES[imu]} - {None}
    return [s for s in specs if s.role == 'core' or s.role in sources or s.name in wanted]


def _with_detector_model(path: Path, specs: list, models: dict, choice: str | None) -> list:
    """Apply the chosen detector model's parameters; relative model_dir under share_dir()."""
    choice = choice or None  # '' = not given (a launch argument's default)
    if choice is not None and not models:
        raise ValueError(f'detector_model {choice!r}: {path} has no detector_models section')
    if choice is not None and choice not in models:
        raise ValueError(f'detector_model must be one of {sorted(models)}, got {choice!r}')
    overrides = (models.get(choice) if choice is not None
                 else next(iter(models.values()), None)) or {}
    names = {s.name for s in specs}
    unknown = set(overrides) - names
    if unknown:
        raise ValueError(f'{path}: detector_models {choice!r} names unknown node(s) '
                         f'{sorted(unknown)}')
    result = []
    for spec in specs:
        parameters = {**spec.parameters, **(overrides.get(spec.name) or {})}
        model_dir = parameters.get('model_dir')
        if isinstance(model_dir, str) and model_dir and not Path(model_dir).is_absolute():
            parameters['model_dir'] = str(share_dir() / model_dir)
        result.append(NodeSpec(spec.name, spec.executable, spec.role, parameters))
    return result


def _perception_names(choice: str, available: list) -> set:
    if choice == 'all':
        return set(available)
    if choice in ('none', ''):
        return set()
    names = {n.strip() for n in choice.split(',') if n.strip()}
    unknown = names - set(available)
    if unknown:
        raise ValueError(f'unknown perception node(s) {sorted(unknown)}; in this file: '
                         f'{available or "none yet"}')
    return names


def write_ros_params(spec: NodeSpec, path: Path) -> Path:
    """Write ``spec``'s parameters as a standard ROS 2 parameters file."""
    path.write_text(yaml.safe_dump({spec.name: {'ros__parameters': spec.parameters}}))
    return path
