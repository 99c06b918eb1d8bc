"""Counting the arithmetic of one forward pass, for what the exporters write beside a graph.

Both families count on exactly the module they export, with PyTorch's FLOP counter
(matrix products and convolutions, the ops that carry the cost): AdaMTL's manifest
stores FLOPs, the detectors' manifests multiply-accumulates (MACs = FLOPs / 2, the
unit their model cards compare with published detectors).
"""

import torch
from torch.utils.flop_counter import FlopCounterMode


def count_flops(module: torch.nn.Module, *inputs: torch.Tensor) -> int:
    """FLOPs of one forward pass of ``module`` on ``inputs`` (matrix products, convolutions)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(*inputs)
    return int(counter.get_total_flops())


def count_macs(module: torch.nn.Module, *inputs: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass: half its FLOPs."""
    return count_flops(module, *inputs) // 2
