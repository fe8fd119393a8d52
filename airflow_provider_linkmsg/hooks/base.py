"""
The one HTTP transport every vendor hook stands on.

:class:`LinkMsgHook` owns the ``requests.Session`` (pooled), connect and read timeouts, retries
(exponential back-off with jitter on 429, 5xx, resets, timeouts and truncated bodies, honouring
``Retry-After`` in seconds or HTTP-date form, or the vendor's own reset time, under a cap on the total
wait), a client-side rate limiter shared by every hook of the same vendor, key and host in the process,
the ``User-Agent``, secret masking, and the mapping of error responses to
:mod:`airflow_provider_linkmsg.exceptions`.

A vendor hook sets its class attributes, implements :meth:`LinkMsgHook.auth_headers` and, when its error
bodies or codes need it, :meth:`LinkMsgHook.describe_error` and :meth:`LinkMsgHook.error_class`; it then
calls :meth:`LinkMsgHook.request` for every route.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, ClassVar, Self

import requests
from airflow.providers.common.compat.sdk import BaseHook, mask_secret
from requests.adapters import HTTPAdapter

from airflow_provider_linkmsg import __version__
from airflow_provider_linkmsg.exceptions import (
    LinkMsgAuthError,
    LinkMsgBudgetExceededError,
    LinkMsgError,
    LinkMsgNotFoundError,
    LinkMsgRateLimitedError,
    LinkMsgResponseError,
    LinkMsgValidationError,
    LinkMsgVendorError,
)
from airflow_provider_linkmsg.vendors import VENDORS, VendorInfo

USER_AGENT = f"airflow-provider-linkmsg/{__version__}"
_MAX_ERROR_TEXT = 300


# --------------------------------------------------------------------------------------------------------
# Connection parameters
# --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ConnParams:
    """
    Settings read from an Airflow connection, with the vendor's defaults filled in.

    The API key is the connection's password; ``extra`` holds the rest, under plain keys (Airflow 3 forms)
    or the legacy ``extra__<conn_type>__<key>`` form.
    """

    base_url: str
    api_key: str = field(repr=False)
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    max_retries: int = 5
    max_retry_wait: float = 300.0
    requests_per_second: float = 1.0
    burst: int = 5
    max_in_flight: int = 4
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)


def _extra_value(extra: Mapping[str, Any], conn_type: str, key: str) -> Any:
    value = extra.get(key)
    if value in (None, ""):
        value = extra.get(f"extra__{conn_type}__{key}")
    return None if value == "" else value


def _number(name: str, value: Any, default: float, *, minimum: float, cast: type = float) -> Any:
    if value is None:
        return cast(default)
    try:
        number = cast(value)
    except (TypeError, ValueError):
        raise LinkMsgValidationError(
            f"connection field {name!r} must be a number, got {value!r}; fix it in the connection's extra",
            field=name,
        ) from None
    if number < minimum:
        raise LinkMsgValidationError(
            f"connection field {name!r} must be at least {minimum}, got {number}; fix it in the connection",
            field=name,
        )
    return number


# --------------------------------------------------------------------------------------------------------
# Rate limiting
# --------------------------------------------------------------------------------------------------------
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
        """Hold every caller for ``seconds`` from now (the vendor asked us to wait)."""
        with self._lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)
            self._tokens = 0.0
            self._stamp = self._paused_until  # no tokens pile up during the pause: it ends without a burst


_SHARED_HOOKS: dict[tuple[type, str, str], Any] = {}
_SHARED_LOCK = threading.Lock()
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


# --------------------------------------------------------------------------------------------------------
# Responses and transient failures
# --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ApiResponse:
    """A successful (2xx) response: its status, parsed JSON body (``None`` when empty) and headers."""

    status: int
    data: Any
    headers: Mapping[str, str]


class _Transient(Exception):
    """A failure worth retrying; carries the typed error to raise once retries run out."""

    def __init__(self, error: LinkMsgError, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.error = error
        self.reason = reason
        self.retry_after = retry_after
        self.answer_lost = getattr(error, "answer_lost", False)


def _lost(error: LinkMsgError, reason: str, retry: bool) -> Exception:
    """The vendor may have acted but its answer is lost (cut off, unparsable, timed out): mark it so."""
    error.answer_lost = True
    return _Transient(error, reason) if retry else error


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header in either of its forms (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = datetime.now(UTC).timestamp() if now is None else now
    return max(0.0, when.timestamp() - current)


def parse_reset_time(value: Any, *, now: float | None = None) -> float | None:
    """
    Seconds until a rate-limit reset time, as vendors write it: ISO-8601 (``2026-01-01T10:00:00Z``),
    Unix seconds or milliseconds, or (a small number) seconds from now. ``None`` when it is none of these.
    """
    if value is None or isinstance(value, bool) or value == "":
        return None
    current = datetime.now(UTC).timestamp() if now is None else now
    try:
        number = float(value)
    except (TypeError, ValueError):
        try:
            when = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        return max(0.0, when.timestamp() - current)
    if number > 1e12:  # Unix milliseconds
        number = number / 1000 - current
    elif number > 1e9:  # Unix seconds
        number -= current
    return max(0.0, number)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_ERROR_TEXT else text[:_MAX_ERROR_TEXT] + "..."


# --------------------------------------------------------------------------------------------------------
# The hook
# --------------------------------------------------------------------------------------------------------
class LinkMsgHook(BaseHook):
    """
    Shared transport of the vendor hooks; not used on its own.

    :param conn_id: the Airflow connection id.
    :param base_url: overrides the connection's base URL.
    :param max_retries: overrides how many times a failed call is retried.
    :param max_retry_wait: overrides the cap, in seconds, on the total time spent waiting between retries.
    """

    conn_type: ClassVar[str]
    conn_name_attr: ClassVar[str]
    default_conn_name: ClassVar[str]
    hook_name: ClassVar[str]
    vendor: ClassVar[str]

    #: statuses that mean "your credentials are wrong or no longer valid"
    auth_statuses: ClassVar[frozenset[int]] = frozenset({401})

    def __init__(
        self,
        conn_id: str | None = None,
        *,
        base_url: str | None = None,
        max_retries: int | None = None,
        max_retry_wait: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id or self.default_conn_name
        setattr(self, self.conn_name_attr, self.conn_id)
        self._base_url_override = base_url
        self._max_retries_override = max_retries
        self._max_retry_wait_override = max_retry_wait
        self._stats_lock = threading.Lock()
        self.api_calls = 0
        self.http_requests = 0
        self.retries = 0

    # ---- connection -------------------------------------------------------------------------------------
    @classmethod
    def shared(cls, conn_id: str | None = None) -> Self:
        """
        A hook shared by every caller in this process for the same connection (id and content).

        For the triggers' poller (:mod:`airflow_provider_linkmsg.triggers.polling`): one hook (one
        session, one connection pool) per connection for all its threads. The connection is looked up on
        each call, so a changed connection gets a new hook. The transport is thread-safe; call this off
        the event loop, as it may read the connection from Airflow.
        """
        hook = cls(conn_id or cls.default_conn_name)
        key = (cls, hook.conn_id, hashlib.sha256(hook.connection.get_uri().encode()).hexdigest())
        with _SHARED_LOCK:
            if key not in _SHARED_HOOKS:
                if len(_SHARED_HOOKS) >= 64:
                    _SHARED_HOOKS.pop(next(iter(_SHARED_HOOKS)))
                _SHARED_HOOKS[key] = hook
            return _SHARED_HOOKS[key]

    @classmethod
    def vendor_info(cls) -> VendorInfo:
        return VENDORS[cls.vendor]

    @cached_property
    def connection(self):
        """The Airflow connection (looked up once, lazily: no I/O at construction), of this vendor's type."""
        conn = self.get_connection(self.conn_id)
        if conn.conn_type and conn.conn_type != self.conn_type:
            raise LinkMsgValidationError(
                f"connection {self.conn_id!r} is a {conn.conn_type!r} connection, not a {self.conn_type!r} "
                f"one: give {self.conn_name_attr} a {self.vendor_info().label} connection",
                field=self.conn_name_attr,
                vendor=self.vendor,
            )
        return conn

    def extra(self, key: str, default: Any = None) -> Any:
        """A value from the connection's extra (plain or ``extra__<type>__`` key), or ``default``."""
        value = _extra_value(self.connection.extra_dejson, self.conn_type, key)
        return default if value is None else value

    @cached_property
    def conn_params(self) -> ConnParams:
        """Connection settings with defaults; the API key is registered with Airflow's secret masker."""
        conn = self.connection
        info = self.vendor_info()
        extra = conn.extra_dejson
        api_key = conn.password or _extra_value(extra, self.conn_type, "api_key") or ""
        if not api_key:
            raise LinkMsgAuthError(
                f"connection {self.conn_id!r} has no API key: put the key in the connection's password field",
                vendor=self.vendor,
            )
        mask_secret(api_key)
        host = conn.host or ""
        base_url = (
            self._base_url_override
            or (host if "://" in host else None)
            or _extra_value(extra, self.conn_type, "base_url")
            or info.base_url
        )
        if not str(base_url).startswith(("http://", "https://")):
            raise LinkMsgValidationError(
                f"connection {self.conn_id!r}: base_url {base_url!r} must start with http:// or https://",
                field="base_url",
                vendor=self.vendor,
            )

        def num(key: str, default: float, minimum: float, cast: type = float) -> Any:
            return _number(key, _extra_value(extra, self.conn_type, key), default, minimum=minimum, cast=cast)

        return ConnParams(
            base_url=str(base_url).rstrip("/"),
            api_key=api_key,
            connect_timeout=num("connect_timeout", 10.0, 0.1),
            read_timeout=num("read_timeout", 60.0, 0.1),
            max_retries=(
                self._max_retries_override
                if self._max_retries_override is not None
                else num("max_retries", 5, 0, int)
            ),
            max_retry_wait=(
                self._max_retry_wait_override
                if self._max_retry_wait_override is not None
                else num("max_retry_wait", 300.0, 0.0)
            ),
            requests_per_second=num("requests_per_second", info.requests_per_second, 0.0),
            burst=num("burst", info.burst, 1, int),
            max_in_flight=num("max_in_flight", info.max_in_flight, 1, int),
            extra=extra,
        )

    def auth_headers(self) -> dict[str, str]:
        """Headers that authenticate a request; every vendor hook implements this."""
        raise NotImplementedError

    # ---- accounts (vendors whose calls name an account) -------------------------------------------------
    #: the vendor's account-id form, and how to describe it in an error (vendors with account ids set both)
    account_id_pattern: ClassVar[re.Pattern[str] | None] = None
    account_id_form: ClassVar[str] = ""

    def default_account_id(self) -> str | None:
        """The connection's ``account_id`` extra, if any."""
        value = self.extra("account_id")
        return str(value) if value else None

    @classmethod
    def check_account_id(cls, value: Any, field: str = "account_id") -> str:
        """``value`` if it is one of the vendor's account ids, else a validation error naming ``field``."""
        if cls.account_id_pattern is None or (isinstance(value, str) and cls.account_id_pattern.match(value)):
            return value
        raise LinkMsgValidationError(
            f"{field} {value!r} is not a {cls.vendor_info().label} account id: expected {cls.account_id_form} "
            "(GET /accounts lists them)",
            field=field,
            vendor=cls.vendor,
        )

    # ---- session and limiter ----------------------------------------------------------------------------
    @cached_property
    def session(self) -> requests.Session:
        """A pooled session with the ``User-Agent`` and the vendor's auth headers."""
        params = self.conn_params
        session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(10, params.max_in_flight), max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
        session.headers.update(self.auth_headers())
        return session

    def get_conn(self) -> requests.Session:
        """The configured ``requests.Session`` (Airflow's conventional accessor)."""
        return self.session

    @cached_property
    def limiter(self) -> RateLimiter:
        params = self.conn_params
        key_id = hashlib.sha256(params.api_key.encode()).hexdigest()[:16]
        return shared_limiter(
            (self.vendor, params.base_url, key_id),
            params.requests_per_second,
            params.burst,
            params.max_in_flight,
        )

    # ---- errors -----------------------------------------------------------------------------------------
    def describe_error(self, status: int, body: Any, text: str) -> tuple[str, str | None]:
        """
        The vendor's message and code from an error body (``{"error": "..."}`` by default).

        Vendor hooks override this for their own envelopes; the text is shortened and never holds headers.
        """
        if isinstance(body, dict):
            err = body.get("error")
            if isinstance(err, dict):
                return _short(str(err.get("message") or err)), err.get("code") or err.get("type")
            if err:
                return _short(str(err)), body.get("code")
            if body.get("message"):
                return _short(str(body["message"])), body.get("code")
        return _short(text) or f"HTTP {status}", None

    def error_class(self, status: int, code: str | None) -> type[LinkMsgError]:
        """The exception type for an error status (and the vendor's code, which overrides may use)."""
        if status in self.auth_statuses:
            return LinkMsgAuthError
        if status in (400, 422):
            return LinkMsgValidationError
        if status == 402:
            return LinkMsgBudgetExceededError
        if status == 404:
            return LinkMsgNotFoundError
        if status == 429:
            return LinkMsgRateLimitedError
        return LinkMsgVendorError

    # ---- the request ------------------------------------------------------------------------------------
    def request(
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
        """
        Call ``endpoint`` (a path under the base URL, or an absolute URL) and return the parsed 2xx response.

        Retries 429, 5xx, resets, timeouts and truncated bodies with back-off, within ``max_retries`` and
        the connection's ``max_retry_wait``; a call that is not ``idempotent`` (one that starts paid work)
        is retried only when the vendor surely did not act on it (429, or the connection never opened).
        Raises the typed error of :mod:`airflow_provider_linkmsg.exceptions` otherwise.

        :param timeout: read timeout for this call (e.g. a long-poll), instead of the connection's.
        :param on_lost_answer: called each time the vendor may have acted but its answer was lost (a paid
            call may have been charged); it may raise to stop the retries.
        """
        p = self.conn_params
        url = endpoint if endpoint.startswith(("http://", "https://")) else f"{p.base_url}{endpoint}"
        where = {"vendor": self.vendor, "method": method.upper(), "endpoint": endpoint.split("?", 1)[0]}
        if endpoint.startswith(("http://", "https://")):
            where["endpoint"] = requests.utils.urlparse(endpoint).path
        retries = p.max_retries if max_retries is None else max_retries
        clean_params = {k: v for k, v in (params or {}).items() if v is not None and v != ""}
        with self._stats_lock:
            self.api_calls += 1

        started = time.monotonic()
        attempt, waited = 1, 0.0
        while True:  # a plain loop, not a retry library: it leaves no reference cycles for the GC per call
            try:
                return self._send_once(
                    method,
                    url,
                    where,
                    clean_params,
                    json_body,
                    headers,
                    idempotent,
                    timeout or p.read_timeout,
                )
            except (_Transient, LinkMsgError) as exc:
                if on_lost_answer is not None and getattr(exc, "answer_lost", False):
                    on_lost_answer()
                if not isinstance(exc, _Transient):
                    raise
                pause = self._backoff(exc, attempt)
                if attempt > retries or waited + pause > p.max_retry_wait:
                    raise self._gave_up(exc, attempt, waited, time.monotonic() - started) from None
                with self._stats_lock:
                    self.retries += 1
                self.log.warning("%s: %s; retry %d in %.1f s", self.vendor, exc.reason, attempt, pause)
            time.sleep(pause)
            waited += pause
            attempt += 1

    def _gave_up(self, exc: _Transient, attempts: int, waited: float, elapsed: float) -> LinkMsgError:
        """The error to raise when the retries are spent: what the last failure was and how long it took."""
        budget = ""
        max_wait = self.conn_params.max_retry_wait
        if exc.retry_after is not None and waited + exc.retry_after > max_wait:
            budget = (
                f"; the vendor asked to wait {exc.retry_after:.1f} s more, past the max_retry_wait "
                f"of {max_wait:.0f} s"
            )
        error = exc.error
        return type(error)(
            f"gave up after {attempts} attempt(s) in {elapsed:.1f} s, {waited:.1f} s of it waiting "
            f"between retries{budget}. Last failure: {exc.reason}",
            vendor=error.vendor,
            method=error.method,
            endpoint=error.endpoint,
            status=error.status,
            code=error.code,
        )

    def _send_once(
        self,
        method: str,
        url: str,
        where: dict[str, Any],
        params: Mapping[str, Any],
        json_body: Any,
        headers: Mapping[str, str] | None,
        idempotent: bool,
        read_timeout: float,
    ) -> ApiResponse:
        p = self.conn_params
        with self.limiter.slot():
            with self._stats_lock:
                self.http_requests += 1
            try:
                response = self.session.request(
                    method,
                    url,
                    params=params or None,
                    json=json_body,
                    headers=dict(headers) if headers else None,
                    timeout=(p.connect_timeout, read_timeout),
                )
                content = response.content  # a truncated body raises here
            except requests.exceptions.ConnectTimeout as exc:
                raise _Transient(LinkMsgVendorError("connect timeout", **where), "connect timeout") from exc
            except requests.exceptions.ConnectionError as exc:
                reason = _connection_reason(exc)
                error = LinkMsgVendorError(f"connection failed ({reason})", **where)
                if idempotent or _never_connected(exc):
                    raise _Transient(error, f"connection failed ({reason})") from exc
                raise error from None
            except requests.exceptions.Timeout as exc:
                error = LinkMsgVendorError(
                    f"no answer within the read timeout of {read_timeout:.0f} s", **where
                )
                raise _lost(error, "read timeout", idempotent) from exc
            except requests.exceptions.RequestException as exc:  # ChunkedEncodingError, ContentDecodingError
                error = LinkMsgResponseError(
                    f"the response body was cut off or malformed ({type(exc).__name__})", **where
                )
                raise _lost(error, "truncated response body", idempotent) from exc
        return self._interpret(response.status_code, response.headers, content, where, idempotent)

    def _interpret(
        self, status: int, headers: Mapping[str, str], content: bytes, where: dict[str, Any], idempotent: bool
    ) -> ApiResponse:
        text = content.decode("utf-8", errors="replace")
        try:
            body = json.loads(text) if text.strip() else None
            parsed = True
        except ValueError:
            body, parsed = None, False
        if 200 <= status < 300:
            if not parsed:
                error = LinkMsgResponseError(
                    f"a {status} response whose body is not valid JSON ({len(content)} bytes)",
                    status=status,
                    **where,
                )
                raise _lost(error, f"HTTP {status} with an unparsable body", idempotent)
            return ApiResponse(status=status, data=body, headers=headers)
        message, code = self.describe_error(status, body, text)
        error_type = self.error_class(status, code)
        error = error_type(self._hint(error_type, message), status=status, code=code, **where)
        retry_after = self.retry_after(headers, body)
        if error_type is LinkMsgRateLimitedError:
            if retry_after is not None:
                self.limiter.pause(retry_after)
            raise _Transient(error, f"HTTP {status} {message}", retry_after)
        if error_type is LinkMsgVendorError and status >= 500 and idempotent:
            raise _Transient(error, f"HTTP {status} {message}", retry_after)
        raise error

    def retry_after(self, headers: Mapping[str, str], body: Any) -> float | None:
        """
        Seconds an error answer asks the client to wait, if it says: ``Retry-After`` by default.

        Vendor hooks extend this with their own fields (a reset header, a time in the body).
        """
        return parse_retry_after(headers.get("Retry-After"))

    def _hint(self, error_type: type[LinkMsgError], message: str) -> str:
        if error_type is LinkMsgAuthError:
            return (
                f"{message}. Check the API key in Airflow connection {self.conn_id!r} "
                "(it is not retried: a wrong key does not become right)"
            )
        return message

    # ---- retry policy -----------------------------------------------------------------------------------
    @staticmethod
    def _backoff(exc: _Transient, attempt: int) -> float:
        """Seconds before retry ``attempt``: what ``Retry-After`` asked, else exponential back-off with jitter."""
        if exc.retry_after is not None:
            return exc.retry_after + random.uniform(0, 0.1)
        base = min(30.0, 0.5 * 2 ** (attempt - 1))
        return random.uniform(base / 2, base)

    # ---- connection test --------------------------------------------------------------------------------
    def check_connection(self) -> str:
        """One cheap authenticated call; returns a short description. Vendor hooks implement it."""
        raise NotImplementedError

    def test_connection(self) -> tuple[bool, str]:
        """Airflow's connection test: one cheap call, no retries, bounded by a 10 s timeout."""
        try:
            probe = type(self)(self.conn_id)
            probe.__dict__["conn_params"] = _bounded(probe.conn_params)
            return True, f"Connection to {self.vendor_info().label} succeeded: {probe.check_connection()}"
        except Exception as exc:
            return False, str(exc)


def _bounded(params: ConnParams) -> ConnParams:
    from dataclasses import replace

    return replace(
        params,
        max_retries=0,
        connect_timeout=min(params.connect_timeout, 5.0),
        read_timeout=min(params.read_timeout, 10.0),
    )


def _connection_reason(exc: Exception) -> str:
    text = str(exc)
    for marker in ("Connection reset", "Connection refused", "Connection aborted", "RemoteDisconnected"):
        if marker in text:
            return marker.lower()
    return type(exc).__name__


def _never_connected(exc: Exception) -> bool:
    return "Connection refused" in str(exc) or "NewConnectionError" in str(exc)
