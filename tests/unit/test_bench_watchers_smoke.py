"""``python -m bench watchers`` at the smallest size: it counts what it claims (no timing is asserted)."""

from __future__ import annotations

import os

import pytest

from bench import __main__ as bench_main
from bench import bench_watchers
from tests.compat import requires_airflow

pytestmark = requires_airflow(
    "3.0.0", "activity watchers run as asset watchers (BaseEventTrigger, AssetWatcher), from Airflow 3.0"
)


@pytest.fixture(autouse=True)
def _restore_environ():
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_watchers_bench_counts_calls_against_the_limit():
    result = bench_watchers.run(n=20, rate=10.0, seconds=2.0, repetitions=1)
    rows = result["rows"]
    assert [r["benchmark"] for r in rows] == [
        "watchers (within the limit)",
        "watchers (within the limit, heap frozen)",
        "watchers (over the limit)",
        "watchers (over the limit, heap frozen)",
    ]
    for row in rows:
        assert row["events"] == 0  # idle watchers (fire_on_start=False) fire nothing
        assert row["calls"][0] > 0
        assert row["demand_rps"] == pytest.approx(20 / row["poll_interval_s"])
        assert len(row["full_gcs"]) == len(row["control_full_gcs"]) == 1
        assert len(row["plain_full_gcs"]) == 1  # the same looks, plain (the unfrozen run's)
    assert len(bench_main.BENCHMARKS["watchers"](result)) == 4
