"""Nodes, runtime, eval and benches run on the shipped models where torch cannot be imported.

torch is a training/export dependency only (setup.py's ``train`` extra). A child
process installs an import hook that refuses ``torch`` the way a missing
installation does (ModuleNotFoundError), imports every module outside the training
side, then runs the quick ``eval`` and ``bench`` commands on models/. The hook is a
meta-path finder rather than ``sys.modules['torch'] = None``: scipy's array-API
helpers look torch up in ``sys.modules`` and would trip over the None entry, which
no real torch-less install has.
"""

import json
import os
import subprocess
import sys
import textwrap

from ros_harness import REPO, node_env
from test_architecture import MODULES, NODES, is_torch_side

RUNTIME_SIDE = sorted(m for m in MODULES if not is_torch_side(m))

CHILD = textwrap.dedent('''
    import importlib, json, sys

    class NoTorch:
        """Refuse torch as an environment without it does."""

        def find_spec(self, name, path=None, target=None):
            if name == 'torch' or name.startswith('torch.'):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NoTorch())
    try:
        import torch  # noqa: F401
    except ModuleNotFoundError:
        pass
    else:
        raise SystemExit('the hook did not block torch')
    modules, commands = json.loads(sys.argv[1])
    for name in modules:
        importlib.import_module(name)
    from adaptive_perception.cli import main
    codes = []
    for argv in commands:
        try:
            codes.append(main(argv))
        except SystemExit as stop:
            codes.append(stop.code)
    leaked = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))
    print('RESULT ' + json.dumps({'codes': codes, 'leaked': leaked}))
''')


def test_the_split_leaves_a_runtime_side_with_every_node():
    """The modules the child imports include every node, the runtime, eval and the benches."""
    runtime_side = set(RUNTIME_SIDE)
    assert NODES <= runtime_side
    for wanted in ('adaptive_perception.runtime.onnx_sessions', 'adaptive_perception.cli',
                   'adaptive_perception.detection.evaluate',
                   'adaptive_perception.multitask.evaluate',
                   'adaptive_perception.activity.evaluate', 'adaptive_perception.detection.bench',
                   'adaptive_perception.multitask.bench', 'adaptive_perception.activity.bench'):
        assert wanted in runtime_side, wanted


def test_nodes_runtime_eval_and_bench_run_without_torch(tmp_path):
    scenes, bag = tmp_path / 'scenes', tmp_path / 'walks.npz'
    detector_data = ['--model-dir', str(REPO / 'models' / 'adacon'),
                     '--annotations', str(scenes / 'annotations.json'),
                     '--images', str(scenes / 'images')]
    adamtl = ['--model-dir', str(REPO / 'models' / 'adamtl')]
    commands = [
        ['data', 'scenes', '--out', str(scenes), '--images', '6', '--seed', '3'],
        ['eval', 'adacon', *detector_data, '--modes', 'static', 'single',
         '--out', str(tmp_path / 'eval_adacon.json')],
        ['bench', 'detector', *detector_data, '--modes', 'static', '--frames', '3',
         '--out', str(tmp_path / 'bench_detector')],
        ['eval', 'adamtl', *adamtl, '--data-count', '4', '--policies', 'low',
         '--out', str(tmp_path / 'eval_adamtl.json')],
        ['bench', 'multitask', *adamtl, '--data-count', '3', '--frames-per-turn', '1',
         '--out', str(tmp_path / 'bench_multitask')],
        ['data', 'imu', '--out', str(bag), '--minutes', '1', '--segment-s', '20',
         '--state', 'F50_A16', '--subject', '1005'],
        ['eval', 'activity', '--model-dir', str(REPO / 'models' / 'activity'),
         '--recordings', str(bag), '--out', str(tmp_path / 'eval_activity.json')],
        ['bench', 'activity', '--model-dir', str(REPO / 'models' / 'activity'),
         '--hours', '0.1', '--out', str(tmp_path / 'bench_activity.json')],
    ]
    run = subprocess.run(
        [sys.executable, '-c', CHILD, json.dumps([RUNTIME_SIDE, commands])],
        cwd=REPO, capture_output=True, text=True, timeout=900,
        env={**os.environ, **node_env()})
    assert run.returncode == 0, run.stderr[-4000:]
    result = json.loads(run.stdout.rsplit('RESULT ', 1)[1])
    assert result['leaked'] == []
    codes = dict(zip([' '.join(c[:2]) for c in commands], result['codes'], strict=True))
    assert codes.pop('bench activity') in (0, 1), run.stdout[-3000:]  # 1: a target missed
    assert all(code in (0, None) for code in codes.values()), (codes, run.stdout[-3000:])
    assert set(json.loads((tmp_path / 'eval_adacon.json').read_text())['modes']) == {
        'static', 'single'}
    assert 'low' in json.loads((tmp_path / 'eval_adamtl.json').read_text())['policies']
    assert (tmp_path / 'bench_detector' / 'bench_detector.json').is_file()
    assert (tmp_path / 'bench_multitask' / 'bench_multitask.json').is_file()
    assert json.loads((tmp_path / 'eval_activity.json').read_text())['recordings']
    assert json.loads((tmp_path / 'bench_activity.json').read_text())['settings']
