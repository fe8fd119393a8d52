"""
What the triggers of one connection share inside one event loop: one ``httpx.AsyncHTTPTransport`` (one
connection pool, one SSL context; :attr:`Shared.client` is an ``httpx.AsyncClient`` on it) and one asyncio rate
limiter, so 10,000 triggers waiting on one connection make one
client, not 10,000, and the connection's rate limit holds across all of them.

Design, and why:

* **Scoped to the running loop.** :func:`loop_pool` keeps the pool of the running event loop on the loop
  object itself: a pool goes with its loop, nothing made for one loop (a client, a semaphore) is used on
  another, and the module holds no registry. No thread is started, nothing runs between calls.
* **Reference-counted entries.** An entry (client + limiter) is keyed by vendor, connection id, the hook's
  base-URL override and a hash of the connection's content. A hook takes a reference on its first async call
  (:meth:`LoopPool.acquire`) and gives it back in ``aclose()`` (:meth:`LoopPool.release`); the last one out
  closes the client and drops the entry. Nothing outlives its users.
* **A changed connection is a new entry.** A rotated key hashes differently: new triggers get a new client
  with the new key while the old entry serves its remaining triggers and closes when they end.
* **Connection lookups coalesced.** Triggers that connect together share one lookup (one task awaited by all),
  and a looked-up connection is reused for :data:`CONNECTION_TTL` seconds, so a burst of triggers is not a
  burst of lookups through the triggerer's supervisor. A trigger connecting later than that looks again (so a
  rotated key is picked up within the TTL), and an authentication failure forgets the cached connection at
  once (:meth:`LoopPool.forget`).
* **One SSL context per CA bundle and loop**: building one reads the whole bundle (~60 ms).
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from airflow_provider_linkmsg.hooks.transport.aratelimit import AsyncRateLimiter
from airflow_provider_linkmsg.hooks.transport.onloop import on_loop

#: seconds a looked-up connection is reused by triggers that start after it, at most
CONNECTION_TTL = 5.0


@dataclass
class Shared:
    """
    One connection's client, limiter, settings, retry engine and redactor (its secrets) in one loop, and how
    many hooks use them.

    The :class:`tenacity.AsyncRetrying` is shared too (instead of one per hook): its per-call state lives in
    the call, and the policy's callbacks are plain functions, so one ``iter()`` of tenacity never yields to
    the loop and two calls on one loop cannot interleave inside it.
    """

    key: tuple[Any, ...]
    transport: httpx.AsyncHTTPTransport
    headers: dict[str, str]
    client: httpx.AsyncClient
    limiter: AsyncRateLimiter
    params: Any
    retrying: Any
    redact: Any = None
    users: int = 0


@dataclass
class LoopPool:
    """The shared entries, cached connections and SSL contexts of one event loop."""

    entries: dict[tuple[Any, ...], Shared] = field(default_factory=dict)
    connections: dict[str, tuple[Any, float]] = field(default_factory=dict)
    lookups: dict[str, asyncio.Future[Any]] = field(default_factory=dict)
    ssl_contexts: dict[str | None, ssl.SSLContext] = field(default_factory=dict)
    #: the limiters of entries whose last user left while the vendor's pause still ran: the next trigger
    #: of that connection in this loop waits out the rest of it, as the sync path's process-wide limiter does
    paused: dict[tuple[Any, ...], AsyncRateLimiter] = field(default_factory=dict)

    async def connection(self, conn_id: str, lookup: Callable[[], Awaitable[Any]]) -> Any:
        """The connection ``conn_id``: cached if looked up less than :data:`CONNECTION_TTL` ago, else looked up
        once for every caller waiting at the same time."""
        cached = self.connections.get(conn_id)
        if cached is not None and time.monotonic() - cached[1] < CONNECTION_TTL:
            return cached[0]
        return await asyncio.shield(self._pending(conn_id, lookup))

    def look_up_ahead(self, conn_id: str, lookup: Callable[[], Awaitable[Any]]) -> Any:
        """
        Start looking ``conn_id`` up (or join the lookup under way) without waiting: the lookup's future, or
        the cached ``(connection, extra)`` pair with its time when it is fresh. A trigger calls this as it
        starts and reads the answer when its first sleep ends (:meth:`.AsyncTransport.astart`), so that the
        triggers started together share one lookup and no one waits on it.
        """
        cached = self.connections.get(conn_id)
        if cached is not None and time.monotonic() - cached[1] < CONNECTION_TTL:
            return cached
        return self._pending(conn_id, lookup)

    def _pending(self, conn_id: str, lookup: Callable[[], Awaitable[Any]]) -> asyncio.Future[Any]:
        pending = self.lookups.get(conn_id)
        if pending is None:
            pending = self.lookups[conn_id] = asyncio.ensure_future(self._look_up(conn_id, lookup))
            # a failure is read by whoever needs the connection; a lookup nobody awaits logs nothing
            pending.add_done_callback(_retrieved)
        return pending

    async def _look_up(self, conn_id: str, lookup: Callable[[], Awaitable[Any]]) -> Any:
        try:
            conn = await lookup()
            self.connections[conn_id] = (conn, time.monotonic())
            return conn
        finally:
            del self.lookups[conn_id]

    def forget(self, conn_id: str) -> None:
        """Look ``conn_id`` up again next time (its key was refused: it may have been rotated)."""
        self.connections.pop(conn_id, None)

    def ssl_context(self, bundle: str | None) -> ssl.SSLContext:
        context = self.ssl_contexts.get(bundle)
        if context is None:
            import certifi  # httpx's own default bundle

            context = ssl.create_default_context(cafile=bundle or certifi.where())
            self.ssl_contexts[bundle] = context
        return context

    def acquire(self, key: tuple[Any, ...], make: Callable[[LoopPool, tuple[Any, ...]], Shared]) -> Shared:
        """The entry for ``key`` (made with ``make`` when there is none), with one more user."""
        shared = self.entries.get(key)
        if shared is None:
            shared = self.entries[key] = make(self, key)
            limiter = self.paused.pop(key, None)
            if limiter is not None and limiter.paused_until() > time.monotonic():
                shared.limiter = limiter
        shared.users += 1
        return shared

    async def release(self, shared: Shared) -> None:
        """One user fewer; the last one closes the client and drops the entry."""
        shared.users -= 1
        if shared.users <= 0:
            if self.entries.get(shared.key) is shared:
                del self.entries[shared.key]
                now = time.monotonic()
                for key in [k for k, limiter in self.paused.items() if limiter.paused_until() <= now]:
                    del self.paused[key]  # pauses that ended: nothing left to keep
                if shared.limiter.paused_until() > now:
                    self.paused[shared.key] = shared.limiter
            await shared.client.aclose()


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


#: the attribute of the running event loop that holds its pool
_ON_LOOP = "_linkmsg_transport_pool"


def loop_pool() -> LoopPool:
    """
    The pool of the running event loop, kept on the loop itself: made on first use, gone with the loop, and
    no registry of ours in the module. A loop that takes no attributes (uvloop's) gives each caller a pool
    of its own: nothing is shared there, and nothing is wrong either.
    """
    return on_loop(_ON_LOOP, lambda loop: LoopPool())


def content_hash(conn: Any) -> str:
    """A short hash of everything in a connection that a hook reads (a rotated key changes it)."""
    parts = (conn.conn_type, conn.host, conn.login, conn.password, conn.schema, conn.port, conn.extra)
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]
