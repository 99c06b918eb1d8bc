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
  detector_model:=scenes|coco    generated-scenes AdaCon, or the COCO model for a real camera
  camera_source:=<path>          what camera_source plays: a folder of photos, a video file
                                 (default: edge.yaml's, the scene generator)
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from adaptive_perception.launcher.plan import load_plan
from launch import LaunchDescription


def _nodes(context):
    plan = load_plan(LaunchConfiguration('params_file').perform(context),
                     power=LaunchConfiguration('power').perform(context),
                     perception=LaunchConfiguration('perception').perform(context),
                     camera=LaunchConfiguration('camera').perform(context),
                     imu=LaunchConfiguration('imu').perform(context),
                     detector_model=LaunchConfiguration('detector_model').perform(context),
                     camera_source=LaunchConfiguration('camera_source').perform(context))
    return [Node(package='adaptive_perception', executable=spec.executable, name=spec.name,
                 parameters=[spec.parameters], output='screen', emulate_tty=True)
            for spec in plan]


def generate_launch_description():
    """Declare the arguments; the node list is resolved once they are known."""
    default_params = os.path.join(get_package_share_directory('adaptive_perception'),
                                  'config', 'edge.yaml')
    return LaunchDescription([
        DeclareLaunchArgument('params_file', default_value=default_params,
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
                                          "(empty: its first)."),
        DeclareLaunchArgument('camera_source', default_value='',
                              description='What camera_source plays (a folder of photos, a '
                                          'video file); empty: as in params_file.'),
        OpaqueFunction(function=_nodes),
    ])
