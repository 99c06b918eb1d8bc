"""Pure runtime helpers shared by every adaptive node (no rclpy here)."""
