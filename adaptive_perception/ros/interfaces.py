"""Topic names and QoS of the public contract (DESIGN.md), in one place."""

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

EXECUTION_LEVEL_TOPIC = '/adaptive_perception/execution_level'
BATTERY_TOPIC = '/battery_state'
TEMPERATURE_TOPIC = '/thermal/temperature'
DIAGNOSTICS_TOPIC = '/diagnostics'
# std_msgs/Float64: start a mission of this many seconds now (0 ends it)
MISSION_START_TOPIC = '/adaptive_perception/mission_start'

# Late joiners get the current level at once; a level is never lost to a full queue.
EXECUTION_LEVEL_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST,
                                 reliability=ReliabilityPolicy.RELIABLE,
                                 durability=DurabilityPolicy.TRANSIENT_LOCAL)
# Power readings: latest value matters, a few in flight are enough.
POWER_QOS = QoSProfile(depth=5, history=HistoryPolicy.KEEP_LAST,
                       reliability=ReliabilityPolicy.RELIABLE)
DIAGNOSTICS_QOS = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST,
                             reliability=ReliabilityPolicy.RELIABLE)
