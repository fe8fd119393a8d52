"""
Verify vendor webhooks in your own receiver (a Flask/FastAPI endpoint, a Lambda ...).

Koneksi / Upscale Outreach POSTs a JSON payload to ``completion_notification_url`` when a generation
completes. The vendor documents that deliveries are signed with the account's webhook secret but not how;
**our assumption** (also what the sandbox does) is the hex HMAC-SHA256 of the raw request body keyed with
the secret, sent in the ``koneksi-signature`` header (a ``sha256=`` prefix is accepted too). Deliveries are
retried and can arrive twice, so a receiver must also reject replays::

    from airflow_provider_linkmsg.webhooks import MemorySeenStore, verify_koneksi_webhook

    seen = MemorySeenStore()  # one per process; use a shared store (Redis SETNX ...) across processes

    @app.post("/koneksi/done")
    def done(request):
        payload = verify_koneksi_webhook(
            request.body, request.headers.get("koneksi-signature"), secret, seen_store=seen, max_age=3600
        )
        trigger_dag(conf={"secure_request_id": payload["secure_request_id"]})
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import OrderedDict
from typing import Any, Protocol

from airflow_provider_linkmsg.exceptions import LinkMsgAuthError
from airflow_provider_linkmsg.records import parse_utc

KONEKSI_SIGNATURE_HEADER = "koneksi-signature"
#: how far in the future a delivery time may be (clock skew) before it is refused
FUTURE_SKEW = 300.0


class WebhookVerificationError(LinkMsgAuthError):
    """
    A webhook delivery was refused; answer it with a 4xx and do not act on it.

    :param reason: ``missing_signature``, ``bad_signature``, ``malformed``, ``too_old`` or ``replay``.
    """

    def __init__(self, message: str, *, reason: str, vendor: str = "koneksi") -> None:
        self.reason = reason
        super().__init__(message, vendor=vendor)


class SeenStore(Protocol):
    """Remembers delivery keys; :meth:`add` is atomic (a shared store: Redis ``SET NX EX``, a DB unique key)."""

    def add(self, key: str, ttl: float | None = None) -> bool:
        """Record ``key``; return ``False`` if it was already there (a replay)."""
        ...


class MemorySeenStore:
    """
    An in-process :class:`SeenStore`: thread-safe, entries expire after ``ttl`` seconds, at most
    ``max_entries`` kept (oldest dropped first).

    :param ttl: default lifetime of an entry, in seconds.
    :param max_entries: bound on memory.
    """

    def __init__(self, ttl: float = 7 * 24 * 3600, max_entries: int = 100_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, key: str, ttl: float | None = None) -> bool:
        now = time.monotonic()
        with self._lock:
            while self._entries and next(iter(self._entries.values())) <= now:
                self._entries.popitem(last=False)
            expires = self._entries.get(key)
            if expires is not None and expires > now:
                return False
            self._entries[key] = now + (self.ttl if ttl is None else ttl)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
            return True

    def __len__(self) -> int:
        return len(self._entries)


def sign_koneksi_payload(body: bytes | str, secret: str) -> str:
    """
    The ``koneksi-signature`` of a raw body: hex HMAC-SHA256 keyed with the webhook secret (our assumption).

    :param body: the raw request body, exactly as received (not re-serialized JSON).
    :param secret: the account's webhook secret.
    """
    raw = body.encode() if isinstance(body, str) else body
    return hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def verify_koneksi_webhook(
    body: bytes | str,
    signature: str | None,
    secret: str,
    *,
    seen_store: SeenStore | None = None,
    max_age: float | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """
    Check a Koneksi completion webhook and return its payload; raise :class:`WebhookVerificationError` if not.

    The signature is compared in constant time before the body is even parsed; only a correctly signed
    delivery is recorded in ``seen_store``, keyed by ``secure_request_id`` and ``webhook_triggered_at``
    (``completed_at`` when absent), so a replayed or re-delivered one is refused.

    :param body: the raw request body.
    :param signature: the ``koneksi-signature`` header value (``None`` when missing).
    :param secret: the account's webhook secret (the connection extra ``webhook_secret``).
    :param seen_store: where delivery keys are remembered; ``None`` skips replay protection.
    :param max_age: refuse deliveries whose ``webhook_triggered_at`` is older than this many seconds.
    :param now: the current epoch time (for tests); the real clock by default.
    :return: the payload: ``secure_request_id``, ``status``, ``completed_at``, the counts ...
    """
    if not secret:
        raise WebhookVerificationError(
            "no webhook secret configured: set the connection extra 'webhook_secret'", reason="bad_signature"
        )
    raw = body.encode() if isinstance(body, str) else bytes(body)
    given = (signature or "").strip()
    if given.lower().startswith("sha256="):
        given = given[len("sha256=") :]
    if not given:
        raise WebhookVerificationError(
            f"webhook has no {KONEKSI_SIGNATURE_HEADER} header", reason="missing_signature"
        )
    if not hmac.compare_digest(given.lower().encode(), sign_koneksi_payload(raw, secret).encode()):
        raise WebhookVerificationError(
            "webhook signature does not match the body: wrong secret or a tampered payload",
            reason="bad_signature",
        )
    try:
        payload = json.loads(raw)
    except ValueError:
        payload = None
    request_id = payload.get("secure_request_id") if isinstance(payload, dict) else None
    sent_at = (payload.get("webhook_triggered_at") or payload.get("completed_at")) if request_id else None
    if not request_id or not isinstance(sent_at, str):
        raise WebhookVerificationError(
            "webhook payload is not JSON with secure_request_id and webhook_triggered_at", reason="malformed"
        )
    if max_age is not None:
        try:
            age = (time.time() if now is None else now) - parse_utc(sent_at).timestamp()
        except (TypeError, ValueError):
            raise WebhookVerificationError(
                f"webhook_triggered_at {sent_at!r} is not an ISO-8601 time", reason="malformed"
            ) from None
        if age > max_age or age < -FUTURE_SKEW:
            raise WebhookVerificationError(
                f"webhook for {request_id} was sent at {sent_at}, {age:.0f} s ago: outside max_age {max_age:.0f} s",
                reason="too_old",
            )
    if seen_store is not None and not seen_store.add(f"{request_id}|{sent_at}"):
        raise WebhookVerificationError(
            f"webhook for {request_id} sent at {sent_at} was already received (replay or re-delivery)",
            reason="replay",
        )
    return payload
