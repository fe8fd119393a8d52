"""The model-based suite exporting to PostgreSQL as well (skipped without the PostgreSQL binaries)."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from tests.model import profile
from tests.model.drivers import DRIVERS
from tests.model.machine import machine

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize("vendor", sorted(DRIVERS))
def test_postgres_export_equals_the_vendor_too(vendor, postgres_conn_id):
    # a third of the budget: the files and SQLite checks of the same rules run in the other tests
    chosen = profile()
    budget = settings(chosen, max_examples=max(1, chosen.max_examples // 3))
    run_state_machine_as_test(machine(DRIVERS[vendor], postgres_conn_id), settings=budget)
