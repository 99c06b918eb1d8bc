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
"""

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from adaptive_perception.executables import EXECUTABLES
from adaptive_perception.paths import default_params_file, share_dir  # noqa: F401 (re-exported)

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


def load_plan(params_file=None, power: str = 'sim', perception: str = 'all',
              camera: str = 'sim', imu: str = 'sim') -> list:
    """Nodes to start: core nodes, the chosen power, camera and IMU sources, perception nodes.

    ``power``: 'sim' (simulated battery and heat), 'real' (sysfs) or 'none';
    ``camera``: 'sim' (camera_source) or 'none' (a real camera publishes);
    ``imu``: 'sim' (imu_simulator) or 'none' (a real IMU driver publishes);
    ``perception``: 'all', 'none' or a comma-separated list of node names.
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
    if power not in POWER_CHOICES:
        raise ValueError(f'power must be one of {sorted(POWER_CHOICES)}, got {power!r}')
    if camera not in CAMERA_CHOICES:
        raise ValueError(f'camera must be one of {sorted(CAMERA_CHOICES)}, got {camera!r}')
    if imu not in IMU_CHOICES:
        raise ValueError(f'imu must be one of {sorted(IMU_CHOICES)}, got {imu!r}')
    wanted = _perception_names(perception, [s.name for s in specs if s.role == 'perception'])
    sources = {POWER_CHOICES[power], CAMERA_CHOICES[camera], IMU_CHOICES[imu]} - {None}
    return [s for s in specs if s.role == 'core' or s.role in sources or s.name in wanted]


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
