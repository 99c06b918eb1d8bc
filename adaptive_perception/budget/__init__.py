"""Budget: turns battery, thermal and latency state into an execution level."""
