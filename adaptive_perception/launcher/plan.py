"""Which nodes the edge pipeline runs, with which parameters: read from one YAML file.

``config/edge.yaml`` is the single source of truth. ``launch/edge.launch.py``
(``ros2 launch``) and ``adaptive-perception launch edge`` (machines without the
``ros2`` command) both call ``load_plan`` and start exactly what it returns.

File format::

    nodes:
      <node name>:
        executable: <one of adaptive_perception.executables.EXECUTABLES>
        role: core | power_sim | power_real | camera_sim | imu_sim | perception
        respawn: true | false        # restart the node when it exits (see RESPAWN_ROLES)
        respawn_delay: <seconds>     # before a restart (default 2.0)
        respawn_max_per_minute: <n>  # restarts within a minute before giving up (default 5)
        parameters: {<name>: <value>, ...}

``ros2 launch`` passes ``respawn`` / ``respawn_delay`` to ``launch_ros`` and the
limit as ``respawn_max_retries`` (launch counts restarts over the whole run, it has
no per-minute window); the pip-world launcher applies the per-minute limit and
backs off (the delay doubles after each exit that came soon after a start).
    detector_models:            # optional: detector_model:=<name>; the first is the default
      <model name>:
        <node name>: {<name>: <value>, ...}   # parameters set over the node's own
    detector_model_for_camera:  # optional: the default per camera choice instead
      <sim|none>: <model name>

A relative ``model_dir`` parameter names a folder under the installed package's
share directory (``models/coco_fastestdet``), so one file serves a checkout, a pip
prefix and a colcon install.
"""

from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from adaptive_perception.executables import EXECUTABLES
from adaptive_perception.paths import default_params_file, share_dir  # noqa: F401 (re-exported)

ROLES = ('core', 'power_sim', 'power_real', 'camera_sim', 'imu_sim', 'perception')
POWER_CHOICES = {'sim': 'power_sim', 'real': 'power_real', 'none': None}
CAMERA_CHOICES = {'sim': 'camera_sim', 'none': None}
IMU_CHOICES = {'sim': 'imu_sim', 'none': None}
# Nodes restarted by default when they die: what the robot's budget and perception need.
RESPAWN_ROLES = ('core', 'power_sim', 'power_real', 'perception')
DEFAULT_RESPAWN_DELAY_S = 2.0
DEFAULT_RESPAWN_MAX_PER_MINUTE = 5


@dataclass(frozen=True)
class NodeSpec:
    """One node to start."""

    name: str
    executable: str
    role: str
    parameters: dict = field(default_factory=dict)
    respawn: bool = False
    respawn_delay: float = DEFAULT_RESPAWN_DELAY_S
    respawn_max_per_minute: int = DEFAULT_RESPAWN_MAX_PER_MINUTE

    @property
    def module(self) -> str:
        """Python module whose ``main()`` runs this node."""
        return EXECUTABLES[self.executable]


def load_plan(params_file=None, power: str = 'sim', perception: str = 'all',
              camera: str = 'sim', imu: str = 'sim', detector_model: str | None = None,
              camera_source: str | None = None) -> list:
    """Nodes to start: core nodes, the chosen power, camera and IMU sources, perception nodes.

    ``power``: 'sim' (simulated battery and heat), 'real' (sysfs) or 'none';
    ``camera``: 'sim' (camera_source) or 'none' (a real camera publishes);
    ``imu``: 'sim' (imu_simulator) or 'none' (a real IMU driver publishes);
    ``perception``: 'all', 'none' or a comma-separated list of node names;
    ``detector_model``: a name under ``detector_models:`` (default: the one
    ``detector_model_for_camera:`` names for ``camera``, else the first);
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
        specs.append(NodeSpec(name, executable, role, dict(entry.get('parameters') or {}),
                              **_respawn_keys(path, name, entry, role)))
    implicit = not detector_model
    if implicit:  # not given: the one the file names for this camera, if any
        detector_model = (document.get('detector_model_for_camera') or {}).get(camera)
    specs = _with_detector_model(path, specs, document.get('detector_models') or {},
                                 detector_model, implicit)
    if camera_source:
        specs = [replace(s, parameters={**s.parameters, 'source': camera_source})
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


def _respawn_keys(path, name, entry: dict, role: str) -> dict:
    respawn = entry.get('respawn', role in RESPAWN_ROLES)
    delay = entry.get('respawn_delay', DEFAULT_RESPAWN_DELAY_S)
    limit = entry.get('respawn_max_per_minute', DEFAULT_RESPAWN_MAX_PER_MINUTE)
    if not isinstance(respawn, bool):
        raise ValueError(f'{path}: node {name}: respawn must be true or false, got {respawn!r}')
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not 0 <= delay <= 3600:
        raise ValueError(f'{path}: node {name}: respawn_delay must be seconds in [0, 3600], '
                         f'got {delay!r}')
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f'{path}: node {name}: respawn_max_per_minute must be an integer '
                         f'>= 1, got {limit!r}')
    return {'respawn': respawn, 'respawn_delay': float(delay), 'respawn_max_per_minute': limit}
def _with_detector_model(path: Path, specs: list, models: dict, choice: str | None,
                         implicit: bool = False) -> list:
    """Apply the chosen detector model's parameters; relative model_dir under share_dir().

    A choice made only by the camera (``implicit``) leaves a node whose own entry names
    a ``model_dir`` alone: a model pinned in the file is not swapped behind its back.
    """
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
        own = overrides.get(spec.name) or {}
        if implicit and 'model_dir' in spec.parameters:
            own = {}
        parameters = {**spec.parameters, **own}
        model_dir = parameters.get('model_dir')
        if isinstance(model_dir, str) and model_dir and not Path(model_dir).is_absolute():
            parameters['model_dir'] = str(share_dir() / model_dir)
        result.append(replace(spec, parameters=parameters))
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
