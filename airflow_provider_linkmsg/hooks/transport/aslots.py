"""
The in-flight cap of the async path: at most ``size`` requests of a connection in flight in one event loop, the
slots handed in order to whoever waits for one, calls and trigger waits alike.

Why not ``asyncio.Semaphore``: its queue holds the tasks that ``await acquire()``, so a trigger whose turn of the
rate limit has come while the cap is full would wait there inside its look: the look's coroutines (the hook's
method, ``arequest``, the acquire) and their frames built, and kept for as long as the queue takes to drain.
When a vendor answers more slowly than the rate allows (thousands of triggers, sixteen in flight), thousands of
looks queued that way, each holding its call chain until the collector's older generations took it; when the
queue drained, freeing all of it at once held the event loop up (a young collection of tens of thousands of
objects). Here a trigger's wait itself can queue for a slot (:meth:`InFlight.take_for`): the *same* future it
sleeps on (:mod:`~.asleep`) waits on in the queue, and ends when a slot is handed to it, the slot then held for
its *owner* (the hook) until its next call claims it (:meth:`InFlight.claim`). Nothing of the look exists
until it has its slot.

A slot handed to an owner that never claims it (the trigger was cancelled before it ran on, or its next step
makes no request) is given back by the owner when it sleeps again or closes (:meth:`InFlight.give_back`), and
in any case taken back :data:`CLAIM_WITHIN` seconds after it was handed, so that no slot is lost to the others.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

#: how long a slot handed to a trigger's wait stays reserved for its owner's next call (seconds). The call comes
#: in the loop's next turn or the one after; a slot not claimed by then is handed on (the call, if it comes
#: later still, waits for a slot as any call does).
CLAIM_WITHIN = 2.0


class InFlight:
    """The in-flight slots of one connection in one event loop (see the module's text)."""

    def __init__(self, size: int) -> None:
        self._free = max(1, size)
        # who waits, in order: a future each and beside it the owner a parked wait takes its slot for (None for a
        # task awaiting :meth:`acquire`, which holds the slot itself once woken); two deques, not a pair per wait
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._owners: collections.deque[Any] = collections.deque()
        self._unclaimed: dict[Any, float] = {}  # owner -> when its slot was handed (the loop's clock)
        self._sweep: asyncio.TimerHandle | None = None

    @property
    def free(self) -> int:
        """Slots nobody holds or waits for."""
        return self._free

    def waiting(self) -> int:
        """Waits queued for a slot (cancelled ones included until a release passes them)."""
        return len(self._waiters)

    async def acquire(self) -> None:
        """A slot for the running task (it gives it back with :meth:`release`): at once when one is free, else
        when one is handed to it, in order."""
        if self._free > 0:  # a release hands its slot to the first live waiter: free means nobody waits
            self._free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._owners.append(None)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed a slot it will not use: hand it on
                self.release()
            raise

    def take_for(self, owner: Any, waiter: asyncio.Future[None]) -> bool:
        """
        A slot for ``owner``'s next call, whose wait ``waiter`` is about to end (its turn has come): ``True``
        when one was free (taken now; end the wait), else ``False``: the wait is queued, and ends when a slot is
        handed to it. An owner that holds one already takes no second.
        """
        if owner in self._unclaimed:
            return True
        if self._free > 0:
            self._free -= 1
            self._hand(owner)
            return True
        self._waiters.append(waiter)
        self._owners.append(owner)
        return False

    def claim(self, owner: Any) -> bool:
        """Whether ``owner`` held a slot (now the running call's, given back with :meth:`release`)."""
        return self._unclaimed.pop(owner, None) is not None

    def give_back(self, owner: Any) -> None:
        """The slot ``owner`` holds and will not use, if any, handed on."""
        if self._unclaimed.pop(owner, None) is not None:
            self.release()

    def release(self) -> None:
        """A slot given back: handed to the first live waiter (a cancelled wait is passed), else free."""
        waiters, owners = self._waiters, self._owners
        while waiters:
            waiter, owner = waiters.popleft(), owners.popleft()
            if waiter.done():  # cancelled while it waited
                continue
            if owner is not None:
                if owner in self._unclaimed:  # holds one already: its wait ends, the slot goes on
                    waiter.set_result(None)
                    continue
                self._hand(owner)
            waiter.set_result(None)
            return
        self._free += 1

    def _hand(self, owner: Any) -> None:
        loop = asyncio.get_running_loop()
        self._unclaimed[owner] = loop.time()
        if self._sweep is None:
            self._sweep = loop.call_at(loop.time() + CLAIM_WITHIN, self._take_back)

    def _take_back(self) -> None:
        """Slots handed :data:`CLAIM_WITHIN` ago and not claimed, handed on; then the next such check, if any."""
        self._sweep = None
        loop = asyncio.get_running_loop()
        stale = loop.time() - CLAIM_WITHIN
        for owner in [o for o, handed in self._unclaimed.items() if handed <= stale]:
            del self._unclaimed[owner]
            self.release()
        if self._sweep is not None:  # set by a slot handed on just now: the oldest handed one comes first
            self._sweep.cancel()
            self._sweep = None
        if self._unclaimed:
            self._sweep = loop.call_at(min(self._unclaimed.values()) + CLAIM_WITHIN, self._take_back)
