"""
Koneksi in the sandbox: generation jobs and their progress.

A request's (lead, message type) pairs and their outcomes are decided when it is accepted
(:meth:`KoneksiGenerations._plan`); the clock or the retrieve count then moves them to done, charging a
credit per generated message; a complete job starts the completion webhook. :meth:`KoneksiGenerations._body`
is the retrieve answer of a job, partial (202) or complete (200).
"""

from __future__ import annotations

import heapq
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_linkmsg.sandbox.koneksi_validation import blank

if TYPE_CHECKING:
    from airflow_provider_linkmsg.sandbox.core import SandboxState

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

_OPENERS = ["I came across", "I was reading about", "I noticed", "a colleague pointed me to"]
_HOOKS = ["the growth of your team", "your recent launch", "how you scale outreach", "your work on data"]


def field_name(message_type: str) -> str:
    """The ``leads_data`` field of a message type (``connection_request`` is ``outreach_message``)."""
    return "outreach_message" if message_type == "connection_request" else f"{message_type}_message"


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class GenerationItem:
    """One (lead, message type) pair of a generation and its deterministic outcome."""

    lead_id: str
    message_type: str
    step: int
    text: str | None  # None: it fails
    reason: str | None = None
    reused: bool = False  # an earlier request generated this pair: served at once, not charged
    done: bool = False


@dataclass
class Generation:
    request_id: str
    account: str
    body: dict[str, Any]
    items: list[GenerationItem]
    created: float  # sandbox.elapsed() at creation
    no_job_posts: set[str] = field(default_factory=set)
    polls: int = 0
    complete: bool = False
    webhook_started: bool = False


class Ticks:
    """
    ``callback(request_id)`` when each generation is due, from one thread for all (a timer thread each made
    10,000 threads for the triggerer bench's 10,000 jobs); the thread ends when nothing is left to do.
    """

    def __init__(self, callback: Callable[[str], None]) -> None:
        self._callback = callback
        self._due: list[tuple[float, str]] = []  # a heap of (monotonic time, request id)
        self._ready = threading.Condition()
        self._running = False

    def add(self, seconds: float, request_id: str) -> None:
        with self._ready:
            heapq.heappush(self._due, (time.monotonic() + seconds, request_id))
            self._ready.notify()
            if not self._running:
                self._running = True
                threading.Thread(target=self._run, name="koneksi-ticks", daemon=True).start()

    def _run(self) -> None:
        while True:
            with self._ready:
                while True:
                    if not self._due:
                        self._running = False
                        return
                    wait = self._due[0][0] - time.monotonic()
                    if wait <= 0:
                        request_id = heapq.heappop(self._due)[1]
                        break
                    self._ready.wait(wait)
            try:
                self._callback(request_id)
            except Exception:  # one job's failure stops no other's
                logging.getLogger(__name__).exception("koneksi sandbox: moving %s on failed", request_id)


class KoneksiGenerations:
    """Plans generation jobs, moves them forward in time, and shapes the retrieve answer."""

    sandbox: SandboxState
    options: dict[str, Any]
    rng: random.Random
    lock: threading.RLock
    credits: dict[str, float]
    generations: dict[str, Generation]
    pairs: dict[tuple[str, str, str], GenerationItem]
    _retrieves: int
    _ticks: Ticks  # moves the generations on in time mode

    def _plan(self, account: str, body: Mapping[str, Any]) -> list[GenerationItem]:
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
                        GenerationItem(
                            lead_id, mtype, step["step"], earlier.text, earlier.reason, reused=True
                        )
                    )
                    continue
                fails = kind == "research" or (kind == "no_hiring" and mtype == "hiring_activity")
                text = None if fails else self._text(body, lead, mtype)
                items.append(
                    GenerationItem(lead_id, mtype, step["step"], text, REASONS[kind] if fails else None)
                )
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
        if not blank(body.get("signoff_name")):
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
    def _refresh(self, generation: Generation) -> None:
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

    def _schedule(self, generation: Generation) -> None:
        """In time mode, look at the generation again when it should be complete (then the webhook goes)."""
        if generation.complete or self.options.get("polls_until_complete") is not None:
            return
        spm = float(self.options.get("seconds_per_message", 0.5))
        fresh = sum(1 for i in generation.items if not i.reused)
        due = generation.created + fresh * spm - self.sandbox.elapsed()
        self._ticks.add(max(0.02, due + 0.01), generation.request_id)

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

    def _body(self, g: Generation) -> dict[str, Any]:
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
        by_lead: dict[str, list[GenerationItem]] = {}
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
