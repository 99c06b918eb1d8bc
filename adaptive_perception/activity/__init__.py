"""AdaSense: IMU activity recognition with adaptive low-power sensing (thesis ch. 5)."""
