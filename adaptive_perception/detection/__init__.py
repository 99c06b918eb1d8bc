"""AdaCon: the context-clustered adaptive object detector (thesis ch. 6)."""
