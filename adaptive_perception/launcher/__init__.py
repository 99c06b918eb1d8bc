"""Starting the edge pipeline: the plan from config/edge.yaml, node processes, the demo report."""
