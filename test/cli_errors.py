"""Run ``adaptive-perception`` in-process and read back the one line a user error gets."""

from adaptive_perception.cli import main

PREFIX = 'adaptive-perception: error: '


def user_error(capsys, argv: list) -> str:
    """Run the command; it must exit 2 with one line on stderr and no traceback."""
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(PREFIX), err
    assert 'Traceback' not in err and '; ' in lines[0], err
    return lines[0]
