"""Score the PyTorch AdaMTL model (training and width studies); the runtime scores with ONNX.

Kept apart from ``multitask.evaluate`` so that ``eval adamtl`` and the benches, which
score the exported graphs, never import torch.
"""

import torch

from adaptive_perception.multitask.dataset import DenseArrays
from adaptive_perception.multitask.metrics import TaskScores
from adaptive_perception.multitask.model import AdaMTL, normalise, postprocess


def score_model(model: AdaMTL, data: DenseArrays, policy: str | None = None,
                batch_size: int = 64) -> dict:
    """PyTorch masked pass with deterministic decisions -> scores per task."""
    model.eval()
    scores = TaskScores(len(data.class_names))
    tasks = [t for t in model.config.tasks if t in data.tasks]
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            rows = slice(start, min(len(data), start + batch_size))
            images = normalise(data.images[rows]).to(next(model.parameters()).device)
            outputs, _ = model(images, policy, tasks)
            for task, raw in outputs.items():
                scores.add(task, postprocess(task, raw).cpu().numpy(),
                           getattr(data, task)[rows])
    return scores.result()
