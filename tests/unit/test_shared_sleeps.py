"""The triggers' waits on shared timers (hooks/transport/asleep.py): on time, one timer per slot, cancellable."""

from __future__ import annotations

import asyncio
import gc

import pytest

from airflow_provider_linkmsg.hooks.transport import asleep
from airflow_provider_linkmsg.hooks.transport.asleep import QUANTUM, sleep


async def test_waits_end_on_time_in_order_and_share_one_timer_per_slot(monkeypatch):
    loop = asyncio.get_running_loop()
    timers = []
    call_at = loop.call_at

    def counting_call_at(when, callback, *args, **kwargs):
        timers.append(when)
        return call_at(when, callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_at", counting_call_at)
    ended: dict[int, float] = {}

    async def waiter(i: int, seconds: float) -> None:
        start = loop.time()
        await sleep(seconds)
        ended[i] = loop.time() - start

    delays = [0.05] * 50 + [0.1] * 50 + [0.0]
    await asyncio.gather(*(waiter(i, d) for i, d in enumerate(delays)))
    for i, d in enumerate(delays):
        assert d - 0.002 <= ended[i] <= d + QUANTUM + 0.25, (d, ended[i])  # never early; late by load only
    # 101 waits, started within a few ms: a handful of timers, not one each
    assert len(timers) <= 8, timers


async def test_a_cancelled_wait_leaves_the_others_and_keeps_no_task():
    loop = asyncio.get_running_loop()
    done = []

    async def waiter(i: int) -> None:
        await sleep(0.05)
        done.append(i)

    tasks = [asyncio.create_task(waiter(i)) for i in range(10)]
    await asyncio.sleep(0.01)
    tasks[3].cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert sorted(done) == [i for i in range(10) if i != 3] and tasks[3].cancelled()
    await asyncio.sleep(0.06)  # the tasks' done callbacks run (they hold the tasks till then)
    for _ in range(100):  # the last slot's timer fires within a quantum (later on a loaded machine)
        if not asleep.loop_sleeps()._slots:
            break
        await asyncio.sleep(0.05)
    assert asleep.loop_sleeps()._slots == {}  # every slot fired and went
    del tasks
    gc.collect()
    assert not any(
        issubclass(type(t), asyncio.Task) and t.get_coro().__qualname__.endswith("waiter")
        for t in gc.get_objects()
    )
    assert loop.is_running()


@pytest.mark.parametrize("seconds", [-1.0, 0.0])
async def test_no_wait_still_ends_within_a_slot(seconds):
    loop = asyncio.get_running_loop()
    start = loop.time()
    await sleep(seconds)
    assert loop.time() - start <= QUANTUM + 0.25
