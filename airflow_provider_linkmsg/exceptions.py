"""One exception family for every vendor.

Each message names the vendor, the HTTP method, the endpoint and the status, so a failed task's log says
what was called and what to do about it. No message ever contains a secret: the transport builds them
from the request line only, never from headers, and vendor error bodies are cut short.

Errors that a retry cannot fix (bad credentials, bad input, an exhausted budget) also derive from
:class:`AirflowFailException`, so Airflow fails the task at once instead of spending its retries.
"""

from __future__ import annotations

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException


class LinkMsgError(AirflowException):
    """
    Base class of every error this provider raises.

    :param message: what happened, in words a user can act on.
    :param vendor: vendor name (``koneksi``, ``connectsafely``, ``linkedapi``, ``linkup``).
    :param method: HTTP method of the failed call, if any.
    :param endpoint: path of the failed call, without host or query string.
    :param status: HTTP status, if a response arrived.
    :param code: the vendor's own error code or type, if it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        vendor: str | None = None,
        method: str | None = None,
        endpoint: str | None = None,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        self.vendor = vendor
        self.method = method
        self.endpoint = endpoint
        self.status = status
        self.code = code
        self.detail = message
        super().__init__(self._format(message))

    def _format(self, message: str) -> str:
        where = " ".join(p for p in (self.method, self.endpoint) if p)
        parts = [self.vendor or "", where]
        if self.status is not None:
            parts.append(f"-> HTTP {self.status}")
        if self.code:
            parts.append(f"({self.code})")
        prefix = " ".join(p for p in parts if p)
        return f"{prefix}: {message}" if prefix else message


class LinkMsgAuthError(LinkMsgError, AirflowFailException):
    """The vendor refused the credentials (401/403). Never retried: fix the connection's key."""


class LinkMsgValidationError(LinkMsgError, AirflowFailException, ValueError):
    """
    Input is invalid: found locally before any call, or reported by the vendor (400/422).

    :param field: the offending field, e.g. ``lead_data[2].linkedin``.
    """

    def __init__(self, message: str, *, field: str | None = None, **kwargs) -> None:
        self.field = field
        super().__init__(message, **kwargs)


class LinkMsgNotFoundError(LinkMsgError):
    """The vendor has no such object (404): a wrong id, account or conversation."""


class LinkMsgRateLimitedError(LinkMsgError):
    """The vendor kept answering 429 until the retry budget ran out."""


class LinkMsgVendorError(LinkMsgError):
    """The vendor failed (5xx, a reset connection, a truncated or unparsable body) past every retry."""


class LinkMsgResponseError(LinkMsgVendorError):
    """The response body was truncated or is not the JSON the vendor documents."""


class LinkMsgBudgetExceededError(LinkMsgError, AirflowFailException):
    """A call would exceed a budget the user set (``max_credits``, ``max_messages``) or the vendor's credits."""


class LinkMsgForeignOriginError(LinkMsgError, AirflowFailException):
    """
    The vendor pointed the client at another origin (a redirect, a result link, a next page): nothing was
    sent there, since the connection's keys must only ever reach the connection's own host.

    :param location: where the vendor pointed: its origin (scheme, host and port) only; the path and the
        query string may hold a key echoed by the vendor and are left out.
    """

    def __init__(self, message: str, *, location: str | None = None, **kwargs) -> None:
        self.location = location
        super().__init__(message, **kwargs)


class LinkMsgResponseTooLargeError(LinkMsgResponseError):
    """The (decoded) response body passed the connection's ``max_response_bytes``; it was not read on."""
