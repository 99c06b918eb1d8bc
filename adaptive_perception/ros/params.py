"""Declaring parameters with descriptors and validating run-time changes.

Nodes describe each parameter once (default, description, optional check); the
helper declares it with a ``ParameterDescriptor``; ``on_change`` runs the node's
checks on the *candidate* values and rejects a bad request whole, with a reason,
so the old values stay.
"""

import weakref
from dataclasses import dataclass
from typing import Any, Callable

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)


@dataclass(frozen=True)
class Param:
    """One parameter: name, default, what it means, and optional bounds."""

    name: str
    default: Any
    description: str
    min: float | None = None
    max: float | None = None
    read_only: bool = False


def onnx_model_params(model_dir: str, what: str) -> list:
    """Describe the parameters every node that runs an exported model in ONNX Runtime has.

    ``model_dir`` is the default (the installed copy), ``what`` describes its contents.
    """
    return [
        Param('model_dir', model_dir, what, read_only=True),
        Param('providers', ['CPUExecutionProvider'],
              'ONNX Runtime execution providers in order of preference; missing ones '
              'are dropped with a warning, CPU is always the last resort.', read_only=True),
        Param('threads', 1,
              'Intra-op threads per graph; 0 = the onnxruntime default (one per core). '
              'The graphs are small and other nodes share the CPU: 1 was several times '
              'faster than the default on a loaded 2-core machine.', 0, 1024,
              read_only=True),
    ]


def declare(node, params) -> dict:
    """Declare ``params`` on ``node`` and return their current values by name."""
    values = {}
    for p in params:
        descriptor = ParameterDescriptor(description=p.description, read_only=p.read_only)
        if p.min is not None and p.max is not None:
            if isinstance(p.default, bool):
                pass
            elif isinstance(p.default, int):
                descriptor.integer_range = [IntegerRange(from_value=int(p.min),
                                                         to_value=int(p.max), step=1)]
            elif isinstance(p.default, float):
                descriptor.floating_point_range = [FloatingPointRange(
                    from_value=float(p.min), to_value=float(p.max), step=0.0)]
        values[p.name] = node.declare_parameter(p.name, p.default, descriptor).value
    return values


def on_change(node, names, check: Callable[[dict], None],
              apply: Callable[[dict], None]) -> None:
    """Validate, then apply, run-time changes to any of ``names``.

    ``check(candidate)`` raises ValueError to reject; it must not change anything.
    ``apply(candidate)`` commits. ``candidate`` holds the current value of every
    name with the requested changes applied. A node may register several handlers:
    every concerned ``check`` runs before any ``apply``, so a request is taken whole
    or rejected whole, and the old values stay.
    """
    handlers = _HANDLERS.get(node)
    if handlers is None:
        handlers = _HANDLERS[node] = []
        node.add_on_set_parameters_callback(lambda params: _dispatch(node, handlers, params))
    handlers.append((frozenset(names), check, apply))


_HANDLERS = weakref.WeakKeyDictionary()  # node -> [(names, check, apply)]


def _dispatch(node, handlers, parameters) -> SetParametersResult:
    requested = {p.name: p.value for p in parameters}
    concerned = []
    for names, check, apply in handlers:
        changes = {n: v for n, v in requested.items() if n in names}
        if not changes:
            continue
        candidate = {n: node.get_parameter(n).value for n in names}
        candidate.update(changes)
        try:
            check(candidate)
        except ValueError as error:
            node.get_logger().warning(f'rejected parameter change {changes}: {error}')
            return SetParametersResult(successful=False, reason=str(error))
        concerned.append((apply, candidate))
    for apply, candidate in concerned:
        apply(candidate)
    return SetParametersResult(successful=True)
