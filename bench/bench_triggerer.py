"""
Triggerer: many Koneksi generation triggers awaited concurrently in one event loop against the sandbox.

Starts N generations (each completes ``seconds`` after it was requested), then runs N
:class:`KoneksiGenerationTrigger` in one event loop, as Airflow's triggerer would, beside a ticker
coroutine that measures the longest stall of the loop. Ideal: every trigger fires the moment its
generation completes, so the wall time equals the time until the last one completes.

The triggers start as Airflow 3.3's ``TriggerRunner.create_triggers`` starts them: one
``asyncio.create_task`` per trigger with an ``await asyncio.sleep(0)`` between, so the loop runs other
work while they arrive. The run also counts CPython's full (generation 2) garbage collections: one
scans the whole process heap (Airflow's included) while holding the GIL, stalling the loop for its
whole length (about 150 ms here), so the triggers must not make enough long-lived garbage to cause one.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from typing import Any

from bench.common import print_table, sandbox_process, use_connections

SEQUENCE = [{"step": 1, "messageType": "connection_request"}, {"step": 2, "messageType": "first_follow_up"}]


def _payload(i: int) -> dict[str, Any]:
    return {
        "completion_notification_url": "http://127.0.0.1:9/unused",
        "automation_tool_customer_id": "bench",
        "automation_tool_campaign_id": f"campaign-{i}",
        "automation_tool_campaign_name": f"Bench {i}",
        "proposition_company_name": "Bench",
        "proposition_company_url": "https://bench.example.com",
        "message_sequence": SEQUENCE,
        "lead_data": [
            {
                "external_prospect_id": f"lead-{i}-{j}",
                "first_name": "Ada",
                "lead_company": "Bench",
                "linkedin": f"https://www.linkedin.com/in/bench-{i}-{j}",
            }
            for j in range(2)
        ],
    }


async def _run_triggers(ids: list[str], poll_interval: float) -> dict[str, Any]:
    from airflow_provider_linkmsg.triggers.koneksi import KoneksiGenerationTrigger

    stall = 0.0
    done = asyncio.Event()
    pauses: list[float] = []  # full collections during the run

    def on_gc(phase: str, info: dict[str, int], started: list[float] = [0.0]) -> None:  # noqa: B006
        if phase == "start":
            started[0] = time.monotonic()
        elif info["generation"] == 2:
            pauses.append(time.monotonic() - started[0])

    gc.callbacks.append(on_gc)

    async def ticker() -> None:
        nonlocal stall
        last = time.monotonic()
        while not done.is_set():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            stall = max(stall, now - last - 0.01)
            last = now

    async def first_event(trigger: KoneksiGenerationTrigger) -> str:
        async for event in trigger.run():
            return event.payload["status"]
        return "none"

    deadline = time.time() + 600
    triggers = [
        KoneksiGenerationTrigger(secure_request_id=i, deadline=deadline, poll_interval=poll_interval)
        for i in ids
    ]
    tick = asyncio.create_task(ticker())
    tasks = []
    for trigger in triggers:  # as TriggerRunner.create_triggers does
        await asyncio.sleep(0)
        tasks.append(asyncio.create_task(first_event(trigger)))
    statuses = await asyncio.gather(*tasks)
    done.set()
    await tick
    gc.callbacks.remove(on_gc)
    return {"statuses": statuses, "stall": stall, "full_gcs": pauses}


def run(n: int = 1000, seconds: float = 8.0, poll_interval: float = 1.0) -> dict[str, Any]:
    # each generation has 4 messages and completes `seconds` after its request
    sizes = {"koneksi": {"seconds_per_message": seconds / 4, "failure_share": 0.0, "credits": 10 * n}}
    with sandbox_process(sizes=sizes) as info:
        use_connections(info)
        os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
        from airflow_provider_linkmsg.hooks.koneksi import KoneksiHook

        hook = KoneksiHook()
        requested_at = []
        ids = []
        for i in range(n):
            ids.append(hook.request_message_generation(_payload(i)))
            requested_at.append(time.monotonic())
        started = time.monotonic()
        outcome = asyncio.run(_run_triggers(ids, poll_interval))
        wall = time.monotonic() - started
    ideal = max(requested_at) + seconds - started
    ok = sum(1 for s in outcome["statuses"] if s == "success")
    ratio = wall / ideal
    return {
        "benchmark": "triggerer",
        "triggers": n,
        "succeeded": ok,
        "wall_s": wall,
        "ideal_s": ideal,
        "ratio": ratio,
        "max_loop_stall_ms": outcome["stall"] * 1000,
        "full_gcs": len(outcome["full_gcs"]),
        "max_full_gc_ms": max(outcome["full_gcs"], default=0.0) * 1000,
        "target": "ratio <= 2, stall <= 100 ms",
        "met": ok == n and ratio <= 2 and outcome["stall"] <= 0.1,
    }


if __name__ == "__main__":
    print_table("Triggerer: concurrent Koneksi triggers in one event loop", [run()])
    print(
        "ideal = time until the last generation completes; a full garbage collection of the process "
        "(Airflow's heap) stalls the loop for its whole duration"
    )
