"""launch_testing: edge.launch.py under a namespace publishes a level; every node exits 0.

Run by test/test_ros2_launch.py as ``launch_test`` would run it in a ROS workspace
(``launch_test test/launch_tests/launch_edge_level.py`` with the install sourced).
The file name keeps it out of plain pytest collection: it needs the colcon install.
"""

import os
import time
import unittest

import launch_testing.actions
import launch_testing.asserts
import rclpy
from ament_index_python.packages import get_package_share_directory
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource

from adaptive_perception.msg import ExecutionLevel
from adaptive_perception.ros.interfaces import EXECUTION_LEVEL_QOS
from launch import LaunchDescription

NAMESPACE = 'launch_testing_robot'


def generate_test_description():
    """Start the budget manager and the power simulator of edge.launch.py, namespaced."""
    edge = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(
            get_package_share_directory('adaptive_perception'), 'launch', 'edge.launch.py')),
        launch_arguments={'camera': 'none', 'imu': 'none', 'perception': 'none',
                          'namespace': NAMESPACE}.items())
    return LaunchDescription([edge, launch_testing.actions.ReadyToTest()])


class TestLevelFlows(unittest.TestCase):
    """While the launch runs."""

    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.node = rclpy.create_node('launch_testing_probe')

    @classmethod
    def tearDownClass(cls):
        cls.node.destroy_node()
        rclpy.shutdown()

    def test_a_level_arrives_in_the_namespace(self, proc_output):
        received = []
        self.node.create_subscription(
            ExecutionLevel, f'/{NAMESPACE}/adaptive_perception/execution_level',
            received.append, EXECUTION_LEVEL_QOS)
        deadline = time.monotonic() + 90
        while not received and time.monotonic() < deadline:
            rclpy.spin_once(self.node, timeout_sec=0.1)
        self.assertTrue(received, 'no ExecutionLevel within 90 s')
        self.assertLess(received[-1].level, received[-1].num_levels)
        proc_output.assertWaitFor('level', timeout=30, stream='stderr')


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    """After launch_testing stopped everything."""

    def test_every_node_exited_cleanly(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)
