"""What the families' trainers share: the learning-rate schedule and checkpoint file I/O.

Torch is imported here, so only training and export import this module.
"""

import math
import pickle
from pathlib import Path

import torch


def warmup_cosine(optimizer, total_steps: int, warmup: int,
                  clamp: bool = True) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup`` steps, then cosine decay to zero at ``total_steps``.

    ``clamp`` holds the factor at zero past ``total_steps``; without it the cosine
    goes on rising again. The AdaMTL stages clamp (their step counts are estimated
    before a stage and a stage may run a few steps over); the AdaCon stages count
    their steps exactly and were trained without the clamp, which is kept so that
    a retrain reproduces the shipped models.
    """
    def factor(step):
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        if clamp:
            progress = min(1.0, progress)
        return 0.5 * (1 + math.cos(math.pi * progress))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def save_checkpoint(checkpoint: dict, path) -> Path:
    """Save ``checkpoint``, which names its ``format``, all or nothing.

    The file is written beside ``path`` and renamed, so that a run stopped mid-write
    leaves the previous file, not half of one.
    """
    if 'format' not in checkpoint:
        raise ValueError('a checkpoint names its format')
    path = Path(path)
    partial = path.with_name(path.name + '.partial')
    torch.save(checkpoint, partial)
    partial.replace(path)
    return path


def load_checkpoint(path, formats: tuple, what: str) -> dict:
    """Load a checkpoint whose ``format`` is one of ``formats`` (newest first).

    Older formats stay readable; the caller converts what differs. A file that is
    not a checkpoint, or one of another kind, is a ValueError that says which.
    """
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=False)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as error:
        raise ValueError(f'cannot read the checkpoint {path}: {error}') from None
    if not isinstance(checkpoint, dict) or checkpoint.get('format') not in formats:
        raise ValueError(f'{path}: not an {what} checkpoint ({formats[0]})')
    return checkpoint
