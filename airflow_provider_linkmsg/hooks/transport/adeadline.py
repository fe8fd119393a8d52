"""
The read deadlines of the async attempts of one event loop, kept by one timer.

An attempt's deadline is ``read_timeout`` seconds from the moment its first request starts being sent
(httpcore reports it through its ``trace`` extension; connecting and waiting for a pooled connection are
bounded by httpx's connect and pool timeouts), for the status line, headers and body of every hop. Past it
the attempt's task is cancelled and the attempt raises :class:`~.http.BodyDeadline`, as ``asyncio.timeout``
would.

Why not ``asyncio.timeout`` per attempt: a timer armed per attempt and cancelled when the attempt ends stays
in the loop's scheduled heap (a ``TimerHandle``, its context and the timeout object) until the time it would
have fired, since asyncio purges cancelled timers only once they are half the heap. At the triggerer's
hundreds of attempts a second those live long enough to reach the collector's oldest generation, and drive
its full collections. Here one timer serves every attempt of the loop: armed at the earliest deadline and,
in the common case, never cancelled (the attempts of a connection share one read timeout, so a new deadline
is not earlier than the armed one); when it fires it cancels the attempts past their deadline and arms
itself again for the earliest one left. An attempt that ends leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from airflow_provider_linkmsg.hooks.transport.onloop import on_loop

#: what a deadline may be reached early by (the loop's timers fire up to its clock resolution early)
_EARLY = 0.001


class Deadline:
    """
    The read deadline of one attempt; httpcore's ``trace`` callback (it starts at the first send, and
    keeps the connection the attempt opened, if it opened one, in :attr:`stream`).
    """

    __slots__ = ("at", "cancelling", "expired", "owner", "seconds", "stream", "task")

    def __init__(self, owner: Deadlines, seconds: float) -> None:
        self.owner = owner
        self.seconds = seconds
        self.at = math.inf
        self.expired = False
        self.task: asyncio.Task[Any] | None = asyncio.current_task()
        self.cancelling = self.task.cancelling() if self.task is not None else 0
        self.stream: Any = None

    async def __call__(self, event: str, info: Any) -> None:
        if event == "http11.send_request_headers.started" and self.at == math.inf:
            self.owner.start(self)
        elif event == "connection.connect_tcp.complete":
            self.stream = info.get("return_value")

    def timed_out(self) -> bool:
        """After a ``CancelledError``: whether it came from this deadline alone (as ``asyncio.Timeout``)."""
        return self.expired and self.task is not None and self.task.uncancel() <= self.cancelling


class Deadlines:
    """The deadlines of the attempts in flight in one event loop, and the one timer that enforces them."""

    def __init__(self) -> None:
        self._live: set[Deadline] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._armed_at = math.inf

    def new(self, seconds: float) -> Deadline:
        """A deadline ``seconds`` long for the running task's attempt (it starts at the first send)."""
        return Deadline(self, seconds)

    def start(self, deadline: Deadline) -> None:
        loop = asyncio.get_running_loop()
        deadline.at = loop.time() + deadline.seconds
        self._live.add(deadline)
        if deadline.at < self._armed_at:
            self._arm(loop, deadline.at)

    def end(self, deadline: Deadline) -> None:
        """The attempt is over (the timer, if armed, stays: it fires once more and finds nothing)."""
        self._live.discard(deadline)
        deadline.task = None

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:  # only for a deadline earlier than the armed one (a shorter timeout)
            self._timer.cancel()
        self._armed_at = when
        self._timer = loop.call_at(when, self._expire)

    def _expire(self) -> None:
        self._timer, self._armed_at = None, math.inf
        loop = asyncio.get_running_loop()
        now = loop.time() + _EARLY
        earliest = math.inf
        for deadline in self._live:
            if deadline.expired:
                continue
            if deadline.at <= now:
                deadline.expired = True
                if deadline.task is not None:
                    deadline.task.cancel()
            else:
                earliest = min(earliest, deadline.at)
        if earliest < math.inf:
            self._arm(loop, earliest)


#: the attribute of the running event loop that holds its deadlines
_ON_LOOP = "_linkmsg_deadlines"


def loop_deadlines() -> Deadlines:
    """The deadlines of the running event loop, kept on the loop (a loop that takes no attributes, such as
    uvloop's, gives each caller its own: one timer each, still correct)."""
    return on_loop(_ON_LOOP, lambda loop: Deadlines())
