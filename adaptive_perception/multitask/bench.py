"""``bench multitask``: every resident policy against the static model, in one run.

Configurations take turns, in a rotating order, on consecutive stretches of frames
(``frames_per_turn``, 20 by default): a slow stretch of the machine hits them all
alike, and each is timed in its steady state, as a node holding one level runs it.
Switching configuration on every frame (``--frames-per-turn 1``) makes each call pay
for the caches the one before filled, by an amount that depends on which other
configurations share its graph, so a ratio would depend on the set benched.

Per configuration: task scores, delta_m against static (and single-task
models where the references apply), mean FLOPs, block and token shares, latency
p50/p95 of the runtime's ``infer`` at batch 1. Configurations: the static model, each
trained policy, a random policy keeping the same shares as ``low`` (the ablation's
baseline), and ``low`` with tasks dropped as a level may do; where the model has
INT8 graphs, the static model and every policy again in INT8 (``static/int8``).

Input dependence: a histogram of per-frame FLOPs per policy (PNG) and the rank
correlation between a frame's FLOPs and its number of objects.

Runtime choice: with ``--checkpoint``, the PyTorch model (``run_adaptive``) is timed
on the same frames next to ONNX Runtime.

Where the time goes: the encoder graphs alone, static, with every token gathered
and scattered back, and with each policy deciding (``encoder_only``).
"""

import json
import time
from pathlib import Path
from typing import NamedTuple, TypedDict

import numpy as np
from scipy.stats import spearmanr

from adaptive_perception.multitask.dataset import DenseArrays
from adaptive_perception.multitask.engine import STATIC, MultiTaskEngine, RandomPolicy
from adaptive_perception.multitask.evaluate import deltas, evaluate_engine, prediction_to_score
from adaptive_perception.multitask.metrics import TaskScores
from adaptive_perception.runtime.onnx_sessions import BoundGraph
from adaptive_perception.runtime.report_io import (
    TargetCheck,
    pyplot,
    save_figure,
    target,
    write_json,
)
from adaptive_perception.runtime.timing import interleaved_seconds

TARGETS = {'flops_reduction': 0.30, 'latency_reduction': 0.20, 'delta_m_static': -2.0}
# INT8 configuration -> (p50 latency at most this share of FP32 static, delta_m at least this)
INT8_TARGETS = {'static/int8': (0.6, -1.0), 'low_agnostic/int8': (0.5, -2.5)}
TASK_DROP = ('low', ('segmentation', 'depth'))
FRAMES_PER_TURN = 20
LOW_BUDGET = ('low', 'low_agnostic')


class Measured(TypedDict):
    """What ``measure`` collected of one configuration, per frame in data order."""

    scores: dict[str, float]
    seconds: list[float]
    flops: list[float]
    blocks: list[float]
    tokens: list[float]


class MultiTaskRow(TypedDict, total=False):
    """One configuration's row of ``bench multitask`` (its JSON, read by key).

    ``delta_m_single_task`` only where single-task references apply to the data;
    ``flops_objects_spearman`` only for a configuration whose FLOPs vary with the frame.
    """

    scores: dict[str, float]
    delta_m_static: float
    delta_m_single_task: float
    flops_mean: float
    flops_vs_static: float
    block_share: float
    token_share: float
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p50_vs_static: float
    flops_objects_spearman: float


class StageTime(TypedDict):
    """Median time of one graph variant and its ratio to the static one."""

    p50_ms: float
    vs_static: float


class MultiTaskReport(TypedDict, total=False):
    """What ``bench multitask`` writes to ``bench_multitask.json`` (and returns).

    ``runtime_comparison`` only with a checkpoint (ONNX Runtime against PyTorch).
    """

    model_dir: str
    data: str
    frames: int
    threads: int
    frames_per_turn: int
    rows: dict[str, MultiTaskRow]
    targets: dict[str, dict[str, float | bool]]
    seconds: float
    encoder_only: dict[str, StageTime]
    runtime_comparison: dict[str, dict[str, float]]


class Configuration(NamedTuple):
    """What one benched configuration runs: a policy (name or object), tasks, precision."""

    policy: 'str | RandomPolicy'
    tasks: tuple
    precision: str = 'fp32'


