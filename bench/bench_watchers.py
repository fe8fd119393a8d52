"""
Watchers: 1,000 idle inbox activity watchers in one event loop, as Airflow's triggerer runs them.

The watchers (ConnectSafely, one account, nothing new arriving: idle) share one connection, whose client-side
rate limit is ``rate`` requests per second (burst ``rate``). They start as Airflow 3.3's
``TriggerRunner.create_triggers`` starts triggers (one ``asyncio.create_task`` each, an
``await asyncio.sleep(0)`` between), each task running Airflow's own ``TriggerRunner.run_trigger`` around
its watcher as the triggerer does (see :mod:`bench.bench_triggerer`), and run for ``seconds`` beside a ticker
coroutine that measures the longest stall of the loop. The sandbox runs in its own process and counts the calls; a thread samples its
counters every second, so the request rate is known per second, not only on average.

Two loads, interleaved over ``repetitions`` (median and range): looks that fit the limit (``n / poll`` below
``rate``: every watcher looks on time) and looks that do not (``n / poll`` twice ``rate``: the limiter holds
the calls back, and the watchers look less often than asked). Each runs twice: with CPython's default
garbage collection, and with the heap frozen before the watchers start (``gc.freeze()``, as Airflow's DAG
processor and LocalExecutor do after start-up), so full collections walk only what came after; Airflow's
triggerer does not freeze its heap, so that run is shown for comparison. Two controls, run the same way:
**plain pollers** after each unfrozen run (as many bare watchers making as many looks as ours did, each a GET
of the listing page ours read on one ``httpx.AsyncClient`` with as many connections, its JSON parsed,
``asyncio.sleep`` between: the plainest way of making the same looks, a reference rather than a floor, see
:mod:`bench.bench_triggerer`), and once per repetition **sleeping watchers**
that never look (shown for scale). Each run starts from a collected heap (as the triggerer bench does), so a
run does not inherit the collector's count of the run before it. Full collections are counted while the
watchers run, not while they are cancelled at its end.

Criteria, unfrozen runs: no full collection beyond the plain pollers' of the same load and repetition;
longest loop stall outside full collections (the part no full collection covers) <= 50 ms.
Frozen runs: the longest stall, full collections included, <= 50 ms. Both: no second holds more calls than the
token bucket allows (``rate`` x 1 s + ``burst``), and no run more than ``rate`` x its length + ``burst``.

Everything runs in one event loop, as in one triggerer process. Before the runs, one watcher looks once
(``cold_start_stall_ms``): the first httpx request of a loop imports anyio's asyncio backend and builds the
SSL context, a one-time cost of the async transport that every trigger of a new triggerer shares, reported
apart from the idle watchers.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
import statistics
import tempfile
import threading
import time
from typing import Any

from bench.common import admin, counted, sandbox_process, set_extra

TARGET_STALL_MS = 50.0


async def _measure(make: Any, n: int, seconds: float) -> dict[str, Any]:
    """
    Run ``n`` triggers from ``make(i)`` for ``seconds`` beside a ticker, as the triggerer runs them: the
    longest stall, the full (generation 2) garbage collections and their longest pause, and the longest stall
    outside them.
    """
    from bench.runner import start_trigger, trigger_runner

    runner = trigger_runner()
    if not gc.get_freeze_count():  # a collected heap at the start of every run (a frozen one already is)
        gc.collect()
    stop = asyncio.Event()
    pauses: list[tuple[float, float]] = []  # (start, end) of each full collection
    lates: list[tuple[float, float]] = []  # (start, length) of each tick later than 5 ms

    def on_gc(phase: str, info: dict[str, int], started: list[float] = [0.0]) -> None:  # noqa: B006
        if phase == "start":
            started[0] = time.monotonic()
        elif info["generation"] == 2:
            pauses.append((started[0], time.monotonic()))

    async def ticker() -> None:
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.005)
            now = time.monotonic()
            if now - last - 0.005 > 0.005:
                lates.append((last, now - last - 0.005))
            last = now

    gc.callbacks.append(on_gc)
    tick = asyncio.create_task(ticker())
    tasks = []
    for i in range(n):  # as TriggerRunner.create_triggers does
        await asyncio.sleep(0)
        tasks.append(start_trigger(runner, i, make(i)))
    await asyncio.sleep(seconds)
    stop.set()
    stopped = time.monotonic()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await tick
    gc.callbacks.remove(on_gc)
    pauses = [(a, b) for a, b in pauses if a < stopped]  # in the run, not while its tasks are cancelled
    longest = max((end - begin for begin, end in pauses), default=0.0)
    events = sum(1 for _ in runner.events) if runner is not None else 0

    def outside(start: float, length: float) -> float:  # the part of a late tick no full collection covers
        end = start + length + 0.005
        return length - sum(max(0.0, min(b, end) - max(a, start)) for a, b in pauses)

    stall = max((length for _, length in lates), default=0.0)
    other = max((max(0.0, outside(at, length)) for at, length in lates), default=0.0)
    return {"stall": stall, "other": other, "full_gcs": len(pauses), "gc_pause": longest, "events": events}


def _sample(info: dict[str, Any], stop: threading.Event, out: list[tuple[float, int]]) -> None:
    """Every second: (time, calls the sandbox has answered on ConnectSafely so far)."""
    while not stop.is_set():
        out.append((time.monotonic(), counted(admin(info, "GET", "/stats"), "calls", "connectsafely")))
        stop.wait(1.0)


async def _one(
    info: dict[str, Any], account: str, n: int, poll: float, seconds: float, root: str, freeze: bool
) -> dict:
    from airflow_provider_linkmsg.triggers.watchers.connectsafely import ConnectSafelyInboxActivityTrigger

    def watcher(i: int) -> ConnectSafelyInboxActivityTrigger:
        return ConnectSafelyInboxActivityTrigger(
            account_id=account,
            poll_interval=poll,
            fire_on_start=False,  # idle: the first look is remembered, nothing fires
            state_key=f"bench-{poll:g}-{i}",
            staging_path=root,
        )

    samples: list[tuple[float, int]] = []
    stop = threading.Event()
    sampler = threading.Thread(target=_sample, args=(info, stop, samples), daemon=True)
    sampler.start()
    if freeze:  # what a triggerer could do once started: full collections skip the start-up heap
        gc.collect()
        gc.freeze()
    try:
        outcome = await _measure(watcher, n, seconds)
    finally:
        gc.unfreeze()
    stop.set()
    sampler.join()
    per_second = [(c2 - c1) / (t2 - t1) for (t1, c1), (t2, c2) in itertools.pairwise(samples) if t2 > t1]
    (t_first, c_first), (t_last, c_last) = samples[0], samples[-1]
    return {
        "stall_ms": outcome["stall"] * 1000,
        "stall_outside_gc_ms": outcome["other"] * 1000,
        "full_gcs": outcome["full_gcs"],
        "gc_pause_ms": outcome["gc_pause"] * 1000,
        "seconds": t_last - t_first,
        "calls": c_last - c_first,
        "mean_rate": (c_last - c_first) / (t_last - t_first),
        "max_second": max(per_second, default=0.0),
        "events": outcome["events"],
    }


async def _cold_start(info: dict[str, Any], account: str, root: str) -> float:
    """The longest stall while the process's first watcher makes its first look."""
    from airflow.triggers.base import BaseTrigger

    from airflow_provider_linkmsg.triggers.watchers.connectsafely import ConnectSafelyInboxActivityTrigger

    class FirstLook(BaseTrigger):  # the watcher's first event, then done (it would look every 1 ms after)
        def serialize(self) -> tuple[str, dict[str, Any]]:
            return "bench.FirstLook", {}

        async def run(self):
            watcher = ConnectSafelyInboxActivityTrigger(
                account_id=account, poll_interval=0.001, fire_on_start=True, staging_path=root
            )
            looks = watcher.run()
            try:
                yield await anext(looks)
            finally:
                await looks.aclose()

    return (await _measure(lambda i: FirstLook(), 1, 1.0))["stall"] * 1000


