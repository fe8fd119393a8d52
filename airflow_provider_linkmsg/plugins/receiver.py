"""
What the webhook plugin does with one delivery: verify it, then record it once as an asset event.

No FastAPI here (see :mod:`.webhooks` for the routes): each vendor's ``verify_*`` turns a raw body and its
headers into a :class:`Delivery` or raises :class:`Refused` (a 4xx), and :func:`record` writes the asset
event through Airflow's own asset manager (what ``POST /api/v2/assets/events`` calls), which queues a run
of every DAG scheduled on the asset.

Exactly once: the replay store is the asset's own events in Airflow's metadata database, shared by every
API-server worker and kept across restarts. A delivery's ``delivery_id`` (Koneksi: the generation's
``secure_request_id``; LinkupAPI: the payload's ``event_id``, else the account and message id, else a
hash of the raw body: never the signed timestamp, which a retry renews) is looked up among the asset's
events since the delivery could first have been recorded (Koneksi: the maximum age bounds that window,
on the API server's clock, never the vendor's ``completed_at``; LinkupAPI: :data:`LINKUP_DEDUPE_WINDOW`), under a row lock on the asset (PostgreSQL, MySQL; SQLite serialises writers itself). A duplicate
is answered 2xx with nothing recorded, so the vendor stops retrying; a delivery counts as seen only once its
event is committed, so a failure answers 5xx and the vendor's retry records it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow_provider_linkmsg.events import (
    LINKUP_MAX_AGE,
    check_linkup_signature,
    koneksi_completion_uri,
    linkup_message_uri,
)
from airflow_provider_linkmsg.webhooks import FUTURE_SKEW, WebhookVerificationError, verify_koneksi_webhook

log = logging.getLogger(__name__)
#: one recording at a time in this process (the row lock does it across processes, except on SQLite)
_RECORD_LOCK = threading.Lock()

#: the largest body accepted (bytes); vendors' notifications are a few hundred bytes
MAX_BODY = 64 * 1024
#: Koneksi retries a delivery for 21 days: a shorter maximum age would refuse, for good, a late retry of a
#: completion that was never recorded. The duplicate lookup covers this window.
KONEKSI_MAX_AGE = 22 * 24 * 3600.0
#: seconds a delivery's answer may wait for its campaign lookup (Koneksi waits 10 s for an answer, then
#: retries the delivery); the wait holds no request thread (see :func:`add_koneksi_campaign`)
CAMPAIGN_LOOKUP_TIMEOUT = 4.0
#: campaign lookups at Koneksi in flight at once in this process; a delivery arriving while they are all
#: busy is recorded without one, at once, rather than queued behind them
CAMPAIGN_LOOKUPS = 4
_LOOKUPS = ThreadPoolExecutor(max_workers=CAMPAIGN_LOOKUPS, thread_name_prefix="linkmsg-koneksi-lookup")
_LOOKUP_SLOTS = threading.BoundedSemaphore(CAMPAIGN_LOOKUPS)

#: HTTP status of each refusal reason
STATUS = {
    "missing_signature": 401,
    "bad_signature": 401,
    "no_secret": 401,
    "malformed": 400,
    "too_old": 400,
    "too_large": 413,
    "unknown_connection": 404,
    "no_asset": 404,
}


#: refusals before a delivery is verified: one answer for them all (401, reason ``unverified``), so that a
#: caller without the secret learns nothing of which connections exist, their type or their secrets; the
#: reason and detail go to the API server's log only
UNVERIFIED = frozenset({"unknown_connection", "no_secret", "missing_signature", "bad_signature"})
UNVERIFIED_TEXT = (
    "the delivery could not be verified (connection id, its webhook secret or the signature): the API "
    "server's log says which"
)
#: how long a LinkupAPI message stays known to the duplicate check (seconds): a retry of the same message
#: within this window, re-signed with a new timestamp, is a duplicate
LINKUP_DEDUPE_WINDOW = 24 * 3600.0


class Refused(Exception):
    """A delivery that is answered with a 4xx and not recorded."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        self.status = STATUS.get(reason, 400)
        super().__init__(message)


class _RecordedEvents:
    """
    The replay store handed to ``verify_koneksi_webhook``: it refuses nothing, because a delivery is a
    replay only once its event is committed, which :func:`record` checks among the asset's events.
    """

    def add(self, key: str, ttl: float | None = None) -> bool:
        return True


