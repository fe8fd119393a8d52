"""
LinkupAPI's webhooks in the sandbox (contract §2.4): registration and signed ``message_received`` deliveries.

* ``POST /linkup/v2/webhooks`` ``{"account_id", "url", "events": ["message_received"], "enable_signature"}``
  answers ``data: {"webhook_id", "account_id", "url", "events", "status", "secret"}`` (the secret only
  when ``enable_signature``, shown once); free. ``events`` defaults to ``["all"]``; values
  ``message_received``, ``accepted_invitation``, ``all``. ``GET /linkup/v2/webhooks`` lists them (no
  secret), ``DELETE /linkup/v2/webhooks/{id}`` removes one.
* When messages arrive (``POST /_sandbox/advance``), each received (inbound) message is POSTed as JSON to
  every webhook of its account that listens to it: ``{"event": "message_received", "event_id",
  "account_id", "created_at", "data": {conversation_id, entity_urn, text, timestamp, sender}}`` with
  ``X-Linkup-Timestamp: <unix s>`` and, when signed, ``X-Linkup-Signature: v1=<hex HMAC-SHA256 of
  "<ts>.<raw body>">``. Timestamps are real time (a receiver's five-minute check must accept them).
  Deliveries go from a background thread, retried on non-2xx after ``webhook_retry_delays`` (option;
  ``[0.2, 0.4, 0.8]`` s). Each attempt is kept in :attr:`LinkupWebhooks.sent` (tests replay them).

Counters: ``webhooks``: ``linkup attempts``, ``linkup delivered``, ``linkup gave up``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_linkmsg.sandbox.core import on_loopback

if TYPE_CHECKING:
    from airflow_provider_linkmsg.sandbox.linkup import LinkupApp

EVENTS = ("message_received", "accepted_invitation", "all")


class LinkupWebhooks:
    """The webhooks registered with one sandbox LinkupAPI, and their deliveries."""

    def __init__(self, app: LinkupApp) -> None:
        self.app = app
        self.hooks: dict[str, dict[str, Any]] = {}
        self.sent: list[dict[str, Any]] = []
        self.created = 0
        self._lock = threading.Lock()

    # ---- routes ---------------------------------------------------------------------------------------
    def create(self, body: Any) -> tuple[dict[str, Any] | None, str]:
        """Register a webhook; ``(data, "")`` or ``(None, error message)``."""
        if not isinstance(body, dict):
            return None, "the body must be a JSON object"
        account = self.app.world.account(str(body.get("account_id") or ""))
        if account is None:
            return None, "account_id is unknown or not yours"
        url = body.get("url")
        if url is not None and (not isinstance(url, str) or not url.startswith(("https://", "http://"))):
            return None, "url must be an https URL"
        events = body.get("events", ["all"])
        if not isinstance(events, list) or not events or any(e not in EVENTS for e in events):
            return None, f"events must be a non-empty list of {', '.join(EVENTS)}"
        signed = body.get("enable_signature", False)
        if not isinstance(signed, bool):
            return None, "enable_signature must be true or false"
        # ids and secrets from a counter, not the world's rng: registering leaves the world's draws alone
        self.created += 1
        token = hashlib.sha256(f"{self.app.sandbox.seed}:{self.created}".encode()).hexdigest()
        webhook_id = f"wh_{token[:12]}"
        hook = {
            "webhook_id": webhook_id,
            "account_id": account.id,
            "url": url,
            "events": list(events),
            "status": "active",
            "mode": "custom" if url else "hosted",
            "secret": f"whsec_{token[12:44]}" if signed and url else None,
        }
        self.hooks[webhook_id] = hook
        return dict(hook), ""

    def listing(self) -> list[dict[str, Any]]:
        return [{k: v for k, v in h.items() if k != "secret"} for h in self.hooks.values()]

    def delete(self, webhook_id: str) -> bool:
        return self.hooks.pop(webhook_id, None) is not None

    # ---- deliveries -----------------------------------------------------------------------------------
    def announce(self, changed: list[str], new_ids: list[str]) -> int:
        """POST ``message_received`` for each new inbound message of ``changed``; returns how many go out."""
        new = set(new_ids)
        jobs = []
        for conversation_id in changed:
            conversation = self.app.world.by_id[conversation_id]
            targets = [
                h
                for h in self.hooks.values()
                if h["account_id"] == conversation.account.id
                and h["url"]
                and {"message_received", "all"} & set(h["events"])
            ]
            for message in conversation.messages:
                if message.id not in new or message.outbound:
                    continue
                data = {"conversation_id": conversation.id, **self.app._message_json(conversation, message)}
                event_id = "evt_" + hashlib.sha256(message.id.encode()).hexdigest()[:24]
                for hook in targets:
                    payload = {
                        "event": "message_received",
                        "event_id": event_id,
                        "webhook_id": hook["webhook_id"],
                        "account_id": hook["account_id"],
                        "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "data": data,
                    }
                    jobs.append(
                        (hook["url"], json.dumps(payload, separators=(",", ":")).encode(), hook["secret"])
                    )
        if jobs:
            threading.Thread(
                target=self._deliver_all, args=(jobs,), name="linkup-webhooks", daemon=True
            ).start()
        return len(jobs)

    def _deliver_all(self, jobs: list[tuple[str, bytes, str | None]]) -> None:
        for url, raw, secret in jobs:
            self._deliver(url, raw, secret)

    def _deliver(self, url: str, raw: bytes, secret: str | None) -> None:
        if not on_loopback(url):  # offline: never a request off this machine
            self.app.sandbox.count("webhooks", "linkup not sent (not on loopback)")
            return
        delays = [float(d) for d in self.app.options.get("webhook_retry_delays", [0.2, 0.4, 0.8])]
        for attempt, delay in enumerate([0.0, *delays]):
            time.sleep(delay)
            timestamp = str(int(time.time()))
            headers = {"Content-Type": "application/json", "X-Linkup-Timestamp": timestamp}
            if secret:
                digest = hmac.new(
                    secret.encode(), timestamp.encode() + b"." + raw, hashlib.sha256
                ).hexdigest()
                headers["X-Linkup-Signature"] = f"v1={digest}"
            self.app.sandbox.count("webhooks", "linkup attempts")
            request = urllib.request.Request(url, data=raw, method="POST", headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=5.0) as response:
                    status = response.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            except (OSError, ValueError):
                status = 0
            with self._lock:
                self.sent.append({"url": url, "body": raw, "headers": headers, "status": status})
            if 200 <= status < 300:
                self.app.sandbox.count("webhooks", "linkup delivered")
                return
            if attempt == len(delays):
                self.app.sandbox.count("webhooks", "linkup gave up")
