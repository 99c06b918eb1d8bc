"""Energy attribution: CPU time per level on the shipped profiles follows the bench latencies.

The same accounting the nodes report (``runtime.stats.CpuMeter``: process CPU time
split by level) runs the shipped models at each level of ``config/edge.yaml``, in
interleaved turns. Wherever the benches measured two levels' latencies more than
15% apart, the CPU time per frame must differ in the same direction.
"""

import itertools
import json

import pytest

from adaptive_perception.detection.engine import AdaConEngine
from adaptive_perception.detection.manifest import parse_mode
from adaptive_perception.detection.scenes import SceneGenerator
from adaptive_perception.launcher.plan import default_params_file, load_plan, share_dir
from adaptive_perception.multitask.engine import MultiTaskEngine
from adaptive_perception.multitask.levels import parse_level_choice
from adaptive_perception.runtime.stats import CpuMeter

GAP = 0.15  # latencies closer than this are not required to order the CPU time


def profile(node, key):
    spec = next(s for s in load_plan(default_params_file()) if s.name == node)
    return spec.parameters[key]


def cpu_ms_per_frame(runs: dict, images, rounds=3, per_turn=10) -> dict:
    """Level -> process CPU ms per frame, levels taking turns of ``per_turn`` frames."""
    meter = CpuMeter()
    frames = 0
    for run in runs.values():  # warm-up, not counted
        for image in images[:3]:
            run(image)
    for _ in range(rounds):
        for level, run in runs.items():
            meter.switch(level, level, frames)
            for image in images[:per_turn]:
                run(image)
                frames += 1
            meter.values(frames)
    meter.switch(None, None, frames)
    return {level: e['cpu_s'] / e['frames'] * 1e3 for level, e in meter.by_level.items()
            if level is not None}


def check_order(measured: dict, bench: dict):
    for a, b in itertools.combinations(sorted(bench), 2):
        if abs(bench[a] - bench[b]) > GAP * max(bench[a], bench[b]):
            assert (measured[a] > measured[b]) == (bench[a] > bench[b]), (
                f'levels {a} and {b}: bench latency {bench[a]:.2f} vs {bench[b]:.2f} ms, '
                f'CPU per frame {measured[a]:.2f} vs {measured[b]:.2f} ms')


@pytest.fixture(scope='module')
def images():
    generator = SceneGenerator(3, 128)
    return [generator.sample()[0] for _ in range(10)]


def test_detector_levels_cost_cpu_in_the_order_of_bench_channels(images):
    models = share_dir() / 'models' / 'adacon'
    engine = AdaConEngine(models, threads=1)
    modes = profile('adacon_detector', 'level_modes')
    # the newest bench channels run: every width x mode x precision and the cascades
    card = json.loads((models / 'card.json').read_text())['precision_and_exits'][
        'bench_channels']['points']
    bench = {level: card[mode]['latency_p50_ms'] for level, mode in enumerate(modes)}
    parsed = [parse_mode(mode) for mode in modes]
    runs = {level: (lambda image, m=m: engine.detect(image, m)) for level, m in enumerate(parsed)}
    measured = cpu_ms_per_frame(runs, images)
    check_order(measured, bench)
    assert measured[len(modes) - 1] < 0.8 * measured[0]


def test_multitask_levels_cost_cpu_in_the_order_of_bench_multitask(images):
    models = share_dir() / 'models' / 'adamtl'
    engine = MultiTaskEngine(models, threads=1)
    choices = [parse_level_choice(c) for c in profile('adamtl_multitask', 'level_policies')]
    rows = json.loads((models / 'bench.json').read_text())['rows']
    bench = {level: rows[c.policy]['latency_p50_ms'] for level, c in enumerate(choices)
             if c.tasks is None}  # the bench times every task
    runs = {level: (lambda image, c=c: engine.infer(image, c.policy, c.tasks))
            for level, c in enumerate(choices)}
    measured = cpu_ms_per_frame(runs, images)
    check_order(measured, bench)
    assert measured[len(choices) - 1] < measured[0]
