"""Declaring parameters with descriptors and validating run-time changes.

Nodes describe each parameter once (default, description, optional check); the
helper declares it with a ``ParameterDescriptor``; ``on_change`` runs the node's
checks on the *candidate* values and rejects a bad request whole, with a reason,
so the old values stay.

Parameters as users type them: ROS 2 parameters are statically typed, and rclpy
refuses ``30`` for a double (``ros2 param set /budget_manager dwell_s 30``,
``-p rate_hz:=10``, ``dwell_s: 30`` in YAML) - on the command line with an uncaught
exception. Here the kind each parameter takes comes from its default: an integer
where a double is expected is converted (at start-up and at run time), and a value
of another kind is refused with a message that names the parameter and the type it
takes. The check is ours (the descriptors use ``dynamic_typing`` so that rclpy's
own check, whose message names neither, does not run first); ranges stay in the
descriptors.
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
from rclpy.exceptions import InvalidParameterValueException
from rclpy.parameter import Parameter

Type = Parameter.Type


class ParameterError(ValueError):
    """A parameter given at start-up that the node cannot take; the message says why."""

    node_name = ''  # set by declare(): whose parameter it is


# What each kind is called in messages, and the kinds converted to it without loss.
KIND_NAMES = {
    Type.BOOL: 'a boolean (true/false)',
    Type.INTEGER: 'an integer',
    Type.DOUBLE: 'a floating-point number (double)',
    Type.STRING: 'a string',
    Type.BOOL_ARRAY: 'a list of booleans',
    Type.INTEGER_ARRAY: 'a list of integers',
    Type.DOUBLE_ARRAY: 'a list of floating-point numbers (double array)',
    Type.STRING_ARRAY: 'a list of strings',
    Type.BYTE_ARRAY: 'a list of bytes',
}
WIDENING = {(Type.INTEGER, Type.DOUBLE): float,
            (Type.INTEGER_ARRAY, Type.DOUBLE_ARRAY): lambda values: [float(v) for v in values]}
ARRAYS = {Type.BOOL_ARRAY, Type.INTEGER_ARRAY, Type.DOUBLE_ARRAY, Type.STRING_ARRAY,
          Type.BYTE_ARRAY}


def kind_of(default) -> Type:
    """Return the parameter type a default value declares (as rclpy infers it)."""
    return Type.from_parameter_value(default)


def coerce(name: str, expected: Type, parameter: Parameter) -> Parameter:
    """``parameter`` as ``expected``: as it is, widened (int -> double), or ParameterError.

    An empty list fits every list kind (YAML ``[]`` has no element type).
    """
    given = parameter.type_
    if given == expected:
        return parameter
    if (given, expected) in WIDENING:
        return Parameter(name, expected, WIDENING[given, expected](parameter.value))
    if expected in ARRAYS and given in ARRAYS and len(parameter.value) == 0:
        return Parameter(name, expected, [])
    shown = '(no value)' if given == Type.NOT_SET else repr(parameter.value)
    raise ParameterError(f"parameter '{name}' takes {KIND_NAMES.get(expected, expected.name)}, "
                         f'got {KIND_NAMES.get(given, given.name).split(" (")[0]} {shown}')


@dataclass(frozen=True)
class Param:
    """One parameter: name, default, what it means, and optional bounds."""

    name: str
    default: Any
    description: str
    min: float | None = None
    max: float | None = None
    read_only: bool = False
    integer_as_text: bool = False  # a text parameter that may be given as a number (an index)


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
    """Declare ``params`` on ``node`` and return their current values by name.

    A value given at start-up (command line, parameters file, launch) that is of
    the wrong kind or out of range raises ParameterError naming the parameter;
    ``run_node`` turns it into one log line and exit code 1.
    """
    kinds = _kinds(node)
    overrides = getattr(node, '_parameter_overrides', {})  # rclpy keeps no public accessor
    values = {}
    for p in params:
        kind = kinds[p.name] = kind_of(p.default)
        if p.integer_as_text:
            _TEXT_FROM_INTEGER.setdefault(node, set()).add(p.name)
        try:
            if p.name in overrides:  # convert or refuse before rclpy sees it
                overrides[p.name] = coerce(p.name, kind, _as_text(node, overrides[p.name]))
            values[p.name] = _declare(node, p, kind, overrides)
        except ParameterError as error:
            error.node_name = node.get_name()
            raise
    return values


def _declare(node, p: Param, kind: Type, overrides: dict):
    descriptor = ParameterDescriptor(description=p.description, read_only=p.read_only,
                                     dynamic_typing=True, type=kind.value)
    if p.min is not None and p.max is not None:
        if isinstance(p.default, bool):
            pass
        elif isinstance(p.default, int):
            descriptor.integer_range = [IntegerRange(from_value=int(p.min),
                                                     to_value=int(p.max), step=1)]
        elif isinstance(p.default, float):
            descriptor.floating_point_range = [FloatingPointRange(
                from_value=float(p.min), to_value=float(p.max), step=0.0)]
    try:
        return node.declare_parameter(p.name, p.default, descriptor).value
    except InvalidParameterValueException as error:  # e.g. out of the range
        value = overrides[p.name].value if p.name in overrides else p.default
        raise ParameterError(f"parameter '{p.name}': {value!r} refused: "
                             f'{_reason(error)}') from None


def _reason(error: Exception) -> str:
    text = str(error)
    return text.split('reason: ', 1)[-1] if 'reason: ' in text else text


_KINDS = weakref.WeakKeyDictionary()  # node -> {parameter name: declared Type}
_TEXT_FROM_INTEGER = weakref.WeakKeyDictionary()  # node -> names of integer_as_text params


def _as_text(node, parameter: Parameter) -> Parameter:
    if (parameter.type_ == Type.INTEGER
            and parameter.name in _TEXT_FROM_INTEGER.get(node, ())):
        return Parameter(parameter.name, Type.STRING, str(parameter.value))
    return parameter


def _kinds(node) -> dict:
    """Return the kinds of the node's parameters; install the type check once per node."""
    kinds = _KINDS.get(node)
    if kinds is None:
        kinds = _KINDS[node] = {}
        if hasattr(node, 'add_pre_set_parameters_callback'):  # rclpy >= Iron
            # Convert before rclpy stores anything: `ros2 param get` then shows a double.
            node.add_pre_set_parameters_callback(lambda ps: [_widened(kinds, p) for p in ps])
        node.add_on_set_parameters_callback(lambda ps: _on_set(node, kinds, ps))
    return kinds


