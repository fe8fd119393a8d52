"""
The one HTTP transport every vendor hook stands on.

:class:`LinkMsgHook` owns the ``requests.Session`` (pooled), connect and read timeouts, retries driven by
one :class:`tenacity.Retrying` per hook (exponential back-off with jitter on 429, 5xx, resets, timeouts and truncated bodies, honouring
``Retry-After`` in seconds or HTTP-date form, or the vendor's own reset time, under a cap on the total
wait), a client-side rate limiter shared by every hook of the same vendor, key and host in the process,
the ``User-Agent``, secret masking, and the mapping of error responses to
:mod:`airflow_provider_linkmsg.exceptions`.

A vendor hook sets its class attributes, implements :meth:`LinkMsgHook.auth_headers` and, when its error
bodies or codes need it, :meth:`LinkMsgHook.describe_error` and :meth:`LinkMsgHook.error_class`; it then
calls :meth:`LinkMsgHook.request` for every route.

The parts live in :mod:`airflow_provider_linkmsg.hooks.transport` (settings, rate limiting, retry policy, the
async twin for triggers and what it shares per event loop,
interpretation of answers); this module wires them into the hook.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests
import tenacity
from airflow.providers.common.compat.sdk import BaseHook, mask_secret
from pydantic import BaseModel

from airflow_provider_linkmsg.exceptions import (
    LinkMsgAuthError,
    LinkMsgError,
    LinkMsgResponseError,
    LinkMsgResponseTooLargeError,
    LinkMsgValidationError,
    LinkMsgVendorError,
)
from airflow_provider_linkmsg.hooks.transport import interpret as _interpret
from airflow_provider_linkmsg.hooks.transport.aio import USER_AGENT, AsyncTransport
from airflow_provider_linkmsg.hooks.transport.deadline import DeadlineAdapter
from airflow_provider_linkmsg.hooks.transport.http import (
    BodyDeadline,
    check_origin,
    describe_location,
    exchange,
    resolve_environment,
    suspicious,
)
from airflow_provider_linkmsg.hooks.transport.http import origin as origin_of
from airflow_provider_linkmsg.hooks.transport.interpret import (
    ApiResponse,
    connection_reason,
    never_connected,
)
from airflow_provider_linkmsg.hooks.transport.interpret import short as _short
from airflow_provider_linkmsg.hooks.transport.params import ConnParams, bounded, extra_value, number
from airflow_provider_linkmsg.hooks.transport.ratelimit import RateLimiter, shared_limiter
from airflow_provider_linkmsg.hooks.transport.redact import Redactor, secret_values
from airflow_provider_linkmsg.hooks.transport.retry import (
    Call,
    Transient,
    build_retrying,
    dropped,
    lost,
    parse_reset_time,
    parse_retry_after,
    run_attempt,
)
from airflow_provider_linkmsg.schemas import parse
from airflow_provider_linkmsg.vendors import VENDORS, VendorInfo

__all__ = [
    "USER_AGENT",
    "ApiResponse",
    "ConnParams",
    "LinkMsgHook",
    "RateLimiter",
    "_short",
    "parse_reset_time",
    "parse_retry_after",
    "shared_limiter",
]


DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024


# --------------------------------------------------------------------------------------------------------
# The hook
# --------------------------------------------------------------------------------------------------------
class LinkMsgHook(AsyncTransport, BaseHook):
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

    #: guards the call counters below; one for every hook (a few increments), not a lock kept per hook
    _stats_lock: ClassVar[threading.Lock] = threading.Lock()

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
        self.api_calls = 0
        self.http_requests = 0
        self.retries = 0

    # ---- connection -------------------------------------------------------------------------------------
    @classmethod
    def vendor_info(cls) -> VendorInfo:
        return VENDORS[cls.vendor]

    @cached_property
    def connection(self):
        """The Airflow connection (looked up once, lazily: no I/O at construction), of this vendor's type."""
        return self._checked(self.get_connection(self.conn_id))

    def _checked(self, conn: Any) -> Any:
        """``conn`` if it is of this vendor's type (or untyped), else a validation error."""
        if conn.conn_type and conn.conn_type != self.conn_type:
            raise LinkMsgValidationError(
                f"connection {self.conn_id!r} is a {conn.conn_type!r} connection, not a {self.conn_type!r} "
                f"one: give {self.conn_name_attr} a {self.vendor_info().label} connection",
                field=self.conn_name_attr,
                vendor=self.vendor,
            )
        return conn

    @cached_property
    def connection_extra(self) -> dict[str, Any]:
        """
        The connection's extra, read once per hook (``extra_dejson`` registers its secrets with Airflow's
        masker, which on some lines cannot run on an event loop: the async path sets this without it).
        """
        return self.connection.extra_dejson

    def extra(self, key: str, default: Any = None) -> Any:
        """A value from the connection's extra (plain or ``extra__<type>__`` key), or ``default``."""
        value = extra_value(self.connection_extra, self.conn_type, key)
        return default if value is None else value

    def api_key_of(self, conn: Any, extra: Mapping[str, Any]) -> str:
        """The API key of ``conn`` (its password, else the ``api_key`` extra), or ``""``."""
        return conn.password or extra_value(extra, self.conn_type, "api_key") or ""

    @cached_property
    def conn_params(self) -> ConnParams:
        """Connection settings with defaults; the API key is registered with Airflow's secret masker."""
        params = self.params_from(self.connection, self.connection_extra)
        mask_secret(params.api_key)
        return params

    def params_from(self, conn: Any, extra: Mapping[str, Any]) -> ConnParams:
        """The settings of ``conn`` (whose extra is ``extra``) with defaults; nothing is masked here."""
        info = self.vendor_info()
        api_key = self.api_key_of(conn, extra)
        if not api_key:
            raise LinkMsgAuthError(
                f"connection {self.conn_id!r} has no API key: put the key in the connection's password field",
                vendor=self.vendor,
            )
        host = conn.host or ""
        base_url = (
            self._base_url_override
            or (host if "://" in host else None)
            or extra_value(extra, self.conn_type, "base_url")
            or info.base_url
        )
        if not str(base_url).startswith(("http://", "https://")):
            raise LinkMsgValidationError(
                f"connection {self.conn_id!r}: base_url {base_url!r} must start with http:// or https://",
                field="base_url",
                vendor=self.vendor,
            )

        def num(key: str, default: float, minimum: float, cast: type = float) -> Any:
            return number(key, extra_value(extra, self.conn_type, key), default, minimum=minimum, cast=cast)

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
            max_response_bytes=num("max_response_bytes", DEFAULT_MAX_RESPONSE_BYTES, 1024, int),
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
        adapter = DeadlineAdapter(
            pool_connections=4, pool_maxsize=max(10, params.max_in_flight), max_retries=0
        )
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
        session.headers.update(self.auth_headers())
        resolve_environment(session, params.base_url)
        return session

    @cached_property
    def origin(self) -> tuple[str, str, int]:
        """The connection's origin: the only place a request (and so a key) may go."""
        return origin_of(self.conn_params.base_url)

    @cached_property
    def redact(self) -> Redactor:
        """Hides the connection's secrets (and what Airflow's masker knows) in text from the vendor."""
        try:
            params = self.conn_params
        except Exception:  # no readable connection (missing, no key): no secret of it can be in vendor text
            return Redactor(())
        return Redactor(secret_values(params.api_key, params.extra))

    def check(self, model: type[BaseModel], data: Any, *, route: str, prefix: str = "") -> Any:
        """
        ``data`` if it fits the vendor's answer ``model``, else :class:`LinkMsgResponseError` naming this
        hook's vendor, ``route`` and the first bad field (at ``prefix``), its text redacted
        (:func:`~airflow_provider_linkmsg.schemas.parse`).
        """
        return parse(model, data, vendor=self.vendor, route=route, prefix=prefix, redact=self.redact)

    def get_conn(self) -> requests.Session:
        """The configured ``requests.Session`` (Airflow's conventional accessor)."""
        return self.session

    @cached_property
    def limiter(self) -> RateLimiter:
        params = self.conn_params
        key_id = hashlib.sha256(params.api_key.encode()).hexdigest()[:16]
        return shared_limiter(  # the cap is in the key: a pause is never longer than its callers' cap
            (self.vendor, params.base_url, key_id, str(params.max_retry_wait)),
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
        return _interpret.describe_error(status, body, text)

    def error_class(self, status: int, code: str | None) -> type[LinkMsgError]:
        """The exception type for an error status (and the vendor's code, which overrides may use)."""
        return _interpret.error_class(status, self.auth_statuses)

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
        call = self._new_call(
            method, endpoint, params, json_body, headers, idempotent, timeout, max_retries, on_lost_answer
        )
        outcome = self._retrying(run_attempt, call)
        if isinstance(outcome, BaseException):
            try:
                raise outcome
            finally:
                del outcome  # a local holding the raised error would tie it to this frame: a cycle
        return outcome

    def _new_call(
        self,
        method: str,
        endpoint: str,
        params: Mapping[str, Any] | None,
        json_body: Any,
        headers: Mapping[str, str] | None,
        idempotent: bool,
        timeout: float | None,
        max_retries: int | None,
        on_lost_answer: Callable[[], None] | None,
    ) -> Call:
        """The :class:`Call` of one request: URL checked against the origin, per-call settings resolved."""
        p = self.conn_params
        absolute = endpoint.startswith(("http://", "https://"))
        url = endpoint if absolute else f"{p.base_url}{endpoint}"
        where = {"vendor": self.vendor, "method": method.upper(), "endpoint": endpoint.split("?", 1)[0]}
        if absolute:
            odd = suspicious(endpoint) is not None
            # the vendor's link: its path may echo a key
            where["endpoint"] = self.redact(describe_location(endpoint) if odd else urlsplit(endpoint).path)
        # every URL built is checked, a path glued to the base URL too (``@host/x`` would move the host)
        check_origin(url, self.origin, where, "a link from the vendor" if absolute else "the endpoint")
        retries = p.max_retries if max_retries is None else max_retries
        clean_params = {k: v for k, v in (params or {}).items() if v is not None and v != ""}
        with self._stats_lock:
            self.api_calls += 1

        return Call(
            self,
            method,
            url,
            where,
            params=clean_params,
            json_body=json_body,
            headers=headers,
            idempotent=idempotent,
            read_timeout=timeout or p.read_timeout,
            max_retries=retries,
            max_wait=p.max_retry_wait,
            on_lost_answer=on_lost_answer,
        )

    @cached_property
    def _retrying(self) -> tenacity.Retrying:
        """The hook's one :class:`tenacity.Retrying`, reused by every call (its state is thread-local)."""
        return build_retrying()

    def count_retry(self) -> None:
        with self._stats_lock:
            self.retries += 1

    def send_attempt(self, call: Call) -> ApiResponse:
        """One attempt of ``call``: the parsed 2xx answer, else raise (a :class:`Transient` to retry)."""
        p, where, idempotent, read_timeout = self.conn_params, call.where, call.idempotent, call.read_timeout
        with self.limiter.slot(call):
            with self._stats_lock:
                self.http_requests += 1
            sent = time.monotonic()
            try:
                status, headers, content = exchange(
                    self.session,
                    call,
                    expected_origin=self.origin,
                    connect_timeout=p.connect_timeout,
                    max_bytes=p.max_response_bytes,
                )
            except requests.exceptions.ConnectTimeout as exc:
                raise Transient(LinkMsgVendorError("connect timeout", **where), "connect timeout") from exc
            except requests.exceptions.ConnectionError as exc:
                reason = connection_reason(exc)
                if never_connected(exc):  # nothing was sent: safe to retry, nothing charged
                    error = LinkMsgVendorError(f"connection failed ({reason})", **where)
                    raise Transient(error, f"connection failed ({reason})") from exc
                # sent, then dropped: the vendor may have acted (and charged); its answer is lost
                raise dropped(where, reason, idempotent) from exc
            except LinkMsgResponseTooLargeError as exc:
                raise lost(exc, "response body too large", False) from None
            except (requests.exceptions.Timeout, BodyDeadline) as exc:
                error = LinkMsgVendorError(
                    f"no answer within the read timeout of {read_timeout:.0f} s", **where
                )
                raise lost(error, "read timeout", idempotent) from exc
            except requests.exceptions.RequestException as exc:  # ChunkedEncodingError, ContentDecodingError
                error = LinkMsgResponseError(
                    f"the response body was cut off or malformed ({type(exc).__name__})", **where
                )
                raise lost(error, "truncated response body", idempotent) from exc
        return _interpret.interpret(self, status, headers, content, where, idempotent, sent=sent)

    def retry_after(self, headers: Mapping[str, str], body: Any) -> float | None:
        """
        Seconds an error answer asks the client to wait, if it says: ``Retry-After`` by default.

        Vendor hooks extend this with their own fields (a reset header, a time in the body).
        """
        return parse_retry_after(headers.get("Retry-After"))

    def hint(self, error_type: type[LinkMsgError], message: str) -> str:
        if error_type is LinkMsgAuthError:
            return (
                f"{message}. Check the API key in Airflow connection {self.conn_id!r} "
                "(it is not retried: a wrong key does not become right)"
            )
        return message

    # ---- connection test --------------------------------------------------------------------------------
    def check_connection(self) -> str:
        """One cheap authenticated call; returns a short description. Vendor hooks implement it."""
        raise NotImplementedError

    def test_connection(self) -> tuple[bool, str]:
        """Airflow's connection test: one cheap call, no retries, bounded by a 10 s timeout."""
        try:
            probe = type(self)(self.conn_id)
            probe.__dict__["conn_params"] = bounded(probe.conn_params)
            # the description quotes the vendor's fields: redacted whole, then shortened
            described = self.redact(
                f"Connection to {self.vendor_info().label} succeeded: {probe.check_connection()}"
            )
            return True, _interpret.short(described)
        except Exception as exc:
            return False, self.redact(str(exc))
