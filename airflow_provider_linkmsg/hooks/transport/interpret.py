"""
Interpretation of what came back: a 2xx body parsed to :class:`ApiResponse`, an error status mapped to
the typed error of :mod:`airflow_provider_linkmsg.exceptions` (transient ones wrapped for a retry), and
the reasons a connection failed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError

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
from airflow_provider_linkmsg.hooks.transport.retry import Transient, lost

if TYPE_CHECKING:
    from airflow_provider_linkmsg.hooks.base import LinkMsgHook

MAX_ERROR_TEXT = 300


@dataclass(frozen=True)
class ApiResponse:
    """A successful (2xx) response: its status, parsed JSON body (``None`` when empty) and headers."""

    status: int
    data: Any
    headers: Mapping[str, str]


def short(text: str) -> str:
    """``text`` on one line, cut to ``MAX_ERROR_TEXT`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_TEXT else text[:MAX_ERROR_TEXT] + "..."


def describe_error(status: int, body: Any, text: str) -> tuple[str, str | None]:
    """The message and code of the common error envelopes (``{"error": ...}``, ``{"message": ...}``)."""
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            return short(str(err.get("message") or err)), err.get("code") or err.get("type")
        if err:
            return short(str(err)), body.get("code")
        if body.get("message"):
            return short(str(body["message"])), body.get("code")
    return short(text) or f"HTTP {status}", None


def error_class(status: int, auth_statuses: frozenset[int]) -> type[LinkMsgError]:
    """The exception type for an error status."""
    if status in auth_statuses:
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


def interpret(
    hook: LinkMsgHook,
    status: int,
    headers: Mapping[str, str],
    content: bytes,
    where: dict[str, Any],
    idempotent: bool,
    limiter: Any = None,
    sent: float = math.inf,
) -> ApiResponse:
    """
    The :class:`ApiResponse` of a 2xx answer, else raise: a :class:`Transient` for what a retry may fix
    (429; 5xx of an idempotent call; an unparsable 2xx body), the typed error otherwise. The vendor's words
    come from ``hook.describe_error``, the type from ``hook.error_class``, the pause from ``hook.retry_after``
    (``sent``: when the request went out, ``time.monotonic()``; see :meth:`.TokenBucket.pause`).
    """
    text = content.decode("utf-8", errors="replace")
    try:
        body = json.loads(text) if text.strip() else None
        parsed = True
    except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser goes
        body, parsed = None, False
    if 200 <= status < 300:
        if not parsed:
            error = LinkMsgResponseError(
                f"a {status} response whose body is not valid JSON, or nested deeper than it can be read "
                f"({len(content)} bytes)",
                status=status,
                **where,
            )
            raise lost(error, f"HTTP {status} with an unparsable body", idempotent)
        return ApiResponse(status=status, data=body, headers=headers)
    # redact first, then let describe_error shorten: a key cut in two by the shortening would leak its prefix
    try:
        redacted = hook.redact.deep(body)
    except RecursionError:  # nested deeper than the redactor goes: quote the (redacted) text instead
        redacted = None
    message, code = hook.describe_error(status, redacted, hook.redact(text))
    message = hook.redact(message)
    code = hook.redact(str(code)) if code is not None else None
    error_type = hook.error_class(status, code)
    error = error_type(hook.hint(error_type, message), status=status, code=code, **where)
    retry_after = hook.retry_after(headers, body)
    if error_type is LinkMsgRateLimitedError:
        if retry_after is not None:  # never past the cap: a longer wait fails this call instead
            cap = hook.conn_params.max_retry_wait  # nor a pause, however many answers ask for one
            (limiter or hook.limiter).pause(min(retry_after, cap), cap, sent)
        raise Transient(error, f"HTTP {status} {message}", retry_after)
    if error_type is LinkMsgVendorError and status >= 500 and idempotent:
        raise Transient(error, f"HTTP {status} {message}", retry_after)
    raise error


def connection_reason(exc: Exception) -> str:
    """A short reason for a failed connection (reset, refused, aborted ...)."""
    text = str(exc)
    for marker in ("Connection reset", "Connection refused", "Connection aborted", "RemoteDisconnected"):
        if marker in text:
            return marker.lower()
    return type(exc).__name__


def never_connected(exc: Exception) -> bool:
    """
    True when the connection was never opened, so nothing was sent and the vendor surely did nothing:
    refused, unresolvable, timed out while connecting, or a failed TLS handshake. A connection dropped
    after the request went out (reset, closed without an answer) is not that: the vendor may have acted.
    """
    if isinstance(exc, requests.exceptions.SSLError):
        return True
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, (NewConnectionError, ConnectTimeoutError))