def _percentile_ms(seconds: list, q: float) -> float:
    return float(np.percentile(seconds, q) * 1e3)


def _configurations(engine: MultiTaskEngine, data: DenseArrays,
                    seed: int) -> dict[str, Configuration]:
    """Name -> what it runs. The random policy copies ``low``'s shares."""
    configs = {name: Configuration(name, engine.tasks) for name in engine.policies}
    for precision in engine.precisions[1:]:
        configs.update({f'{name}/{precision}': Configuration(name, engine.tasks, precision)
                        for name in engine.policies})
    if 'low' in engine.policies:
        probe = evaluate_engine(engine, data.subset(range(min(50, len(data)))), 'low')
        share = (probe['block_share'], probe['token_share'])
        configs['random'] = Configuration(RandomPolicy(*share, seed), engine.tasks)
        policy, tasks = TASK_DROP
        if all(t in engine.tasks for t in tasks):
            configs[f'{policy}:{"+".join(tasks)}'] = Configuration(policy, tasks)
    return configs


def measure(engine: MultiTaskEngine, data: DenseArrays, configs: dict[str, Configuration],
            warmup: int = 5,
            frames_per_turn: int = FRAMES_PER_TURN) -> dict[str, Measured]:
    """Run every frame through every configuration, taking turns; collect what it cost."""
    scores = {name: TaskScores(len(data.class_names)) for name in configs}
    costs = {name: {} for name in configs}  # frame -> (FLOPs, block share, token share)

    def score(name, i, result):
        for task, answer in result.outputs.items():
            scores[name].add(task, prediction_to_score(task, answer)[None],
                             getattr(data, task)[i:i + 1])
        costs[name][i] = (result.flops, result.block_share, result.token_share)

    runs = {name: (lambda i, c=config: engine.infer(
                data.images[i], c.policy, c.tasks, resize=False, precision=c.precision))
            for name, config in configs.items()}
    seconds = interleaved_seconds(runs, range(len(data)), warmup=warmup,
                                  frames_per_turn=frames_per_turn, on_result=score)
    measured = {}
    for name in configs:
        flops, blocks, tokens = zip(*(costs[name][i] for i in range(len(data))), strict=True)
        measured[name] = {'scores': scores[name].result(), 'seconds': seconds[name],
                          'flops': list(flops), 'blocks': list(blocks), 'tokens': list(tokens)}
    return measured


def _rows(measured: dict, engine: MultiTaskEngine, objects: np.ndarray,
          data_description: str) -> dict[str, MultiTaskRow]:
    static = measured[STATIC]
    rows = {}
    for name, m in measured.items():
        scores = m['scores']
        reference = {t: v for t, v in static['scores'].items() if t in scores}
        row = {'scores': scores,
               **deltas(scores, reference, engine.references, data_description),
               'flops_mean': float(np.mean(m['flops'])),
               'flops_vs_static': float(np.mean(m['flops']) / np.mean(static['flops'])),
               'block_share': float(np.mean(m['blocks'])),
               'token_share': float(np.mean(m['tokens'])),
               'latency_p50_ms': _percentile_ms(m['seconds'], 50),
               'latency_p95_ms': _percentile_ms(m['seconds'], 95),
               'latency_p50_vs_static': float(np.median(m['seconds'])
                                              / np.median(static['seconds']))}
        if len(set(m['flops'])) > 1 and (objects >= 0).all():
            row['flops_objects_spearman'] = float(spearmanr(m['flops'], objects).statistic)
        rows[name] = row
    return rows


class _Fixed:
    """Decisions fixed in advance, bound to the decided graph (no drawing on the timed path)."""

    graph = RandomPolicy.graph

    def __init__(self, feeds: dict, layout):
        self._feeds = feeds
        self._runs = [feeds[f'runs_s{s}'] for s in range(len(layout))]
        self._bound = None

    def run(self, session, image, tasks, layout) -> tuple[list, int]:
        """Encode with the fixed decisions: (stage tokens then the decisions, 0)."""
        if self._bound is None:
            self._bound = BoundGraph(session, self._feeds)
        return [*self._bound.run({'image': image}), *self._runs], 0


