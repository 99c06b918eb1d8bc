"""The learning-rate schedule every trainer uses (one factory, as timm keeps one)."""

import math

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
