"""
The benchmarks of ``make bench`` run, at the smallest sizes, and count what they claim to count.

No timing is asserted: the figures are ``make bench``'s business. What is checked is that each benchmark
makes the calls it says it makes (against a sandbox world built here from the same seed and sizes), and
that the incremental figures, which do not depend on timing, are right.
"""

from __future__ import annotations

import math
import os

import pytest

from airflow_provider_linkmsg.sandbox import Sandbox
from bench import __main__ as bench_main
from bench import bench_incremental, bench_latency, bench_overhead, bench_ratelimit


@pytest.fixture(autouse=True)
def _restore_environ():
    """The benchmarks point this process's connections at their sandboxes; undo that for later tests."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def truth(vendor: str, **sizes) -> dict:
    """The ground truth of the world a benchmark's sandbox (seed 0) serves."""
    return Sandbox(seed=0, sizes={vendor: {"accounts": 1, **sizes}}).truth(vendor)


def test_overhead_compares_the_same_calls():
    result = bench_overhead.run(conversations=5, messages=4, page_size=2, repetitions=1)
    world = truth("connectsafely", conversations=5, messages=4)
    # the listing, then one whole-conversation read (``since=0``) each, as the operator's full reads
    assert result["calls"] == 1 + len(world["conversations"])
    assert result["messages"] == len(world["messages"])
    assert result["wall_ratio"] > 0 and result["cpu_ratio"] > 0
    assert bench_main.BENCHMARKS["overhead"](result)[0]["benchmark"] == "overhead"


def test_latency_counts_one_call_per_conversation_and_the_listing():
    result = bench_latency.run(conversations=12, latency_ms=5, workers=4)
    assert (result["calls"], result["listing_calls"]) == (13, 1)
    assert result["ideal_s"] == pytest.approx(13 * 0.005 / 4)


def test_rate_limit_counts_429s_among_the_calls():
    rows = bench_ratelimit.run(conversations=10, limit=6, window=1.0, workers=2)
    assert [r["client"] for r in rows] == ["5.7/s burst 2", "6/s burst 1"]
    for row in rows:  # every conversation read once, plus the listing, plus the calls answered 429
        assert row["requests"] == 11 + row["answered_429"]
        assert 0 <= row["share_429"] < 1 and row["use"] > 0
    assert len(bench_main.BENCHMARKS["ratelimit"](rows)) == 2


def test_incremental_figures_are_exact():
    linkup, connectsafely = bench_incremental.run(conversations=60)
    world = truth("linkup", conversations=60, messages=8)
    reads = sum(math.ceil(c["messages"] / 10) for c in world["conversations"])
    assert (linkup["lists_full"], linkup["reads_full"], linkup["records_full"]) == (
        2,
        reads,
        len(world["messages"]),
    )
    # re-runs list every page (50 + 10 conversations: 5 + 1 credits) and read only what changed
    assert (linkup["calls_unchanged"], linkup["reads_unchanged"], linkup["credits_unchanged"]) == (2, 0, 6)
    assert (linkup["reads_changed"], linkup["records_changed"], linkup["credits_changed"]) == (1, 1, 7)
    assert (connectsafely["calls_unchanged"], connectsafely["reads_unchanged"]) == (1, 0)
    assert (connectsafely["calls_changed"], connectsafely["records_changed"]) == (2, 1)
    assert linkup["met"] and connectsafely["met"]


def test_bench_names_a_subset_and_refuses_unknown_ones(capsys):
    with pytest.raises(SystemExit):
        bench_main.main(["overhead", "nope"])
    assert "unknown benchmark(s) ['nope']" in capsys.readouterr().err


def test_triggerer_rows_fire_every_trigger_and_count_its_polls():
    from bench import bench_triggerer

    rows = [
        bench_triggerer.run_koneksi(n=12, seconds=2.0, poll_interval=0.5),
        bench_triggerer.run_linkedapi(n=6, seconds=2.0, poll_interval=0.5),
    ]
    for row, n in zip(rows, (12, 6), strict=True):
        assert row["succeeded"] == n and row["polls"] >= n  # at least one look each
        assert row["ideal_s"] >= row["strict_ideal_s"] > 0
        # the plain pollers: each looks at least once, and about as many times in all as ours
        assert n <= row["plain_polls"] <= 2 * row["polls"] + n
        assert n <= row["lean_polls"] <= 2 * row["polls"] + n  # the lean pollers too
    result = {"rows": rows, "met": False, "target": rows[0]["target"]}
    assert len(bench_main.BENCHMARKS["triggerer"](result)) == 2