def _widened(kinds: dict, parameter: Parameter) -> Parameter:
    expected = kinds.get(parameter.name)
    if expected is None:
        return parameter
    try:
        return coerce(parameter.name, expected, parameter)
    except ParameterError:
        return parameter  # refused by _check_kinds, with the reason


def _check_kinds(kinds: dict, parameters) -> SetParametersResult:
    for parameter in parameters:
        expected = kinds.get(parameter.name)
        if expected is not None:
            try:
                coerce(parameter.name, expected, parameter)
            except ParameterError as error:
                return SetParametersResult(successful=False, reason=str(error))
    return SetParametersResult(successful=True)


def on_change(node, names, check: Callable[[dict], None],
              apply: Callable[[dict], None]) -> None:
    """Validate, then apply, run-time changes to any of ``names``.

    ``check(candidate)`` raises ValueError to reject; it must not change anything.
    ``apply(candidate)`` commits. ``candidate`` holds the current value of every
    name with the requested changes applied. A node may register several handlers:
    every concerned ``check`` runs before any ``apply``, so a request is taken whole
    or rejected whole, and the old values stay.
    """
    _kinds(node)
    _HANDLERS.setdefault(node, []).append((frozenset(names), check, apply))


_HANDLERS = weakref.WeakKeyDictionary()  # node -> [(names, check, apply)]


def _on_set(node, kinds: dict, parameters) -> SetParametersResult:
    # One callback per node, kinds first: rclpy runs the last-added callback first.
    result = _check_kinds(kinds, parameters)
    if not result.successful:
        node.get_logger().warning(f'rejected parameter change: {result.reason}')
        return result
    return _dispatch(node, _HANDLERS.get(node, []), parameters)


def _dispatch(node, handlers, parameters) -> SetParametersResult:
    kinds = _KINDS.get(node, {})
    requested = {p.name: _plain(kinds, p) for p in parameters}
    concerned = []
    for names, check, apply in handlers:
        changes = {n: v for n, v in requested.items() if n in names}
        if not changes:
            continue
        candidate = {n: _plain(kinds, node.get_parameter(n)) for n in names}
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


def _plain(kinds: dict, parameter: Parameter):
    """Return the value as its declared kind (an int stored for a double -> float)."""
    expected = kinds.get(parameter.name)
    if expected is not None and (parameter.type_, expected) in WIDENING:
        return WIDENING[parameter.type_, expected](parameter.value)
    return parameter.value


