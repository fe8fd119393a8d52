"""The client-side rate limiter: a token bucket, a cap on requests in flight, and vendor-requested pauses."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class RateLimiter:
    """
    A token bucket (``rate`` per second, ``burst`` deep) plus a cap on requests in flight, thread-safe.

    After a 429 with ``Retry-After`` the limiter pauses every caller until that time, so concurrent
    workers back off together instead of each finding the limit on its own.
    """

    def __init__(self, rate: float, burst: int, max_in_flight: int) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._tokens = float(self.burst)
        self._stamp = time.monotonic()
        self._paused_until = 0.0
        self._lock = threading.Lock()
        self._in_flight = threading.BoundedSemaphore(max(1, max_in_flight))

    def _take(self) -> float:
        """Take a token if one is free and return 0, else return how long to wait."""
        with self._lock:
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

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Wait for a token and an in-flight slot; release the slot when the request is done."""
        with self._in_flight:
            while (delay := self._take()) > 0:
                time.sleep(delay)
            yield

    def pause(self, seconds: float) -> None:
        """Hold every caller for ``seconds`` from now (the vendor asked us to wait); finite values only."""
        if not 0 < seconds < math.inf:  # also refuses NaN: the caller caps the wait, this guards the limiter
            return
        with self._lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)
            self._tokens = 0.0
            self._stamp = self._paused_until  # no tokens pile up during the pause: it ends without a burst


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