def encoder_overhead(engine: MultiTaskEngine, data: DenseArrays, frames: int = 200,
                     frames_per_turn: int = FRAMES_PER_TURN) -> dict[str, StageTime]:
    """Time the encoder graphs alone against the static one: where adaptivity costs.

    ``every token gathered``: the decided graph keeping everything, i.e. the static
    work plus the gather and scatter of every block; then each policy deciding for
    itself on the frames; where the model has INT8 graphs, the static and
    ``low_agnostic`` encoders again in INT8 and the four decoders in one graph in
    both precisions (where INT8 pays and where it does not). Taking turns as
    ``measure`` does.
    """
    everything = _Fixed(RandomPolicy(1.0, 1.0).feeds(engine.tasks, engine.layout)[0],
                        engine.layout)
    runs = {STATIC: lambda image: engine.encode(image, STATIC),
            'every token gathered': lambda image: engine.encode(image, everything)}
    for name in engine.policies[1:]:
        runs[name] = lambda image, name=name: engine.encode(image, name)
    if 'int8' in engine.precisions:
        for name in (STATIC, 'low_agnostic'):
            if name in engine.policies:
                runs[f'{name}/int8'] = lambda image, name=name: engine.encode(
                    image, name, precision='int8')
        stages = {f'stage{s}': f for s, f in enumerate(
            engine.encode(engine.preprocess(data.images[0]))[0])}
        for precision in engine.precisions:
            session = engine._all_decoders[precision]
            runs[f'decoders/{precision}'] = lambda image, session=session: session.run(
                None, stages)
    images = [engine.preprocess(rgb) for rgb in data.images[:frames]]
    seconds = interleaved_seconds(runs, images, frames_per_turn=frames_per_turn)
    static = np.median(seconds[STATIC])
    return {name: {'p50_ms': float(np.median(times) * 1e3),
                   'vs_static': float(np.median(times) / static)}
            for name, times in seconds.items()}


def runtime_comparison(checkpoint, engine: MultiTaskEngine, data: DenseArrays,
                       frames: int = 100,
                       frames_per_turn: int = FRAMES_PER_TURN) -> dict[str, dict[str, float]]:
    """Median ``infer`` time, ONNX Runtime vs the PyTorch model, static and ``low``."""
    import torch

    from adaptive_perception.multitask.export import load_checkpoint
    from adaptive_perception.multitask.model import normalise

    model, _ = load_checkpoint(checkpoint)
    torch.set_num_threads(1)  # as the node's sessions: one intra-op thread
    out = {}
    for policy in (STATIC, 'low'):
        chosen = None if policy == STATIC else policy
        runs = {'onnxruntime': lambda i, p=policy: engine.infer(data.images[i], p, resize=False),
                'pytorch': lambda i, p=chosen: model.run_adaptive(normalise(data.images[i:i + 1]),
                                                                  p)}
        seconds = interleaved_seconds(runs, range(min(frames, len(data))),
                                      frames_per_turn=frames_per_turn)
        out[policy] = {name: _percentile_ms(times, 50) for name, times in seconds.items()}
    return out


def format_table(rows: dict) -> str:
    """One line per configuration: scores, deltas, FLOPs, shares, latency."""
    tasks = sorted({t for row in rows.values() for t in row['scores']})
    head = (f'{"config":28s} ' + ' '.join(f'{t[:6]:>7s}' for t in tasks)
            + '  dm_st%  dm_ST% MFLOPs  xFLOP blocks tokens p50ms p95ms xp50')
    lines = [head]
    for name, row in rows.items():
        cells = ' '.join(f'{row["scores"][t]:7.3f}' if t in row['scores'] else f'{"-":>7s}'
                         for t in tasks)
        single = row.get('delta_m_single_task')
        lines.append(
            f'{name:28s} {cells} {row["delta_m_static"]:7.2f} '
            f'{single if single is None else round(single, 2)!s:>7s} '
            f'{row["flops_mean"] / 1e6:6.1f} {row["flops_vs_static"]:6.2f} '
            f'{row["block_share"]:6.2f} {row["token_share"]:6.2f} '
            f'{row["latency_p50_ms"]:5.2f} {row["latency_p95_ms"]:5.2f} '
            f'{row["latency_p50_vs_static"]:5.2f}')
    return '\n'.join(lines)