async def _control(n: int, seconds: float) -> dict[str, Any]:
    from airflow.providers.common.compat.triggers import BaseEventTrigger

    class IdleWatcher(BaseEventTrigger):  # a watcher that never looks: it only sleeps
        def serialize(self) -> tuple[str, dict[str, Any]]:
            return "bench.IdleWatcher", {}

        async def run(self):
            while True:
                await asyncio.sleep(5.0)
            yield  # an async generator, as every trigger's run()

    return await _measure(lambda i: IdleWatcher(), n, seconds)


async def _plain(
    n: int,
    seconds: float,
    rate: float,
    url: str,
    params: dict[str, Any],
    headers: dict[str, str],
    in_flight: int,
) -> dict[str, Any]:
    """
    The plain pollers: ``n`` bare watchers that look as a plain httpx loop would, with none of our transport, as
    many times in all as ours did (``rate`` looks a second: each every ``n / rate`` s, the first after a
    random part of that), one GET of the listing page ours read on one shared ``httpx.AsyncClient`` with as many
    connections as ours, its JSON parsed, ``asyncio.sleep`` between.
    """
    import random

    import httpx
    from airflow.providers.common.compat.triggers import BaseEventTrigger

    interval = n / max(rate, 0.001)
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=60.0) as client:

        class PlainWatcher(BaseEventTrigger):
            def __init__(self, first: float) -> None:
                super().__init__()
                self.first = first

            def serialize(self) -> tuple[str, dict[str, Any]]:
                return "bench.PlainWatcher", {}

            async def run(self):
                await asyncio.sleep(self.first)
                while True:
                    (await client.get(url, params=params)).json()
                    await asyncio.sleep(interval)
                yield  # an async generator, as every trigger's run()

        (await client.get(url, params=params)).json()  # the client's first request, before the run
        rng = random.Random(0)
        return await _measure(lambda i: PlainWatcher(rng.uniform(0, interval)), n, seconds)


