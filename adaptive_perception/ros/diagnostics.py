"""Building ``diagnostic_msgs`` statuses from plain dicts."""

import math

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from std_msgs.msg import Header

LEVEL_BYTES = {0: DiagnosticStatus.OK, 1: DiagnosticStatus.WARN, 2: DiagnosticStatus.ERROR}


def status(name: str, hardware_id: str, level: int, message: str, values: dict):
    """Build a DiagnosticStatus; ``level`` 0/1/2 = OK/WARN/ERROR, values as text."""
    return DiagnosticStatus(level=LEVEL_BYTES[level], name=name, hardware_id=hardware_id,
                            message=message,
                            values=[KeyValue(key=k, value=_text(v)) for k, v in values.items()])


def array(node, statuses) -> DiagnosticArray:
    """Stamp ``statuses`` with the node's clock."""
    return DiagnosticArray(header=Header(stamp=node.get_clock().now().to_msg()),
                           status=list(statuses))


def values_of(diagnostic_status) -> dict:
    """KeyValue list -> dict of strings."""
    return {kv.key: kv.value for kv in diagnostic_status.values}


def as_float(text: str) -> float:
    """Parse a diagnostics value; NaN if it is not a number."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def _text(value) -> str:
    if isinstance(value, float):
        return f'{value:.4g}'
    return str(value)

