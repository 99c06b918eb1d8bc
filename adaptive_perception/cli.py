"""``adaptive-perception``: the command line for work outside ``ros2``.

As in ros2cli, each family contributes its verbs (``VERBS`` in its ``cli`` module:
objects with ``group``, ``name``, ``help``, ``add_arguments(parser)`` and
``main(args)``); this module only builds the parser from them and dispatches.
Verbs import their heavy dependencies (torch, ONNX Runtime, rclpy) only when run,
so ``--help`` works anywhere.

A :class:`~adaptive_perception.errors.UserError` is printed as one line and the
command exits 2 (``--debug``: the traceback); any other exception is a bug and
keeps its traceback.
"""

import argparse
import importlib
import sys
import traceback

from adaptive_perception.errors import UserError

PROG = 'adaptive-perception'

# The families whose cli modules contribute verbs, in the order of ``--help``.
VERB_MODULES = (
    'adaptive_perception.launcher.cli',
    'adaptive_perception.detection.cli',
    'adaptive_perception.activity.cli',
    'adaptive_perception.multitask.cli',
    'adaptive_perception.channels.cli',
    'adaptive_perception.budget.cli',
)

# Top-level commands in the order of ``--help``: (name, help, dest of the verb) for a
# group of verbs, (name, None, None) for a verb of its own.
COMMANDS = (
    ('launch', None, None),
    ('run', None, None),
    ('data', 'generate the embedded datasets', 'dataset'),
    ('cluster', None, None),
    ('train', 'train a model (no ROS needed)', 'model'),
    ('export', 'export a trained model to ONNX', 'model'),
    ('eval', 'score an exported model', 'model'),
    ('explore', 'design-space exploration', 'model'),
    ('bench', 'measure against the targets', 'target'),
)

_DEBUG_HELP = 'show the traceback of an error instead of one line'


def verbs() -> list:
    """Every family's verbs, in registry order."""
    return [verb for module in VERB_MODULES
            for verb in importlib.import_module(module).VERBS]


def _add_verb(subparsers, verb) -> None:
    parser = subparsers.add_parser(verb.name, help=verb.help)
    verb.add_arguments(parser)
    parser.add_argument('--debug', action='store_true', help=_DEBUG_HELP)
    parser.set_defaults(func=verb.main, verb=verb)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser from the families' verbs (also used by the tests)."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split('\n')[0])
    parser.add_argument('--debug', dest='debug_all', action='store_true', help=_DEBUG_HELP)
    commands = parser.add_subparsers(dest='command', required=True)
    registered = verbs()
    for name, help_text, dest in COMMANDS:
        if help_text is None:
            [verb] = [v for v in registered if v.group is None and v.name == name]
            _add_verb(commands, verb)
            continue
        group = commands.add_parser(name, help=help_text).add_subparsers(dest=dest,
                                                                        required=True)
        for verb in registered:
            if verb.group == name:
                _add_verb(group, verb)
    known = {name for name, _, _ in COMMANDS}
    stray = [v for v in registered if (v.group or v.name) not in known]
    if stray:
        raise RuntimeError(f'verbs of no known command: {[(v.group, v.name) for v in stray]}')
    return parser


def _command(args) -> str:
    verb = args.verb
    return ' '.join(part for part in (PROG, verb.group, verb.name) if part)


def report_user_error(error: UserError, command: str) -> None:
    """Print the one line a user error gets: what is wrong; what to do."""
    hint = error.hint or f"see '{command} --help'"
    print(f'{PROG}: error: {error.what}; {hint}', file=sys.stderr)


def main(argv=None) -> int:
    """Entry point of the ``adaptive-perception`` command."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as error:
        if args.debug or args.debug_all:
            traceback.print_exc()
        report_user_error(error, _command(args))
        return 2
    except KeyboardInterrupt:  # Ctrl-C before a command set up its own handling
        print('interrupted', file=sys.stderr)
        return 130


if __name__ == '__main__':
    raise SystemExit(main())
