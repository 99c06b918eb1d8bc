"""Battery and thermal sources: Linux sysfs readings and a closed-loop simulation."""
