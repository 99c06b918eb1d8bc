"""ONNX Runtime sessions from a list of execution providers, with CPU as the last resort.

The providers come from a node parameter, so a config written for a GPU machine
must still start on a laptop: providers this onnxruntime build lacks are dropped
with one warning, and ``CPUExecutionProvider`` always closes the list. Every
session reports the providers it really got; those go into diagnostics.
"""

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import onnxruntime as ort

CPU = 'CPUExecutionProvider'

_log = logging.getLogger(__name__)
_ORT_CPU_S = [0.0]  # process CPU time spent inside session runs, this process


def ort_cpu_seconds() -> float:
    """Process CPU seconds spent inside ONNX Runtime runs so far (every session here)."""
    return _ORT_CPU_S[0]


class TimedSession:
    """An ``InferenceSession`` whose runs add their process CPU time to ``ort_cpu_seconds``.

    Everything else is the session's own (attribute access is passed through), so
    callers and ``BoundGraph`` use it as they would the session.
    """

    def __init__(self, session):
        self._session = session

    def __getattr__(self, name):
        return getattr(self._session, name)

    def run(self, *args, **kwargs):
        """``InferenceSession.run``, timed."""
        start = time.process_time()
        try:
            return self._session.run(*args, **kwargs)
        finally:
            _ORT_CPU_S[0] += time.process_time() - start

    def run_with_iobinding(self, *args, **kwargs):
        """``InferenceSession.run_with_iobinding``, timed."""
        start = time.process_time()
        try:
            return self._session.run_with_iobinding(*args, **kwargs)
        finally:
            _ORT_CPU_S[0] += time.process_time() - start


def resolve_providers(requested: Sequence[str], available: Sequence[str] | None = None,
                      warn: Callable[[str], None] | None = None) -> list:
    """Keep the requested providers this build has, in order, and end with CPU.

    One ``warn`` call (default: this module's logger) names every provider dropped.
    """
    available = ort.get_available_providers() if available is None else available
    warn = warn or _log.warning
    kept, dropped = [], []
    for name in requested:
        if name == CPU or name in kept:
            continue
        (kept if name in available else dropped).append(name)
    if dropped:
        warn(f'execution providers not available in this onnxruntime build, dropped: '
             f'{", ".join(dropped)} (available: {", ".join(available)}); '
             f'using {", ".join([*kept, CPU])}')
    return [*kept, CPU]


@dataclass(frozen=True)
class Sessions:
    """Loaded sessions by name and the providers they actually use (union, in order)."""

    sessions: dict
    providers: list


def create_sessions(paths: dict, providers: Sequence[str] = (CPU,), threads: int | None = None,
                    warn: Callable[[str], None] | None = None) -> Sessions:
    """Load every graph in ``paths`` (name -> .onnx path) once.

    ``threads`` sets the intra-op thread count of each session (None or 0: the
    onnxruntime default). A graph that cannot be loaded raises ValueError naming it.
    """
    chosen = resolve_providers(providers, warn=warn)
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
    sessions, used = {}, []
    for name, path in paths.items():
        try:
            session = ort.InferenceSession(str(Path(path)), sess_options=options,
                                           providers=chosen)
        except Exception as error:  # onnxruntime raises its own, unrelated types
            raise ValueError(f'cannot load {name} graph {path}: {error}') from error
        sessions[name] = TimedSession(session)
        used += [p for p in session.get_providers() if p not in used]
    return Sessions(sessions, used)


class BoundGraph:
    """A session with some inputs fixed once, so that a call feeds only what changes.

    The fixed inputs are bound as ONNX Runtime values a single time: passing them as
    numpy arrays on every call converts each one again (for AdaMTL's policy graph,
    24 small arrays, about 30 us a frame, measured). Outputs come back as numpy arrays.
    Not thread-safe: one binding per caller thread.
    """

    def __init__(self, session, fixed: dict):
        self._session = session
        self._binding = session.io_binding()
        self._fixed = {name: ort.OrtValue.ortvalue_from_numpy(value)
                       for name, value in fixed.items()}  # kept alive with the binding
        for name, value in self._fixed.items():
            self._binding.bind_ortvalue_input(name, value)
        for output in session.get_outputs():
            self._binding.bind_output(output.name)

    def run(self, feeds: dict) -> list:
        """Run on ``feeds`` (the inputs not fixed); return the outputs in the graph's order."""
        for name, value in feeds.items():
            self._binding.bind_cpu_input(name, value)
        self._session.run_with_iobinding(self._binding)
        return self._binding.copy_outputs_to_cpu()
