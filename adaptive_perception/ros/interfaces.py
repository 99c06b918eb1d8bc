"""The public contract's topic names (from ``adaptive_perception.interfaces``) with QoS built.

``adaptive_perception.interfaces`` describes names and QoS as plain data; this module
builds the ``rclpy.qos.QoSProfile`` objects the nodes pass to rclpy, so that only
ROS code imports rclpy.
"""

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from adaptive_perception import interfaces
from adaptive_perception.interfaces import (  # noqa: F401 (the names nodes import from here)
    ACTIVITY_TOPIC,
    ACTIVITY_TRUTH_TOPIC,
    BATTERY_TOPIC,
    CAMERA_TOPIC,
    DETECTIONS_TOPIC,
    DIAGNOSTICS_TOPIC,
    EXECUTION_LEVEL_TOPIC,
    IMU_TOPIC,
    MISSION_START_TOPIC,
    OVERLAY_TOPIC,
    TASK_TOPICS,
    TEMPERATURE_TOPIC,
    VISION_DETECTIONS_TOPIC,
    Qos,
)


def qos_profile(spec: Qos) -> QoSProfile:
    """Build the rclpy profile ``spec`` describes."""
    return QoSProfile(
        depth=spec.depth, history=HistoryPolicy.KEEP_LAST,
        reliability=ReliabilityPolicy.RELIABLE if spec.reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=(DurabilityPolicy.TRANSIENT_LOCAL if spec.transient_local
                    else DurabilityPolicy.VOLATILE))


def camera_qos(name: str) -> QoSProfile:
    """Camera QoS by name ('sensor_data' or 'reliable'); ValueError names the choices."""
    return qos_profile(interfaces.camera_qos(name))


def imu_qos(name: str) -> QoSProfile:
    """IMU QoS by name ('sensor_data' or 'reliable'); ValueError names the choices."""
    return qos_profile(interfaces.imu_qos(name))


EXECUTION_LEVEL_QOS = qos_profile(interfaces.EXECUTION_LEVEL_QOS)
POWER_QOS = qos_profile(interfaces.POWER_QOS)
DIAGNOSTICS_QOS = qos_profile(interfaces.DIAGNOSTICS_QOS)
OUTPUT_QOS = qos_profile(interfaces.OUTPUT_QOS)
ACTIVITY_TRUTH_QOS = qos_profile(interfaces.ACTIVITY_TRUTH_QOS)
