"""The documents stay a short manual that is true to the code.

The README is what someone picking the package up reads first, so it stays short
(the measured results live in the model cards and the pipeline card, the history in
CHANGELOG.md) and what it quotes must work: its links lead somewhere, the commands
quoted in it, the docs and the cards are ones the command line takes, and its
tables of launch arguments, topics and parameters name what the launch file,
``adaptive_perception.interfaces`` and the running nodes declare.
"""

import contextlib
import importlib.util
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from adaptive_perception import interfaces
from adaptive_perception.executables import EXECUTABLES

REPO = Path(__file__).resolve().parents[1]
README = REPO / 'README.md'
README_MAX_LINES = 250
DOCS = [README, REPO / 'CHANGELOG.md', *sorted((REPO / 'docs').glob('*.md')),
        *sorted((REPO / 'models').glob('**/README.md'))]
FENCE = re.compile(r'^```.*?^```', re.M | re.S)


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def _prose(text: str) -> str:
    """``text`` without its fenced code blocks (links there are not links)."""
    return FENCE.sub('', text)


def _code(text: str) -> list:
    """Every piece of code in ``text``: fenced blocks and inline spans."""
    blocks = FENCE.findall(text)
    spans = re.findall(r'`([^`\n]+)`', FENCE.sub('', text))
    return blocks + spans


def _slug(heading: str) -> str:
    """Return the anchor GitHub gives a heading."""
    text = re.sub(r'[^\w\- ]', '', heading.strip().lower())
    return text.replace(' ', '-')


def _anchors(path: Path) -> set:
    headings = re.findall(r'^#{1,6} (.+)$', _prose(path.read_text()), re.M)
    return {_slug(h) for h in headings}


def _table(text: str, header: str) -> list:
    """Rows (lists of cells) of the markdown table whose header row starts with ``header``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith('|'):
            break
        rows.append([cell.strip() for cell in line.strip('|').split('|')])
    return rows


def _names(cell: str) -> list:
    """Return the backquoted names in a table cell, leaving out parentheses (values)."""
    previous = None
    while previous != cell:
        previous, cell = cell, re.sub(r'\([^()]*\)', '', cell)
    return re.findall(r'`([A-Za-z_][\w/]*)`', cell)


def test_readme_is_a_short_manual():
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f'README.md has {len(lines)} lines (at most {README_MAX_LINES}): measured results '
        'go to the model cards or docs/pipeline.md, history to CHANGELOG.md')


def test_readme_test_command_is_what_ci_runs():
    readme_commands = [line.split('#')[0].strip() for block in FENCE.findall(README.read_text())
                       for line in block.splitlines()]
    assert 'make test' in readme_commands
    ci_commands = [line.strip() for line in (REPO / '.ci' / 'run').read_text().splitlines()
                   if not line.lstrip().startswith('#')]
    assert 'make test' in ci_commands


@pytest.mark.parametrize('doc', DOCS, ids=_rel)
def test_links_lead_somewhere(doc):
    links = re.findall(r'\]\(([^)\s]+)\)', _prose(doc.read_text()))
    broken = []
    for link in links:
        if re.match(r'[a-z]+:', link):
            continue  # a web address
        file_part, _, anchor = link.partition('#')
        target = (doc.parent / file_part).resolve() if file_part else doc
        if not target.exists():
            broken.append(f'{link}: no {target}')
        elif anchor and target.suffix == '.md' and anchor not in _anchors(target):
            broken.append(f'{link}: no heading #{anchor} in {_rel(target)}')
    assert not broken, broken


def test_readme_links_every_model_card_and_doc():
    linked = {(REPO / link.partition('#')[0]).resolve()
              for link in re.findall(r'\]\(([^)#\s]+)', _prose(README.read_text()))}
    expected = {*(REPO / 'docs').glob('*.md'), *(REPO / 'models').glob('*/README.md'),
                REPO / 'CHANGELOG.md'}
    assert {p.resolve() for p in expected} <= linked, sorted(map(_rel, expected - linked))


def _cli(argv: list) -> int:
    """Exit status of ``adaptive-perception argv`` run in this process."""
    from adaptive_perception.cli import main
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            return main(argv) or 0
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 1


def _verbs() -> set:
    """Return the top-level verbs, as the command's own help lists them."""
    from adaptive_perception.cli import main
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main(['--help'])
    return set(re.search(r'\{([\w,-]+)\}', out.getvalue()).group(1).split(','))


