"""
The async twin of the transport, for triggers: :meth:`AsyncTransport.arequest` on ``httpx``, with the same
call objects, retry policy (tenacity's ``AsyncRetrying``), interpretation, redaction and bounds as the sync
path, and the client, limiter and settings shared by the hooks of one connection in one event loop
(:mod:`~airflow_provider_linkmsg.hooks.transport.apool`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpx
import tenacity

from airflow_provider_linkmsg import __version__
from airflow_provider_linkmsg.exceptions import (
    LinkMsgAuthError,
    LinkMsgResponseError,
    LinkMsgResponseTooLargeError,
    LinkMsgVendorError,
)
from airflow_provider_linkmsg.hooks.transport import interpret as _interpret
from airflow_provider_linkmsg.hooks.transport.ahttp import (
    ACCEPT_ENCODING,
    aexchange,
    async_transport,
    client_on,
)
from airflow_provider_linkmsg.hooks.transport.alookup import alook_up
from airflow_provider_linkmsg.hooks.transport.apool import LoopPool, Shared, content_hash, loop_pool
from airflow_provider_linkmsg.hooks.transport.aratelimit import AsyncRateLimiter
from airflow_provider_linkmsg.hooks.transport.asleep import sleep as shared_sleep
from airflow_provider_linkmsg.hooks.transport.http import BodyDeadline
from airflow_provider_linkmsg.hooks.transport.retry import (
    Call,
    Transient,
    arun_attempt,
    build_async_retrying,
    dropped,
    lost,
)

if TYPE_CHECKING:
    from airflow_provider_linkmsg.hooks.transport.interpret import ApiResponse

USER_AGENT = f"airflow-provider-linkmsg/{__version__}"


class AsyncTransport:
    """The async methods of :class:`~airflow_provider_linkmsg.hooks.base.LinkMsgHook` (a mixin of it)."""

    _shared: Shared | None = None
    _pool: LoopPool | None = None
    #: the next request's turn of the rate limit is already booked (:meth:`asleep_until_turn`)
    _turn_booked: bool = False
    #: the connection lookup :meth:`astart` began (its future, or a fresh cached answer), read when its sleep ends
    _ahead: Any = None

    async def aconnect(self) -> None:
        """
        Join this connection's shared client and rate limiter in the running event loop (see
        :mod:`~airflow_provider_linkmsg.hooks.transport.apool`); the connection is looked up without blocking
        the loop, once for the hooks that connect within :data:`~.apool.CONNECTION_TTL` of each other (a
        trigger's lookup starts with the trigger: :meth:`astart`). ``aclose()`` leaves.
        """
        if self._shared is not None:
            return
        pool = loop_pool()
        if "connection" not in self.__dict__ or "connection_extra" not in self.__dict__:
            self._set_connection(*await pool.connection(self.conn_id, lambda: alook_up(self)))
        self._join(pool)

    def _set_connection(self, conn: Any, extra: dict[str, Any]) -> None:
        self.__dict__["connection"] = self._checked(conn)
        self.__dict__["connection_extra"] = extra

    def _join(self, pool: LoopPool) -> None:
        """Take a reference on the connection's shared entry (the connection is known)."""
        overrides = (self._base_url_override, self._max_retries_override, self._max_retry_wait_override)
        key = (self.vendor, self.conn_id, overrides, content_hash(self.connection))
        self._shared, self._pool = pool.acquire(key, self._make_shared), pool
        self.__dict__["conn_params"] = self._shared.params
        self.__dict__.setdefault("redact", self._shared.redact)  # the connection's secrets: one per entry

    def astart(self, seconds: float) -> Awaitable[None]:
        """
        A trigger's first wait: its random start (``seconds``), with the connection looked up meanwhile and
        the first look's turn booked when it ends, in one sleep. The lookup starts now, without waiting for it
        (triggers started together share it: one lookup for a triggerer restarting with thousands), and its
        answer is read when the sleep ends (:meth:`book_turn`), so nothing wakes when it comes. Should it not
        have come by then, or failed, the first call connects and a failure surfaces from it, as from any
        call. Returns the wait to await at once (one future on the loop's shared timers).
        """
        if self._turn_booked:
            return shared_sleep(seconds)
        if self._shared is None and (
            "connection" not in self.__dict__ or "connection_extra" not in self.__dict__
        ):
            self._ahead = loop_pool().look_up_ahead(self.conn_id, lambda: alook_up(self))
        return shared_sleep(seconds, then_book=self)

    def book_turn(self) -> float:
        """
        :meth:`astart`'s booking, when its sleep ends: join the connection (from the lookup started with the
        sleep, when it has an answer) and book the next free turn of its rate limit; how long until it. Not
        connected: ``0`` (nothing booked; the first call connects and takes its turn itself).
        """
        ahead, self._ahead = self._ahead, None
        if self._shared is None:
            try:
                if isinstance(ahead, asyncio.Future):
                    if not ahead.done() or ahead.cancelled() or ahead.exception() is not None:
                        return 0.0
                    self._set_connection(*ahead.result())
                elif ahead is not None:  # a fresh cached answer and when it was looked up
                    self._set_connection(*ahead[0])
                if "connection" not in self.__dict__ or "connection_extra" not in self.__dict__:
                    return 0.0  # never looked up: the first call does it, on the loop
                self._join(loop_pool())
            except Exception:  # a connection that cannot work: the first call says why
                return 0.0
        self._turn_booked = True
        return self._shared.limiter.book_turn()

    def take_slot(self, waiter: asyncio.Future[None]) -> bool:
        """
        When the turn booked in a wait comes (:func:`.asleep.sleep`): the in-flight slot of this hook's next
        request, which :meth:`arequest` claims. ``True``: taken now (or nothing booked: the call takes its own);
        ``False``: ``waiter`` queues for one at the rate limiter and ends when it is handed one, so a look that
        the in-flight cap holds back is that one future, its call not yet begun (:mod:`~.aslots`).
        """
        if self._shared is None or not self._turn_booked:
            return True
        return self._shared.limiter.take_slot(self, waiter)

    def _make_shared(self, pool: LoopPool, key: tuple[Any, ...]) -> Shared:
        """The client, limiter, settings and retry engine every hook of this connection shares in one loop."""
        # the key was masked by the lookup: nothing here may call the synchronous masker on the loop
        p = self.__dict__["conn_params"] = self.params_from(self.connection, self.connection_extra)
        headers = {
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
            "Accept-Encoding": ACCEPT_ENCODING,
            **self.auth_headers(),
        }
        transport = async_transport(p.base_url, p.max_in_flight, pool.ssl_context)
        return Shared(
            key,
            transport=transport,
            headers=headers,
            client=client_on(transport, headers),
            limiter=AsyncRateLimiter(p.requests_per_second, p.burst, p.max_in_flight),
            params=p,
            retrying=build_async_retrying(),
            redact=self.redact,
        )

    @property
    def aclient(self) -> httpx.AsyncClient:
        """The ``httpx.AsyncClient`` this hook shares with the other hooks of its connection in this loop."""
        if self._shared is None:
            raise RuntimeError("call (and await) aconnect() before using the async client")
        return self._shared.client

    @property
    def alimiter(self) -> AsyncRateLimiter:
        """The asyncio rate limiter of this connection in this loop (shared like :attr:`aclient`)."""
        if self._shared is None:
            raise RuntimeError("call (and await) aconnect() before using the async limiter")
        return self._shared.limiter

    @property
    def _aretrying(self) -> tenacity.AsyncRetrying:
        """The connection's :class:`tenacity.AsyncRetrying` in this loop (see :class:`.apool.Shared`)."""
        if self._shared is None:
            raise RuntimeError("call (and await) aconnect() before an async request")
        return self._shared.retrying

    async def arequest(
        self,
        method: str,
        endpoint: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = True,
        timeout: float | None = None,
        max_retries: int | None = None,
        on_lost_answer: Callable[[], None] | None = None,
    ) -> ApiResponse:
        """The async twin of :meth:`request`: the same policy, interpretation and redaction, on httpx."""
        await self.aconnect()
        # wait for the connection's rate limit here, before the call, its retry state and attempt exist:
        # callers held back by the limit then hold only their own frames while they wait
        limiter = self._shared.limiter
        if self._turn_booked:
            self._turn_booked = False  # booked and waited for before this call (asleep_until_turn)
        else:
            await limiter.turn()
        # and for the first attempt's in-flight slot (taken in that wait, if it was): calls queued on the cap
        # hold no call state either
        await limiter.hold_slot(self)
        try:
            call = self._new_call(
                method, endpoint, params, json_body, headers, idempotent, timeout, max_retries, on_lost_answer
            )
            outcome = await self._aretrying(arun_attempt, call)
        finally:
            limiter.drop_slot()  # a slot no attempt took (the call failed before sending)
        if isinstance(outcome, BaseException):
            if isinstance(outcome, LinkMsgAuthError) and self._pool is not None:
                self._pool.forget(self.conn_id)  # the key may have been rotated: look it up again
            try:
                raise outcome
            finally:
                del outcome
        return outcome

    def asleep_until_turn(self, seconds: float) -> Awaitable[None]:
        """
        Sleep ``seconds`` (a trigger's wait until its next look), then until this connection's next free turn
        of the rate limit: the next :meth:`arequest` of this hook uses the turn booked here instead of waiting
        for one inside the call, where it would hold the look's frames and state. When the turns are booked
        past ``seconds`` already, the turn is booked at once and it is one sleep until it
        (:meth:`.AsyncRateLimiter.book`); else the shared timers book it when the sleep ends and wait on
        until it (``then_book`` of :func:`.asleep.sleep`). A hook not yet connected (:meth:`aconnect`) just
        sleeps: the lookup stays inside the first call. When the turn comes, the wait takes the next request's
        in-flight slot, and queues for one while the connection's cap is full (:meth:`take_slot`).

        Returns the wait to await at once: one future on the loop's shared timers (or the rate limiter's queue
        of the in-flight cap), no coroutine around it. ``aclose()`` drops a booking or slot that a cancelled
        wait left.
        """
        shared = self._shared
        if shared is not None:
            shared.limiter.give_back(self)  # a slot taken for a look that made no request: not slept on
        if shared is None or self._turn_booked:
            return shared_sleep(seconds)
        # booked by the time the wait ends (a cancelled wait books nothing, and its hook is closed)
        self._turn_booked = True
        delay = shared.limiter.book(seconds)
        if delay < 0:  # the turns are free before then: book one when the sleep ends
            return shared_sleep(seconds, then_book=self)
        if delay <= 0:  # the turn is now (a first look): no sleep, the slot only
            now = asyncio.get_running_loop().create_future()
            if self.take_slot(now):
                now.set_result(None)
            return now
        return shared_sleep(delay, then_book=self, booked=True)

    async def asend_attempt(self, call: Call) -> ApiResponse:
        """One async attempt of ``call`` (see :meth:`send_attempt`)."""
        p, where, idempotent = self.conn_params, call.where, call.idempotent
        limiter = self.alimiter
        await limiter.enter(call)
        try:
            with self._stats_lock:
                self.http_requests += 1
            sent = time.monotonic()
            try:
                status, headers, content = await aexchange(
                    self._shared.transport,
                    self._shared.headers,
                    call,
                    expected_origin=self.origin,
                    connect_timeout=p.connect_timeout,
                    max_bytes=p.max_response_bytes,
                )
            except LinkMsgResponseTooLargeError as exc:
                raise lost(exc, "response body too large", False) from None
            except (httpx.ConnectTimeout, httpx.ConnectError, httpx.PoolTimeout) as exc:  # nothing was sent
                reason = {httpx.ConnectTimeout: "connect timeout", httpx.PoolTimeout: "no free connection"}
                why = reason.get(type(exc), "connection refused")
                raise Transient(LinkMsgVendorError(why, **where), why) from None
            except (httpx.TimeoutException, BodyDeadline):
                error = LinkMsgVendorError(
                    f"no answer within the read timeout of {call.read_timeout:.0f} s", **where
                )
                raise lost(error, "read timeout", idempotent) from None
            except httpx.RemoteProtocolError as exc:
                if "without sending a response" in str(exc):  # sent, then dropped: the answer is lost
                    raise dropped(where, "closed without an answer", idempotent) from None
                error = LinkMsgResponseError(
                    f"the response body was cut off or malformed ({type(exc).__name__})", **where
                )
                raise lost(error, "truncated response body", idempotent) from None
            except httpx.TransportError as exc:  # reset or closed while sending or reading
                raise dropped(where, type(exc).__name__, idempotent) from None
        finally:
            limiter.leave()
        return _interpret.interpret(self, status, headers, content, where, idempotent, limiter, sent)

    async def aclose(self) -> None:
        """Leave the shared client (a trigger calls this when it ends); the last hook out closes it."""
        shared, self._shared, self._turn_booked, self._ahead = self._shared, None, False, None
        if shared is not None:
            shared.limiter.give_back(self)  # a slot a cancelled or last wait took and no request used
        if shared is not None and self._pool is not None:
            await self._pool.release(shared)
