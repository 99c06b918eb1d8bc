"""The layering of ARCHITECTURE.md, checked on the imports the source really makes.

Every ``import`` and ``from ... import`` of every module under adaptive_perception/ is
read with ``ast`` (function-level imports included: a lazy import is a dependency
too) and checked against the rule table below. A failure names the module, the line
and the import that breaks a rule.
"""

import ast
import runpy
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = 'adaptive_perception'
SOURCE = REPO / PACKAGE

FAMILIES = ('activity', 'budget', 'channels', 'detection', 'multitask', 'power', 'sources')
CONTRACT = {PACKAGE, f'{PACKAGE}.interfaces', f'{PACKAGE}.paths', f'{PACKAGE}.levels',
            f'{PACKAGE}.executables', f'{PACKAGE}.errors', f'{PACKAGE}.verb_args'}

# Which layer may import which (a layer always imports itself).
MAY_IMPORT = {
    'contract': set(),
    'runtime': {'contract'},
    'training': {'contract', 'runtime'},
    'ros': {'contract', 'runtime'},
    'family': {'contract', 'runtime', 'training', 'ros'},
    'launcher': {'contract', 'runtime', 'ros', 'family'},
    'cli': {'contract', 'runtime', 'training', 'ros', 'family', 'launcher'},
}
# A family's benches run the pipeline's processes, so they may use the launcher.
BENCH_MAY_IMPORT = {'launcher'}

# Modules where torch may be imported (the training/export side of each family).
TORCH_SIDE_NAMES = {'model', 'train', 'export'}
TORCH_FAMILIES = {'detection', 'multitask', 'activity'}
TORCH_SIDE = {
    f'{PACKAGE}.detection.slimmable',       # the nested-width detector (a model)
    f'{PACKAGE}.detection.coco_data',       # the training data set (torch Dataset)
    f'{PACKAGE}.multitask.validate',        # scores the PyTorch model while training
    f'{PACKAGE}.channels.gating',           # gate model and its training
    f'{PACKAGE}.channels.gating_bench',     # trains and exports gates, then measures
    f'{PACKAGE}.channels.encoder_widths',   # trains narrower encoders, then measures
}
# Modules that may import torch inside a function only, for an opt-in path.
LAZY_TORCH = {
    f'{PACKAGE}.multitask.bench': 'the --checkpoint comparison times the PyTorch model',
}
NO_RCLPY_LAYERS = {'contract', 'runtime', 'training'}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix('').parts)
    if parts[-1] == '__init__':
        parts.pop()
    return '.'.join(parts)


MODULES = {_module_name(p): p for p in sorted(SOURCE.rglob('*.py'))}
NODES = set(runpy.run_path(str(SOURCE / 'executables.py'))['EXECUTABLES'].values())


def _is_module(name: str) -> bool:
    return name in MODULES or name == f'{PACKAGE}.msg'


