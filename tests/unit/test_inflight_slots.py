"""
The async in-flight cap (hooks/transport/aslots.py): calls and trigger waits queue for slots in one order, a
slot is never lost or doubled whatever is cancelled when, and a slot handed to a wait that never uses it comes
back.
"""

from __future__ import annotations

import asyncio

from hypothesis import example, given, settings
from hypothesis import strategies as st

from airflow_provider_linkmsg.hooks.transport import aslots
from airflow_provider_linkmsg.hooks.transport.aslots import InFlight


class Owner:
    """A hook, as the slots see it: something a parked wait takes its slot for."""

    def __init__(self, name: str) -> None:
        self.name = name


async def test_a_wait_queues_for_a_slot_as_one_future_and_its_owner_claims_it():
    loop = asyncio.get_running_loop()
    slots = InFlight(1)
    await slots.acquire()  # the only slot is in flight
    owner, wait = Owner("a"), loop.create_future()
    assert slots.take_for(owner, wait) is False  # queued: the wait goes on
    assert not wait.done() and slots.waiting() == 1
    slots.release()  # the answer came: its slot goes to the queued wait, for its owner
    assert wait.done() and slots.free == 0
    assert slots.claim(owner) is True  # its call takes the slot over
    assert slots.claim(owner) is False  # once
    slots.release()
    assert slots.free == 1


async def test_an_unclaimed_slot_is_given_back_or_taken_back_and_handed_on(monkeypatch):
    monkeypatch.setattr(aslots, "CLAIM_WITHIN", 0.05)
    loop = asyncio.get_running_loop()
    slots = InFlight(1)
    a, b = Owner("a"), Owner("b")
    assert slots.take_for(a, loop.create_future()) is True  # free: taken for a at once
    assert slots.take_for(a, loop.create_future()) is True  # a holds one: no second is taken
    second = loop.create_future()
    assert slots.take_for(b, second) is False
    slots.give_back(a)  # a's trigger slept again without a request: b gets the slot
    assert second.done() and slots.claim(a) is False
    # b never claims (its trigger was cancelled just after its wait ended): the slot comes back on its own
    queued = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0.2)
    assert queued.done(), "a slot handed to a wait that never claimed it was lost"
    assert slots.claim(b) is False  # taken back: b's call, if it came now, would queue like any other
    slots.release()
    assert slots.free == 1


async def test_a_task_cancelled_after_it_was_handed_a_slot_hands_it_on():
    slots = InFlight(1)
    await slots.acquire()
    first = asyncio.create_task(slots.acquire())
    second = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    slots.release()  # handed to first, which has not run on yet
    first.cancel()
    for _ in range(3):
        await asyncio.sleep(0)
    assert second.done() and first.cancelled()
    slots.release()
    assert slots.free == 1


# a model of the slots' users, run against the real thing on a real loop: tasks that acquire and release (as
# calls' attempts do) and owners whose wait takes a slot (as triggers do), any of them cancelled at any point
OPS = st.lists(
    st.tuples(
        st.sampled_from(
            ["acquire", "park", "release", "claim", "give_back", "cancel_task", "cancel_wait", "turn"]
        ),
        st.integers(0, 2),
    ),
    max_size=60,
)


@settings(max_examples=1500, deadline=None)
@given(size=st.integers(1, 2), ops=OPS)
# a slot handed to a waiting call whose task is cancelled before it runs on (it must hand the slot on)
@example(
    1,
    [("park", 0), ("claim", 0), ("acquire", 1), ("turn", 0), ("release", 0), ("cancel_task", 1), ("turn", 0)],
)
def test_slots_are_never_lost_doubled_or_handed_out_of_order(size, ops):
    asyncio.run(_run_model(size, ops))


async def _run_model(size: int, ops: list[tuple[str, int]]) -> None:
    loop = asyncio.get_running_loop()
    slots = InFlight(size)
    tasks: dict[int, asyncio.Task[None]] = {}
    holding: set[int] = set()  # tasks (and claimed owners, as 100 + i) holding a slot
    waits: dict[int, asyncio.Future[None]] = {}
    owners = {i: Owner(str(i)) for i in range(3)}
    asked: list[int] = []  # the requests that queued, in order (a number each)
    granted: list[int] = []  # those that were handed a slot, in order

    async def call(i: int) -> None:
        queued = slots.free == 0
        if queued:
            asked.append(ticket := len(asked))
        await slots.acquire()
        if queued:
            granted.append(ticket)
        holding.add(i)
        try:
            await asyncio.Event().wait()  # in flight until cancelled
        finally:
            holding.discard(i)
            slots.release()

    for op, i in ops:
        if op == "acquire" and i not in tasks:
            tasks[i] = asyncio.create_task(call(i))
        elif op == "park" and i not in waits and 100 + i not in holding:
            wait = waits[i] = loop.create_future()
            if not slots.take_for(owners[i], wait):
                asked.append(ticket := len(asked))
                wait.add_done_callback(lambda f, t=ticket: f.cancelled() or granted.append(t))
            else:
                wait.set_result(None)
        elif op == "claim" and i in waits and waits[i].done() and not waits[i].cancelled():
            del waits[i]
            if slots.claim(owners[i]):
                holding.add(100 + i)
        elif op == "release" and 100 + i in holding:
            holding.discard(100 + i)
            slots.release()
        elif op == "give_back" and i in waits and waits[i].done():
            del waits[i]
            slots.give_back(owners[i])
        elif op == "cancel_task" and i in tasks:
            tasks.pop(i).cancel()
        elif op == "cancel_wait" and i in waits and not waits[i].done():
            waits.pop(i).cancel()  # its trigger was cancelled while it waited
        if op != "turn":  # the next step comes before anything woken runs on
            continue
        for _ in range(4):  # every task woken has run on: the books balance
            await asyncio.sleep(0)
        reserved = len(slots._unclaimed)
        assert len(holding) + reserved + slots.free == size, (holding, reserved, slots.free)
        assert slots.free == 0 or not any(not w.done() for w in slots._waiters)
    for _ in range(4):
        await asyncio.sleep(0)
    # order: among those that queued and were not cancelled, slots came in the order they were asked for
    assert granted == sorted(granted)
    for task in tasks.values():
        task.cancel()
    await asyncio.gather(*tasks.values(), return_exceptions=True)
    for i in list(waits):
        waits[i].cancel()
        slots.give_back(owners[i])
    for _ in list(holding):
        slots.release()
    assert slots.free == size and slots._unclaimed == {}
