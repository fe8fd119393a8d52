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


async def test_waits_of_a_late_slot_end_a_batch_per_turn_of_the_loop_in_order():
    """
    The loop held up past several slots (a full collection, say): their waits end WAKE_BATCH per turn of the
    loop, in the order they were due, so the woken triggers take turns with the loop's other work.
    """
    import time

    loop = asyncio.get_running_loop()
    turn = 0

    def count_turns() -> None:  # one call per turn of the loop
        nonlocal turn
        turn += 1
        if not stop:
            loop.call_soon(count_turns)

    stop = False
    woken: list[tuple[int, int]] = []  # (waiter, turn it resumed in)

    async def waiter(i: int, seconds: float) -> None:
        await sleep(seconds)
        woken.append((i, turn))

    n = 5 * asleep.WAKE_BATCH
    tasks = [asyncio.create_task(waiter(i, QUANTUM * (1 + i // 40))) for i in range(n)]  # over 4 slots
    await asyncio.sleep(0)  # every waiter waits
    loop.call_soon(count_turns)
    time.sleep(6 * QUANTUM)  # the loop held up past all four slots
    await asyncio.gather(*tasks)
    stop = True
    per_turn: dict[int, int] = {}
    for _, t in woken:
        per_turn[t] = per_turn.get(t, 0) + 1
    assert len(woken) == n
    assert max(per_turn.values()) <= asleep.WAKE_BATCH < n  # not all in one turn
    assert len(per_turn) >= n // asleep.WAKE_BATCH
    slots = [i // 40 for i, _ in woken]
    assert slots == sorted(slots)  # a slot's waits end before a later slot's


async def test_a_wait_that_books_a_turn_books_it_when_it_ends_and_waits_on_until_it():
    """
    ``then_book``: the turn is booked when the sleep ends (not before), and the same future ends when that
    turn comes; a cancelled wait books nothing. With a real limiter, waits that all end together come out
    spaced by its rate, and each is still one future (no coroutine around it).
    """
    from airflow_provider_linkmsg.hooks.transport.aratelimit import AsyncRateLimiter

    loop = asyncio.get_running_loop()
    booked: list[float] = []

    class Turns:
        def book_turn(self) -> float:
            booked.append(loop.time())
            return 0.3  # the next free turn is 0.3 s after the sleep's end

        def take_slot(self, waiter) -> bool:
            return True  # no in-flight cap here

    start = loop.time()
    wait = sleep(0.1, then_book=Turns())
    assert isinstance(wait, asyncio.Future)
    await wait
    ended = loop.time() - start
    assert len(booked) == 1 and 0.1 - 0.002 <= booked[0] - start <= 0.1 + QUANTUM + 0.25
    assert 0.4 - 0.002 <= ended <= 0.4 + 2 * QUANTUM + 0.25, ended

    cancelled = sleep(0.05, then_book=Turns())
    cancelled.cancel()
    await asyncio.sleep(0.05 + 2 * QUANTUM)
    assert len(booked) == 1  # the cancelled wait booked nothing

    limiter = AsyncRateLimiter(rate=20.0, burst=1, max_in_flight=4)
    limiter.book_turn()  # the bucket's one token taken: the turns come 50 ms apart from now on
    start = loop.time()
    ends: list[float] = []

    class Caller:  # what a hook books and takes, without its in-flight slot
        book_turn = staticmethod(limiter.book_turn)

        def take_slot(self, waiter) -> bool:
            return True

    async def waiter() -> None:
        await sleep(0.05, then_book=Caller())
        ends.append(loop.time() - start)

    await asyncio.gather(*(waiter() for _ in range(8)))
    ends.sort()
    # 8 turns at 20 per second, the first free one ~0.05 s in: the last not before 0.05 + 7 x 0.05
    assert ends[-1] >= 0.05 + 7 / 20.0 - 0.01, ends
    assert ends[-1] <= 0.05 + 8 / 20.0 + 2 * QUANTUM + 0.25, ends


async def test_a_booking_that_fails_ends_its_wait_and_stops_no_other():
    """A ``then_book`` that raises ends its wait as if nothing were booked; the loop's timers go on."""

    class Broken:
        def book_turn(self) -> float:
            raise RuntimeError("boom")

    await asyncio.wait_for(sleep(0.01, then_book=Broken()), 2.0)
    await asyncio.wait_for(asyncio.gather(*(sleep(0.01) for _ in range(5))), 2.0)