def plot_histogram(measured: dict, path: Path) -> None:
    """Per-frame FLOPs of each adaptive configuration, as a share of static."""
    plt = pyplot()
    static = float(np.mean(measured[STATIC]['flops']))
    figure, axis = plt.subplots(figsize=(7, 4))
    for name, m in measured.items():
        if name == STATIC or len(set(m['flops'])) <= 1:
            continue
        axis.hist(np.asarray(m['flops']) / static * 100, bins=40, alpha=0.55, label=name)
    axis.set_xlabel('per-frame FLOPs, % of the static model')
    axis.set_ylabel('frames')
    axis.set_title('AdaMTL: compute per frame depends on the input')
    axis.legend()
    save_figure(figure, path, dpi=110)


def check_targets(rows: dict) -> dict[str, dict[str, float | bool]]:
    """Check AdaMTL's targets at each low-budget policy: task-aware and task-agnostic."""
    checked = {}
    for name in LOW_BUDGET:
        row = rows.get(name)
        if row is None:
            continue
        checked[name] = _flat(
            flops_reduction=target(1 - row['flops_vs_static'], TARGETS['flops_reduction'],
                                   at_most=False),
            latency_reduction=target(1 - row['latency_p50_vs_static'],
                                     TARGETS['latency_reduction'], at_most=False),
            delta_m=target(row['delta_m_static'], TARGETS['delta_m_static'], at_most=False),
            value_names={'delta_m': 'delta_m_static'})
    for name, (latency, delta) in INT8_TARGETS.items():
        row = rows.get(name)
        if row is None:
            continue
        checked[name] = _flat(
            latency=target(row['latency_p50_vs_static'], latency),
            delta_m=target(row['delta_m_static'], delta, at_most=False),
            value_names={'latency': 'latency_vs_static', 'delta_m': 'delta_m_static'})
    return checked


def _flat(value_names: dict | None = None,
          **checks: TargetCheck) -> dict[str, float | bool]:
    """Lay checked targets out as the report's flat keys: ``<name>`` (value), ``<name>_met``.

    ``value_names`` renames a value's key where the report names it after what it
    compares to (``delta_m`` is against static: ``delta_m_static``).
    """
    names = value_names or {}
    flat = {}
    for name, check in checks.items():
        flat[names.get(name, name)] = check['value']
        flat[f'{name}_met'] = check['met']
    return flat


def run_bench_multitask(model_dir, data: DenseArrays, data_description: str, out_dir,
                        checkpoint=None, threads: int = 1, seed: int = 0,
                        frames_per_turn: int | None = None) -> MultiTaskReport:
    """Measure, print the table, write ``bench_multitask.json`` and the histogram."""
    frames_per_turn = FRAMES_PER_TURN if frames_per_turn is None else frames_per_turn
    if frames_per_turn < 1:
        raise ValueError(f'frames per turn must be at least 1, got {frames_per_turn}')
    engine = MultiTaskEngine(model_dir, threads=threads)
    configs = _configurations(engine, data, seed)
    started = time.perf_counter()
    measured = measure(engine, data, configs, frames_per_turn=frames_per_turn)
    rows = _rows(measured, engine, data.objects, data_description)
    report = {'model_dir': str(model_dir), 'data': data_description, 'frames': len(data),
              'threads': threads, 'frames_per_turn': frames_per_turn, 'rows': rows,
              'targets': check_targets(rows),
              'seconds': round(time.perf_counter() - started, 1)}
    report['encoder_only'] = encoder_overhead(engine, data, frames_per_turn=frames_per_turn)
    if checkpoint:
        report['runtime_comparison'] = runtime_comparison(checkpoint, engine, data,
                                                          frames_per_turn=frames_per_turn)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_histogram(measured, out_dir / 'bench_multitask_flops.png')
    write_json(out_dir / 'bench_multitask.json', report)
    print(format_table(rows))
    print(json.dumps({'targets': report['targets'], 'encoder_only': report['encoder_only'],
                      'runtime_comparison': report.get('runtime_comparison')}, indent=1))
    print(f'written {out_dir / "bench_multitask.json"} and '
          f'{out_dir / "bench_multitask_flops.png"}')
    return report
