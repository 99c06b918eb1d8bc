"""Checks on battery and temperature readings before the policy sees them.

A bad reading never crashes the manager and never silently becomes a level: it
is corrected with a warning (percent sent where a fraction is defined), or
rejected with an error, and the reason is shown in ``/diagnostics``. Rejected
readings count as missing, so a source that only sends garbage goes stale.
"""

import math
from dataclasses import dataclass

from adaptive_perception.interfaces import (
    STATUS_CHARGING,
    STATUS_DISCHARGING,
    STATUS_FULL,
    STATUS_NOT_CHARGING,
)

OK, WARN, ERROR = 0, 1, 2  # same order as diagnostic_msgs/DiagnosticStatus levels

# 'Not charging' is external power held at a charge limit: the battery is not draining.
_PLUGGED_IN = {STATUS_CHARGING, STATUS_NOT_CHARGING, STATUS_FULL}
_KNOWN_STATUS = {STATUS_CHARGING, STATUS_DISCHARGING, STATUS_NOT_CHARGING, STATUS_FULL}


@dataclass(frozen=True)
class Checked:
    """A reading after checking: ``value`` is None when it was rejected."""

    value: float | None
    severity: int
    reason: str
    charging: bool = False


def check_battery(percentage: float, status: int, charge: float = math.nan,
                  capacity: float = math.nan) -> Checked:
    """Turn BatteryState fields into a 0..1 fraction, correcting or rejecting faults."""
    notes, severity = [], OK
    charging = status in _PLUGGED_IN
    if status not in _KNOWN_STATUS:
        notes.append(f'power_supply_status {status} unknown, assuming discharging')
        severity = WARN
    fraction = percentage
    if not math.isfinite(fraction):
        if math.isfinite(charge) and math.isfinite(capacity) and capacity > 0:
            fraction = charge / capacity
            notes.append('percentage NaN, using charge/capacity')
        else:
            return Checked(None, ERROR, '; '.join(notes + ['percentage is NaN/inf and '
                                                           'charge/capacity unknown']), charging)
    if 1.0 < fraction <= 100.0:
        notes.append(f'percentage {fraction:g} looks like 0..100, BatteryState defines 0..1; '
                     f'using {fraction / 100:.3f}')
        severity = max(severity, WARN)
        fraction /= 100.0
    elif not 0.0 <= fraction <= 1.0:
        return Checked(None, ERROR, '; '.join(notes + [f'percentage {fraction:g} out of range']),
                       charging)
    return Checked(fraction, severity, '; '.join(notes) or 'ok', charging)


def check_temperature(celsius: float, min_valid_c: float, max_valid_c: float) -> Checked:
    """Reject NaN and physically absurd temperatures (a sensor fault, not heat)."""
    if not math.isfinite(celsius):
        return Checked(None, ERROR, 'temperature is NaN/inf')
    if not min_valid_c <= celsius <= max_valid_c:
        return Checked(None, ERROR, f'temperature {celsius:g} C outside the valid range '
                                    f'[{min_valid_c:g}, {max_valid_c:g}] C: sensor fault')
    return Checked(celsius, OK, 'ok')


class StampOrder:
    """Rejects messages older than the newest one already taken from the same source.

    A zero stamp (publisher did not set it) is accepted and does not move the mark.
    """

    def __init__(self):
        self._newest = {}

    def accept(self, source: str, stamp_ns: int) -> bool:
        """Tell whether this stamp is not older than the newest seen from ``source``."""
        if stamp_ns == 0:
            return True
        if stamp_ns < self._newest.get(source, 0):
            return False
        self._newest[source] = stamp_ns
        return True
