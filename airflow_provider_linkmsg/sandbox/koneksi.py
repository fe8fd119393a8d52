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
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import re
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_linkmsg.sandbox.core import (
    BadJson,
    Request,
    Response,
    Route,
    VendorApp,
    on_loopback,
    reply,
)

ALLOWED_TYPES = ("connection_request", "first_follow_up", "share_material", "hiring_activity")
REQUIRED_STRINGS = (
    "completion_notification_url",
    "automation_tool_customer_id",
    "automation_tool_campaign_id",
    "automation_tool_campaign_name",
    "proposition_company_name",
    "proposition_company_url",
)
LEAD_REQUIRED = ("first_name", "lead_company", "external_prospect_id", "linkedin")
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", re.IGNORECASE)
SIGNATURE_HEADER = "koneksi-signature"
START_HEADER = "Koneksi-Start-Messages-Api-Key"
GET_HEADER = "Koneksi-Get-Messages-Api-Key"

NO_CREDITS = (
    "Not enough credits remaining to complete this request. Please upgrade your plan or purchase a bundle."
)
IN_PROGRESS_MESSAGE = (
    "Message generation is still in progress. Data shown is partial. "
    "Please wait for webhook notification or check again later."
)
IN_PROGRESS_REASON = (
    "Message generation is still in progress. "
    "The failed messages count will be available once generation is complete."
)
COMPLETE_MESSAGE = "Message generation is complete."
REASONS = {"research": "relevant research information not found", "no_hiring": "no hiring activity"}

#: seed 001's documented 202 example, served verbatim for its request id
SEED_001_ID = "550e8400-e29b-41d4-a716-446655440000"
SEED_001_BODY: dict[str, Any] = {
    "metadata": {
        "request_message_generation_api_request_secure_request_id": SEED_001_ID,
        "retrieve_messages_api_request_secure_request_id": "660e8400-e29b-41d4-a716-446655440001",
        "generation_status": "in_progress",
        "status_message": IN_PROGRESS_MESSAGE,
        "requested_message_count": 10,
        "generated_message_count": 3,
        "failed_messages_count": None,
        "failed_messages_reason": IN_PROGRESS_REASON,
    },
    "account": {"automation_tool_customer_id": "customer_12345"},
    "campaign": {
        "automation_tool_campaign_id": "campaign_67890",
        "automation_tool_campaign_name": "Campaign 1 - North America",
        "message_sequence": [
            {"step": 1, "messageType": "connection_request"},
            {"step": 2, "messageType": "first_follow_up"},
        ],
        "leads_data": [
            {
                "external_prospect_id": "lead_001",
                "linkedin": "https://linkedin.com/in/john-doe",
                "outreach_message": "Hi John, I noticed your work at Acme Corp...",
                "first_follow_up_message": None,
            },
            {
                "external_prospect_id": "lead_002",
                "linkedin": "https://linkedin.com/in/jane-smith",
                "outreach_message": None,
                "first_follow_up_message": None,
            },
        ],
    },
}

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
_OPENERS = ["I came across", "I was reading about", "I noticed", "a colleague pointed me to"]
_HOOKS = ["the growth of your team", "your recent launch", "how you scale outreach", "your work on data"]


def field_name(message_type: str) -> str:
    """The ``leads_data`` field of a message type (``connection_request`` is ``outreach_message``)."""
    return "outreach_message" if message_type == "connection_request" else f"{message_type}_message"


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _is_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value.strip())
    return parts.scheme in ("http", "https") and bool(parts.netloc)


@dataclass
class _Item:
    """One (lead, message type) pair of a generation and its deterministic outcome."""

    lead_id: str
    message_type: str
    step: int
    text: str | None  # None: it fails
    reason: str | None = None
    reused: bool = False  # an earlier request generated this pair: served at once, not charged
    done: bool = False


@dataclass
class _Generation:
    request_id: str
    account: str
    body: dict[str, Any]
    items: list[_Item]
    created: float  # sandbox.elapsed() at creation
    no_job_posts: set[str] = field(default_factory=set)
    polls: int = 0
    complete: bool = False
    webhook_started: bool = False


