"""
Koneksi in the sandbox: the completion webhook.

**Assumption** (the vendor's header and algorithm were not captured): the signature is the hex
HMAC-SHA256 of the raw body keyed with the account's webhook secret, in the ``koneksi-signature`` header.
Delivery runs on a background thread; non-2xx answers are retried on ``webhook_retry_delays``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

from airflow_provider_linkmsg.sandbox.core import on_loopback
from airflow_provider_linkmsg.sandbox.koneksi_generation import Generation, iso

if TYPE_CHECKING:
    from airflow_provider_linkmsg.sandbox.core import SandboxState

SIGNATURE_HEADER = "koneksi-signature"


class KoneksiWebhook:
    """Signs and delivers a complete generation's notification, with retries; counted under ``webhooks``."""

    sandbox: SandboxState
    options: dict[str, Any]

    def webhook_secret(self, account: str) -> str | None:
        return self.options.get("webhook_secret") if account == "main" else None

    def _start_webhook(self, generation: Generation) -> None:
        if generation.webhook_started:
            return
        generation.webhook_started = True
        secret = self.webhook_secret(generation.account)
        if not secret:
            self.sandbox.count("webhooks", "koneksi skipped (no secret)")
            return
        generated = sum(1 for i in generation.items if i.text is not None)
        now = time.time()  # delivery times are real: a receiver's max-age check must accept them
        payload = {
            "secure_request_id": generation.request_id,
            "status": "complete",
            "completed_at": iso(now),
            "requested_messages_count": len(generation.items),
            "generated_messages_count": generated,
            "webhook_triggered_at": iso(now),
        }
        raw = json.dumps(payload, separators=(",", ":")).encode()
        signature = hmac.new(str(secret).encode(), raw, hashlib.sha256).hexdigest()
        url = generation.body["completion_notification_url"]
        if not on_loopback(url):  # offline: never a request off this machine
            self.sandbox.count("webhooks", "koneksi not sent (not on loopback)")
            return
        delays = [float(d) for d in self.options.get("webhook_retry_delays", [0.2, 0.4, 0.8, 1.6, 3.2])]
        thread = threading.Thread(
            target=self._deliver, args=(url, raw, signature, delays), name="koneksi-webhook", daemon=True
        )
        thread.start()

    def _deliver(self, url: str, raw: bytes, signature: str, delays: list[float]) -> None:
        timeout = float(self.options.get("webhook_timeout", 2.0))
        for attempt, delay in enumerate([0.0, *delays]):
            time.sleep(delay)
            self.sandbox.count("webhooks", "koneksi attempts")
            req = urllib.request.Request(
                url,
                data=raw,
                method="POST",
                headers={"Content-Type": "application/json", SIGNATURE_HEADER: signature},
            )
            try:
                with urllib.request.urlopen(req, timeout=timeout) as response:
                    status = response.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            except (OSError, ValueError):
                status = 0
            if 200 <= status < 300:
                self.sandbox.count("webhooks", "koneksi delivered")
                return
            if attempt == len(delays):
                self.sandbox.count("webhooks", "koneksi gave up")
