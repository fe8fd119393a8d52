"""The model-based suite over the ConnectSafely sandbox and operator (see :mod:`tests.model.machine`)."""

from __future__ import annotations

from hypothesis.stateful import run_state_machine_as_test

from tests.model import profile
from tests.model.drivers import ConnectSafelyDriver
from tests.model.machine import machine


def test_connectsafely_exports_equal_the_vendor_whatever_the_order_of_events():
    run_state_machine_as_test(machine(ConnectSafelyDriver), settings=profile())