def _imports(module: str, path: Path, text: str | None = None):
    """Yield (line, imported module, at module level) for every import in ``path``."""
    tree = ast.parse(path.read_text() if text is None else text, str(path))
    top_level = {id(node) for node in tree.body}
    package = module if path.name == '__init__.py' else module.rpartition('.')[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, id(node) in top_level
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')[:len(package.split('.')) - node.level + 1]
                source = '.'.join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            for alias in node.names:
                sub = f'{source}.{alias.name}'
                yield node.lineno, sub if _is_module(sub) else source, id(node) in top_level


def layer(module: str) -> str:
    """Return the layer of a module of this package (or of its generated messages)."""
    parts = module.split('.')
    if module in CONTRACT or module.startswith(f'{PACKAGE}.msg'):
        return 'contract'
    if len(parts) > 1 and parts[1] in FAMILIES:
        return 'family'
    if len(parts) > 1 and parts[1] in ('runtime', 'training', 'ros', 'launcher', 'cli'):
        return parts[1]
    if module == f'{PACKAGE}.middleware':
        return 'launcher'
    raise AssertionError(f'{module} belongs to no layer: add it to the table in '
                         f'{Path(__file__).name} and to ARCHITECTURE.md')


def family(module: str) -> str | None:
    parts = module.split('.')
    return parts[1] if len(parts) > 1 and parts[1] in FAMILIES else None


def is_bench(module: str) -> bool:
    last = module.rsplit('.', 1)[-1]
    return last in ('bench', 'endurance') or last.endswith('_bench')


def is_torch_side(module: str) -> bool:
    """Return whether ``module`` may import torch (where it may, it need not)."""
    named = (family(module) in TORCH_FAMILIES
             and module.rsplit('.', 1)[-1] in TORCH_SIDE_NAMES)
    return module in TORCH_SIDE or named or layer(module) == 'training'


def test_torch_side_is_only_what_the_table_names():
    """power.model (a battery model, no torch) stays on the runtime side."""
    assert not is_torch_side(f'{PACKAGE}.power.model')
    assert is_torch_side(f'{PACKAGE}.detection.fastestdet.model')
    assert not is_torch_side(f'{PACKAGE}.multitask.evaluate')


def _own(name: str) -> bool:
    return name == PACKAGE or name.startswith(PACKAGE + '.')


def _top(name: str) -> str:
    return name.split('.')[0]


ALL_IMPORTS = sorted({(module, line, imported, top)
                      for module, path in MODULES.items()
                      for line, imported, top in _imports(module, path)})


def _where(module, line, imported):
    return f'{MODULES[module].relative_to(REPO)}:{line}: {module} imports {imported}'


def test_every_module_has_a_layer():
    """A new top-level module or package is placed in a layer, not left out of the rules."""
    for module in MODULES:
        layer(module)


def test_layers_import_only_what_the_table_allows():
    """Each layer imports only those below it, as ARCHITECTURE.md draws them."""
    problems = []
    for module, line, imported, _top_level in ALL_IMPORTS:
        if not _own(imported):
            continue
        mine, theirs = layer(module), layer(imported)
        allowed = MAY_IMPORT[mine] | {mine}
        if mine == 'family' and is_bench(module):
            allowed |= BENCH_MAY_IMPORT
        if theirs not in allowed:
            problems.append(f'{_where(module, line, imported)} ({mine} -> {theirs})')
    assert not problems, '\n'.join(problems)


def test_no_node_imports_another_node_and_the_launcher_imports_none():
    """Nodes share code through ros/ and runtime/; only benches run a node in-process."""
    assert NODES <= set(MODULES), sorted(NODES - set(MODULES))
    problems = []
    for module, line, imported, _top_level in ALL_IMPORTS:
        if imported not in NODES or imported == module:
            continue
        if module in NODES or layer(module) == 'launcher' or not is_bench(module):
            problems.append(_where(module, line, imported) + ' (a node module)')
    assert not problems, '\n'.join(problems)


def test_families_depend_one_way():
    """No cycle between families: e.g. channels builds on detection, never the reverse."""
    edges = {(family(module), family(imported)) for module, _line, imported, _t in ALL_IMPORTS
             if family(module) and family(imported) and family(module) != family(imported)}
    problems = []
    for a, b in sorted(edges):
        if a < b and (b, a) in edges:
            lines = sorted({_where(m, line, i) for m, line, i, _t in ALL_IMPORTS
                            if {family(m), family(i)} == {a, b}})
            problems.append(f'{a} and {b} import each other:\n' + '\n'.join(lines))
    assert not problems, '\n'.join(problems)
    assert ('channels', 'detection') in edges  # the rule sees the real imports


def test_torch_only_on_the_training_side():
    """Runtime, ros, nodes, eval and benches import no torch (lazy only where listed)."""
    problems = []
    for module, line, imported, top_level in ALL_IMPORTS:
        if _top(imported) != 'torch' or is_torch_side(module):
            continue
        if module in LAZY_TORCH and not top_level:
            continue
        problems.append(_where(module, line, imported))
    assert not problems, '\n'.join(problems)
    for module in LAZY_TORCH:
        assert any(_top(i) == 'torch' for m, _l, i, _t in ALL_IMPORTS if m == module), (
            f'{module} no longer imports torch: drop it from LAZY_TORCH')


def test_no_rclpy_below_the_ros_layer():
    """The contract, the runtime and the training helpers import no rclpy (nor ROS messages)."""
    ros_packages = {'rclpy', 'sensor_msgs', 'std_msgs', 'diagnostic_msgs', 'vision_msgs',
                    'builtin_interfaces', 'launch', 'launch_ros'}
    problems = [_where(module, line, imported) for module, line, imported, _t in ALL_IMPORTS
                if layer(module) in NO_RCLPY_LAYERS and _top(imported) in ros_packages]
    assert not problems, '\n'.join(problems)


def test_the_reader_sees_lazy_relative_imports_of_submodules():
    """A node module imported lazily and relatively is found (so the checks can fail)."""
    text = 'import os\n\ndef f():\n    from ..detection import detector_node\n'
    found = list(_imports(f'{PACKAGE}.launcher.probe', SOURCE / 'launcher' / 'probe.py', text))
    assert found == [(1, 'os', True), (4, f'{PACKAGE}.detection.detector_node', False)]
    assert f'{PACKAGE}.detection.detector_node' in NODES
