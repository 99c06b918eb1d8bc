"""Checkpoint file I/O for every trainer: atomic saves, versioned formats."""

import pickle
from pathlib import Path

import torch


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
