"""The client-side rate limiter: a token bucket, a cap on requests in flight, and vendor-requested pauses."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class TokenBucket:
    """
    The token bucket both limiters share: ``rate`` tokens a second, ``burst`` deep, and vendor-requested
    pauses. Pure arithmetic: no lock, no I/O, no clock of its own (every method is given ``now``, a
    ``time.monotonic()`` reading); the sync limiter wraps it in a lock, the async one runs it on its loop.

    :meth:`take` is the bucket's rule at the moment of sending: a token if one is there, else the wait.
    :meth:`reserve` books the next free token, in the future when none is left (the bucket goes into
    debt): a waiter learns when its turn comes and sleeps once until then, instead of asking again.
    """

    __slots__ = ("burst", "pause_start", "paused_until", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self.tokens = float(self.burst)
        self.stamp = now  # the time ``tokens`` was counted at (after a pause: the pause's end)
        self.paused_until = 0.0
        self.pause_start = 0.0

    def _refill(self, now: float) -> None:
        if self.rate <= 0:  # no rate limit: only the pauses hold callers
            self.tokens = float(self.burst)
        elif now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = max(self.stamp, now)

    def take(self, now: float) -> float:
        """Take a token if one is free and return 0, else return how long to wait before asking again."""
        if now < self.paused_until:
            return self.paused_until - now
        self._refill(now)
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate

    def next_free(self, now: float) -> float:
        """When the next free token comes (``now`` when one is there), without taking it."""
        tokens = float(self.burst) if self.rate <= 0 else self.tokens
        if self.rate > 0 and now > self.stamp:
            tokens = min(self.burst, tokens + (now - self.stamp) * self.rate)
        at = max(self.stamp, now)
        return at if self.rate <= 0 or tokens >= 1 else at + (1 - tokens) / self.rate

    def reserve(self, now: float) -> float:
        """Book the next free token (now, or later when the bucket is empty); return how long until it."""
        self._refill(now)
        if self.rate <= 0:
            return max(0.0, self.stamp - now)
        self.tokens -= 1
        return max(0.0, self.stamp - now) + max(0.0, -self.tokens) / self.rate

    def pause(self, seconds: float, now: float, cap: float = math.inf, sent: float = math.inf) -> None:
        """
        Hold every caller for ``seconds`` from ``now``: no tokens until then, and none piled up after. A
        pause lasts at most ``cap`` from its start: one asked for while it runs (another answer of the calls
        in flight) extends it up to that, never past it. An answer to a request ``sent`` before the last
        pause began belongs to that pause, even when it arrives after it ended: it may extend it again up to
        the same bound, and starts no new one (else the calls in flight, answered one after another, would
        hold the connection cap after cap).
        """
        if now >= self.paused_until and sent > self.pause_start:  # not paused, and a fresh answer
            self.pause_start = now  # a new pause starts
        until = min(now + seconds, self.pause_start + cap)
        if until <= now:  # a late answer of a pause whose bound has passed: nothing left to hold
            return
        self.paused_until = max(self.paused_until, until)
        self.tokens = min(self.tokens, 0.0)  # bookings already made stay booked, after the pause
        self.stamp = max(self.stamp, self.paused_until)


class RateLimiter:
    """
    A token bucket (``rate`` per second, ``burst`` deep) plus a cap on requests in flight, thread-safe.

    After a 429 with ``Retry-After`` the limiter pauses every caller until that time, so concurrent
    workers back off together instead of each finding the limit on its own.
    """

    def __init__(self, rate: float, burst: int, max_in_flight: int) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._bucket = TokenBucket(rate, burst, time.monotonic())
        self._lock = threading.Lock()
        self._in_flight = threading.BoundedSemaphore(max(1, max_in_flight))

    def _take(self) -> float:
        """Take a token if one is free and return 0, else return how long to wait."""
        with self._lock:
            return self._bucket.take(time.monotonic())

    @contextmanager
    def slot(self, call: Any = None) -> Iterator[None]:
        """
        Wait for a token and an in-flight slot; release the slot when the request is done. For a ``call``
        (:class:`~.retry.Call`), the wait counts towards its ``max_wait``, and one that would pass what is
        left of it fails the call at once (:meth:`~.retry.Call.held_past_budget`).
        """
        with self._in_flight:
            budget = math.inf if call is None else call.hold_budget()
            started = time.monotonic()
            while (delay := self._take()) > 0:
                held = time.monotonic() - started
                if held + delay > budget:
                    raise call.held_past_budget(delay)
                time.sleep(delay)
            if call is not None and budget < math.inf:
                call.held += time.monotonic() - started
            yield

    def pause(self, seconds: float, cap: float = math.inf, sent: float = math.inf) -> None:
        """
        Hold every caller for ``seconds`` from now (the vendor asked us to wait); finite values only. A
        pause lasts at most ``cap`` from its start, and the answer to a request ``sent`` before it began
        starts none after it (:meth:`TokenBucket.pause`).
        """
        if not 0 < seconds < math.inf:  # also refuses NaN: the caller caps the wait, this guards the limiter
            return
        with self._lock:
            self._bucket.pause(seconds, time.monotonic(), cap, sent)


_LIMITERS: dict[tuple[str, ...], RateLimiter] = {}
_LIMITERS_LOCK = threading.Lock()


def shared_limiter(key: tuple[str, ...], rate: float, burst: int, max_in_flight: int) -> RateLimiter:
    """The process-wide limiter for ``key`` (vendor, host, hashed key and settings)."""
    full_key = (*key, str(rate), str(burst), str(max_in_flight))
    with _LIMITERS_LOCK:
        limiter = _LIMITERS.get(full_key)
        if limiter is None:
            limiter = _LIMITERS[full_key] = RateLimiter(rate, burst, max_in_flight)
        return limiter
