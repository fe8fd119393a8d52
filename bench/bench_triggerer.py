"""
Triggerer: many triggers awaited concurrently in one event loop against the sandbox, as Airflow's triggerer
runs them. Two rows: 10,000 Koneksi generation waits, and 1,000 Linked API job waits.

Each row starts N jobs (each completes ``seconds`` after it was started), then runs N triggers in one event
loop beside a ticker coroutine that measures the longest stall of the loop. Ideal: every trigger fires the
moment its job completes, so the wall time equals the time until the last one completes; a trigger that
polls every ``poll_interval`` seconds sees it up to one interval later, so the interval is a fraction of
the job's duration, as with real waits (generations and synchronizations take minutes).

The triggers start as Airflow 3.3's ``TriggerRunner.create_triggers`` starts them: one
``asyncio.create_task`` per trigger with an ``await asyncio.sleep(0)`` between, so the loop runs other
work while they arrive. The triggers of one connection share one client and one rate limiter (the
connection's settings: the sandbox's allow 16 requests in flight).

The run also counts CPython's full (generation 2) garbage collections: one scans the whole process heap
while holding the GIL, stalling the loop for its whole length. Live objects count towards one (a full
collection starts when objects promoted to the oldest generation exceed a quarter of it), and so do the
objects every trigger has whatever it waits on (Airflow's trigger, its asyncio task, coroutine and
context). So each row is run beside a control in the same process: the same number of bare triggers that
only sleep until their job's completion time. ``full_gcs`` counts ours, ``control_full_gcs`` the bare ones;
the criterion is that ours cause none beyond what the control causes.
"""

from __future__ import annotations

import asyncio
import gc
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


class _SleepTrigger:
    """The control: a trigger that only sleeps until ``until`` (monotonic) and fires."""

    def __init__(self, until: float) -> None:
        self.until = until

    async def run(self):
        from airflow.triggers.base import TriggerEvent

        await asyncio.sleep(max(0.0, self.until - time.monotonic()))
        yield TriggerEvent({"status": "success"})


async def _run_triggers(triggers: list[Any]) -> dict[str, Any]:
    stall = 0.0
    done = asyncio.Event()
    pauses: list[float] = []  # full collections during the run

    def on_gc(phase: str, info: dict[str, int], started: list[float] = [0.0]) -> None:  # noqa: B006
        if phase == "start":
            started[0] = time.monotonic()
        elif info["generation"] == 2:
            pauses.append(time.monotonic() - started[0])

    async def ticker() -> None:
        nonlocal stall
        last = time.monotonic()
        while not done.is_set():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            stall = max(stall, now - last - 0.01)
            last = now

    async def first_event(trigger: Any) -> str:
        async for event in trigger.run():
            return event.payload["status"]
        return "none"

    gc.collect()  # start from a collected heap, as a triggerer that has run a while would be
    gc.callbacks.append(on_gc)
    tick = asyncio.create_task(ticker())
    tasks = []
    for trigger in triggers:  # as TriggerRunner.create_triggers does
        await asyncio.sleep(0)
        tasks.append(asyncio.create_task(first_event(trigger)))
    del triggers
    statuses = await asyncio.gather(*tasks)
    done.set()
    await tick
    gc.callbacks.remove(on_gc)
    return {"statuses": statuses, "stall": stall, "full_gcs": pauses}


def _row(name: str, what: str, n: int, wall: float, ideal: float, outcome: dict, control: dict) -> dict:
    ok = sum(1 for s in outcome["statuses"] if s == "success")
    ratio = wall / ideal
    ours = len(outcome["full_gcs"])
    return {
        "benchmark": name,
        "what": what,
        "triggers": n,
        "succeeded": ok,
        "wall_s": wall,
        "ideal_s": ideal,
        "ratio": ratio,
        "max_loop_stall_ms": outcome["stall"] * 1000,
        "full_gcs": ours,
        "max_full_gc_ms": max(outcome["full_gcs"], default=0.0) * 1000,
        "control_full_gcs": len(control["full_gcs"]),
        "control_stall_ms": control["stall"] * 1000,
        "target": "ratio <= 1.2, stall <= 50 ms, no full GC beyond the control's",
        "met": ok == n and ratio <= 1.2 and outcome["stall"] <= 0.05 and ours <= len(control["full_gcs"]),
    }


