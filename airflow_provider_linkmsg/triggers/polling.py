"""
Shared polling for triggers: a few threads per connection poll for every trigger waiting on it.

A triggerer runs up to a thousand triggers in one event loop. If each poll were its own
``asyncio.to_thread`` call, every poll would cost the loop a thread hand-off, a future and a copied
context, and the loop thread would fight the pool's threads for the GIL; those short-lived objects would
also wake Python's full garbage collection of the whole process, which stalls the loop for its duration.

Here each trigger opens a :class:`Watch` (what to call, how often, until when) with the
:class:`_Poller` of its hook class and connection. The poller's threads (``MAX_THREADS``, and no more
than the connection's ``max_in_flight``) call the hook's sync transport, retries and rate limit
included, and hand a result to the trigger's event loop only when it differs from the last one, or at
the deadline. Between changes the loop does nothing at all for a waiting trigger.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from airflow_provider_linkmsg.exceptions import LinkMsgAuthError
from airflow_provider_linkmsg.hooks.base import LinkMsgHook

#: how long a poller keeps one hook before looking its connection up again (a changed key takes effect)
HOOK_REFRESH_SECONDS = 60.0
#: threads per poller, at most (and no more than the connection's ``max_in_flight``). Each thread waiting
#: on the network costs nothing, but each one parsing an answer competes with the event loop for the
#: GIL: with 16, the loop of a 1,000-trigger triggerer stalled up to 120 ms; with 4, under 30 ms. Four
#: threads poll some 13 times a second from a vendor answering in 300 ms: 800 triggers at the default
#: poll interval of a minute.
MAX_THREADS = 4
_UNSEEN = object()
_LOCK = threading.Condition()
_POLLERS: dict[tuple[type[LinkMsgHook], str], _Poller] = {}
_ORDER = itertools.count()


class Watch:
    """
    One trigger's registration: ``poll(hook)`` every ``interval`` seconds (+-10%) until ``until``.

    Use it as ``async with Watch(...) as watch: async for value, final in watch: ...`` on the trigger's
    loop. ``poll`` runs in a poller thread with the connection's shared hook; it should return a small
    value that compares equal when nothing changed (a summary, a status), because only changes are
    yielded: ``value`` is what ``poll`` returned or the exception it raised, and ``final`` is true for
    the one poll made at or after ``until`` (wall-clock epoch seconds), after which polling stops.
    A watch holds few objects and makes none per unchanged poll: a triggerer may hold a thousand.
    """

    def __init__(
        self,
        hook_class: type[LinkMsgHook],
        conn_id: str,
        poll: Callable[[Any], Any],
        *,
        interval: float,
        until: float,
    ) -> None:
        self.key = (hook_class, conn_id)
        self.poll = poll
        self.interval = interval
        self.until = until
        self.last: Any = _UNSEEN  # read and written only by the poller thread polling this watch
        self.closed = False
        self.ended = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._updates: list[tuple[Any, bool]] = []
        self._waiter: asyncio.Future[None] | None = None
        self._poller: _Poller | None = None

    async def __aenter__(self) -> Watch:
        self._loop = asyncio.get_running_loop()
        with _LOCK:
            self._poller = _POLLERS.get(self.key) or _POLLERS.setdefault(self.key, _Poller(*self.key))
            self._poller.add(self, time.monotonic())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        with _LOCK:
            self._poller.remove(self)

    def __aiter__(self) -> Watch:
        return self

    async def __anext__(self) -> tuple[Any, bool]:
        if self.ended:
            raise StopAsyncIteration
        while not self._updates:
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        value, self.ended = self._updates.pop(0)
        return value, self.ended

    def _receive(self, update: tuple[Any, bool]) -> None:  # on the loop
        self._updates.append(update)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def next_due(self, now: float) -> float:
        """Monotonic time of the next poll: one interval on (jittered, so polls spread out), or the deadline."""
        wall_left = self.until - time.time()
        return now + min(self.interval * random.uniform(0.9, 1.1), max(wall_left, 0.0))

    def offer(self, value: Any) -> bool:
        """In a poller thread: hand ``value`` over if it changed or time is up; true if polling goes on."""
        final = time.time() >= self.until
        if final or isinstance(value, BaseException) or value != self.last:
            self.last = value
            try:
                self._loop.call_soon_threadsafe(self._receive, (value, final))
            except RuntimeError:  # the trigger's loop is closed: nobody is waiting any more
                return False
        return not final


class _Poller:
    """Threads polling the watches of one hook class and connection, each watch when it is due."""

    def __init__(self, hook_class: type[LinkMsgHook], conn_id: str) -> None:
        self.key = (hook_class, conn_id)
        self.due: list[tuple[float, int, Watch]] = []  # a heap by due time; closed watches leave lazily
        self.open = 0  # watches not closed
        self.threads = 0
        self.max_threads = 1  # until the connection says how many requests may be in flight
        self._hook: LinkMsgHook | None = None
        self._hook_at = 0.0
        self._hook_stale = True  # a trigger came since the connection was read: read it again

    def hook(self, *, refresh: bool = False) -> LinkMsgHook:
        """
        The connection's shared hook. The connection is read again when a trigger has come since it was
        last read (so a trigger polls with the connection as it was when it started, or newer), every
        ``HOOK_REFRESH_SECONDS``, and when asked.
        """
        now = time.monotonic()
        if refresh or self._hook_stale or now - self._hook_at > HOOK_REFRESH_SECONDS:
            hook_class, conn_id = self.key
            self._hook, self._hook_at = hook_class.shared(conn_id), now  # may raise: no connection ...
            self._hook_stale = False
            self.max_threads = min(MAX_THREADS, self._hook.conn_params.max_in_flight)
        return self._hook

    def add(self, watch: Watch, due: float, *, new: bool = True) -> None:  # with _LOCK held
        self._hook_stale |= new
        self.open += new
        heapq.heappush(self.due, (due, next(_ORDER), watch))
        while self.threads < min(self.max_threads, self.open):
            self.threads += 1
            threading.Thread(target=self._work, name=f"linkmsg-poll-{self.key[1]}", daemon=True).start()
        _LOCK.notify()

    def remove(self, watch: Watch) -> None:  # with _LOCK held; O(1): the loop may close a thousand at once
        if not watch.closed:
            watch.closed = True
            self.open -= 1
            if not self.open:
                _LOCK.notify_all()  # threads with nothing left to poll end now, not at their next due time

    def _next(self) -> Watch | None:
        """The next due watch, waiting for it; None when this thread should end."""
        with _LOCK:
            while self.open and self.threads <= self.max_threads:
                if not self.due:  # every open watch is being polled by another thread
                    _LOCK.wait()
                elif self.due[0][2].closed:
                    heapq.heappop(self.due)
                elif (wait := self.due[0][0] - time.monotonic()) > 0:
                    _LOCK.wait(wait)
                else:
                    return heapq.heappop(self.due)[2]
            self.threads -= 1
            if not self.threads and not self.open:
                del _POLLERS[self.key]
            return None

    def _poll(self, watch: Watch) -> Any:
        hook = self.hook()
        try:
            return watch.poll(hook)
        except LinkMsgAuthError:
            if self.hook(refresh=True) is hook:  # the same connection: the key really is refused
                raise
            return watch.poll(self._hook)  # the key was changed since the hook was made: try the new one

    def _work(self) -> None:
        while (watch := self._next()) is not None:
            try:
                value = self._poll(watch)
            except Exception as exc:  # the trigger decides what an error means
                value = exc
            more = watch.offer(value)
            with _LOCK:
                if more and not watch.closed:
                    self.add(watch, watch.next_due(time.monotonic()), new=False)
