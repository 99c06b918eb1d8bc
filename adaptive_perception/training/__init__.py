"""Helpers shared by the families' training and export code (PyTorch; never the runtime)."""
