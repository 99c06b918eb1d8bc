"""What every bench writes: its JSON, its markdown tables, its PNG, its targets and machine.

The benches differ in what they measure, not in how they report it; written once
here, a JSON file always ends in a newline and survives values JSON has no type
for (paths, numpy scalars: written as text), a table always has the same
markdown shape, a figure is always closed (a long soak draws many), and a target
is always a value, the limit it is held to and whether it is met.
"""

import json
import os
import platform
import tempfile
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path
from typing import TypedDict


def write_json(path, data, indent: int = 1) -> Path:
    """Write ``data`` as JSON to ``path`` (its folder created), newline-terminated.

    Through a temporary file in the same folder, renamed over ``path``: a bench
    stopped mid-write (or failing to serialise) leaves the previous file, never half
    of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=indent, default=str) + '\n'
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', dir=path.parent)
    try:
        with os.fdopen(fd, 'w') as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Format a markdown table of ready-made cells: the header, its rule, one line a row."""
    lines = ['| ' + ' | '.join(header) + ' |', '|' + ' --- |' * len(header)]
    lines += ['| ' + ' | '.join(str(cell) for cell in row) + ' |' for row in rows]
    return '\n'.join(lines)


def cell(value, spec: str = '.2f') -> str:
    """``value`` formatted by ``spec``; '-' where the bench did not measure it (None)."""
    return '-' if value is None else format(value, spec)


def pyplot():
    """Return ``matplotlib.pyplot`` on Agg: benches draw files, on machines with no screen."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def save_figure(figure, path, dpi: int = 100, **savefig) -> Path:
    """Lay ``figure`` out, write it to ``path`` and close it (pyplot keeps open figures alive)."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    figure.savefig(path, dpi=dpi, **savefig)
    plt.close(figure)
    return Path(path)


class Machine(TypedDict):
    """The machine block of every bench's JSON."""

    platform: str
    processor: str
    cpus: int | None
    onnxruntime: str
    providers: list[str]
    threads: int | None


def machine(providers: Sequence[str], threads: int | None) -> Machine:
    """Where a latency was measured: ratios travel between machines, absolute times do not.

    The ONNX Runtime version is read from the installed package's metadata, so that
    writing a report never loads ONNX Runtime (the launcher's reports do not need it).
    """
    return {'platform': platform.platform(), 'processor': platform.processor(),
            'cpus': os.cpu_count(), 'onnxruntime': metadata.version('onnxruntime'),
            'providers': list(providers), 'threads': threads}


class TargetCheck(TypedDict, total=False):
    """A checked target: the value, whether met, and where it was read (one of the rest)."""

    value: float | int | None
    met: bool
    point: str | None
    mode: str
    width: float
    latency_vs_reference: float
    target_max: float


def target(value, limit, at_most: bool = True, **where) -> TargetCheck:
    """One checked target: ``where`` it was read (point, width...), the value, whether met.

    ``at_most``: the value must not exceed ``limit`` (a latency ratio, an accuracy
    drop); otherwise it must reach it (a reduction, a score). A value the bench could
    not measure (None) does not meet its target.
    """
    met = value is not None and (value <= limit if at_most else value >= limit)
    return {**where, 'value': value, 'met': bool(met)}
