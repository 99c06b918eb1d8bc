"""The command line: verbs from each family, one error style, a --help without heavy imports."""

import subprocess
import sys

import pytest

from adaptive_perception import cli
from adaptive_perception.errors import UserError, user_errors

HEAVY = ('torch', 'onnxruntime', 'rclpy', 'cv2', 'matplotlib')


def leaf_commands() -> list:
    return [[verb.group, verb.name] if verb.group else [verb.name] for verb in cli.verbs()]


def test_every_command_line_help_imports_no_heavy_dependency():
    script = f"""
import sys
from adaptive_perception.cli import main
groups = [[g] for g in {sorted({c[0] for c in leaf_commands()})!r}]
for argv in [[]] + groups + {leaf_commands()!r}:
    try:
        main(argv + ['--help'])
    except SystemExit as stop:
        assert stop.code == 0, argv
heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})
print('heavy:', heavy)
"""
    run = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == 'heavy: []', run.stdout[-2000:]
    assert 'adaptive-perception bench detector' in run.stdout


def test_every_family_contributes_its_verbs_and_each_leaf_is_reachable():
    families = {verb.__class__.__module__ for verb in cli.verbs()}
    assert families == set(cli.VERB_MODULES)
    parser = cli.build_parser()
    for command in leaf_commands():
        with pytest.raises(SystemExit) as stop:
            parser.parse_args([*command, '--help'])
        assert stop.value.code == 0
    assert len(leaf_commands()) == len({tuple(c) for c in leaf_commands()})


def run_cli(*args):
    return subprocess.run([sys.executable, '-m', 'adaptive_perception.cli', *args],
                          capture_output=True, text=True, timeout=120)


def test_a_user_error_is_one_line_and_exit_2_and_debug_shows_the_traceback(tmp_path):
    missing = tmp_path / 'no_model'
    args = ['eval', 'adacon', '--model-dir', str(missing), '--annotations', 'a.json',
            '--images', 'img']
    run = run_cli(*args)
    assert run.returncode == 2 and run.stdout == ''
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and 'Traceback' not in run.stderr, run.stderr
    assert lines[0].startswith('adaptive-perception: error: ') and str(missing) in lines[0]
    assert lines[0].endswith("; see 'adaptive-perception eval adacon --help'")
    for debug in (['--debug', *args], [*args, '--debug']):
        run = run_cli(*debug)
        assert run.returncode == 2 and 'Traceback' in run.stderr
        assert run.stderr.strip().splitlines()[-1] == lines[0]


def test_a_hint_replaces_the_help_pointer(monkeypatch, capsys):
    verb = next(v for v in cli.verbs() if (v.group, v.name) == ('bench', 'budget'))

    def refuse(args):
        raise UserError('level 7 is not in the profile', 'pick a level from 0 to 3')
    monkeypatch.setattr(verb, 'main', refuse)
    assert cli.main(['bench', 'budget']) == 2
    assert capsys.readouterr().err == ('adaptive-perception: error: level 7 is not in the '
                                       'profile; pick a level from 0 to 3\n')


@pytest.mark.parametrize('bug', [RuntimeError('a bug'), ValueError('an unconverted one'),
                                 KeyError('x')])
def test_a_bug_keeps_its_traceback(monkeypatch, bug):
    verb = next(v for v in cli.verbs() if (v.group, v.name) == ('bench', 'budget'))

    def crash(args):
        raise bug
    monkeypatch.setattr(verb, 'main', crash)
    with pytest.raises(type(bug)):
        cli.main(['bench', 'budget'])


def test_a_bug_in_a_subprocess_prints_its_traceback(tmp_path):
    script = """
from adaptive_perception import cli
verb = next(v for v in cli.verbs() if v.name == 'budget')
def crash(args):
    raise RuntimeError('a bug')
verb.main = crash
raise SystemExit(cli.main(['bench', 'budget']))
"""
    run = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 1
    assert 'Traceback' in run.stderr and 'RuntimeError: a bug' in run.stderr
    assert 'adaptive-perception: error' not in run.stderr


def test_user_errors_converts_only_the_kinds_named():
    with pytest.raises(UserError, match='--targets: bad') as caught:
        with user_errors(prefix='--targets: '):
            raise ValueError('bad')
    assert isinstance(caught.value.__cause__, ValueError)
    with pytest.raises(OSError):
        with user_errors():
            raise OSError('not converted')
    with pytest.raises(UserError):
        with user_errors(ValueError, OSError):
            raise FileNotFoundError('missing')