@dataclass(frozen=True)
class Delivery:
    """A verified delivery: what to record, on which asset, and how to recognise it again."""

    vendor: str
    conn_id: str
    asset_uri: str
    delivery_id: str
    since: datetime  # no earlier recording of this delivery can be older than this
    extra: dict[str, Any]


def _hook(cls: type, conn_id: str) -> Any:
    """The vendor hook of ``conn_id`` with its connection loaded (``Refused`` if there is none)."""
    hook = cls(conn_id, max_retries=0, max_retry_wait=0)
    try:
        hook.connection  # noqa: B018 - look it up now: a missing or wrong connection is a 404
    except Exception as exc:
        raise Refused("unknown_connection", f"no {cls.vendor} connection {conn_id!r}: {exc}") from None
    return hook


# ---- Koneksi ------------------------------------------------------------------------------------------
def verify_koneksi(conn_id: str, body: bytes, signature: str | None) -> Delivery:
    """
    Check a Koneksi completion notification against the connection's ``webhook_secret``.

    The signature (``koneksi-signature``: hex HMAC-SHA256 of the raw body), the payload and its age are
    checked by :func:`airflow_provider_linkmsg.webhooks.verify_koneksi_webhook`.
    """
    from airflow_provider_linkmsg.hooks.koneksi import KoneksiHook

    hook = _hook(KoneksiHook, conn_id)
    secret = hook.extra("webhook_secret")
    if not secret:
        raise Refused(
            "no_secret",
            f"Koneksi connection {conn_id!r} has no webhook_secret extra: copy the account's webhook secret "
            "(created next to the API key) into it",
        )
    try:
        payload = verify_koneksi_webhook(
            body, signature, str(secret), seen_store=_RecordedEvents(), max_age=KONEKSI_MAX_AGE
        )
    except WebhookVerificationError as exc:
        raise Refused(exc.reason, exc.detail) from None
    request_id = str(payload["secure_request_id"])
    extra = {
        "vendor": "koneksi",
        "conn_id": conn_id,
        "delivery_id": f"koneksi:{request_id}",
        "secure_request_id": request_id,
        "status": payload.get("status"),
        "completed_at": payload.get("completed_at"),
        "requested_messages_count": payload.get("requested_messages_count"),
        "generated_messages_count": payload.get("generated_messages_count"),
    }
    return Delivery(
        "koneksi",
        conn_id,
        koneksi_completion_uri(conn_id),
        extra["delivery_id"],
        koneksi_dedupe_since(),
        extra,
    )


def koneksi_dedupe_since(now: datetime | None = None) -> datetime:
    """
    The oldest time (the API server's clock) at which an earlier copy of a Koneksi delivery arriving ``now``
    can have been recorded: ``now`` minus :data:`KONEKSI_MAX_AGE` and :data:`~..webhooks.FUTURE_SKEW`.

    Never a time the vendor states: ``completed_at`` is not bounded (a generation worker's clock ahead, a
    naive local time read as UTC), and a window starting there would miss the first recording and count
    a duplicate as new. The bound holds on our clock alone: an identical body is accepted only while its
    ``webhook_triggered_at`` is at most the maximum age old and was at most ``FUTURE_SKEW`` ahead when
    first recorded; a retry with a renewed time comes within Koneksi's 21 days of its first attempt.
    """
    return (now or datetime.now(UTC)) - timedelta(seconds=KONEKSI_MAX_AGE + FUTURE_SKEW)


