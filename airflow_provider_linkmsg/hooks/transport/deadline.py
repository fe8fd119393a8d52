"""
One deadline per attempt on the ``requests`` path: the response's status line, headers and body, over every
redirect hop, are read against the same clock, so a server that trickles its headers (or answers each hop
just under the read timeout) cannot stretch an attempt. A socket timeout alone bounds each ``recv``, not
the whole answer.

The adapter's connections build their responses on a reader that, before each ``recv``, lowers the socket
timeout to what is left of the attempt's budget and raises :class:`TimeoutError` once it is spent
(urllib3 reports it as a read timeout). No thread is involved.
"""

from __future__ import annotations

import http.client
import io
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_current = threading.local()


class Budget:
    """
    The read budget of one attempt: ``seconds`` from the moment the first request was sent (so connecting
    is bounded by the connect timeout, and everything after it by this), shared by every redirect hop.
    """

    __slots__ = ("deadline", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline: float | None = None

    def start(self) -> float:
        """The deadline, starting the clock on first use."""
        if self.deadline is None:
            self.deadline = time.monotonic() + self.seconds
        return self.deadline

    def left(self) -> float:
        """Seconds left (the whole budget while the clock has not started)."""
        return self.seconds if self.deadline is None else self.deadline - time.monotonic()


@contextmanager
def attempt(budget: Budget) -> Iterator[Budget]:
    """Responses received in this thread within the block are read against ``budget``."""
    previous = getattr(_current, "budget", None)
    _current.budget = budget
    try:
        yield budget
    finally:
        _current.budget = previous


class _DeadlineReader(io.RawIOBase):
    """A socket's reading side that gives up at ``deadline`` (monotonic), however the bytes trickle."""

    def __init__(self, sock: Any, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the attempt's read deadline passed")
        timeout = self._sock.gettimeout()
        self._sock.settimeout(remaining if timeout is None else min(timeout, remaining))
        try:
            return self._sock.recv_into(buffer)
        finally:
            self._sock.settimeout(timeout)


class _DeadlineResponse(http.client.HTTPResponse):
    def __init__(self, sock: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        budget: Budget | None = getattr(_current, "budget", None)
        if budget is not None:
            self.fp.close()  # the socket's own file object; the socket stays open
            self.fp = io.BufferedReader(_DeadlineReader(sock, budget.start()))


class _HTTPConnection(HTTPConnection):
    response_class = _DeadlineResponse


class _HTTPSConnection(HTTPSConnection):
    response_class = _DeadlineResponse


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class DeadlineAdapter(HTTPAdapter):
    """An :class:`~requests.adapters.HTTPAdapter` whose responses honour the attempt's :class:`Budget`."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, urllib3.ProxyManager):  # a SOCKS manager keeps its own pools
            manager.pool_classes_by_scheme = dict(_POOLS)
        return manager
