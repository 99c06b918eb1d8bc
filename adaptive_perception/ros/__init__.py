"""Thin ROS 2 helpers shared by the nodes (the only place, with the nodes, that imports rclpy)."""
