"""
The provider's webhook app (Airflow 3; served through :mod:`~airflow_provider_linkmsg.plugins.webhooks`): a
FastAPI app, served by the API server under ``/linkmsg``, that turns vendor webhooks into asset events.

* ``POST /linkmsg/webhooks/koneksi/{conn_id}``: Koneksi's completion notification (point the request's
  ``completion_notification_url`` here) becomes an event of
  :func:`~airflow_provider_linkmsg.events.koneksi_completion_asset` (``secure_request_id``, ``campaign``).
* ``POST /linkmsg/webhooks/linkup/{conn_id}``: LinkupAPI's ``message_received`` becomes an event of
  :func:`~airflow_provider_linkmsg.events.linkup_message_asset` (``account_id``).

Answers: 200 ``{"recorded": true}``, or ``{"recorded": false, "duplicate": true}`` for a delivery already
recorded; before the delivery is verified, one answer for every failure (unknown connection, a connection of
another type, no secret configured, signature missing or wrong): 401 ``{"reason": "unverified"}`` with the
same text, the detail in the server log only; 413 (body over :data:`~.receiver.MAX_BODY`, checked first);
once verified, 400 (malformed or too old) and 404 (no DAG declares the asset yet); all with nothing
recorded. The routes need no Airflow login (the vendors have none): the signature is the
authentication, checked against the connection's webhook secret before anything is parsed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from airflow_provider_linkmsg.events import LINKUP_SIGNATURE_HEADER, LINKUP_TIMESTAMP_HEADER
from airflow_provider_linkmsg.plugins import receiver
from airflow_provider_linkmsg.webhooks import KONEKSI_SIGNATURE_HEADER

log = logging.getLogger(__name__)

app = FastAPI(
    title="LinkedIn-messaging webhooks (airflow-provider-linkmsg)",
    description="Koneksi completion and LinkupAPI message_received webhooks, recorded as Airflow asset events.",
)


async def _body(request: Request) -> bytes:
    """The raw body, refused (413) past :data:`receiver.MAX_BODY` without reading the rest."""
    declared = request.headers.get("content-length")
    if declared and (not declared.isdigit() or int(declared) > receiver.MAX_BODY):
        raise receiver.Refused("too_large", f"body of {declared} bytes; the limit is {receiver.MAX_BODY}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > receiver.MAX_BODY:
            raise receiver.Refused("too_large", f"body over {receiver.MAX_BODY} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _verify_new(verify: Callable[[], receiver.Delivery]) -> tuple[receiver.Delivery, bool]:
    """The verified delivery and whether it is a known duplicate (in a worker thread: DB reads)."""
    delivery = verify()
    return delivery, receiver.is_duplicate(delivery)


async def _process(verify: Callable[[], receiver.Delivery]) -> dict[str, object]:
    """
    Verify, skip a known duplicate, enrich, record. The DB work runs in worker threads; the Koneksi campaign
    lookup is awaited without holding one (at most ``receiver.CAMPAIGN_LOOKUP_TIMEOUT`` seconds).
    """
    delivery, duplicate = await run_in_threadpool(_verify_new, verify)
    if duplicate:
        return {"recorded": False, "duplicate": True, "delivery_id": delivery.delivery_id}
    if delivery.vendor == "koneksi":
        await receiver.add_koneksi_campaign(delivery)
    recorded = await run_in_threadpool(receiver.record, delivery)
    return {"recorded": recorded, "duplicate": not recorded, "delivery_id": delivery.delivery_id}


def _redacted(exc: Exception) -> str:
    """The refusal's detail through Airflow's secrets masker (for the server log)."""
    from airflow_provider_linkmsg.hooks.transport.redact import _airflow_redact

    return _airflow_redact(str(exc))


async def _answer(vendor: str, conn_id: str, request: Request, verify: Callable[[bytes], receiver.Delivery]):
    try:
        body = await _body(request)
        result = await _process(lambda: verify(body))
    except receiver.Refused as exc:
        log.warning("%s webhook for %r refused (%s): %s", vendor, conn_id, exc.reason, _redacted(exc))
        if exc.reason in receiver.UNVERIFIED:  # one answer: no oracle of connections, types or secrets
            return JSONResponse(
                {"recorded": False, "reason": "unverified", "error": receiver.UNVERIFIED_TEXT}, 401
            )
        return JSONResponse({"recorded": False, "reason": exc.reason, "error": str(exc)}, exc.status)
    except Exception:
        log.exception("%s webhook for %s could not be recorded; the vendor will retry", vendor, conn_id)
        return JSONResponse({"recorded": False, "reason": "error"}, 503)
    return JSONResponse(result, 200)


@app.post("/webhooks/koneksi/{conn_id}")
async def koneksi_completion(conn_id: str, request: Request):
    """Koneksi's completion notification, signed with ``koneksi-signature``."""
    signature = request.headers.get(KONEKSI_SIGNATURE_HEADER)
    return await _answer(
        "koneksi", conn_id, request, lambda body: receiver.verify_koneksi(conn_id, body, signature)
    )


@app.post("/webhooks/linkup/{conn_id}")
async def linkup_message_received(conn_id: str, request: Request):
    """LinkupAPI's ``message_received``, signed with ``X-Linkup-Timestamp`` and ``X-Linkup-Signature``."""
    timestamp = request.headers.get(LINKUP_TIMESTAMP_HEADER)
    signature = request.headers.get(LINKUP_SIGNATURE_HEADER)
    return await _answer(
        "linkup",
        conn_id,
        request,
        lambda body: receiver.verify_linkup(conn_id, body, timestamp, signature),
    )
