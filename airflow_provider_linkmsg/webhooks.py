"""
Verify vendor webhooks in your own receiver (a Flask/FastAPI endpoint, a Lambda ...).

Koneksi / Upscale Outreach POSTs a JSON payload to ``completion_notification_url`` when a generation
completes. The vendor documents that deliveries are signed with the account's webhook secret but not how;
**our assumption** (also what the sandbox does) is the hex HMAC-SHA256 of the raw request body keyed with
the secret, sent in the ``koneksi-signature`` header (a ``sha256=`` prefix is accepted too). Deliveries are
retried and can arrive twice, so a receiver must also reject replays::

    from airflow_provider_linkmsg.webhooks import verify_koneksi_webhook

    @app.post("/koneksi/done")
    def done(request):
        payload = verify_koneksi_webhook(request.body, request.headers.get("koneksi-signature"), secret)
        trigger_dag(conf={"secure_request_id": payload["secure_request_id"]})

By default a delivery older than ``[linkmsg] webhook_max_age_minutes`` (60) is refused, and delivery keys go
to one store per process (:func:`process_seen_store`), shared by every hook and call: an in-memory one,
or, when ``[linkmsg] webhook_replay_store`` names a path or URL (``s3://bucket/linkmsg/webhooks``, with
``webhook_replay_store_conn_id``), a :class:`PathSeenStore` there, so replays are refused across tasks and
workers too. Pass ``seen_store=`` for your own (Redis ``SET NX`` ...), ``max_age=None`` to accept any age.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import threading
import time
from collections import OrderedDict
from typing import Any, Protocol

from airflow_provider_linkmsg.exceptions import LinkMsgAuthError, LinkMsgValidationError
from airflow_provider_linkmsg.records import parse_utc

KONEKSI_SIGNATURE_HEADER = "koneksi-signature"
#: how far in the future a delivery time may be (clock skew) before it is refused
FUTURE_SKEW = 300.0
#: the oldest delivery accepted by default, in minutes (``[linkmsg] webhook_max_age_minutes``)
DEFAULT_MAX_AGE_MINUTES = 60.0
#: "use the default" for ``max_age`` and ``seen_store`` (``None`` there means: no limit / no store)
DEFAULT: Any = object()


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


class PathSeenStore:
    """
    A :class:`SeenStore` on a path every worker can reach: one small file per delivery key (its SHA-256),
    holding the key's expiry time.

    On the local disk (a shared volume) a key is claimed with an exclusive create, atomic across processes.
    On object storage there is no create-if-absent: a key is claimed by reading then writing, so two workers
    receiving the same delivery within the same instant could both accept it (bounded by that window; a
    replay arriving later is refused).

    :param root: a directory path or URL (``/shared/linkmsg/webhooks``, ``s3://bucket/prefix``).
    :param conn_id: connection of the store for a URL.
    :param ttl: default lifetime of an entry, in seconds.
    """

    def __init__(self, root: Any, conn_id: str | None = None, ttl: float = 7 * 24 * 3600) -> None:
        from airflow.providers.common.compat.sdk import ObjectStoragePath

        self.root = (
            root if isinstance(root, ObjectStoragePath) else ObjectStoragePath(str(root), conn_id=conn_id)
        )
        self.ttl = ttl

    def _local(self) -> str | None:
        return self.root.path if self.root.protocol in ("file", "local", "") else None

    def add(self, key: str, ttl: float | None = None) -> bool:
        name = hashlib.sha256(key.encode()).hexdigest()
        expires = time.time() + (self.ttl if ttl is None else ttl)
        local = self._local()
        if local is not None:
            os.makedirs(local, exist_ok=True)
            path = os.path.join(local, name)
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            except FileExistsError:
                with open(path, encoding="utf-8") as f:
                    taken = not self._expired(f.read())
                if taken:
                    return False
                temp = f"{path}.{os.getpid()}.{threading.get_ident()}"
                with open(temp, "w", encoding="utf-8") as f:
                    f.write(repr(expires))
                os.replace(temp, path)  # an expired key is claimed again
                return True
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(repr(expires))
            return True
        from airflow_provider_linkmsg.io.paths import filesystem

        target = self.root / name
        fs = filesystem(target)  # also a scheme that Airflow 2 registers no store for (memory, sftp ...)
        if fs.exists(target.path) and not self._expired(fs.cat_file(target.path).decode()):
            return False
        fs.makedirs(self.root.path, exist_ok=True)
        fs.pipe_file(target.path, repr(expires).encode())
        return True

    @staticmethod
    def _expired(text: str) -> bool:
        try:
            return float(text.strip()) <= time.time()
        except ValueError:  # half-written by a concurrent claim: taken
            return False


_process_store: SeenStore | None = None
_process_lock = threading.Lock()


def process_seen_store() -> SeenStore:
    """
    The one replay store of this process: a :class:`PathSeenStore` at ``[linkmsg] webhook_replay_store``
    when set (replays refused across workers), else a :class:`MemorySeenStore` (across hooks and calls).
    """
    global _process_store
    with _process_lock:
        if _process_store is None:
            from airflow.providers.common.compat.sdk import conf

            root = conf.get("linkmsg", "webhook_replay_store", fallback=None)
            conn_id = conf.get("linkmsg", "webhook_replay_store_conn_id", fallback=None) or None
            _process_store = PathSeenStore(root, conn_id) if root else MemorySeenStore()
        return _process_store


def default_max_age() -> float:
    """Seconds: ``[linkmsg] webhook_max_age_minutes`` (default :data:`DEFAULT_MAX_AGE_MINUTES`)."""
    from airflow.providers.common.compat.sdk import conf

    minutes = conf.get("linkmsg", "webhook_max_age_minutes", fallback=None)
    if minutes is None or not str(minutes).strip():
        return DEFAULT_MAX_AGE_MINUTES * 60.0
    return check_max_age(minutes, field="[linkmsg] webhook_max_age_minutes", unit=60.0)


def check_max_age(value: Any, *, field: str = "max_age", unit: float = 1.0) -> float:
    """
    ``value`` (in ``unit`` seconds) as seconds: a finite number, 0 or more. ``NaN`` would accept every age
    (no comparison with it is true), ``inf`` is spelled ``max_age=None``; both are refused.
    """
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number < 0:
        raise LinkMsgValidationError(
            f"{field} must be a finite number of {'minutes' if unit == 60 else 'seconds'}, 0 or more, got "
            f"{value!r} (None as the argument accepts any age)",
            field=field,
            vendor="koneksi",
        )
    return number * unit


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
    seen_store: SeenStore | None = DEFAULT,
    max_age: float | None = DEFAULT,
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
    :param seen_store: where delivery keys are remembered (:func:`process_seen_store` by default); ``None``
        skips replay protection.
    :param max_age: refuse deliveries whose ``webhook_triggered_at`` is older than this many seconds
        (:func:`default_max_age` by default: 60 minutes); ``None`` accepts any age.
    :param now: the current epoch time (for tests); the real clock by default.
    :return: the payload: ``secure_request_id``, ``status``, ``completed_at``, the counts ...
    """
    max_age = default_max_age() if max_age is DEFAULT else None if max_age is None else check_max_age(max_age)
    if seen_store is DEFAULT:
        seen_store = process_seen_store()
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
    except (ValueError, RecursionError):  # nesting too deep for the parser: malformed too
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
        except (TypeError, ValueError, OverflowError, OSError):  # "9" * 30 is ISO-ish digits out of range
            raise WebhookVerificationError(
                f"webhook_triggered_at {sent_at[:40]!r} is not an ISO-8601 time in range", reason="malformed"
            ) from None
        if age > max_age or age < -FUTURE_SKEW:
            raise WebhookVerificationError(
                f"webhook for {request_id} was sent at {sent_at}, {age:.0f} s ago: outside max_age {max_age:.0f} s",
                reason="too_old",
            )
    # an entry lives at least as long as a delivery is accepted, so a replay cannot outlive its record
    lifetime = math.inf if max_age is None else max_age + FUTURE_SKEW
    lifetime = max(lifetime, getattr(seen_store, "ttl", 0) or 0)
    if seen_store is not None and not seen_store.add(f"{request_id}|{sent_at}", lifetime):
        raise WebhookVerificationError(
            f"webhook for {request_id} sent at {sent_at} was already received (replay or re-delivery)",
            reason="replay",
        )
    return payload