async def add_koneksi_campaign(delivery: Delivery) -> None:
    """
    Put the generation's campaign into the event (``campaign``: id and name, ``generation_status``) when
    Koneksi gives it quickly; ``campaign_lookup`` says how it went.

    The notification does not carry it; one retrieval (free, no retry) asks Koneksi, on a pool of
    :data:`CAMPAIGN_LOOKUPS` threads of its own, and the answer waits for it without holding a request
    thread, at most :data:`CAMPAIGN_LOOKUP_TIMEOUT` seconds. So a slow or silent Koneksi costs no delivery
    more than that, however many arrive at once, and the API server's other endpoints never wait behind it.
    Without the campaign the event is recorded with ``campaign: None`` (the DAG retrieves the generation
    anyway) and ``campaign_lookup`` is ``"busy"`` (every lookup slot taken: not asked), ``"timed_out"`` or
    ``"failed"``; with it, ``"ok"``.
    """
    request_id = delivery.extra["secure_request_id"]
    delivery.extra["campaign"] = None
    if not _LOOKUP_SLOTS.acquire(blocking=False):
        delivery.extra["campaign_lookup"] = "busy"
        log.warning(
            "Koneksi: campaign of %s not looked up: %d lookups already in flight (Koneksi slow?)",
            request_id,
            CAMPAIGN_LOOKUPS,
        )
        return
    try:
        lookup = _LOOKUPS.submit(_retrieve, delivery.conn_id, request_id)
    except BaseException:
        _LOOKUP_SLOTS.release()
        raise
    lookup.add_done_callback(lambda _: _LOOKUP_SLOTS.release())  # the slot is free once the call ends
    try:
        result = await asyncio.wait_for(asyncio.wrap_future(lookup), CAMPAIGN_LOOKUP_TIMEOUT)
    except TimeoutError:
        delivery.extra["campaign_lookup"] = "timed_out"
        log.warning(
            "Koneksi: campaign lookup of %s took more than %.0f s; recorded without it",
            request_id,
            CAMPAIGN_LOOKUP_TIMEOUT,
        )
        return
    except Exception as exc:
        delivery.extra["campaign_lookup"] = "failed"
        log.warning("Koneksi: could not look up the campaign of %s: %s", request_id, exc)
        return
    delivery.extra["campaign"] = {
        "automation_tool_campaign_id": result.campaign_id,
        "automation_tool_campaign_name": result.campaign_name,
    }
    delivery.extra["generation_status"] = result.generation_status
    delivery.extra["campaign_lookup"] = "ok"


def _retrieve(conn_id: str, request_id: str) -> Any:
    from airflow_provider_linkmsg.hooks.koneksi import KoneksiHook

    return KoneksiHook(conn_id, max_retries=0, max_retry_wait=0).retrieve_messages(request_id)


# ---- LinkupAPI ----------------------------------------------------------------------------------------
def verify_linkup(conn_id: str, body: bytes, timestamp: str | None, signature: str | None) -> Delivery:
    """
    Check a LinkupAPI webhook: ``X-Linkup-Signature: v1=<hex HMAC-SHA256 of "<ts>.<raw body>">``, the
    timestamp at most five minutes old, a JSON object naming its ``account_id``.

    The secret is the connection extra ``webhook_secrets`` (``{account_id: secret}``, as each
    ``POST /v2/webhooks`` returns its own) or ``webhook_secret`` (one for every account). The signature is
    checked against the connection's secrets before the body is parsed (a forged body, however deeply
    nested, is a 401), then against the payload's account's secret alone, so an account cannot sign for
    another.
    """
    from airflow_provider_linkmsg.hooks.linkup import LinkupHook

    hook = _hook(LinkupHook, conn_id)
    per_account = hook.extra("webhook_secrets") or {}
    if isinstance(per_account, str):
        try:
            per_account = json.loads(per_account)
        except ValueError:
            per_account = None
    if not isinstance(per_account, dict):
        raise Refused(
            "no_secret", f"LinkupAPI connection {conn_id!r}: webhook_secrets must be {{account_id: secret}}"
        )
    common = hook.extra("webhook_secret")
    if not per_account and not common:
        raise Refused(
            "no_secret",
            f"LinkupAPI connection {conn_id!r} has no webhook_secrets / webhook_secret extra: store the "
            "secret that POST /v2/webhooks returned (LinkupHook.create_webhook) there",
        )
    # Nothing of an unverified body is parsed: first, is it signed by any secret of the connection?
    known = [s for s in (*per_account.values(), common) if isinstance(s, str) and s]
    ok, reason = check_linkup_signature(body, timestamp, signature, known)
    if not ok:
        raise Refused(reason, f"LinkupAPI webhook refused ({reason}) for connection {conn_id!r}")
    payload = _json(body)
    account = payload.get("account_id") if isinstance(payload, dict) else None
    # then by its own account's secret (or the common one): an account cannot sign for another
    secrets = [per_account.get(account) or common] if isinstance(account, str) else [common]
    ok, reason = check_linkup_signature(body, timestamp, signature, [s for s in secrets if s])
    if not ok:
        raise Refused(reason, f"LinkupAPI webhook refused ({reason}) for connection {conn_id!r}")
    if not isinstance(account, str) or not account:
        raise Refused("malformed", "LinkupAPI webhook payload is not a JSON object with account_id")
    event = payload.get("event") or payload.get("type")
    if event not in (None, "message_received"):
        raise Refused("malformed", f"LinkupAPI event {event!r} is not message_received")
    data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
    message_id = data.get("entity_urn") or data.get("message_id")
    extra = {
        "vendor": "linkup",
        "conn_id": conn_id,
        "delivery_id": linkup_delivery_id(payload, account, message_id, body),
        "account_id": account,
        "event": "message_received",
        "conversation_id": data.get("conversation_id"),
        "message_id": message_id,
        "received_at": int(str(timestamp)),
    }
    sent = datetime.fromtimestamp(int(str(timestamp)), tz=UTC)
    since = sent - timedelta(seconds=max(LINKUP_MAX_AGE, LINKUP_DEDUPE_WINDOW) + FUTURE_SKEW)
    return Delivery("linkup", conn_id, linkup_message_uri(conn_id), extra["delivery_id"], since, extra)


