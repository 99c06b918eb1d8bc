"""``bench multitask-widths``: measure whether channel sets pay on the multi-task encoder.

A width knob on AdaMTL's encoder is worth building only where it pays. This measures it
before building it. Each narrower width is the static AdaMTL with every stage's
channels x w (the same number of heads, each narrower). It is trained alone with the
stage-1 recipe and data of a given checkpoint (the data regenerated, or read again,
from what stage 1 recorded), scored, and timed next to the checkpoint's own stage 1
(full width): static encoder plus the one-graph decoders in ONNX Runtime, frames
interleaved.

Trained alone, a width reaches about what a slimmable encoder sharing weights reaches
at that width (sharing adds constraints, not capacity). Its delta_m against full width
therefore prices the channel set. A width counts as paying when it is faster and
within 2 points of delta_m, the accuracy bar AdaMTL's own targets use.
"""

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from adaptive_perception.multitask.dataset import DenseArrays, from_description
from adaptive_perception.multitask.export import DecodersGraph, EncoderGraph
from adaptive_perception.multitask.metrics import multitask_delta
from adaptive_perception.multitask.model import AdaMTL, ModelConfig, normalise
from adaptive_perception.multitask.train import read_checkpoint, train_static
from adaptive_perception.multitask.validate import score_model
from adaptive_perception.runtime.onnx_sessions import create_sessions
from adaptive_perception.runtime.report_io import markdown_table, write_json
from adaptive_perception.runtime.timing import interleaved_seconds
from adaptive_perception.training.macs import count_flops
from adaptive_perception.training.onnx_export import export_graph

PAYS_WITHIN = -2.0  # delta_m points against full width, as AdaMTL's low-budget target


