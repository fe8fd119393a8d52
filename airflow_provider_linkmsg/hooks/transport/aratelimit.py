"""The rate limiter of the async path: the same token bucket and pauses, on asyncio, one per connection and loop."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

from airflow_provider_linkmsg.hooks.transport.aslots import InFlight
from airflow_provider_linkmsg.hooks.transport.ratelimit import TokenBucket


class AsyncRateLimiter:
    """
    A token bucket (``rate`` per second, ``burst`` deep) plus a cap on requests in flight, for one event
    loop. Like :class:`~.ratelimit.RateLimiter`, a vendor-requested pause holds every caller.

    Two steps, two buckets of the same rule (:class:`~.ratelimit.TokenBucket`):

    * :meth:`turn`, before a request is built: the caller books the next free token of the *schedule* and
      sleeps once until it (one timer; no queue of futures, no herd woken together to race for a token).
      A thousand callers asking twice what the limit allows wait here, each holding only its own frames,
      not the request, retry state and attempt that the limiter's inner step would hold for seconds.
    * :meth:`book` (a trigger about to sleep until its next poll): when the connection's turns are booked
      past that poll, the caller books its turn at once and sleeps until it, one sleep instead of the poll
      interval and then :meth:`turn`'s wait (one timer and one sleeping frame per look, not two).
    * :meth:`take_slot` (a trigger's wait whose turn has come): the in-flight slot of its next call, taken
      in the wait; when the cap is full the same wait queues for it (:class:`~.aslots.InFlight`), so a look
      queued on the cap (a vendor slower than the rate) is one future, its call not begun.
    * :meth:`hold_slot`, after the turn and still before the request is built: the in-flight slot of the
      call's first attempt (the one its wait took, if any), so that calls queued on the cap hold only
      their own frames too.
    * ``async with limiter`` (each attempt): an in-flight slot (the one held, for a first attempt), then a token of the *send* bucket taken at
      the moment of sending, as the sync limiter does. This bucket alone holds the rate limit, whatever
      the schedule said: a caller that comes late (a stalled loop, a retry, a pause) waits here again.
      Callers that took their turn arrive spaced by the schedule and find their token.
    """

    def __init__(self, rate: float, burst: int, max_in_flight: int) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        now = time.monotonic()
        self._bucket = TokenBucket(rate, burst, now)  # sending: the rate limit
        self._schedule = TokenBucket(rate, burst, now)  # booking: when each waiter's turn comes
        self._in_flight = InFlight(max_in_flight)
        self._held: set[asyncio.Task[object] | None] = set()  # tasks holding a slot for their next attempt

    async def turn(self) -> None:
        """Wait until the caller's booked token comes (at once while the bucket has some)."""
        delay = self._schedule.reserve(time.monotonic())
        if delay > 0:
            await asyncio.sleep(delay)

    def book(self, seconds: float) -> float:
        """
        For a caller that will request in ``seconds`` at the earliest (a trigger's next poll): when the next
        free turn comes no earlier than that, book it now and return how long until it (so the caller sleeps
        once, and its request then takes no :meth:`turn`); else book nothing and return ``-1``.
        """
        now = time.monotonic()
        if self._schedule.next_free(now) < now + seconds:
            return -1.0
        return self._schedule.reserve(now)

    def book_turn(self) -> float:
        """Book the next free turn (never before now); return how long until it. The shared timers call this
        when a trigger's sleep ends (``then_book`` of :func:`.asleep.sleep`)."""
        return self._schedule.reserve(time.monotonic())

    def take_slot(self, owner: Any, waiter: asyncio.Future[None]) -> bool:
        """
        The in-flight slot of ``owner``'s next call (a hook whose trigger's wait ends now, its turn come),
        claimed by that call's :meth:`hold_slot`: ``True`` when taken now, else ``False`` and ``waiter`` (the
        wait's future) is queued for one and ends when it is handed one (:meth:`.aslots.InFlight.take_for`).
        """
        return self._in_flight.take_for(owner, waiter)

    def give_back(self, owner: Any) -> None:
        """The slot :meth:`take_slot` took for ``owner`` and no call of it claimed, handed on (if any)."""
        self._in_flight.give_back(owner)

    async def hold_slot(self, owner: Any = None) -> None:
        """
        Take an in-flight slot for the running task's next attempt (``async with limiter`` then uses it
        instead of taking another): the one :meth:`take_slot` took for ``owner`` if it still holds it, else a
        call waits for its slot before its request, retry state and attempt are built, holding only its own
        frames, however many calls queue when the vendor answers more slowly than the rate allows.
        :meth:`drop_slot` gives back a slot no attempt used.
        """
        task = asyncio.current_task()
        if owner is None or not self._in_flight.claim(owner):
            await self._in_flight.acquire()
        self._held.add(task)

    def drop_slot(self) -> None:
        """Give back the running task's slot from :meth:`hold_slot` if no attempt took it (the call failed
        before sending)."""
        task = asyncio.current_task()
        if task in self._held:
            self._held.discard(task)
            self._in_flight.release()

    async def enter(self, call: Any = None) -> None:
        """
        An in-flight slot (the one :meth:`hold_slot` took for this task, if any), then a token (``async with
        limiter`` without a call); :meth:`leave` gives the slot back. For a ``call``, the wait counts
        towards its ``max_wait`` as in :meth:`~.ratelimit.RateLimiter.slot`.
        """
        task = asyncio.current_task()
        if task in self._held:  # taken before the call was built (hold_slot)
            self._held.discard(task)
        else:
            await self._in_flight.acquire()
        try:
            budget = math.inf if call is None else call.hold_budget()
            started = time.monotonic()
            while (delay := self._bucket.take(time.monotonic())) > 0:
                held = time.monotonic() - started
                if held + delay > budget:
                    raise call.held_past_budget(delay)
                await asyncio.sleep(delay)
            if call is not None and budget < math.inf:
                call.held += time.monotonic() - started
        except BaseException:
            self._in_flight.release()
            raise

    def leave(self) -> None:
        self._in_flight.release()

    async def __aenter__(self) -> None:
        await self.enter()

    async def __aexit__(self, *exc_info: object) -> None:
        self.leave()

    def paused_until(self) -> float:
        """When the vendor's current pause ends (``time.monotonic()``; in the past when there is none)."""
        return self._bucket.paused_until

    def pause(self, seconds: float, cap: float = math.inf, sent: float = math.inf) -> None:
        """
        Hold every caller for ``seconds`` from now; finite values only (the caller caps them). A pause
        lasts at most ``cap`` from its start, and the answer to a request ``sent`` before it began starts
        none after it (:meth:`~.ratelimit.TokenBucket.pause`).
        """
        if not 0 < seconds < math.inf:
            return
        now = time.monotonic()
        self._bucket.pause(seconds, now, cap, sent)
        self._schedule.pause(seconds, now, cap, sent)