def run_koneksi(n: int = 10_000, seconds: float = 60.0, poll_interval: float = 10.0) -> dict[str, Any]:
    """``n`` Koneksi generation waits; each generation completes ``seconds`` after its request."""
    # each generation has 4 messages and completes `seconds` after its request
    sizes = {"koneksi": {"seconds_per_message": seconds / 4, "failure_share": 0.0, "credits": 10 * n}}
    with sandbox_process(sizes=sizes) as info:
        use_connections(info)
        from airflow_provider_linkmsg.hooks.koneksi import KoneksiHook
        from airflow_provider_linkmsg.triggers.koneksi import KoneksiGenerationTrigger

        hook = KoneksiHook()
        ids, requested_at = [], []
        for i in range(n):
            ids.append(hook.request_message_generation(_payload(i)))
            requested_at.append(time.monotonic())
        hook.session.close()
        deadline = time.time() + 900
        triggers = [
            KoneksiGenerationTrigger(secure_request_id=i, deadline=deadline, poll_interval=poll_interval)
            for i in ids
        ]
        del ids
        started = time.monotonic()
        outcome = asyncio.run(_run_triggers(triggers))
        wall = time.monotonic() - started
        control = _control(requested_at, seconds, started)
    ideal = max(requested_at) + seconds - started
    what = f"{n:,} Koneksi generation waits ({seconds:g} s each, polled every {poll_interval:g} s)"
    return _row("triggerer (Koneksi)", what, n, wall, max(ideal, 0.001), outcome, control)


def run_linkedapi(n: int = 1_000, seconds: float = 30.0, poll_interval: float = 5.0) -> dict[str, Any]:
    """``n`` Linked API job waits (seed API result links); each job completes ``seconds`` after its start."""
    sizes = {"linkedapi": {"persons": 50, "not_found": 0, "sync_seconds": seconds, "pending_seconds": 0.0}}
    with sandbox_process(sizes=sizes) as info:
        use_connections(info)
        from airflow_provider_linkmsg.hooks.linkedapi import LinkedApiHook
        from airflow_provider_linkmsg.triggers.linkedapi import LinkedApiJobTrigger

        world = _truth(info)
        account = world["accounts"][world["default_account"]]
        persons = [{"person": p["person"], "channel": p["channel"]} for p in account["persons"]]
        hook = LinkedApiHook()
        handles, started_at = [], []
        for i in range(n):
            handles.append(hook.synchronize([persons[i % len(persons)]]))
            started_at.append(time.monotonic())
        hook.session.close()
        end_time = time.time() + 900
        triggers = [
            LinkedApiJobTrigger(
                linkedapi_conn_id="linkedapi_default",
                handle=h,
                end_time=end_time,
                poll_interval=poll_interval,
            )
            for h in handles
        ]
        del handles
        started = time.monotonic()
        outcome = asyncio.run(_run_triggers(triggers))
        wall = time.monotonic() - started
        control = _control(started_at, seconds, started)
    ideal = max(started_at) + seconds - started
    what = f"{n:,} Linked API job waits ({seconds:g} s each, polled every {poll_interval:g} s)"
    return _row("triggerer (Linked API)", what, n, wall, max(ideal, 0.001), outcome, control)


def _control(begun: list[float], seconds: float, started: float) -> dict[str, Any]:
    """The bare triggers, after ours: each sleeps what its job had left when our run started."""
    now = time.monotonic()
    return asyncio.run(_run_triggers([_SleepTrigger(now + max(0.0, t + seconds - started)) for t in begun]))


def _truth(info: dict[str, Any]) -> Any:
    from bench.common import admin

    return admin(info, "GET", "/truth/linkedapi")


def run() -> dict[str, Any]:
    rows = [run_koneksi(), run_linkedapi()]
    return {
        "benchmark": "triggerer",
        "rows": rows,
        "target": rows[0]["target"],
        "met": all(r["met"] for r in rows),
    }


if __name__ == "__main__":
    import sys

    from bench.common import quiet

    quiet()
    which = sys.argv[1] if len(sys.argv) > 1 else "both"
    chosen = {"koneksi": [run_koneksi], "linkedapi": [run_linkedapi]}.get(which, [run_koneksi, run_linkedapi])
    print_table("Triggerer: concurrent triggers in one event loop", [f() for f in chosen])
