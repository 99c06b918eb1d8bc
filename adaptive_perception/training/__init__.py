"""What the families' trainers and exporters share (PyTorch; never the runtime).

``schedule`` holds the learning-rate schedule, ``checkpoint`` the checkpoint file I/O,
``onnx_export`` the one ONNX exporter, ``macs`` the FLOP and MAC count the exporters
write beside each graph. Importing this package imports torch, so only
training and export code import it.
"""

from adaptive_perception.training.checkpoint import load_checkpoint, save_checkpoint
from adaptive_perception.training.schedule import warmup_cosine

__all__ = ['load_checkpoint', 'save_checkpoint', 'warmup_cosine']
