"""
Koneksi / Upscale Outreach in the sandbox, under ``/koneksi/api/v2`` (seeds 000, 001; contract part 1, §1.8).

* ``POST /messages/request_message_generation``: full validation (every problem collected into one 422
  body, texts joined by single spaces), credits (402 when short), de-duplication of an identical request
  (the same ``secure_request_id`` back, nothing generated) and of (``external_prospect_id``,
  ``messageType``) pairs that an earlier request of the account already generated (reused, not charged).
* ``GET /messages/retrieve_messages``: 202 with partial results while generation runs, 200 when complete;
  failing leads are counted in ``failed_messages_count`` and not charged. Malformed UUID: 422; unknown
  id or another account's id: 404 ``{"error": "Not found"}``.
* Legacy aliases ``POST /request_message_generation`` and ``GET /retrieve_messages`` (query or JSON body).
* Auth: the current ``Api-Key`` header, or Koneksi's legacy pair ``Koneksi-Start-Messages-Api-Key``
  (generation) / ``Koneksi-Get-Messages-Api-Key`` (retrieval).
* The completion webhook, POSTed to ``completion_notification_url`` from a background thread once the
  batch completes. **Assumption** (the vendor's header and algorithm were not captured): the signature
  is the hex HMAC-SHA256 of the raw body keyed with the account's webhook secret, in the
  ``koneksi-signature`` header. Non-2xx answers are retried on a compressed schedule (0.2 s, 0.4 s ...
  instead of the vendor's 16 s ... 21 days); an account without a secret gets no webhook, as documented.

Options (``Sandbox(sizes={"koneksi": {...}})`` or ``PUT /_sandbox/config``):

``seconds_per_message`` (0.5) or ``polls_until_complete`` (unset): generation speed, by time or by
retrieve calls; ``failure_share`` (0.2): share of leads that fail; ``fail_leads`` ({lead id: "research" |
"no_hiring"}): forced failures; ``credits`` (10000); ``webhook_secret``; ``webhook_retry_delays``;
``revoked_keys``; ``accept_stage_ambition`` (false); ``extra_message_types`` ([]); ``leads`` (5): size of
the sample campaign in :meth:`KoneksiApp.truth`.

The modules: :mod:`.koneksi_validation` (the vendor's checks of a request), :mod:`.koneksi_generation`
(jobs, progress, the retrieve body), :mod:`.koneksi_webhook` (the completion webhook); this one
assembles them with auth, credits, the routes and the truth.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import Any

from airflow_provider_linkmsg.sandbox.core import BadJson, Request, Response, Route, VendorApp, reply
from airflow_provider_linkmsg.sandbox.koneksi_generation import (
    REASONS,
    SEED_001_BODY,
    SEED_001_ID,
    Generation,
    GenerationItem,
    KoneksiGenerations,
    Ticks,
    iso,
)
from airflow_provider_linkmsg.sandbox.koneksi_validation import UUID4, KoneksiValidation, blank
from airflow_provider_linkmsg.sandbox.koneksi_webhook import KoneksiWebhook

__all__ = ["SEED_001_BODY", "SEED_001_ID", "KoneksiApp"]

START_HEADER = "Koneksi-Start-Messages-Api-Key"
GET_HEADER = "Koneksi-Get-Messages-Api-Key"

NO_CREDITS = (
    "Not enough credits remaining to complete this request. Please upgrade your plan or purchase a bundle."
)

_FIRST = ["Ada", "Bram", "Chloé", "Dev", "Elif", "Farah", "Goran", "Hana", "Ines", "Jonas", "Kofi", "Lena"]
_LAST = ["Okafor", "Nilsen", "Moreau", "Patel", "Yildiz", "Haddad", "Kovač", "Sato", "Costa", "Weber"]
_COMPANIES = [
    "Acme Corp",
    "Northwind",
    "Globex",
    "Initech",
    "Umbrella Labs",
    "Hooli",
    "Vandelay",
    "Stark Ind",
]


class KoneksiApp(KoneksiValidation, KoneksiGenerations, KoneksiWebhook, VendorApp):
    name = "koneksi"
    prefix = "/koneksi/api/v2"

    def __init__(self, sandbox) -> None:
        super().__init__(sandbox)
        seed = sandbox.seed
        self.api_key = self.options.get("api_key", f"kon-sandbox-{seed}-key")
        self.get_key = self.options.get("get_messages_api_key", f"kon-sandbox-{seed}-getkey")
        self.other_api_key = self.options.get("other_api_key", f"kon-sandbox-{seed}-other")
        self.options.setdefault("webhook_secret", f"kon-sandbox-{seed}-whsec")
        # two accounts: "main" (both auth styles) and "other" (Api-Key only, no webhook secret)
        self.credits = {"main": float(self.options.get("credits", 10000)), "other": 10000.0}
        self.generations: dict[str, Generation] = {}
        self.by_body: dict[tuple[str, str], str] = {}
        # (account, lead id, type) -> first outcome
        self.pairs: dict[tuple[str, str, str], GenerationItem] = {}
        self.sample_leads = self._sample_leads(int(self.options.get("leads", 5)))
        self._retrieves = 0
        self._ticks = Ticks(self._tick)

    # ---- routes -----------------------------------------------------------------------------------------
    def routes(self) -> list[Route]:
        return [
            Route("GET", "/account", self.account),
            Route("POST", "/messages/request_message_generation", self.request_generation),
            Route("GET", "/messages/retrieve_messages", self.retrieve),
            Route("POST", "/request_message_generation", self.request_generation),
            Route("GET", "/retrieve_messages", self.retrieve),
        ]

    def client_key(self, request: Request) -> str | None:
        return request.header("Api-Key") or request.header(START_HEADER) or request.header(GET_HEADER)

    def _auth(self, request: Request, legacy_header: str) -> tuple[str | None, Response | None]:
        """The caller's account, or the 401 answer. ``Api-Key`` wins; else the route's legacy header."""
        key = request.header("Api-Key")
        valid = {self.api_key: "main", self.other_api_key: "other"}
        if key is None:
            key = request.header(legacy_header)
            legacy_key = self.api_key if legacy_header == START_HEADER else self.get_key
            valid = {legacy_key: "main"}
        if key and key in self.options.get("revoked_keys", []):
            return None, reply(401, {"error": "Unauthorized: API key has been revoked"})
        account = valid.get(key or "")
        if account is None:
            return None, reply(401, {"error": "Unauthorized: Invalid API key"})
        return account, None

    def configure(self, settings: Mapping[str, Any]) -> None:
        super().configure(settings)
        if "credits" in settings:
            self.credits["main"] = float(settings["credits"])

    def account(self, request: Request) -> Response:
        account, denied = self._auth(request, START_HEADER)
        if denied:
            return denied
        return reply(
            200,
            {
                "created_at": iso(self.sandbox.now()),
                "plan_name": "Sandbox",
                "monthly_credits": int(self.credits[account]),
                "monthly_allowance": int(self.options.get("credits", 10000)),
            },
        )

    # ---- POST /messages/request_message_generation ------------------------------------------------------
    def request_generation(self, request: Request) -> Response:
        account, denied = self._auth(request, START_HEADER)
        if denied:
            return denied
        try:
            body = request.json()
        except BadJson:
            return reply(422, {"error": "request body must be a JSON object"})
        if not isinstance(body, dict):
            return reply(422, {"error": "request body must be a JSON object"})
        errors = self.validate(body)
        if errors:
            return reply(422, {"error": " ".join(errors)})
        fingerprint = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        if (earlier := self.by_body.get((account, fingerprint))) is not None:
            self.sandbox.count("duplicate_requests", self.name)
            return reply(200, {"secure_request_id": earlier})
        items = self._plan(account, body)
        new = sum(1 for item in items if not item.reused)
        if self.credits[account] - self._reserved(account) < new:
            return reply(402, {"error": NO_CREDITS})
        request_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        generation = Generation(request_id, account, body, items, self.sandbox.elapsed())
        generation.no_job_posts = {i.lead_id for i in items if i.reason == REASONS["no_hiring"]}
        for item in items:
            self.pairs.setdefault((account, item.lead_id, item.message_type), item)
        self.generations[request_id] = generation
        self.by_body[(account, fingerprint)] = request_id
        self.sandbox.count("generations", self.name)
        self._refresh(generation)
        self._schedule(generation)
        return reply(200, {"secure_request_id": request_id})

    # ---- GET /messages/retrieve_messages ----------------------------------------------------------------
    def retrieve(self, request: Request) -> Response:
        account, denied = self._auth(request, GET_HEADER)
        if denied:
            return denied
        name = "request_message_generation_secure_request_id"
        request_id = request.arg(name)
        if request_id is None and request.body:  # the older version sends a JSON body
            try:
                body = request.json()
            except BadJson:
                body = None
            if isinstance(body, dict):
                request_id = body.get(name) or body.get("secure_request_id")
        if blank(request_id):
            return reply(422, {"error": f"{name} is required but was missing or blank"})
        if not UUID4.match(str(request_id)):
            return reply(422, {"error": f"{name} must be a valid UUID"})
        request_id = str(request_id).lower()
        if request_id == SEED_001_ID and account == "main":
            return reply(202, json.loads(json.dumps(SEED_001_BODY)))
        generation = self.generations.get(request_id)
        if generation is None or generation.account != account:
            return reply(404, {"error": "Not found"})
        generation.polls += 1
        self._refresh(generation)
        return reply(200 if generation.complete else 202, self._body(generation))

    # ---- world, truth, connection -----------------------------------------------------------------------
    def _sample_leads(self, n: int) -> list[dict[str, Any]]:
        leads = []
        for i in range(n):
            first, last = self.rng.choice(_FIRST), self.rng.choice(_LAST)
            slug = f"{first}-{last}-{i}".lower().encode("ascii", "ignore").decode()
            leads.append(
                {
                    "external_prospect_id": f"lead_{i + 1:03d}",
                    "first_name": first,
                    "last_name": last,
                    "lead_company": self.rng.choice(_COMPANIES),
                    "linkedin": f"https://www.linkedin.com/in/{slug}",
                }
            )
        return leads

    def truth(self) -> Any:
        """
        ``leads``: the sample campaign's leads; ``credits_remaining``; ``requests``: per request id, the
        final outcome of every (lead, message type): ``generated`` with its text, or ``failed`` with its
        reason (whatever the progress so far), plus the final counts and the current status.
        """
        requests = {}
        for request_id, g in self.generations.items():
            messages = [
                {
                    "lead_id": i.lead_id,
                    "message_type": i.message_type,
                    "step": i.step,
                    "status": "generated" if i.text is not None else "failed",
                    "text": i.text,
                    "reason": i.reason,
                }
                for i in g.items
            ]
            requests[request_id] = {
                "account": g.account,
                "generation_status": "complete" if g.complete else "in_progress",
                "requested": len(messages),
                "generated": sum(1 for m in messages if m["status"] == "generated"),
                "failed": sum(1 for m in messages if m["status"] == "failed"),
                "messages": messages,
            }
        return {
            "leads": self.sample_leads,
            "credits_remaining": self.credits["main"],
            "webhook_secret": self.options.get("webhook_secret"),
            "requests": requests,
        }

    def connection(self, base_url: str) -> dict[str, Any]:
        return {
            "conn_type": "koneksi",
            "password": self.api_key,
            "extra": {
                "base_url": base_url,
                "auth_style": "api_key",
                "get_messages_api_key": self.get_key,
                "webhook_secret": self.options.get("webhook_secret"),
            },
        }
