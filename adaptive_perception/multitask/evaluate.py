"""Score AdaMTL per task and policy: the thesis's metrics and the multi-task delta.

Metrics (``metrics.TaskScores``): segmentation mIoU, depth RMSE (m), normals mean
angular error (degrees), saliency max-F. The multi-task delta (``delta_m``, %) is
taken against the static model on the same data and, where the manifest's
single-task references were measured on the same data, against single-task models.

ONNX Runtime only, as the node: scoring the PyTorch model during training is
``multitask.validate``.
"""

import time

import numpy as np

from adaptive_perception.multitask.dataset import DenseArrays
from adaptive_perception.multitask.engine import STATIC, MultiTaskEngine
from adaptive_perception.multitask.metrics import TaskScores, multitask_delta


def prediction_to_score(task: str, answer: np.ndarray) -> np.ndarray:
    """Engine output at model size -> what ``TaskScores`` takes for ``task``."""
    if task == 'saliency':
        return answer.astype(np.float32) / 255.0
    return answer


def evaluate_engine(engine: MultiTaskEngine, data: DenseArrays, policy=STATIC,
                    tasks=None, precision: str = 'fp32') -> dict:
    """Every frame through the runtime, one at a time as the node runs it, in ``precision``.

    Returns scores per task, FLOPs (mean and per frame), block/token shares and the
    per-frame wall time of ``infer`` (seconds).
    """
    tasks = [t for t in (tasks or engine.tasks) if t in data.tasks]
    if data.images.shape[1:3] != (engine.input_size, engine.input_size):
        raise ValueError(f'data is {data.images.shape[2]}x{data.images.shape[1]}, the model '
                         f'takes {engine.input_size}x{engine.input_size}: load it with '
                         f'size={engine.input_size}')
    scores = TaskScores(len(data.class_names))
    flops, blocks, tokens, seconds = [], [], [], []
    for i in range(len(data)):
        start = time.perf_counter()
        result = engine.infer(data.images[i], policy, tasks, resize=False, precision=precision)
        seconds.append(time.perf_counter() - start)
        for task, answer in result.outputs.items():
            scores.add(task, prediction_to_score(task, answer)[None],
                       getattr(data, task)[i:i + 1])
        flops.append(result.flops)
        blocks.append(result.block_share)
        tokens.append(result.token_share)
    return {'scores': scores.result(), 'flops_mean': float(np.mean(flops)),
            'flops': flops, 'block_share': float(np.mean(blocks)),
            'token_share': float(np.mean(tokens)), 'seconds': seconds}


def deltas(scores: dict, static: dict, references: dict, data_description: str) -> dict:
    """delta_m vs static and, if measured on this data, vs the single-task models."""
    out = {'delta_m_static': multitask_delta(scores, static)}
    single = references.get('single_task')
    if single and single.get('data') == data_description:
        out['delta_m_single_task'] = multitask_delta(scores, single['scores'])
    return out


def evaluate_report(engine: MultiTaskEngine, data: DenseArrays, data_description: str,
                    policies=None) -> dict:
    """``eval adamtl``: scores, deltas, FLOPs and shares per policy (static always runs)."""
    policies = list(policies or engine.policies)
    if STATIC not in policies:
        policies.insert(0, STATIC)
    results = {name: evaluate_engine(engine, data, name) for name in policies}
    static = results[STATIC]['scores']
    report = {'model_dir': str(engine.model_dir), 'data': data_description,
              'frames': len(data), 'policies': {}}
    for name, result in results.items():
        report['policies'][name] = {
            'scores': result['scores'],
            **deltas(result['scores'], static, engine.references, data_description),
            'flops_mean': result['flops_mean'], 'block_share': result['block_share'],
            'token_share': result['token_share']}
    single = engine.references.get('single_task')
    if single:
        report['single_task'] = single
    return report