def _quoted_commands() -> dict:
    """``(verb, sub)`` -> the documents quoting ``adaptive-perception verb sub``.

    Found after ``adaptive-perception`` anywhere in code, and in code that starts with
    a verb (``bench channels``); ``sub`` is None where the next word is an option.
    """
    verbs = _verbs()
    word = r'[a-z][\w-]*'
    found = {}
    for doc in DOCS:
        for code in _code(doc.read_text()):
            pieces = re.findall(rf'adaptive-perception\s+({word})(?:\s+({word}))?', code)
            first = re.match(rf'\s*({word})(?:\s+({word}))?', code)
            if first and first.group(1) in verbs:
                pieces.append((first.group(1), first.group(2) or ''))
            for verb, sub in pieces:
                found.setdefault((verb, sub or None), set()).add(_rel(doc))
    return found


def test_quoted_commands_are_verbs_the_cli_takes():
    verbs = _verbs()
    assert {'launch', 'run', 'train', 'export', 'eval', 'bench'} <= verbs
    quoted = _quoted_commands()
    assert ('launch', 'edge') in quoted and ('bench', 'soak') in quoted
    wrong = []
    for (verb, sub), where in sorted(quoted.items(), key=lambda item: (item[0][0],
                                                                       item[0][1] or '')):
        if verb not in verbs:
            wrong.append(f'adaptive-perception {verb}: not a verb ({sorted(where)})')
        elif verb == 'run':
            # run passes what follows to the node: its argument must be an executable
            if sub is not None and sub not in EXECUTABLES:
                wrong.append(f'adaptive-perception run {sub}: no such node ({sorted(where)})')
        elif _cli([verb, *([sub] if sub else []), '--help']) != 0:
            wrong.append(f'adaptive-perception {verb} {sub or ""}: refused ({sorted(where)})')
    assert not wrong, wrong


def test_make_targets_quoted_in_the_readme_exist():
    targets = set()
    for code in _code(README.read_text()):
        targets |= set(re.findall(r'(?:^|[\s`=])make ([a-z][\w-]*)', code, re.M))
    assert {'demo', 'test'} <= targets
    for target in sorted(targets):
        run = subprocess.run(['make', '-n', target], cwd=REPO, capture_output=True, text=True,
                             timeout=120)
        assert run.returncode == 0, f'make {target}: {run.stderr.strip()}'


def test_readme_launch_arguments_are_the_launch_files(ros_tools):
    path = REPO / 'launch' / 'edge.launch.py'
    spec = importlib.util.spec_from_file_location('edge_launch', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    declared = {argument.name for argument
                in module.generate_launch_description().get_launch_arguments()}
    documented = {re.match(r'`([^`]+)`', row[0]).group(1)
                  for row in _table(README.read_text(), '| launch argument |')}
    assert documented == declared


def test_readme_topics_are_the_interface():
    values = {name: value for name, value in vars(interfaces).items()
              if name.endswith('_TOPIC') and isinstance(value, str)}
    # MULTITASK_TOPIC only prefixes the per-task topics; nothing is published on it
    topics = set(values.values()) - {interfaces.MULTITASK_TOPIC}
    topics |= set(interfaces.TASK_TOPICS.values())
    declared = {interfaces.resolved(topic) for topic in topics}
    documented = {re.match(r'`([^`]+)`', row[0]).group(1)
                  for row in _table(README.read_text(), '| topic |')}
    assert documented == declared


DUMP_PARAMETERS = '''
import importlib, inspect, json, sys
import rclpy
from rclpy.node import Node
from adaptive_perception.executables import EXECUTABLES
rclpy.init()
declared = {}
for executable, module_name in EXECUTABLES.items():
    module = importlib.import_module(module_name)
    (cls,) = [c for c in vars(module).values() if inspect.isclass(c) and issubclass(c, Node)
              and c.__module__ == module_name]
    node = cls()
    declared[executable] = sorted(node._parameters)
    node.destroy_node()
rclpy.shutdown()
print(json.dumps(declared))
'''


@pytest.mark.slow
def test_readme_parameters_are_declared_by_the_nodes():
    """Start every node (in a child process) and compare what it declares with the table."""
    run = subprocess.run([sys.executable, '-c', DUMP_PARAMETERS], capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    declared = {node: set(names) for node, names
                in json.loads(run.stdout.strip().splitlines()[-1]).items()}
    rows = {row[0].strip('`'): row[1]
            for row in _table(README.read_text(), '| node | parameters |')}
    followers = [node for node, names in declared.items() if 'level_override' in names]
    assert len(followers) >= 4
    missing = []
    for row, cell in rows.items():
        nodes = followers if row == 'every adaptive node' else [row]
        for node in nodes:
            assert node in declared, f'README parameter table: no node {node!r}'
            missing += [f'{node}.{name}' for name in _names(cell)
                        if name not in declared[node]]
    assert not missing, f'named in the README but not declared: {missing}'
    assert set(rows) - {'every adaptive node'} == set(declared)
