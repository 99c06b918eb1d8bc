"""Checks applied to battery and temperature readings before the policy."""

import math

import pytest

from adaptive_perception import interfaces
from adaptive_perception.budget import inputs


@pytest.mark.parametrize('percentage, status, severity, value, charging', [
    (0.55, interfaces.STATUS_DISCHARGING, inputs.OK, 0.55, False),
    (1.0, interfaces.STATUS_FULL, inputs.OK, 1.0, True),
    (55.0, interfaces.STATUS_DISCHARGING, inputs.WARN, 0.55, False),
    (0.4, interfaces.STATUS_CHARGING, inputs.OK, 0.4, True),
    (0.4, interfaces.STATUS_UNKNOWN, inputs.WARN, 0.4, False),
    (0.4, 17, inputs.WARN, 0.4, False),
    (150.0, interfaces.STATUS_DISCHARGING, inputs.ERROR, None, False),
    (-0.2, interfaces.STATUS_DISCHARGING, inputs.ERROR, None, False),
    (math.nan, interfaces.STATUS_DISCHARGING, inputs.ERROR, None, False),
    (math.inf, interfaces.STATUS_DISCHARGING, inputs.ERROR, None, False),
])
def test_battery_checks(percentage, status, severity, value, charging):
    checked = inputs.check_battery(percentage, status)
    assert checked.severity == severity
    assert checked.value == pytest.approx(value) if value is not None else checked.value is None
    assert checked.charging == charging
    assert checked.reason


def test_battery_nan_percentage_uses_charge_over_capacity():
    checked = inputs.check_battery(math.nan, interfaces.STATUS_DISCHARGING, charge=1.5,
                                   capacity=3.0)
    assert checked.value == pytest.approx(0.5)
    assert 'charge/capacity' in checked.reason


@pytest.mark.parametrize('celsius, ok', [
    (45.0, True), (-39.0, True), (math.nan, False), (-300.0, False), (500.0, False),
])
def test_temperature_checks(celsius, ok):
    checked = inputs.check_temperature(celsius, -40.0, 150.0)
    assert (checked.value is not None) == ok
    assert checked.severity == (inputs.OK if ok else inputs.ERROR)


def test_stamp_order_drops_older_messages_per_source():
    order = inputs.StampOrder()
    assert order.accept('battery', 100)
    assert order.accept('battery', 100)
    assert not order.accept('battery', 99)
    assert order.accept('/thermal/temperature', 50)
    assert order.accept('battery', 0), 'unset stamps are accepted'
    assert order.accept('battery', 101)