def _span(values: list[float]) -> list[float]:
    return [statistics.median(values), min(values), max(values)]


def run(n: int = 1_000, rate: float = 50.0, seconds: float = 20.0, repetitions: int = 2) -> dict[str, Any]:
    """
    :param n: watchers.
    :param rate: the connection's limit, requests per second (and its burst).
    :param seconds: how long each run lasts.
    :param repetitions: runs per load, interleaved.
    """
    # poll intervals: demand rate/2 and 2 x rate; each with CPython's default GC and with the heap frozen
    loads = {
        (name, freeze): poll
        for name, poll in (("within", n / (rate * 0.5)), ("over", n / (rate * 2)))
        for freeze in (False, True)
    }
    runs: dict[tuple[str, bool], list[dict]] = {key: [] for key in loads}
    controls: list[dict[str, Any]] = []
    with sandbox_process(sizes={"connectsafely": {"accounts": 1, "conversations": 20}}) as info:
        set_extra(info, "connectsafely", requests_per_second=rate, burst=int(rate), max_in_flight=16)
        account = admin(info, "GET", "/truth/connectsafely")["accounts"][0]["id"]
        from airflow_provider_linkmsg.hooks.connectsafely import ConnectSafelyHook

        hook = ConnectSafelyHook()
        url = hook.conn_params.base_url.rstrip("/") + "/conversations"
        headers = {"Accept": "application/json", **hook.auth_headers()}
        look = (url, {"accountId": account, "count": 20}, headers, hook.conn_params.max_in_flight)
        plains: dict[str, list[dict[str, Any]]] = {"within": [], "over": []}
        with tempfile.TemporaryDirectory(prefix="linkmsg-bench-watchers-") as root:

            async def all_runs() -> float:  # one loop, as in one triggerer process
                cold = await _cold_start(info, account, os.path.join(root, "cold"))
                for _ in range(repetitions):
                    for (name, freeze), poll in loads.items():
                        where = os.path.join(root, f"{name}-{freeze}")
                        ours = await _one(info, account, n, poll, seconds, where, freeze)
                        runs[(name, freeze)].append(ours)
                        if not freeze:  # the same looks, plain
                            plains[name].append(await _plain(n, seconds, ours["mean_rate"], *look))
                    controls.append(await _control(n, seconds))
                return cold

            cold = asyncio.run(all_runs())
    bucket = rate + int(rate)  # the most one second can hold: a full bucket and a second's refill
    rows = []
    for (name, freeze), poll in loads.items():
        results = runs[(name, freeze)]
        stall, outside, pause, mean, top = (
            _span([r[k] for r in results])
            for k in ("stall_ms", "stall_outside_gc_ms", "gc_pause_ms", "mean_rate", "max_second")
        )
        allowed = [rate * r["seconds"] + int(rate) for r in results]
        within = all(r["calls"] <= a for r, a in zip(results, allowed, strict=True))
        plain = plains[name]
        if freeze:  # full collections walk only what came after the freeze: the whole stall counts
            met = stall[2] <= TARGET_STALL_MS and top[2] <= bucket and within
        else:
            # each run against the plain pollers of its own repetition (a reference: the plain way of making
            # the same looks through Airflow's runner, with asyncio's sleeps and a plain httpx client)
            floor = all(r["full_gcs"] <= c["full_gcs"] for r, c in zip(results, plain, strict=True))
            met = floor and outside[2] <= TARGET_STALL_MS and top[2] <= bucket and within
        rows.append(
            {
                "benchmark": f"watchers ({name} the limit{', heap frozen' if freeze else ''})",
                "gc_freeze": freeze,
                "watchers": n,
                "poll_interval_s": poll,
                "demand_rps": n / poll,
                "limit_rps": rate,
                "burst": int(rate),
                "seconds": seconds,
                "stall_ms": stall,
                "mean_rps": mean,
                "max_second_calls": top,
                "calls": [r["calls"] for r in results],
                "events": sum(r["events"] for r in results),
                "stall_outside_gc_ms": outside,
                "full_gcs": [r["full_gcs"] for r in results],
                "gc_pause_ms": pause,
                "control_stall_ms": _span([c["stall"] * 1000 for c in controls]),
                "control_full_gcs": [c["full_gcs"] for c in controls],
                "plain_full_gcs": [c["full_gcs"] for c in plain],
                "plain_stall_ms": _span([c["stall"] * 1000 for c in plain]),
                "plain_stall_outside_gc_ms": _span([c["other"] * 1000 for c in plain]),
                "cold_start_stall_ms": cold,
                "target": (
                    f"stall <= {TARGET_STALL_MS:g} ms"
                    if freeze
                    else f"no full GC beyond the plain pollers', stall outside full GCs <= {TARGET_STALL_MS:g} ms"
                )
                + f", <= {bucket:g} calls in any second, <= {rate:g}/s x run + burst",
                "met": met and sum(r["events"] for r in results) == 0,
            }
        )
    return {"rows": rows, "repetitions": repetitions}
