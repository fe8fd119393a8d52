"""
The waits of the triggers of one event loop between their looks, sharing timers: a wait that ends within the
same :data:`QUANTUM` as others shares their one timer.

Why not ``asyncio.sleep`` per wait: each makes a coroutine, a future, a timer handle and its argument tuple,
besides the task's wake-up callback and the future's iterator; a trigger's wait lasts its poll interval, so
all of it outlives the collector's young generations, and ten thousand triggers each waiting once per look
fill the oldest generation with them (and so drive its full collections of the whole triggerer heap). Here a
wait is one future (plus the two objects awaiting any future takes), in the list of its time slot; one timer
per slot sets them all, :data:`WAKE_BATCH` at a time. A wait may also book its caller's turn of a rate limit
when it ends (``then_book``): the same future then waits on, in a later slot, until that turn, with no
coroutine around it, and when the turn comes takes the in-flight slot of the caller's next request, queuing
for one at the rate limiter while none is free (:mod:`~.aslots`). A wait ends at most one quantum after the
time asked (later when the loop was held up: then in order), and, as with asyncio's own timers, not before it
by more than the loop's clock resolution; a cancelled wait (its task cancelled) stays in its slot's list,
done, until the slot's time.
"""

from __future__ import annotations

import asyncio
import collections
import math
from typing import Protocol

from airflow_provider_linkmsg.hooks.transport.onloop import on_loop

#: the width of a time slot (seconds): waits that end in one slot share a timer, and end together. Turns of a
#: connection booked ``1 / requests_per_second`` apart then go out up to ``requests_per_second x QUANTUM``
#: together: within the bucket's burst for every vendor default (at most 0.1) and the sandbox's (25 of 50)
QUANTUM = 0.05

#: the most waits ended in one turn of the event loop. A slot's timer that fires late (the loop was held up, by
#: a full collection say) comes with the timers of every slot it missed: ended all at once, their triggers'
#: looks would all run in the loop's next turn and hold it up again, by as long as all of them take. Ended a
#: batch at a time (in order), the looks take turns with the loop's other work. A slot on time has fewer.
WAKE_BATCH = 32


class Booking(Protocol):
    """What a wait can book when it ends: the next free turn of a rate limit (never before now), returning how
    long until it; and when that turn comes, the in-flight slot of the request it is for
    (:meth:`.AsyncTransport.book_turn`, :meth:`.AsyncTransport.take_slot`)."""

    def book_turn(self) -> float: ...

    def take_slot(self, waiter: asyncio.Future[None]) -> bool:
        """``True``: the slot is taken (or none is needed): the wait ends now. ``False``: ``waiter`` is queued
        for one, and is ended by whoever hands it the slot."""
        ...


# per slot: its waiters, and beside each what it books when it ends and what takes a slot then (None: nothing);
# lists per slot rather than a tuple per wait, so that a wait is its future and nothing else
_Slot = tuple[list[asyncio.Future[None]], list[Booking | None], list[Booking | None]]


class Sleeps:
    """The waits of one event loop, grouped by the slot of :data:`QUANTUM` seconds they end in."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._slots: dict[int, _Slot] = {}
        self._due: collections.deque[asyncio.Future[None]] = collections.deque()  # to end, in order
        self._due_books: collections.deque[Booking | None] = collections.deque()  # beside them
        self._due_takes: collections.deque[Booking | None] = collections.deque()
        self._draining = False

    def sleep(
        self, seconds: float, then_book: Booking | None = None, *, booked: bool = False
    ) -> asyncio.Future[None]:
        """
        A future done ``seconds`` from now (at most one quantum later), to await at once. With ``then_book``,
        when those seconds end its next free turn is booked, the future waits on until that turn, and then
        until ``then_book`` has an in-flight slot. ``booked``: the turn is booked already and comes when the
        seconds end; only the slot is taken then.
        """
        waiter: asyncio.Future[None] = self._loop.create_future()
        when = self._loop.time() + max(0.0, seconds)
        if booked:
            self._add(waiter, when, None, then_book)
        else:
            self._add(waiter, when, then_book, None)
        return waiter

    def _add(
        self, waiter: asyncio.Future[None], when: float, then_book: Booking | None, then_take: Booking | None
    ) -> None:
        slot = math.ceil(when / QUANTUM)
        waiters = self._slots.get(slot)
        if waiters is None:
            waiters = self._slots[slot] = ([], [], [])
            self._loop.call_at(slot * QUANTUM, self._wake, slot)
        waiters[0].append(waiter)
        waiters[1].append(then_book)
        waiters[2].append(then_take)

    def _wake(self, slot: int) -> None:
        waiters, books, takes = self._slots.pop(slot, ((), (), ()))
        self._due.extend(waiters)
        self._due_books.extend(books)
        self._due_takes.extend(takes)
        if not self._draining:
            self._draining = True
            self._drain()

    def _drain(self) -> None:
        """
        End up to :data:`WAKE_BATCH` waits (or book their turn and wait on, or queue them for an in-flight
        slot); the rest in the loop's next turn.
        """
        due, books, takes = self._due, self._due_books, self._due_takes
        for _ in range(min(WAKE_BATCH, len(due))):
            waiter, then_book, then_take = due.popleft(), books.popleft(), takes.popleft()
            if waiter.done():  # cancelled
                continue
            if then_book is not None:
                try:
                    delay = then_book.book_turn()
                except (
                    Exception
                ):  # nothing booked: the call takes its turn and slot itself (the timers go on)
                    delay, then_book = 0.0, None
                if delay > 0:  # on until that turn, booked: then only the slot to take
                    self._add(waiter, self._loop.time() + delay, None, then_book)
                    continue
                then_take = then_book  # the turn is now
            if then_take is not None:
                try:
                    queued = not then_take.take_slot(waiter)
                except Exception:  # no slot taken: the call waits for one itself
                    queued = False
                if queued:  # ended by the rate limiter when it hands the wait a slot
                    continue
            waiter.set_result(None)
        if due:
            self._loop.call_soon(self._drain)
        else:
            self._draining = False


#: the attribute of the running event loop that holds its waits
_ON_LOOP = "_linkmsg_sleeps"


def loop_sleeps() -> Sleeps:
    """The waits of the running event loop, kept on the loop (a loop that takes no attributes gives each
    caller its own: a timer each, still correct)."""
    return on_loop(_ON_LOOP, Sleeps)


def sleep(seconds: float, then_book: Booking | None = None, *, booked: bool = False) -> asyncio.Future[None]:
    """
    Wait ``seconds`` on the running loop's shared timers (:class:`Sleeps`), then (with ``then_book``) until the
    turn booked when they end (``booked``: booked already) and an in-flight slot taken then; await the result
    at once.
    """
    return loop_sleeps().sleep(seconds, then_book, booked=booked)
