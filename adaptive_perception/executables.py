"""The package's ROS 2 executables and the module whose ``main()`` each runs.

One source of truth: CMake reads this file (without importing the package) to
install ``lib/adaptive_perception/<executable>`` wrappers for ``ros2 run``, and the
pip-world launcher uses it to start nodes with ``python -m <module>``.
Plain data only: no imports, so it can be read with ``runpy.run_path``.
"""

EXECUTABLES = {
    'budget_manager': 'adaptive_perception.budget.manager_node',
    'power_monitor': 'adaptive_perception.power.monitor_node',
    'power_simulator': 'adaptive_perception.power.simulator_node',
    'adacon_detector': 'adaptive_perception.detection.detector_node',
    'adamtl_multitask': 'adaptive_perception.multitask.node',
    'camera_source': 'adaptive_perception.sources.camera_node',
    'imu_simulator': 'adaptive_perception.activity.simulator_node',
    'activity_recognizer': 'adaptive_perception.activity.recognizer_node',
}
