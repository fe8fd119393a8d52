"""The rate limiter of the async path: the same token bucket and pauses, on asyncio, one per hook."""

from __future__ import annotations

import asyncio
import math
import time


class AsyncRateLimiter:
    """
    A token bucket (``rate`` per second, ``burst`` deep) plus a cap on requests in flight, for one event
    loop. Like :class:`~.ratelimit.RateLimiter`, a vendor-requested pause holds every caller.
    """

    def __init__(self, rate: float, burst: int, max_in_flight: int) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._tokens = float(self.burst)
        self._stamp = time.monotonic()
        self._paused_until = 0.0
        self._in_flight = asyncio.Semaphore(max(1, max_in_flight))

    def _take(self) -> float:
        now = time.monotonic()
        if now < self._paused_until:
            return self._paused_until - now
        if self.rate > 0:
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        else:
            self._tokens = self.burst
        self._stamp = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / self.rate

    async def __aenter__(self) -> None:
        await self._in_flight.acquire()
        try:
            while (delay := self._take()) > 0:
                await asyncio.sleep(delay)
        except BaseException:
            self._in_flight.release()
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        self._in_flight.release()

    def pause(self, seconds: float) -> None:
        """Hold every caller for ``seconds`` from now; finite values only (the caller caps them)."""
        if not 0 < seconds < math.inf:
            return
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)
        self._tokens = 0.0
        self._stamp = self._paused_until