def _json(body: bytes) -> Any:
    """The parsed body, or ``None`` when it is no JSON (nesting too deep for the parser included)."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def linkup_delivery_id(payload: dict[str, Any], account: str, message_id: Any, body: bytes) -> str:
    """
    What identifies a LinkupAPI delivery across the vendor's retries (each re-signed with a new timestamp):
    the payload's ``event_id`` (or ``id``); without one, the account and the message
    (``data.entity_urn`` or ``data.message_id``); without those, a hash of the raw body (a retry resends the
    same body). Never the signed timestamp.
    """
    event_id = payload.get("event_id") or payload.get("id")
    if isinstance(event_id, str | int) and not isinstance(event_id, bool) and str(event_id):
        return f"linkup:{event_id}"
    if isinstance(message_id, str) and message_id:
        return f"linkup:{account}:{message_id}"
    return f"linkup:body:{hashlib.sha256(body).hexdigest()}"


# ---- recording ----------------------------------------------------------------------------------------
def _asset_and_duplicate(session: Any, delivery: Delivery, *, lock: bool) -> tuple[Any, bool]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.sqlalchemy import with_row_locks
    from sqlalchemy import select

    uri = delivery.asset_uri
    query = select(AssetModel).where(AssetModel.name == uri, AssetModel.uri == uri)
    asset = session.scalar(with_row_locks(query, session=session) if lock else query)
    if asset is None:
        raise Refused(
            "no_asset",
            f"no asset {uri} in Airflow: deploy a DAG scheduled on it (airflow_provider_linkmsg.events); "
            "the vendor will retry",
        )
    earlier = session.scalars(
        select(AssetEvent.extra).where(
            AssetEvent.asset_id == asset.id, AssetEvent.timestamp >= delivery.since
        )
    )
    return asset, any(isinstance(e, dict) and e.get("delivery_id") == delivery.delivery_id for e in earlier)


def is_duplicate(delivery: Delivery) -> bool:
    """Whether the delivery's event is already recorded (a read without lock, before any lookup at the vendor)."""
    from airflow.utils.session import create_session

    with create_session() as session:
        return _asset_and_duplicate(session, delivery, lock=False)[1]


def record(delivery: Delivery) -> bool:
    """
    Record the delivery's asset event unless it is already recorded; ``True`` if recorded now.

    Raises :class:`Refused` (404) when no DAG declares the asset yet: the vendor retries, and a DAG
    deployed meanwhile gets the event.
    """
    from airflow.assets.manager import asset_manager
    from airflow.utils.session import create_session

    with _RECORD_LOCK, create_session() as session:
        asset, duplicate = _asset_and_duplicate(session, delivery, lock=True)
        if duplicate:
            return False
        event = asset_manager.register_asset_change(
            asset=asset, extra=delivery.extra, session=session, source_is_api=True, api_user_teams=set()
        )
        if event is None:
            raise RuntimeError(f"Airflow did not record an event for asset {delivery.asset_uri}")
    log.info("%s webhook recorded on %s: %s", delivery.vendor, delivery.asset_uri, delivery.delivery_id)
    return True
