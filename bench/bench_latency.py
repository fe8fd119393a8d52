"""
Latency hiding: a ConnectSafely retrieval of 500 conversations with 8 workers, every call held 50 ms by
the sandbox, against the ideal ``calls x latency / workers``.

The sandbox's latency fault holds each answer of the vendor's routes; the calls are counted by the sandbox.
The connection's client-side limiter is opened wide (no rate limit, ``max_in_flight`` = workers) so the
figure is the engine's concurrency, not a throttle. The listing is paged sequentially by nature (each
page needs the previous page's cursor), which the ideal does not grant: with 5 listing pages it costs
about 0.25 s of the run. Target: wall <= 1.3 x the ideal.
"""

from __future__ import annotations

import tempfile
import time

from bench.common import admin, counted, print_table, quiet, sandbox_process, set_extra, task_context

#: a conversation no inbox holds: the warm-up lists the inbox and reads nothing (an empty list is refused)
WARM_UP = "urn:li:msg_conversation:(urn:li:fsd_profile:WARMUP,warm-up)"
VENDOR = "connectsafely"
TARGET = 1.3


def run(conversations: int = 500, latency_ms: float = 50.0, workers: int = 8, messages: int = 8) -> dict:
    """
    One retrieval under latency; returns the figures, the ratio to the ideal, the target and ``met``.

    :param conversations: conversations of the account (one messages call each with ``messages`` <= 66).
    :param latency_ms: the sandbox's delay before each answer.
    :param workers: the operator's ``max_workers``.
    :param messages: average messages per conversation.
    """
    sizes = {VENDOR: {"accounts": 1, "conversations": conversations, "messages": messages}}
    with sandbox_process(sizes=sizes) as info, tempfile.TemporaryDirectory(prefix="linkmsg-bench-") as root:
        set_extra(info, VENDOR, requests_per_second=0, max_in_flight=max(8, workers))
        from airflow_provider_linkmsg.operators.connectsafely import ConnectSafelyRetrieveMessagesOperator

        ConnectSafelyRetrieveMessagesOperator(  # warm-up without latency: imports, connection, sockets
            task_id="retrieve", conversation_ids=[WARM_UP], staging_path=root
        ).execute(task_context("warm-up"))
        admin(info, "PUT", "/faults", {"rules": [{"vendor": VENDOR, "latency_ms": latency_ms}]})
        admin(info, "POST", "/stats/reset")
        operator = ConnectSafelyRetrieveMessagesOperator(
            task_id="retrieve", max_workers=workers, staging_path=root
        )
        started = time.perf_counter()
        result = operator.execute(task_context("latency"))
        wall = time.perf_counter() - started
        stats = admin(info, "GET", "/stats")
        truth = len(admin(info, "GET", f"/truth/{VENDOR}")["messages"])
    if result["records"] != truth:
        raise RuntimeError(f"staged {result['records']} messages, the sandbox holds {truth}")
    calls = counted(stats, "calls", VENDOR)
    listing = counted(stats, "calls", f"{VENDOR} GET /conversations")
    listing -= counted(stats, "calls", f"{VENDOR} GET /conversations/")
    ideal = calls * latency_ms / 1000 / workers
    ratio = wall / ideal
    return {
        "benchmark": "latency",
        "conversations": conversations,
        "calls": calls,
        "listing_calls": listing,
        "latency_ms": latency_ms,
        "workers": workers,
        "wall_s": wall,
        "ideal_s": ideal,
        "ratio": ratio,
        "target": f"<= {TARGET}x ideal",
        "met": ratio <= TARGET,
    }


if __name__ == "__main__":
    quiet()
    print_table("Latency hiding: 8 workers under 50 ms per call", [run()])
