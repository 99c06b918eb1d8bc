"""Channel-set studies built on the detection and multi-task families.

Operating points of the nested-width detector (``bench channels``), per-input channel
gating of the static head, narrower multi-task encoders. The nested-width detector
itself is part of the detection family (``detection/slimmable.py``): this package
imports the families, never the other way round.
"""
