"""
Triggerer: many triggers awaited concurrently in one event loop against the sandbox, as Airflow's triggerer
runs them. Two rows: 10,000 Koneksi generation waits, and 1,000 Linked API job waits.

Each row starts N jobs (each completes ``seconds`` after it was started; the requests go out from a few
threads, as setup), then runs N triggers in one event loop beside a ticker coroutine that measures the
longest stall of the loop. The triggers start as Airflow 3.3's ``TriggerRunner.create_triggers`` starts them:
one ``asyncio.create_task`` per trigger with an ``await asyncio.sleep(0)`` between, so the loop runs other
work while they arrive. Each task runs Airflow's own ``TriggerRunner.run_trigger`` around the trigger
(:func:`start_trigger`), as in the triggerer: its greenback portal, log context, span and event queue are
part of what every trigger costs there, and the process has the triggerer's modules loaded. What the bench
still leaves out makes it lighter than a real triggerer, never heavier: no task instance or template
context per trigger, no supervisor comms, and log lines below ERROR dropped. The triggers of one connection share one transport and one rate limiter (the
connection's settings; the sandbox's connections allow 500 requests a second, 16 in flight).

**Ideal.** Every trigger fires the moment its job completes: the wall time equals the time until the last
job completes (``strict_ideal_s``). A trigger that polls every ``poll_interval`` seconds sees its job up to
one interval later, so the interval is a fraction of the job's duration, as with real waits, and that lag
is inside the 1.2x margin. But W triggers still waiting on a connection limited to R requests a second cannot
each poll more often than every W / R seconds, whatever the client: when W / R is longer than the interval
(10,000 Koneksi triggers waiting, polled every 10 s, want 1,000 requests a second; the sandbox's connection
allows 500, so at best every 20 s), the rate limit adds ``W / R - poll_interval`` to the lag. ``ideal_s`` is
the strict ideal plus that forced part, with W the jobs not yet complete when the triggers start (nothing
is added when the limit does not bind), so the margin covers the same poll lag either way; the ratio to
the strict ideal is printed too. ``polls`` and ``polls_per_s`` are the
requests the sandbox answered on the polled route during the run, against the limit.

**Stalls and collections.** The run counts CPython's full (generation 2) garbage collections: one scans the
whole process heap while holding the GIL, stalling the loop for its whole length. One starts when the objects
promoted to the oldest generation since the last exceed a quarter of it. Two kinds of objects get there:
what every waiting trigger keeps (Airflow's trigger, its asyncio task, coroutine, context, and what
``run_trigger`` keeps), and, at every look, what the trigger's new wait is made of (it lives a poll interval,
past the young generations): under Airflow's ``run_trigger`` every suspension of a trigger goes through
greenback's portal, which keeps three objects of its own per suspension, and awaiting any asyncio future keeps
three more. So any trigger that polls promotes objects at every look, whatever its code, and the sandbox's
requests (the young collections they cause) set how often. Each row is therefore run beside three controls in
the same process, run the same way through ``run_trigger``:

* **lean pollers** (:func:`bench.triggerer_controls._plain_poller` with ``lean``): the same number of triggers
  making the same number of looks in all at ours' pace (first looks over the same span, then one interval for
  all, chosen to match ours' count), each a GET of the URL our trigger polls on one ``httpx.AsyncClient``
  with as many requests in flight as ours, its JSON parsed, and between looks the cheapest wait there is,
  one future on the loop's shared timers (ours' own wait). They are the looks with nothing of ours but the
  wait: a bare GET stands for our whole request path (transport, retry engine, rate limit, interpretation,
  validation) and for the hook a trigger keeps. ``lean_full_gcs`` counts theirs.
* **plain pollers**: the same with ``asyncio.sleep`` between looks, as Airflow's own polling triggers sleep
  (``plain_full_gcs``).
* **sleeping triggers** (:func:`bench.triggerer_controls._sleep_trigger`): each sleeps once, until its job's
  completion: triggers that never look (``control_full_gcs``), the floor of any trigger.

The criterion: ours cause no more full collections than the lean pollers (what ours add to the looks
themselves, whose wait is already the least a wait can be, causes none), and the longest stall outside full
collections (the part of each stall that no full collection covers) is <= 50 ms. The full collections the
lean pollers have beyond the sleeping triggers come with looking under Airflow's runner: any trigger that
looks under ``run_trigger`` leaves at least six objects per look in the oldest generation (greenback's three
and an awaited future's three), and a look's request a few more while in flight. A stall outside full
collections can still be a young collection: CPython 3.11 counts a freed object of any generation against the
youngest one's threshold, so while many triggers fire (their old state freed) the young generation grows far
past its 700 objects before it is collected, and that collection takes as long as it is large.

Every second, as ``TriggerRunner.arun`` does, the run takes the events the triggers fired (the triggerer sends them
to its supervisor; here each trigger's first status is kept) and drops the finished triggers' entries
(:func:`drain`). Earlier runs kept all of them to the end: every finished trigger's event, task and context
(about ten objects each) stayed young while CPython 3.11 counted the finished triggers' freed state against the
young generation (see above), so no young collection came for tens of seconds while thousands of triggers fired,
and the one that then came was of ~80,000 objects (40-75 ms): a stall that a triggerer, which lets them go within
a second, does not have. The lean pollers did not show it only because their bare GETs leave cyclic garbage (~42
objects a look), which triggers young collections; ours leave none.

Before each run, one bare trigger runs through the runner (the first trigger of a process leaves one-time
imports and caches behind), and before ours, one look is made in the same loop and timed apart
(``cold_start_ms``): the loop's first request imports anyio's asyncio backend and builds the SSL context, once
per triggerer process; the connection cache it fills is cleared, so the run's triggers look their connection
up themselves. No ``gc.freeze()`` and no threshold change: Airflow's triggerer makes neither.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.common import print_table, sandbox_process, use_connections
from bench.runner import drain, start_trigger, trigger_runner
from bench.triggerer_controls import _control, _plain_control, _sleep_trigger, _warm

#: the longest loop stall allowed outside full collections (seconds)
TARGET_STALL_S = 0.05

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


async def _run_triggers(
    triggers: list[Any], warm: Callable[[], Awaitable[Any]] | None = None
) -> dict[str, Any]:
    stalls: list[tuple[float, float]] = []  # (start, length) of each gap of the ticker past 20 ms
    done = asyncio.Event()
    collections: list[tuple[float, float]] = []  # (start, end) of each full collection during the run

    def on_gc(phase: str, info: dict[str, int], started: list[float] = [0.0]) -> None:  # noqa: B006
        if phase == "start":
            started[0] = time.monotonic()
        elif info["generation"] == 2:
            collections.append((started[0], time.monotonic()))

    async def ticker() -> None:
        last = time.monotonic()
        while not done.is_set():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            if now - last - 0.01 > 0.02:
                stalls.append((last, now - last - 0.01))
            last = now

    runner = trigger_runner()
    # one bare trigger through the runner first, for every kind of run alike: the first trigger of a process
    # leaves one-time imports and caches behind (tens of thousands of objects), which the run that happens
    # to come first would otherwise carry
    await start_trigger(runner, -1, _sleep_trigger(time.monotonic()))
    cold = 0.0
    if warm is not None:  # the loop's first look, apart: what the first trigger of a new triggerer pays once
        begun = time.monotonic()
        await warm()
        cold = time.monotonic() - begun
        from airflow_provider_linkmsg.hooks.transport.apool import loop_pool

        loop_pool().connections.clear()  # the run's triggers look their connection up themselves
    gc.collect()  # start from a collected heap, as a triggerer that has run a while would be
    gc.callbacks.append(on_gc)
    begun = time.monotonic()
    tick = asyncio.create_task(ticker())
    n, left, first = len(triggers), [len(triggers)], {}
    all_done = asyncio.Event()

    def finished(_task: asyncio.Task) -> None:
        left[0] -= 1
        if not left[0]:
            all_done.set()

    tasks = []  # with no runner only (its bare tasks return the payloads); a runner holds its own
    for i, trigger in enumerate(triggers):  # as TriggerRunner.create_triggers does
        await asyncio.sleep(0)
        task = start_trigger(runner, i, trigger)
        task.add_done_callback(finished)
        if runner is None:
            tasks.append(task)
    triggers = trigger = task = None  # the tasks hold what they need
    while not all_done.is_set():  # the runner's own loop, every second
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(all_done.wait(), 1.0)
        if runner is not None:
            drain(runner, first)
    done.set()
    await tick
    gc.callbacks.remove(on_gc)

    def in_gc(start: float, length: float) -> bool:
        return any(a < start + length + 0.01 and b > start for a, b in collections)

    def outside(start: float, length: float) -> float:  # the part of a stall no full collection covers
        end = start + length + 0.01
        return length - sum(max(0.0, min(b, end) - max(a, start)) for a, b in collections)

    if runner is None:
        payloads = (t.result() if not t.cancelled() and t.exception() is None else None for t in tasks)
        first = {i: (p or {}).get("status", "none") for i, p in enumerate(payloads)}
    statuses = [first.get(i, "none") for i in range(n)]
    return {
        "airflow_runner": runner is not None,
        "cold_start": cold,
        "statuses": statuses,
        "stall": max((length for _, length in stalls), default=0.0),
        "stall_outside_gc": max((max(0.0, outside(at, length)) for at, length in stalls), default=0.0),
        "started": begun,
        "stalls_over_50ms": sum(1 for _, length in stalls if length > 0.05),
        "full_gcs": [b - a for a, b in collections],
        "worst_outside_gc": ", ".join(
            f"{part * 1000:.0f} ms at {at - begun:.1f} s"
            for part, at in sorted(((outside(at, n), at) for at, n in stalls), reverse=True)[:3]
            if part > 0.02
        ),
        "worst_stalls": ", ".join(
            f"{length * 1000:.0f} ms at {at - begun:.1f} s{' (full GC)' if in_gc(at, length) else ''}"
            for at, length in sorted(stalls, key=lambda s: -s[1])[:4]
        ),
    }


def _row(
    name: str,
    what: str,
    n: int,
    wall: float,
    ideals: tuple[float, float],
    run: dict,
    control: dict,
    plain: dict,
    lean: dict,
) -> dict:
    strict, ideal = (max(x, 0.001) for x in ideals)
    ok = sum(1 for s in run["statuses"] if s == "success")
    ratio = wall / ideal
    ours = len(run["full_gcs"])
    return {
        "benchmark": name,
        "what": what,
        "triggers": n,
        "succeeded": ok,
        "wall_s": wall,
        "strict_ideal_s": strict,
        "ideal_s": ideal,
        "ratio": ratio,
        "strict_ratio": wall / strict,
        "waiting_at_start": run["waiting"],
        "polls": run["polls"],
        "polls_per_s": run["polls"] / wall,
        "rate_limit": run["rate_limit"],
        "max_loop_stall_ms": run["stall"] * 1000,
        "max_stall_outside_gc_ms": run["stall_outside_gc"] * 1000,
        "stalls_over_50ms": run["stalls_over_50ms"],
        "full_gcs": ours,
        "max_full_gc_ms": max(run["full_gcs"], default=0.0) * 1000,
        "control_full_gcs": len(control["full_gcs"]),
        "control_stall_ms": control["stall"] * 1000,
        "control_stall_outside_gc_ms": control["stall_outside_gc"] * 1000,
        "worst_stalls": run["worst_stalls"],
        "worst_outside_gc": run["worst_outside_gc"],
        "control_worst_stalls": control["worst_stalls"],
        "cold_start_ms": run["cold_start"] * 1000,
        "plain_full_gcs": len(plain["full_gcs"]),
        "plain_max_full_gc_ms": max(plain["full_gcs"], default=0.0) * 1000,
        "plain_stall_ms": plain["stall"] * 1000,
        "plain_stall_outside_gc_ms": plain["stall_outside_gc"] * 1000,
        "plain_polls": plain["polls"],
        "plain_interval_s": plain["interval"],
        "plain_wall_s": plain["wall"],
        "plain_worst_stalls": plain["worst_stalls"],
        "lean_full_gcs": len(lean["full_gcs"]),
        "lean_max_full_gc_ms": max(lean["full_gcs"], default=0.0) * 1000,
        "lean_stall_outside_gc_ms": lean["stall_outside_gc"] * 1000,
        "lean_polls": lean["polls"],
        "lean_worst_stalls": lean["worst_stalls"],
        "run_by": "Airflow's TriggerRunner.run_trigger" if run["airflow_runner"] else "bare tasks",
        "target": "ratio <= 1.2, no full GC beyond the lean pollers', stall outside full GCs <= 50 ms",
        "met": ok == n
        and ratio <= 1.2
        and ours <= len(lean["full_gcs"])
        and run["stall_outside_gc"] <= TARGET_STALL_S,
    }


def _start_jobs(n: int, start: Callable[[int], Any]) -> tuple[list[Any], list[float]]:
    """``start(i)`` for ``i < n`` from 8 threads (setup, not measured); the results and when each returned."""
    stamps = [0.0] * n

    def one(i: int) -> Any:
        result = start(i)
        stamps[i] = time.monotonic()
        return result

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(n))), stamps


def _measure(
    info: dict[str, Any], vendor: str, route: str, triggers: list[Any], warm: Callable[[], Awaitable[Any]]
) -> tuple[float, dict]:
    """
    Run ``triggers``; the wall time and the run's figures, with the polls the sandbox answered. ``warm()``
    first makes one look in the same loop, measured apart (``cold_start``): the loop's first request imports
    anyio's asyncio backend and builds the SSL context, once per triggerer process and loop (the plain
    pollers' client is built before their run too, and finds the modules imported).
    """
    from bench.common import admin, connection

    admin(info, "POST", "/stats/reset")
    outcome = asyncio.run(_run_triggers(triggers, warm))
    wall = time.monotonic() - outcome["started"]  # from the first trigger's start (after the warm-up)
    calls = admin(info, "GET", "/stats").get("calls") or {}
    looked = sum(v for k, v in calls.items() if k.startswith(f"{vendor} ") and route in k)
    outcome["polls"] = int(looked) - 1  # less the warm-up's look
    outcome["rate_limit"] = float(connection(info, vendor)["extra"]["requests_per_second"])
    return wall, outcome


def _waiting(done: list[float], started: float) -> int:
    """How many jobs were not complete when the triggers started."""
    return sum(1 for t in done if t > started)


def _ideals(done: list[float], started: float, poll_interval: float, rate: float) -> tuple[float, float]:
    """
    The strict ideal (the last job's completion, from ``started``) and the one with the lag the rate limit
    forces: the jobs still running at the start are polled until they complete, so those triggers want
    ``waiting / poll_interval`` requests a second; past ``rate`` each is polled every ``waiting / rate`` s.
    """
    strict = max(done) - started
    return strict, strict + max(0.0, _waiting(done, started) / rate - poll_interval)


def run_koneksi(n: int = 10_000, seconds: float = 60.0, poll_interval: float = 10.0) -> dict[str, Any]:
    """``n`` Koneksi generation waits; each generation completes ``seconds`` after its request."""
    # each generation has 4 messages and completes `seconds` after its request
    sizes = {"koneksi": {"seconds_per_message": seconds / 4, "failure_share": 0.0, "credits": 10 * n}}
    with sandbox_process(sizes=sizes) as info:
        use_connections(info)
        from airflow_provider_linkmsg.hooks.koneksi import KoneksiHook
        from airflow_provider_linkmsg.triggers.koneksi import KoneksiGenerationTrigger

        hook = KoneksiHook()
        ids, requested_at = _start_jobs(n, lambda i: hook.request_message_generation(_payload(i)))
        hook.session.close()
        from airflow_provider_linkmsg.hooks.koneksi import RETRIEVE_ENDPOINT, RETRIEVE_PARAM

        url = hook.conn_params.base_url.rstrip("/") + RETRIEVE_ENDPOINT
        looks = [(url, {RETRIEVE_PARAM: i}) for i in ids]
        deadline = time.time() + 900
        triggers = [
            KoneksiGenerationTrigger(secure_request_id=i, deadline=deadline, poll_interval=poll_interval)
            for i in ids
        ]
        warm = _warm(KoneksiHook, "aretrieve_messages", ids[0])
        del ids
        wall, outcome = _measure(info, "koneksi", "retrieve", triggers, warm)
        started = outcome["started"]
        control = _control(requested_at, seconds, started)
        plain = _plain_control(info, hook, looks, requested_at, seconds, started, poll_interval, outcome)
        lean = _plain_control(
            info, hook, looks, requested_at, seconds, started, poll_interval, outcome, lean=True
        )
    done = [t + seconds for t in requested_at]
    outcome["waiting"] = _waiting(done, started)
    ideals = _ideals(done, started, poll_interval, outcome["rate_limit"])
    what = f"{n:,} Koneksi generation waits ({seconds:g} s each, polled every {poll_interval:g} s)"
    return _row("triggerer (Koneksi)", what, n, wall, ideals, outcome, control, plain, lean)


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
        handles, started_at = _start_jobs(n, lambda i: hook.synchronize([persons[i % len(persons)]]))
        hook.session.close()
        base = hook.conn_params.base_url.rstrip("/")
        links = [hook.seed.result_link(h["jobs"][0]) for h in handles]
        looks = [(link if link.startswith("http") else base + link, None) for link in links]
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
        warm = _warm(LinkedApiHook, "acheck_job", {**handles[0], "jobs": handles[0]["jobs"][:1]})
        del handles
        wall, outcome = _measure(info, "linkedapi", "result", triggers, warm)
        started = outcome["started"]
        control = _control(started_at, seconds, started)
        plain = _plain_control(info, hook, looks, started_at, seconds, started, poll_interval, outcome)
        lean = _plain_control(
            info, hook, looks, started_at, seconds, started, poll_interval, outcome, lean=True
        )
    done = [t + seconds for t in started_at]
    outcome["waiting"] = _waiting(done, started)
    ideals = _ideals(done, started, poll_interval, outcome["rate_limit"])
    what = f"{n:,} Linked API job waits ({seconds:g} s each, polled every {poll_interval:g} s)"
    return _row("triggerer (Linked API)", what, n, wall, ideals, outcome, control, plain, lean)


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
