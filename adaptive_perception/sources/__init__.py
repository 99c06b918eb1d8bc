"""Input sources for the demo and tests: camera frames from files or the scene generator."""
