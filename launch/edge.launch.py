"""Launch the edge pipeline: ``ros2 launch adaptive_perception edge.launch.py``.

The nodes and their parameters come from one YAML file (default: the installed
``config/edge.yaml``) through ``adaptive_perception.launcher.plan.load_plan``, the
same function ``adaptive-perception launch edge`` uses where no ``ros2`` exists.

Arguments:
  params_file:=<path>            nodes and parameters (default config/edge.yaml)
  power:=sim|real|none           simulated battery/heat, Linux sysfs, or none
  camera:=sim|none               camera_source (generated scenes) or a real camera
  imu:=sim|none                  imu_simulator (simulated accelerometer) or a real IMU
  perception:=all|none|a,b       which perception nodes to start
  namespace:=<ns>                put every node, topic and /diagnostics under /<ns>
  fastdds_profile:=<path>        Fast DDS profile given to every node (default: the
                                 shipped config/fastdds_large_data.xml; '' = none);
                                 FASTDDS_DEFAULT_PROFILES_FILE set by the user wins
  detector_model:=scenes|coco    generated-scenes AdaCon, or the COCO model for a real camera
                                 (default: scenes with camera:=sim, coco with camera:=none)
  camera_source:=<path>          what camera_source plays: a folder of photos, a video file
                                 (default: edge.yaml's, the scene generator)

Each node is restarted by the rules in the YAML file (respawn, respawn_delay,
respawn_max_per_minute) and ends itself if this launch process disappears; SIGTERM
to the launch process stops the nodes first (``adaptive_perception.launcher.ros_launch``).
"""

from launch.actions import DeclareLaunchArgument, GroupAction, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node, PushRosNamespace

from adaptive_perception.launcher.plan import load_plan
from adaptive_perception.launcher.ros_launch import guard_signals, node_options
from adaptive_perception.middleware import middleware_env
from adaptive_perception.paths import default_params_file, fastdds_profile_file
from launch import LaunchDescription


def _argument(context, name: str) -> str:
    return LaunchConfiguration(name).perform(context)


def _nodes(context):
    plan = load_plan(_argument(context, 'params_file'), power=_argument(context, 'power'),
                     perception=_argument(context, 'perception'),
                     camera=_argument(context, 'camera'), imu=_argument(context, 'imu'),
                     detector_model=_argument(context, 'detector_model'),
                     camera_source=_argument(context, 'camera_source'))
    env = middleware_env(profile=_argument(context, 'fastdds_profile'))
    nodes = []
    for spec in plan:
        options = node_options(spec)
        options['additional_env'] = {**env, **options['additional_env']}
        nodes.append(Node(package='adaptive_perception', executable=spec.executable,
                          name=spec.name, parameters=[spec.parameters], output='screen',
                          emulate_tty=True, **options))
    guard_signals(context, nodes)
    return nodes


def generate_launch_description():
    """Declare the arguments; the node list is resolved once they are known."""
    return LaunchDescription([
        DeclareLaunchArgument('params_file', default_value=str(default_params_file()),
                              description='Nodes and parameters (edge.yaml format).'),
        DeclareLaunchArgument('power', default_value='sim', choices=['sim', 'real', 'none'],
                              description='Battery/thermal source.'),
        DeclareLaunchArgument('camera', default_value='sim', choices=['sim', 'none'],
                              description='camera_source, or none when a real camera runs.'),
        DeclareLaunchArgument('imu', default_value='sim', choices=['sim', 'none'],
                              description='imu_simulator, or none when a real IMU driver runs.'),
        DeclareLaunchArgument('perception', default_value='all',
                              description="Perception nodes: 'all', 'none' or a comma list."),
        DeclareLaunchArgument('detector_model', default_value='',
                              description="Detector model: 'scenes' (generated-scenes "
                                          "AdaCon) or 'coco' (COCO-pretrained, real cameras); "
                                          "the names under detector_models in params_file "
                                          "(empty: scenes with camera:=sim, coco with "
                                          "camera:=none)."),
        DeclareLaunchArgument('camera_source', default_value='',
                              description='What camera_source plays (a folder of photos, a '
                                          'video file); empty: as in params_file.'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='Namespace of every node and topic (e.g. robot1).'),
        DeclareLaunchArgument('fastdds_profile', default_value=str(fastdds_profile_file()),
                              description="Fast DDS XML profile for every node ('' = none); "
                                          'FASTDDS_DEFAULT_PROFILES_FILE, if set, wins.'),
        GroupAction([PushRosNamespace(LaunchConfiguration('namespace')),
                     OpaqueFunction(function=_nodes)]),
    ])
