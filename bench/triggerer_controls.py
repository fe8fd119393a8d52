"""
The references the triggerer bench (:mod:`bench.bench_triggerer`) runs beside ours, the same way (through
Airflow's ``TriggerRunner.run_trigger``): sleeping triggers that never look, and plain pollers that make the
same looks with a plain ``httpx.AsyncClient`` (waiting with ``asyncio.sleep``, or, lean, on the shared
timers as ours wait); and the warm-up look made before ours.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

_CLASSES: dict[str, type] = {}


def _sleep_trigger(until: float) -> Any:
    """The sleeping control: a trigger that only sleeps until ``until`` (monotonic) and fires."""
    from airflow.triggers.base import BaseTrigger, TriggerEvent

    if "sleep" not in _CLASSES:  # one class for every control trigger (a class each would grow the heap)

        class SleepTrigger(BaseTrigger):
            def __init__(self, until: float) -> None:
                super().__init__()
                self.until = until

            def serialize(self) -> tuple[str, dict[str, Any]]:
                return "bench.SleepTrigger", {}

            async def run(self):
                await asyncio.sleep(max(0.0, self.until - time.monotonic()))
                yield TriggerEvent({"status": "success"})

        _CLASSES["sleep"] = SleepTrigger
    return _CLASSES["sleep"](until)


def _plain_poller(
    client: Any,
    in_flight: asyncio.Semaphore,
    url: str,
    params: Any,
    first: float,
    interval: float,
    until: float,
    lean: bool = False,
) -> Any:
    """
    The plain control: a trigger that looks as a plain httpx loop would, with none of our code's transport: after
    ``first`` seconds, then every ``interval`` while the next look comes before ``until`` (monotonic), one GET
    of ``url`` on ``client`` (an ``httpx.AsyncClient`` shared by all, as our triggers share one) under the
    ``in_flight`` semaphore, its JSON parsed, and ``asyncio.sleep`` between, as Airflow's own polling triggers
    sleep; it fires at ``until``. ``lean``: the same, but each wait is the cheapest there is, one future on the
    loop's shared timers (:func:`airflow_provider_linkmsg.hooks.transport.asleep.sleep`, ours' wait): the
    looks with nothing but the wait of ours, and a bare GET for our whole request path.
    """
    from airflow.triggers.base import BaseTrigger, TriggerEvent

    from airflow_provider_linkmsg.hooks.transport.asleep import sleep as shared_sleep

    kind = "lean" if lean else "plain"
    if kind not in _CLASSES:
        pause = shared_sleep if lean else asyncio.sleep

        class PlainPoller(BaseTrigger):
            def __init__(self, look: tuple[Any, ...]) -> None:
                super().__init__()
                self.look = look

            def serialize(self) -> tuple[str, dict[str, Any]]:
                return f"bench.{kind}Poller", {}

            async def run(self):
                client, in_flight, url, params, first, interval, until = self.look
                await pause(first)
                while True:
                    async with in_flight:  # as many requests in flight as ours (httpx's pool queues badly)
                        (await client.get(url, params=params)).json()
                    left = until - time.monotonic()
                    if left < interval:  # its job completes before the next look would come
                        await pause(max(0.0, left))
                        break
                    await pause(interval)
                yield TriggerEvent({"status": "success"})

        _CLASSES[kind] = PlainPoller
    return _CLASSES[kind]((client, in_flight, url, params, first, interval, until))


def _control(begun: list[float], seconds: float, started: float) -> dict[str, Any]:
    """The bare triggers, after ours: each sleeps what its job had left when our run started."""
    from bench.bench_triggerer import _run_triggers  # the same runs as ours (that module imports this one)

    now = time.monotonic()
    return asyncio.run(_run_triggers([_sleep_trigger(now + max(0.0, t + seconds - started)) for t in begun]))


def _warm(hook_class: Any, method: str, *args: Any) -> Callable[[], Awaitable[Any]]:
    """One look with a hook of ``hook_class`` (``method(*args)``), its client closed after."""

    async def look() -> None:
        hook = hook_class()
        try:
            await getattr(hook, method)(*args)
        finally:
            await hook.aclose()

    return look


def _plain_control(
    info: dict[str, Any],
    hook: Any,
    looks: list[tuple[str, Any]],
    begun: list[float],
    seconds: float,
    started: float,
    poll_interval: float,
    ours: dict[str, Any],
    lean: bool = False,
) -> dict[str, Any]:
    """
    The plain pollers (:func:`_plain_poller`), after ours: trigger ``i`` GETs ``looks[i]`` (the URL and
    parameters our trigger ``i`` polls) with the connection's headers, first after a random part of the span
    ours' first looks took (one ``poll_interval``, or the time the connection's rate needs for all of them),
    then at one interval for all, chosen so that they make as many looks in all as ours made, until what its
    job had left when our run started. One ``httpx.AsyncClient`` with as many connections as our triggers'
    connection allows. ``lean``: the lean pollers (:func:`_plain_poller`), waiting as ours wait.
    """
    import httpx

    from bench.bench_triggerer import _run_triggers

    rng = random.Random(0)
    total = ours["polls"]
    left = [max(0.0, t + seconds - started) for t in begun]
    # ours' first looks spread over one interval, or over the time the connection's rate needs for them all
    # (each books its turn): the plain pollers' over the same span, so their looks come at ours' pace too
    spread = max(poll_interval, len(left) / ours["rate_limit"])
    firsts = [rng.uniform(0, spread) for _ in left]

    def count(interval: float) -> int:  # the looks at first + k x interval, up to the job's end
        return sum(1 + max(0, math.floor((d - f) / interval)) for d, f in zip(left, firsts, strict=True))

    low, high = 0.01, 3600.0  # the interval whose looks come nearest ours (fewer looks as it grows)
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if count(mid) > total else (low, mid)
    interval = high
    p = hook.conn_params
    headers = {"Accept": "application/json", **hook.auth_headers()}

    async def run() -> dict[str, Any]:
        limits = httpx.Limits(max_connections=p.max_in_flight, max_keepalive_connections=p.max_in_flight)
        in_flight = asyncio.Semaphore(p.max_in_flight)
        async with httpx.AsyncClient(headers=headers, limits=limits, timeout=60.0) as client:
            # the client's first request, before the run (as ours' warm-up)
            (await client.get(looks[0][0], params=looks[0][1])).json()
            now = time.monotonic()
            return await _run_triggers(
                [
                    _plain_poller(client, in_flight, url, params, f, interval, now + d, lean)
                    for (url, params), f, d in zip(looks, firsts, left, strict=True)
                ]
            )

    from bench.common import admin

    admin(info, "POST", "/stats/reset")
    begun_at = time.monotonic()
    outcome = asyncio.run(run())
    outcome["wall"] = time.monotonic() - begun_at
    calls = admin(info, "GET", "/stats").get("calls") or {}
    outcome["polls"] = int(sum(calls.values())) - 1  # less the client's first request, before the run
    outcome["interval"] = interval
    return outcome