def narrow_config(config: ModelConfig, width: float) -> ModelConfig:
    """``config`` with every encoder stage ``width`` as wide: same heads, narrower each.

    Decoders keep their width; policies are dropped (static model only).
    """
    head_dim = max(1, round(config.head_dim * width))
    dims = tuple(dim // config.head_dim * head_dim for dim in config.dims)
    return replace(config, dims=dims, head_dim=head_dim, policies={})


def load_stage1(checkpoint_path) -> tuple[AdaMTL, dict]:
    """(full-width static AdaMTL, its stage-1 settings) from an AdaMTL checkpoint.

    The configuration is stage 1's own (a ``.stage1.pt`` has no other, and a run
    with ``--static-from`` may have other policies than the stage 1 it reused).
    """
    static = read_checkpoint(checkpoint_path, with_stage1=True)['static']
    model = AdaMTL(ModelConfig.from_json(static['settings']['config']))
    model.load_state_dict(static['state_dict'])
    return model.eval(), static['settings']


def train_width(settings: dict, config: ModelConfig, width: float, train: DenseArrays,
                val: DenseArrays, epochs: int, log=print) -> AdaMTL:
    """Train the static model at ``width`` with stage 1's seed, batch, lr and skip rate."""
    torch.manual_seed(settings['seed'])
    model = AdaMTL(narrow_config(config, width))
    generator = torch.Generator().manual_seed(settings['seed'])
    train_static(model, train, val, epochs, settings['batch_size'], settings['lr'], generator,
                 lambda line: log(f'width {width:g} {line}'), settings['skip_rate'])
    return model.eval()


def _sessions(model: AdaMTL, work: Path, name: str,
              threads: int) -> tuple[tuple[ort.InferenceSession, ort.InferenceSession], int]:
    """Export the static encoder and the one-graph decoders; (sessions, FLOPs)."""
    image = torch.zeros(1, 3, model.config.image_size, model.config.image_size)
    encoder, decoders = EncoderGraph(model).eval(), DecodersGraph(model).eval()
    with torch.no_grad():
        features = encoder(image)
    stages = [f'stage{s}' for s in range(len(features))]
    export_graph(encoder, (image,), work / f'{name}_encoder.onnx', ['image'], stages)
    export_graph(decoders, features, work / f'{name}_decoders.onnx', stages,
                 list(model.config.tasks))
    loaded = create_sessions({part: work / f'{name}_{part}.onnx'
                              for part in ('encoder', 'decoders')}, threads=threads).sessions
    sessions = (loaded['encoder'], loaded['decoders'])
    return sessions, count_flops(encoder, image) + count_flops(decoders, *features)


def time_widths(sessions: dict, images: np.ndarray) -> dict[float, list[float]]:
    """Width -> seconds per frame of encoder + decoders, widths taking turns on every frame."""
    def run(encoder, decoders):
        def frame(image):
            features = encoder.run(None, {'image': image})
            decoders.run(None, {f'stage{s}': f for s, f in enumerate(features)})
        return frame

    inputs = [normalise(images[i:i + 1]).numpy() for i in range(len(images))]
    return interleaved_seconds({width: run(*pair) for width, pair in sessions.items()}, inputs)


def run_bench_multitask_widths(checkpoint, out_dir, widths=(0.75, 0.5),
                               epochs: int | None = None, frames: int = 300,
                               threads: int = 1, log=print) -> dict:
    """Train, score and time every width against the checkpoint's stage 1; the report."""
    full, settings = load_stage1(checkpoint)
    train = from_description(settings['train'], full.config.image_size)
    val = from_description(settings['val'], full.config.image_size)
    epochs = settings['static_epochs'] if epochs is None else epochs
    out_dir = Path(out_dir)
    work = out_dir / 'graphs'
    work.mkdir(parents=True, exist_ok=True)
    models = {1.0: full}
    seconds_trained = {}
    for width in sorted(widths, reverse=True):
        started = time.perf_counter()
        models[width] = train_width(settings, full.config, width, train, val, epochs, log)
        seconds_trained[width] = round(time.perf_counter() - started, 1)
    sessions, flops, scores = {}, {}, {}
    for width, model in models.items():
        sessions[width], flops[width] = _sessions(model, work, f'w{round(width * 100):03d}',
                                                  threads)
        scores[width] = score_model(model, val)
    seconds = time_widths(sessions, val.images[:frames])
    rows = {}
    for width in models:
        p50 = float(np.median(seconds[width]) * 1e3)
        rows[f'{width:g}'] = {
            'dims': list(models[width].config.dims), 'scores': scores[width],
            'delta_m': multitask_delta(scores[width], scores[1.0]),
            'flops': flops[width], 'flops_vs_full': flops[width] / flops[1.0],
            'latency_p50_ms': p50,
            'latency_p95_ms': float(np.percentile(seconds[width], 95) * 1e3),
            'train_seconds': seconds_trained.get(width)}
    full_p50 = rows['1']['latency_p50_ms']
    for row in rows.values():
        row['latency_vs_full'] = row['latency_p50_ms'] / full_p50
        row['pays'] = row['latency_vs_full'] < 1.0 and row['delta_m'] >= PAYS_WITHIN
    report = {'checkpoint': str(checkpoint), 'train': settings['train'], 'val': settings['val'],
              'epochs': epochs, 'frames': len(val.images[:frames]), 'threads': threads,
              'pays_within': PAYS_WITHIN, 'widths': rows,
              'kept': any(row['pays'] for width, row in rows.items() if width != '1')}
    write_json(out_dir / 'bench_multitask_widths.json', report)
    log(format_table(rows))
    log(f'channel sets on the multi-task encoder pay: {"yes" if report["kept"] else "no"} '
        f'(a width pays when faster and within {-PAYS_WITHIN:g} points of delta_m)')
    return report


def format_table(rows: dict) -> str:
    """Markdown table: width, channels, FLOPs, latency, delta_m and the task scores."""
    tasks = list(next(iter(rows.values()))['scores'])
    return markdown_table(
        ('width', 'channels', 'MFLOPs', 'vs full', 'p50 ms', 'p95 ms', 'vs full', 'delta_m',
         *tasks, 'pays'),
        ((width, '/'.join(map(str, row['dims'])), f'{row["flops"] / 1e6:.1f}',
          f'{row["flops_vs_full"]:.2f}', f'{row["latency_p50_ms"]:.3f}',
          f'{row["latency_p95_ms"]:.3f}', f'{row["latency_vs_full"]:.2f}',
          f'{row["delta_m"]:+.2f}', *(f'{row["scores"][t]:.4g}' for t in tasks),
          '-' if width == '1' else 'yes' if row['pays'] else 'no')
         for width, row in rows.items()))