class KoneksiApp(VendorApp):
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
        self.generations: dict[str, _Generation] = {}
        self.by_body: dict[tuple[str, str], str] = {}
        self.pairs: dict[tuple[str, str, str], _Item] = {}  # (account, lead id, type) -> first outcome
        self.sample_leads = self._sample_leads(int(self.options.get("leads", 5)))
        self._retrieves = 0

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
                "created_at": _iso(self.sandbox.now()),
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
        generation = _Generation(request_id, account, body, items, self.sandbox.elapsed())
        generation.no_job_posts = {i.lead_id for i in items if i.reason == REASONS["no_hiring"]}
        for item in items:
            self.pairs.setdefault((account, item.lead_id, item.message_type), item)
        self.generations[request_id] = generation
        self.by_body[(account, fingerprint)] = request_id
        self.sandbox.count("generations", self.name)
        self._refresh(generation)
        self._schedule(generation)
        return reply(200, {"secure_request_id": request_id})

    def allowed_types(self) -> tuple[str, ...]:
        extra = list(self.options.get("extra_message_types", []))
        if self.options.get("accept_stage_ambition"):
            extra.append("stage_ambition")
        return (*ALLOWED_TYPES, *extra)

    def validate(self, body: Mapping[str, Any]) -> list[str]:
        """Every problem of a generation request, in the contract's order (§1.8)."""
        errors = [
            f"{f} is required but was missing or blank" for f in REQUIRED_STRINGS if _blank(body.get(f))
        ]
        for f in ("completion_notification_url", "proposition_company_url", "material_link"):
            if not _blank(body.get(f)) and not _is_url(body.get(f)):
                errors.append(f"{f} must be a valid HTTP or HTTPS URL")
        sequence = body.get("message_sequence")
        types: list[str] = []
        if not isinstance(sequence, list):
            errors.append("message_sequence must be an array")
        elif not sequence:
            errors.append("message_sequence must contain at least one step")
        else:
            allowed = self.allowed_types()
            steps = []
            for i, item in enumerate(sequence):
                item = item if isinstance(item, dict) else {}
                step, kind = item.get("step"), item.get("messageType")
                if isinstance(step, bool) or not isinstance(step, int) or step < 1:
                    errors.append(f"message_sequence[{i}].step must be an integer starting at 1")
                else:
                    steps.append(step)
                if kind not in allowed:
                    errors.append(f"message_sequence[{i}].messageType must be one of {', '.join(allowed)}")
                elif kind in types:
                    errors.append(f"message_sequence[{i}].messageType {kind} appears more than once")
                else:
                    types.append(kind)
            if len(steps) == len(sequence) and sorted(steps) != list(range(1, len(steps) + 1)):
                errors.append("message_sequence steps must be consecutive integers starting at 1")
        if "share_material" in types and _blank(body.get("material_link")):
            errors.append("material_link is required but was missing or blank")
        if "hiring_activity" in types and _blank(body.get("hiring_location")):
            errors.append("hiring_location is required but was missing or blank")
        leads = body.get("lead_data")
        if not isinstance(leads, list) or not leads:
            errors.append("lead_data must contain at least one lead")
            return errors
        seen: dict[str, int] = {}
        for i, lead in enumerate(leads):
            if not isinstance(lead, dict):
                errors.append(f"lead_data[{i}] must be an object")
                continue
            errors += [
                f"lead_data[{i}].{k} is required but was missing or blank"
                for k in LEAD_REQUIRED
                if _blank(lead.get(k))
            ]
            lead_id = lead.get("external_prospect_id")
            if isinstance(lead_id, str) and lead_id in seen:
                errors.append(f"lead_data[{i}].external_prospect_id duplicates lead_data[{seen[lead_id]}]")
            elif isinstance(lead_id, str):
                seen[lead_id] = i
        return errors

    def _plan(self, account: str, body: Mapping[str, Any]) -> list[_Item]:
        """The pairs of a valid request with their outcomes (decided now, deterministically)."""
        sequence = sorted(body["message_sequence"], key=lambda s: s["step"])
        types = [s["messageType"] for s in sequence]
        share = float(self.options.get("failure_share", 0.2))
        forced = self.options.get("fail_leads", {})
        items = []
        for lead in body["lead_data"]:
            lead_id = str(lead["external_prospect_id"])
            draw = random.Random(f"{self.sandbox.seed}:koneksi:fail:{lead_id}")
            kind = forced.get(lead_id)
            if kind is None and draw.random() < share:
                kind = "no_hiring" if "hiring_activity" in types and draw.random() < 0.5 else "research"
            for step in sequence:
                mtype = step["messageType"]
                earlier = self.pairs.get((account, lead_id, mtype))
                if earlier is not None:
                    items.append(
                        _Item(lead_id, mtype, step["step"], earlier.text, earlier.reason, reused=True)
                    )
                    continue
                fails = kind == "research" or (kind == "no_hiring" and mtype == "hiring_activity")
                text = None if fails else self._text(body, lead, mtype)
                items.append(_Item(lead_id, mtype, step["step"], text, REASONS[kind] if fails else None))
        return items

    def _text(self, body: Mapping[str, Any], lead: Mapping[str, Any], mtype: str) -> str:
        rng = random.Random(f"{self.sandbox.seed}:koneksi:text:{lead['external_prospect_id']}:{mtype}")
        first, company = str(lead["first_name"]).strip(), str(lead["lead_company"]).strip()
        product = body["proposition_company_name"]
        opener, hook = rng.choice(_OPENERS), rng.choice(_HOOKS)
        if mtype == "connection_request":
            text = f"Hi {first}, {opener} {hook} at {company}. Would be great to connect!"
            return text[:300]
        if mtype == "first_follow_up":
            text = f"Thanks for connecting, {first}! {product} helps teams like {company} with {hook}."
        elif mtype == "share_material":
            text = f"{first}, {opener} {hook} and thought this could help: {body['material_link']}"
        elif mtype == "hiring_activity":
            text = f"{first}, I saw {company} is hiring in {body['hiring_location']}; {product} can help."
        else:
            text = f"{first}, a note about {hook} at {company} ({mtype.replace('_', ' ')})."
        if not _blank(body.get("signoff_name")):
            text += f" Best, {body['signoff_name']}"
        return text

    def _reserved(self, account: str) -> int:
        """Credits held for pairs still being generated."""
        return sum(
            1
            for g in self.generations.values()
            if g.account == account
            for i in g.items
            if not i.done and not i.reused
        )

    # ---- async progress ---------------------------------------------------------------------------------
    def _refresh(self, generation: _Generation) -> None:
        """Move a generation forward to where the clock (or the poll count) says it is."""
        if generation.complete:
            return
        for item in generation.items:
            item.done = item.done or item.reused
        fresh = [i for i in generation.items if not i.reused]
        polls = self.options.get("polls_until_complete")
        if polls is not None:
            target = (
                len(fresh) if generation.polls >= int(polls) else len(fresh) * generation.polls // int(polls)
            )
        else:
            spm = float(self.options.get("seconds_per_message", 0.5))
            elapsed = self.sandbox.elapsed() - generation.created
            target = len(fresh) if spm <= 0 else min(len(fresh), int(elapsed / spm))
        for item in fresh[:target]:
            if not item.done:
                item.done = True
                if item.text is not None:
                    self.credits[generation.account] -= 1
                    self.spend(1)
                    self.sandbox.count("messages", "koneksi generated")
                else:
                    self.sandbox.count("messages", "koneksi failed")
        if all(i.done for i in generation.items):
            generation.complete = True
            self._start_webhook(generation)

    def _schedule(self, generation: _Generation) -> None:
        """In time mode, look at the generation again when it should be complete (then the webhook goes)."""
        if generation.complete or self.options.get("polls_until_complete") is not None:
            return
        spm = float(self.options.get("seconds_per_message", 0.5))
        fresh = sum(1 for i in generation.items if not i.reused)
        due = generation.created + fresh * spm - self.sandbox.elapsed()
        timer = threading.Timer(max(0.02, due + 0.01), self._tick, (generation.request_id,))
        timer.daemon = True
        timer.start()

    def _tick(self, request_id: str) -> None:
        with self.lock:
            generation = self.generations.get(request_id)
            if generation is not None:
                self._refresh(generation)
                self._schedule(generation)

    def advance(self, body: Mapping[str, Any]) -> Any:
        completed = []
        for generation in self.generations.values():
            was = generation.complete
            self._refresh(generation)
            if generation.complete and not was:
                completed.append(generation.request_id)
        return {"completed": completed}

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
        if _blank(request_id):
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

    def _body(self, g: _Generation) -> dict[str, Any]:
        self._retrieves += 1
        retrieve_id = uuid.UUID(
            int=random.Random(f"{self.sandbox.seed}:retrieve:{self._retrieves}").getrandbits(128), version=4
        )
        generated = sum(1 for i in g.items if i.done and i.text is not None)
        failed = [i for i in g.items if i.text is None]
        metadata = {
            "request_message_generation_api_request_secure_request_id": g.request_id,
            "retrieve_messages_api_request_secure_request_id": str(retrieve_id),
            "generation_status": "complete" if g.complete else "in_progress",
            "status_message": COMPLETE_MESSAGE if g.complete else IN_PROGRESS_MESSAGE,
            "requested_message_count": len(g.items),
            "generated_message_count": generated,
            "failed_messages_count": len(failed) if g.complete else None,
            "failed_messages_reason": (
                ("; ".join(sorted({str(i.reason) for i in failed})) or None)
                if g.complete
                else IN_PROGRESS_REASON
            ),
        }
        by_lead: dict[str, list[_Item]] = {}
        for item in g.items:
            by_lead.setdefault(item.lead_id, []).append(item)
        leads_data = []
        for lead in g.body["lead_data"]:
            lead_id = str(lead["external_prospect_id"])
            row: dict[str, Any] = {"external_prospect_id": lead_id, "linkedin": lead["linkedin"]}
            for item in by_lead[lead_id]:
                row[field_name(item.message_type)] = item.text if item.done else None
            if lead_id in g.no_job_posts and g.complete:
                row["no_job_posts"] = True
            leads_data.append(row)
        return {
            "metadata": metadata,
            "account": {"automation_tool_customer_id": g.body["automation_tool_customer_id"]},
            "campaign": {
                "automation_tool_campaign_id": g.body["automation_tool_campaign_id"],
                "automation_tool_campaign_name": g.body["automation_tool_campaign_name"],
                "message_sequence": g.body["message_sequence"],
                "leads_data": leads_data,
            },
        }

    # ---- the completion webhook -------------------------------------------------------------------------
    def webhook_secret(self, account: str) -> str | None:
        return self.options.get("webhook_secret") if account == "main" else None

    def _start_webhook(self, generation: _Generation) -> None:
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
            "completed_at": _iso(now),
            "requested_messages_count": len(generation.items),
            "generated_messages_count": generated,
            "webhook_triggered_at": _iso(now),
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
