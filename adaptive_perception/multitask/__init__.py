"""AdaMTL: the adaptive multi-task vision transformer for four dense tasks."""
