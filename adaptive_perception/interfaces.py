"""The package's public ROS 2 interface: topic names and QoS, as plain data.

One place for every name a user, a launch file or a test relies on. Nothing here
imports rclpy, so launchers, benches and pure tests read it as well;
``adaptive_perception.ros.interfaces`` turns the QoS descriptions into ``QoSProfile`` objects.

Topic names are relative: they resolve against the node's namespace, so in the root
namespace they are the documented ``/camera/image_raw``, ``/adaptive_perception/...``
and ``/diagnostics``, and ``ros2 launch ... namespace:=robot1`` (or ``__ns``) moves a
whole pipeline under ``/robot1`` without crosstalk. Remapping works the ROS way
(``-r camera/image_raw:=/my_cam/image``).
"""

from dataclasses import dataclass

# -- inputs ------------------------------------------------------------------------
CAMERA_TOPIC = 'camera/image_raw'            # sensor_msgs/Image
IMU_TOPIC = 'imu/data_raw'                   # sensor_msgs/Imu
BATTERY_TOPIC = 'battery_state'              # sensor_msgs/BatteryState
TEMPERATURE_TOPIC = 'thermal/temperature'    # sensor_msgs/Temperature
ACTIVITY_TRUTH_TOPIC = 'imu/activity_truth'  # std_msgs/String (the IMU simulator's truth)

# sensor_msgs/BatteryState.power_supply_status values, as publishers and the manager use them
STATUS_UNKNOWN, STATUS_CHARGING, STATUS_DISCHARGING, STATUS_NOT_CHARGING, STATUS_FULL = range(5)

# -- outputs -----------------------------------------------------------------------
NAMESPACE = 'adaptive_perception'
EXECUTION_LEVEL_TOPIC = f'{NAMESPACE}/execution_level'  # adaptive_perception/ExecutionLevel
DETECTIONS_TOPIC = f'{NAMESPACE}/detections'             # adaptive_perception/DetectionArray
# The same detections as vision_msgs/Detection2DArray, for rviz, Foxglove, trackers.
VISION_DETECTIONS_TOPIC = f'{NAMESPACE}/detections/vision_msgs'
OVERLAY_TOPIC = f'{NAMESPACE}/detections/image'          # sensor_msgs/Image, on demand
ACTIVITY_TOPIC = f'{NAMESPACE}/activity'                 # adaptive_perception/ActivityState
MULTITASK_TOPIC = f'{NAMESPACE}/multitask'
MULTITASK_TASKS = ('segmentation', 'depth', 'normals', 'saliency')
TASK_TOPICS = {task: f'{MULTITASK_TOPIC}/{task}' for task in MULTITASK_TASKS}
DIAGNOSTICS_TOPIC = 'diagnostics'                        # diagnostic_msgs/DiagnosticArray
# std_msgs/Float64: start a mission of this many seconds now (0 ends it)
MISSION_START_TOPIC = f'{NAMESPACE}/mission_start'

OUTPUT_TOPICS = (EXECUTION_LEVEL_TOPIC, DETECTIONS_TOPIC, ACTIVITY_TOPIC,
                 *TASK_TOPICS.values(), DIAGNOSTICS_TOPIC)


def resolved(topic: str, namespace: str = '/') -> str:
    """Return the absolute name a relative ``topic`` gets in ``namespace`` (as rcl does)."""
    if topic.startswith('/'):
        return topic
    return f'{namespace.rstrip("/")}/{topic}' if namespace.strip('/') else f'/{topic}'


# -- QoS ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Qos:
    """A QoS profile as data: keep-last ``depth``, reliability, durability."""

    depth: int
    reliable: bool = True
    transient_local: bool = False


# Late joiners get the current level at once; a level is never lost to a full queue.
EXECUTION_LEVEL_QOS = Qos(depth=1, reliable=True, transient_local=True)
# Power readings: the latest value matters, a few in flight are enough.
POWER_QOS = Qos(depth=5)
DIAGNOSTICS_QOS = Qos(depth=10)
# Results of the perception nodes: reliable, a short queue.
OUTPUT_QOS = Qos(depth=10)
# The simulator's truth label: every change matters, a late joiner gets the current one.
ACTIVITY_TRUTH_QOS = Qos(depth=10, transient_local=True)

# Sensor inputs, chosen by name with the nodes' ``qos`` parameter (both ends use it).
SENSOR_QOS_NAMES = ('sensor_data', 'reliable')  # sensor_data = best effort
CAMERA_QOS_DEPTH = 1   # only the newest frame matters
IMU_QOS_DEPTH = 200    # samples arrive in bursts (one batch per publish tick)


def sensor_qos(name: str, depth: int) -> Qos:
    """``'sensor_data'`` (best effort) or ``'reliable'``; ValueError names the choices."""
    if name not in SENSOR_QOS_NAMES:
        raise ValueError(f"qos {name!r}: expected one of {', '.join(SENSOR_QOS_NAMES)}")
    return Qos(depth=depth, reliable=name == 'reliable')


def camera_qos(name: str) -> Qos:
    """Camera QoS by name, for both ends; depth 1, since only the newest frame matters."""
    return sensor_qos(name, CAMERA_QOS_DEPTH)


def imu_qos(name: str) -> Qos:
    """IMU QoS by name, for both ends; deep enough for a burst of samples."""
    return sensor_qos(name, IMU_QOS_DEPTH)
