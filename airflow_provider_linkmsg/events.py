"""
Vendor events as Airflow asset events: the assets, the webhook URLs and LinkupAPI's signature scheme.

The provider's API-server plugin (:mod:`airflow_provider_linkmsg.plugins.webhooks`) receives the vendors'
webhooks and records an asset event on one of these assets; a DAG scheduled on the asset runs at once:

* :func:`koneksi_completion_asset`: a Koneksi generation finished (``secure_request_id`` and the campaign
  in the event's ``extra``). The request operator points ``completion_notification_url`` at the plugin
  (:func:`koneksi_completion_url`).
* :func:`linkup_message_asset`: LinkupAPI's ``message_received`` webhook for an account (``account_id`` in
  the ``extra``). Register the webhook with :meth:`LinkupHook.create_webhook
  <airflow_provider_linkmsg.hooks.linkup.LinkupHook.create_webhook>`.

One asset per connection: the connection holds the key and the webhook secret that signs its deliveries.
This module imports nothing heavy, so DAG files and operators can use it.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Asset

#: where the plugin's FastAPI app is mounted on the API server
URL_PREFIX = "/linkmsg"
#: LinkupAPI's webhook headers (docs.linkupapi.com, webhooks/signature)
LINKUP_TIMESTAMP_HEADER = "X-Linkup-Timestamp"
LINKUP_SIGNATURE_HEADER = "X-Linkup-Signature"
#: LinkupAPI rejects deliveries older than about five minutes; so do we
LINKUP_MAX_AGE = 300.0
#: seconds a LinkupAPI timestamp may run ahead of our clock
LINKUP_FUTURE_SKEW = 60.0


def koneksi_completion_uri(conn_id: str = "koneksi_default") -> str:
    """The URI of the asset of finished generations of one Koneksi connection."""
    return f"x-linkmsg-koneksi://{conn_id}/completions"


def linkup_message_uri(conn_id: str = "linkup_default") -> str:
    """The URI of the asset of LinkupAPI ``message_received`` events of one connection (every account)."""
    return f"x-linkmsg-linkup://{conn_id}/messages"


def koneksi_completion_asset(conn_id: str = "koneksi_default") -> Asset:
    """The asset a Koneksi completion webhook updates; schedule a DAG on it: ``schedule=[asset]``."""
    return _asset(koneksi_completion_uri(conn_id))


def linkup_message_asset(conn_id: str = "linkup_default") -> Asset:
    """The asset a LinkupAPI ``message_received`` webhook updates (``account_id`` in the event's extra)."""
    return _asset(linkup_message_uri(conn_id))


def _asset(uri: str) -> Asset:
    """``Asset(name=uri, uri=uri, group="linkmsg")``; on Airflow 2 a ``Dataset``, which has only the URI."""
    from airflow.providers.common.compat.sdk import Asset
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    if AIRFLOW_V_3_0_PLUS:
        return Asset(name=uri, uri=uri, group="linkmsg")
    return Asset(uri)


def webhook_path(vendor: str, conn_id: str) -> str:
    """The plugin's path for a vendor's webhooks of one connection, e.g. ``/linkmsg/webhooks/koneksi/koneksi_default``."""
    return f"{URL_PREFIX}/webhooks/{vendor}/{conn_id}"


def webhook_url(base_url: str, vendor: str, conn_id: str) -> str:
    """
    The public URL of the plugin's endpoint.

    :param base_url: where the vendor reaches the Airflow API server, e.g. ``https://airflow.example.com``.
    """
    return base_url.rstrip("/") + webhook_path(vendor, conn_id)


def koneksi_completion_url(conn_id: str, configured: str | None = None) -> str | None:
    """
    The ``completion_notification_url`` a request should carry when the task gives none.

    ``configured`` (the Koneksi connection's extra ``completion_notification_url``) if set, else the
    plugin's endpoint under ``[linkmsg] webhook_base_url`` (``AIRFLOW__LINKMSG__WEBHOOK_BASE_URL``), else
    ``None``.

    :param conn_id: the Koneksi connection id (the endpoint names it).
    :param configured: the connection's own URL, if any.
    """
    if configured:
        return str(configured)
    from airflow.providers.common.compat.sdk import conf

    base = conf.get("linkmsg", "webhook_base_url", fallback=None)
    return webhook_url(base, "koneksi", conn_id) if base else None


def sign_linkup_payload(body: bytes, secret: str, timestamp: int | str) -> str:
    """LinkupAPI's ``X-Linkup-Signature``: ``v1=`` + hex HMAC-SHA256 of ``"<timestamp>.<raw body>"``."""
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def check_linkup_signature(
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    secrets: list[str],
    *,
    max_age: float = LINKUP_MAX_AGE,
    now: float | None = None,
) -> tuple[bool, str]:
    """
    Check a LinkupAPI delivery; ``(True, "")`` or ``(False, reason)``.

    Reasons: ``missing_signature``, ``bad_signature`` (no secret signs it), ``too_old`` (the signed
    timestamp is more than ``max_age`` seconds old or too far ahead). The signature is compared in constant
    time, against each candidate secret (an account's secret, or the connection's), before anything else.

    :param body: the raw request body.
    :param timestamp: the ``X-Linkup-Timestamp`` header (unix seconds).
    :param signature: the ``X-Linkup-Signature`` header; several ``v1=`` values separated by commas are
        accepted (secret rotation).
    :param secrets: the candidate webhook secrets.
    """
    if not timestamp or not signature:
        return False, "missing_signature"
    given = [part.strip()[3:] for part in signature.split(",") if part.strip().startswith("v1=")]
    expected = [sign_linkup_payload(body, s, timestamp.strip())[3:] for s in secrets if s]
    if not any(hmac.compare_digest(g.encode(), e.encode()) for g in given for e in expected):
        return False, "bad_signature"
    if not timestamp.strip().isdigit():
        return False, "bad_signature"
    age = (time.time() if now is None else now) - int(timestamp)
    if age > max_age or age < -LINKUP_FUTURE_SKEW:
        return False, "too_old"
    return True, ""
