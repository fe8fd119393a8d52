"""
Linked API in the sandbox, under ``/linkedapi``: the seed's API and the current one, on one world.

The world: accounts keyed by identification token, each with persons (LinkedIn profile URLs
``https://www.linkedin.com/in/<slug>`` and Sales Navigator URLs ``https://www.linkedin.com/sales/people/<id>``),
one conversation per person on its channel (``st`` standard or ``nv`` Sales Navigator), and a deny-list of
URLs that are not LinkedIn persons. Conversations must be synchronized before they can be read.

Seed 003 (``api = seed``):

* ``POST /account/conversations.synchronize`` and ``POST /account/conversations.get`` with ``standard`` and
  ``salesNavigator`` lists; per-person results (``personNotFound``, ``notSynchronized``).
* ``result-handling: long`` (the default) holds the request until the job is done (at most
  ``long_poll_max_seconds``, then it answers ``processing`` with a result link); ``reslink`` answers
  ``processing`` at once with a result link, ``GET /account/results/{hash}``, that answers ``complete`` later.

Current API (``api = current``):

* ``POST /workflows`` (``st.syncConversation`` / ``nv.syncConversation``, an object or an array), then
  ``GET /workflows/{id}``: ``pending`` (``pendingReason`` ``queued`` or ``outsideWorkingHours``) →
  ``running`` → ``completed`` with per-action results in ``completion``; ``DELETE /workflows/{id}`` cancels.
* ``POST /conversations/poll``: messages since a time; any unsynced person fails the batch with
  ``conversationsNotSynced`` (400), whose message names the persons.

Options (``Sandbox(sizes={"linkedapi": {...}})``; timing and modes also through ``PUT /_sandbox/config``):
``accounts`` (1), ``persons`` (20 per account), ``not_found`` (2), ``sales_navigator_share`` (0.3),
``min_messages``/``max_messages`` (1/8), ``sync_seconds`` (1.0: synchronization time), ``pending_seconds``
(0.2: a workflow's queue time), ``get_seconds`` (0: a ``reslink`` read's delay), ``long_poll_max_seconds``
(120), ``outside_working_hours`` (false), ``since_inclusive`` (true), ``max_items_per_request`` (100),
``sync_days`` (30), ``sales_navigator`` (true: accounts have Sales Navigator), ``fail_workflows`` (a failure
reason, e.g. ``linkedinAccountSignedOut``), ``account_error`` (``linkedinAccountSignedOut`` or
``subscriptionRequired`` on every call).

``advance({"seconds": s, "linkedapi": {"persons": k, "messages": m, "working_hours": "open"|"closed"}})``
adds ``m`` new messages (default 1) to ``k`` synced conversations of every account, and opens or closes
the accounts' working hours; ``conversations``/``conversation_ids``, ``at``, ``older_by_ms`` and
``empty_conversations`` are the late-delivery modes shared with the other inbox vendors (see
:meth:`LinkedApiApp.advance`). Counters (group ``linkedapi``): ``jobs_started``, ``seed_synchronize``,
``workflows``, ``seed_get``, ``poll``, ``get_or_poll``, ``cancelled``.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_linkmsg.sandbox.core import BadJson, Request, Response, Route, VendorApp, reply

CHANNELS = {"standard": "st", "salesNavigator": "nv"}
LIST_NAMES = {code: name for name, code in CHANNELS.items()}
SYNC_ACTIONS = {"st.syncConversation": "st", "nv.syncConversation": "nv"}
KNOWN_ACTIONS = {
    *SYNC_ACTIONS,
    "st.syncInbox",
    "nv.syncInbox",
    "st.sendMessage",
    "nv.sendMessage",
    "st.checkConnectionStatus",
    "st.manageConversation",
}
DEFAULTS: dict[str, Any] = {
    "accounts": 1,
    "persons": 20,
    "not_found": 2,
    "sales_navigator_share": 0.3,
    "min_messages": 1,
    "max_messages": 8,
    "sync_seconds": 1.0,
    "pending_seconds": 0.2,
    "get_seconds": 0.0,
    "long_poll_max_seconds": 120.0,
    "outside_working_hours": False,
    "since_inclusive": True,
    "max_items_per_request": 100,
    "sync_days": 30,
    "sales_navigator": True,
    "fail_workflows": None,
    "account_error": None,
}
_FIRST = ["ada", "bob", "carla", "dev", "emma", "farid", "grace", "hugo", "ines", "jon", "kira", "liam"]
_LAST = ["lovelace", "prospect", "nguyen", "smith", "okafor", "muller", "rossi", "tanaka", "silva", "khan"]
_LINES = {
    "us": [
        "Hi {name}, thanks for connecting!",
        "Would you have 15 minutes this week?",
        "Sharing the deck we discussed.",
        "How about Thursday afternoon?",
        "Great, talk soon.",
    ],
    "them": [
        "Hi! Nice to meet you.",
        "Sure, what is it about?",
        "Thursday works for me.",
        "Thanks, I'll take a look.",
        "Not right now, maybe next quarter.",
    ],
}


def iso(epoch: float) -> str:
    """Epoch seconds as the vendor writes time: ``2026-01-01T09:05:00Z``."""
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: Any) -> float | None:
    """Epoch seconds of an ISO-8601 string, or ``None`` when it is not one."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def normalize_url(url: str) -> str:
    """The sandbox's key for a person URL: https, www host, no query, fragment or trailing slash."""
    parts = urlsplit(url.strip())
    host = parts.netloc.lower()
    if host == "linkedin.com":
        host = "www.linkedin.com"
    return f"https://{host}{parts.path.rstrip('/')}"


@dataclass
class Conversation:
    person: str
    type: str  # "st" | "nv"
    messages: list[dict[str, str]] = field(default_factory=list)
    synced: bool = False
    sync_until: float | None = None
    thread_id: str = ""


@dataclass
class Account:
    id: str
    token: str
    sales_navigator: bool
    persons: list[tuple[str, str]]  # (url, type) of the world's persons
    not_found: list[str]
    conversations: dict[tuple[str, str], Conversation]


@dataclass
class Job:
    """A seed synchronize/get request or a current-API workflow; results are known when it is created."""

    id: str
    kind: str  # "sync" | "get" | "workflow"
    account: str
    created: float  # sandbox elapsed seconds
    duration: float
    results: Any  # the completion body, or per-action results of a workflow
    effects: list[tuple[str, str]] = field(default_factory=list)  # conversations synced on completion
    pending: float = 0.0
    held: bool = False  # a workflow held outside working hours (its clock starts when they open)
    failure: str | None = None
    cancelled: bool = False
    applied: bool = False

    def ready_at(self) -> float:
        return self.created + self.pending + self.duration


class LinkedApiApp(VendorApp):
    name = "linkedapi"
    prefix = "/linkedapi"

    def __init__(self, sandbox) -> None:
        super().__init__(sandbox)
        for key, value in DEFAULTS.items():
            self.options.setdefault(key, value)
        self.api_key = self.options.get("api_key", f"la-sandbox-{sandbox.seed}-token")
        self.identification_token = self.options.get("identification_token", f"la-id-{sandbox.seed}-acc1")
        self.accounts: dict[str, Account] = {}
        for n in range(1, int(self.options["accounts"]) + 1):
            token = self.identification_token if n == 1 else f"la-id-{sandbox.seed}-acc{n}"
            self.accounts[token] = self._make_account(f"acc{n}", token)
        self.jobs: dict[str, Job] = {}
        self._ids = 0

    # ---- the world ------------------------------------------------------------------------------------
    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128)))

    def _make_account(self, account_id: str, token: str) -> Account:
        rng, opts = self.rng, self.options
        account = Account(account_id, token, bool(opts["sales_navigator"]), [], [], {})
        now = self.sandbox.now()
        for i in range(int(opts["persons"])):
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
            kind = "nv" if rng.random() < float(opts["sales_navigator_share"]) else "st"
            if kind == "nv" and rng.random() < 0.5:
                url = f"https://www.linkedin.com/sales/people/ACwAA{rng.getrandbits(48):012X}"
            else:
                url = f"https://www.linkedin.com/in/{first}-{last}-{account_id}-{i}"
            conv = Conversation(url, kind, thread_id=f"2-{rng.getrandbits(64):016x}")
            t = now - rng.randint(2, 60) * 86400 + rng.randint(0, 86399)  # all history is in the past
            count = rng.randint(int(opts["min_messages"]), int(opts["max_messages"]))
            for _ in range(count):
                t += rng.randint(60, 3 * 3600)
                conv.messages.append(self._message(rng.choice(["us", "them"]), t, first.title()))
            account.persons.append((url, kind))
            account.conversations[(url, kind)] = conv
        for i in range(int(opts["not_found"])):
            account.not_found.append(
                f"https://www.linkedin.com/in/ghost-{account_id}-{i}-{rng.getrandbits(24):06x}"
            )
        return account

    def _message(self, sender: str, t: float, name: str = "there") -> dict[str, str]:
        text = self.rng.choice(_LINES[sender]).format(name=name)
        return {"id": self._uuid(), "sender": sender, "text": text, "time": iso(t)}

    def _conversation(self, account: Account, url: str, kind: str) -> Conversation | None:
        """The conversation with a person on a channel; a known person has one (maybe empty) on each."""
        key = (normalize_url(url), kind)
        if key not in account.conversations:
            if not any(p == key[0] for p, _ in account.persons):
                return None
            account.conversations[key] = Conversation(
                key[0], kind, thread_id=f"2-{self.rng.getrandbits(64):016x}"
            )
        return account.conversations[key]

    def truth(self) -> Any:
        """Per account: persons (url, type), not-found URLs, every message of every person, what is synced."""
        accounts = {}
        for account in self.accounts.values():
            convs = sorted(account.conversations.values(), key=lambda c: (c.type, c.person))
            messages = [{"person": c.person, "type": c.type, **m} for c in convs for m in c.messages]
            accounts[account.id] = {
                "account_id": account.id,
                "sales_navigator": account.sales_navigator,
                "persons": [
                    {"person": url, "type": kind, "channel": LIST_NAMES[kind]}
                    for url, kind in account.persons
                ],
                "not_found": list(account.not_found),
                "messages": messages,
                "synced": sorted(f"{c.type}:{c.person}" for c in account.conversations.values() if c.synced),
            }
        return {"default_account": "acc1", "accounts": accounts}

    def advance(self, body: Mapping[str, Any]) -> Any:
        """
        New messages in synced conversations (``persons``, ``messages``); open/close working hours.

        The inbox modes shared with the other inbox vendors: ``conversations`` (k conversations, synced ones
        first) or ``conversation_ids`` (record ids: the person URL, ``#sales_navigator`` for that channel),
        optionally in ``account_id``, get ``messages`` each, at a time ``at`` ``newer`` / ``equal`` /
        ``older`` (by ``older_by_ms``, to the second) than the conversation's newest; ``empty_conversations``
        adds k persons with no message yet. Linked API lists nothing, so ``move_activity`` changes nothing.
        """
        if body.get("working_hours") in ("open", "closed"):
            self.options["outside_working_hours"] = body["working_hours"] == "closed"
        added = []
        if "persons" in body:
            k, m = int(body["persons"]), int(body.get("messages", 1))
            now = self.sandbox.now()
            for account in self.accounts.values():
                convs = sorted(account.conversations.values(), key=lambda c: (c.type, c.person))
                live = [c for c in convs if c.synced and (c.sync_until is None or c.sync_until > now)]
                for conv in self.rng.sample(live or convs, min(k, len(live or convs))):
                    last = max((parse_iso(x["time"]) for x in conv.messages), default=now - 1)
                    t, ids = max(now, last + 1), []
                    for _ in range(m):
                        conv.messages.append(self._message(self.rng.choice(["us", "them"]), t))
                        ids.append(conv.messages[-1]["id"])
                        t += 1
                    added.append(
                        {"account": account.id, "person": conv.person, "type": conv.type, "ids": ids}
                    )
        out: dict[str, Any] = {"added": added}
        if body.get("conversations") or body.get("conversation_ids"):
            out.update(self._late_messages(body, added))
        if body.get("empty_conversations"):
            out["created"] = self._add_empty(int(body["empty_conversations"]), body.get("account_id"))
        return out

    def _accounts_of(self, account_id: Any) -> list[Account]:
        if account_id is None:
            return list(self.accounts.values())
        found = [a for a in self.accounts.values() if a.id == account_id]
        if not found:
            raise KeyError(f"no account {account_id!r}")
        return found

    def _late_messages(self, body: Mapping[str, Any], added: list[dict[str, Any]]) -> dict[str, Any]:
        at, older_by = str(body.get("at") or "newer"), int(body.get("older_by_ms", 60_000)) / 1000
        if at not in ("newer", "equal", "older"):
            raise ValueError(f"at must be newer, equal or older, got {at!r}")
        now, m = self.sandbox.now(), int(body.get("messages", 1))
        pool = []
        for account in self._accounts_of(body.get("account_id")):
            for conv in sorted(account.conversations.values(), key=lambda c: (c.type, c.person)):
                record_id = conv.person if conv.type == "st" else f"{conv.person}#sales_navigator"
                pool.append((account, conv, record_id))
        if body.get("conversation_ids"):
            by_id = {record_id: (a, c, record_id) for a, c, record_id in pool}
            chosen = [by_id[c] for c in body["conversation_ids"]]
        else:
            live = [p for p in pool if p[1].synced and (p[1].sync_until is None or p[1].sync_until > now)]
            chosen = self.rng.sample(live or pool, min(int(body["conversations"]), len(live or pool)))
        changed, ids = [], []
        for account, conv, record_id in chosen:
            newest = max((parse_iso(x["time"]) for x in conv.messages), default=now)
            new = []
            for i in range(m):
                if at == "newer":
                    t = max(now - (m - i), newest + 1 + i)
                else:
                    t = newest if at == "equal" else newest - older_by
                message = self._message(self.rng.choice(["us", "them"]), t)
                conv.messages.append(message)
                new.append(message["id"])
            changed.append(record_id)
            ids += new
            added.append({"account": account.id, "person": conv.person, "type": conv.type, "ids": new})
        return {"changed": changed, "messages": ids}

    def _add_empty(self, count: int, account_id: Any) -> list[str]:
        """``count`` persons with no message yet (standard channel), in ``account_id`` or the first account."""
        account = self._accounts_of(account_id)[0]
        created = []
        for _ in range(count):
            first, last = self.rng.choice(_FIRST), self.rng.choice(_LAST)
            url = f"https://www.linkedin.com/in/{first}-{last}-{account.id}-{len(account.persons)}"
            account.persons.append((url, "st"))
            account.conversations[(url, "st")] = Conversation(
                url, "st", thread_id=f"2-{self.rng.getrandbits(64):016x}"
            )
            created.append(url)
        return created

    def configure(self, settings: Mapping[str, Any]) -> None:
        self.options.update(settings)

    # ---- plumbing -------------------------------------------------------------------------------------
    def routes(self) -> list[Route]:
        return [
            Route("GET", "/account", self.get_account),
            Route("POST", "/account/conversations.synchronize", self.seed_synchronize),
            Route("POST", "/account/conversations.get", self.seed_get),
            Route("GET", "/account/results/{hash}", self.seed_result),
            Route("POST", "/workflows", self.create_workflow),
            Route("GET", "/workflows/{id}", self.get_workflow),
            Route("DELETE", "/workflows/{id}", self.cancel_workflow),
            Route("POST", "/conversations/poll", self.poll),
        ]

    def client_key(self, request: Request) -> str | None:
        return request.header("identification-token")

    def connection(self, base_url: str) -> dict[str, Any]:
        return {
            "conn_type": "linkedapi",
            "password": self.api_key,
            "extra": {"base_url": base_url, "identification_token": self.identification_token},
        }

    def rate_limited(self, retry_after: int) -> Response:
        return self._error(429, "tooManyRequests", "Too many requests.", Retry_After=str(retry_after))

    def server_error(self) -> Response:
        return self._error(500, "internalError", "Internal server error.")

    @staticmethod
    def _error(status: int, kind: str, message: str, **headers: str) -> Response:
        """The current API's error envelope."""
        return reply(status, {"success": False, "error": {"type": kind, "message": message}}, **headers)

    @staticmethod
    def _seed_error(status: int, kind: str, message: str) -> Response:
        """The seed's error envelope."""
        return reply(status, {"status": "error", "error": {"errorType": kind, "message": message}})

    def _auth(self, request: Request, *, seed: bool = False) -> tuple[Account | None, Response | None]:
        fail = self._seed_error if seed else self._error
        token = request.header("linked-api-token")
        ident = request.header("identification-token")
        if not token:
            return None, fail(
                401, "linkedApiTokenRequired", "'linked-api-token' is missing in request headers."
            )
        if token != self.api_key:
            return None, fail(401, "invalidLinkedApiToken", "The 'linked-api-token' is invalid.")
        if not ident:
            msg = "'identification-token' is missing in request headers."
            return None, fail(401, "identificationTokenRequired", msg)
        account = self.accounts.get(ident)
        if account is None:
            return None, fail(401, "invalidIdentificationToken", "The 'identification-token' is invalid.")
        problem = self.options.get("account_error")
        if problem == "linkedinAccountSignedOut":
            return None, fail(403, problem, "The LinkedIn account is signed out; reconnect it in Linked API.")
        if problem:
            return None, fail(402, str(problem), f"The account cannot make requests ({problem}).")
        self._tick()
        return account, None

    def _next_id(self, kind: str) -> str:
        self._ids += 1
        digest = hashlib.sha256(f"{self.sandbox.seed}:{kind}:{self._ids}".encode()).hexdigest()
        return digest[:12] if kind == "result" else f"wf-{uuid.UUID(digest[:32])}"

    def _tick(self) -> None:
        """Apply what time has done: open held workflows, finish due jobs (syncs take effect)."""
        now = self.sandbox.elapsed()
        for job in self.jobs.values():
            if job.held and not self.options["outside_working_hours"]:
                job.held, job.created = False, now
            if not job.applied and not job.held and not job.cancelled and job.ready_at() <= now:
                job.applied = True
                if job.failure:
                    continue
                account = self.accounts[job.account]
                until = self.sandbox.now() + int(self.options["sync_days"]) * 86400
                for url, kind in job.effects:
                    conv = self._conversation(account, url, kind)
                    if conv is not None:
                        conv.synced, conv.sync_until = True, until

    def _count(self, *keys: str) -> None:
        for key in keys:
            self.sandbox.count(self.name, key)

    def _too_many(self, n: int) -> str | None:
        limit = int(self.options["max_items_per_request"])
        return f"at most {limit} persons per request, got {n}" if n > limit else None

    def _sync_result(self, account: Account, url: Any, kind: str) -> tuple[dict[str, Any], bool]:
        """One person's synchronization: (``{"success": ...}`` or an error, whether it syncs)."""
        if kind == "nv" and not account.sales_navigator:
            return {
                "success": False,
                "error": {"type": "noSalesNavigator", "message": "No Sales Navigator."},
            }, False
        if not isinstance(url, str) or self._conversation(account, url, kind) is None:
            message = "The provided URL is not an existing LinkedIn person."
            return {"success": False, "error": {"type": "personNotFound", "message": message}}, False
        return {"success": True}, True

    # ---- GET /account -------------------------------------------------------------------------------
    def get_account(self, request: Request) -> Response:
        account, denied = self._auth(request)
        if denied:
            return denied
        slug = f"ada-sandbox-{account.id}"
        return reply(
            200,
            {
                "success": True,
                "result": {"name": "Ada Sandbox", "url": f"https://www.linkedin.com/in/{slug}"},
            },
        )

    # ---- the seed's API -----------------------------------------------------------------------------
    def _seed_body(
        self, request: Request, *, with_since: bool
    ) -> tuple[list[tuple[str, Any, Any]], str | None]:
        """``[(list name, person, since)]`` from a seed body, or an error message."""
        try:
            body = request.json()
        except BadJson as exc:
            return [], f"The request body is not valid JSON: {exc}"
        if not isinstance(body, dict) or not set(body) & set(CHANNELS) or set(body) - set(CHANNELS):
            return [], "The body must be an object with 'standard' and/or 'salesNavigator' arrays."
        items = []
        for name in CHANNELS:
            entries = body.get(name, [])
            if not isinstance(entries, list):
                return [], f"'{name}' must be an array."
            for i, entry in enumerate(entries):
                if (
                    not isinstance(entry, dict)
                    or not isinstance(entry.get("person"), str)
                    or not entry["person"]
                ):
                    return [], f"'{name}[{i}].person' must be a LinkedIn URL."
                since = entry.get("since")
                if since is not None and (not with_since or parse_iso(since) is None):
                    return [], f"'{name}[{i}].since' must be an ISO-8601 timestamp."
                items.append((name, entry["person"], since))
        if not items:
            return [], "The body lists no persons."
        if problem := self._too_many(len(items)):
            return [], problem
        return items, None

    def _seed_job(self, request: Request, job: Job) -> Response:
        """Answer a new seed job in the requested result-handling mode."""
        self.jobs[job.id] = job
        mode = (request.header("result-handling") or "long").lower()
        if mode not in ("long", "reslink"):
            return self._seed_error(400, "invalidRequestBody", f"Unknown result-handling {mode!r}.")
        wait = max(0.0, job.ready_at() - self.sandbox.elapsed())
        if mode == "long" and wait <= float(self.options["long_poll_max_seconds"]):
            response = reply(200, {"status": "complete", "completion": job.results})
            response.hold = wait
            return response
        if mode == "long":
            response = self._processing(request, job)
            response.hold = float(self.options["long_poll_max_seconds"])
            return response
        return self._processing(request, job)

    def _processing(self, request: Request, job: Job) -> Response:
        host = request.header("Host") or self.sandbox.base_url.split("://", 1)[-1]
        link = f"http://{host}{self.prefix}/account/results/{job.id}"
        message = "The request is being processed; poll the result link."
        return reply(200, {"status": "processing", "process": {"message": message, "resultLink": link}})

    def seed_synchronize(self, request: Request) -> Response:
        account, denied = self._auth(request, seed=True)
        if denied:
            return denied
        items, problem = self._seed_body(request, with_since=False)
        if problem:
            return self._seed_error(400, "invalidRequestBody", problem)
        completion: dict[str, list] = {name: [] for name in CHANNELS}
        effects = []
        for name, person, _ in items:
            result, syncs = self._sync_result(account, person, CHANNELS[name])
            if not result["success"]:
                result["error"] = {
                    "errorType": result["error"]["type"],
                    "message": result["error"]["message"],
                }
            completion[name].append({"person": person, "result": result})
            if syncs:
                effects.append((person, CHANNELS[name]))
        duration = float(self.options["sync_seconds"])
        job = Job(
            self._next_id("result"),
            "sync",
            account.token,
            self.sandbox.elapsed(),
            duration,
            completion,
            effects,
        )
        self._count("jobs_started", "seed_synchronize")
        return self._seed_job(request, job)

    def seed_get(self, request: Request) -> Response:
        account, denied = self._auth(request, seed=True)
        if denied:
            return denied
        items, problem = self._seed_body(request, with_since=True)
        if problem:
            return self._seed_error(400, "invalidRequestBody", problem)
        self._count("seed_get", "get_or_poll")
        completion: dict[str, list] = {name: [] for name in CHANNELS}
        for name, person, since in items:
            conv = self._conversation(account, person, CHANNELS[name])
            if conv is None or not conv.synced:
                error = {
                    "errorType": "notSynchronized",
                    "message": "The conversation with this person isn't synchronized.",
                }
                result: dict[str, Any] = {"success": False, "error": error}
            else:
                messages = self._since(conv, since)
                result = {"success": True, "data": {"total": len(messages), "messages": messages}}
            completion[name].append({"person": person, "result": result})
        duration = float(self.options["get_seconds"])
        job = Job(self._next_id("result"), "get", account.token, self.sandbox.elapsed(), duration, completion)
        return self._seed_job(request, job)

    def seed_result(self, request: Request) -> Response:
        account, denied = self._auth(request, seed=True)
        if denied:
            return denied
        job = self.jobs.get(request.params["hash"])
        if job is None or job.kind == "workflow" or job.account != account.token:
            return self._seed_error(404, "resultNotFound", f"No result {request.params['hash']!r}.")
        if job.ready_at() > self.sandbox.elapsed():
            return self._processing(request, job)
        return reply(200, {"status": "complete", "completion": job.results})

    def _since(self, conv: Conversation, since: Any) -> list[dict[str, str]]:
        """Messages at or after ``since`` (strictly after when ``since_inclusive`` is off), oldest first."""
        messages = sorted(conv.messages, key=lambda m: m["time"])
        bound = parse_iso(since)
        if bound is None:
            return [dict(m) for m in messages]
        inclusive = bool(self.options["since_inclusive"])
        return [
            dict(m)
            for m in messages
            if (parse_iso(m["time"]) >= bound if inclusive else parse_iso(m["time"]) > bound)
        ]

    # ---- the current API ----------------------------------------------------------------------------
    def _authed_body(self, request: Request) -> tuple[Any, Any, Response | None]:
        """The account and JSON body of a current-API call, or the error to answer instead."""
        account, denied = self._auth(request)
        if denied:
            return account, None, denied
        try:
            return account, request.json(), None
        except BadJson as exc:
            return (
                account,
                None,
                self._error(400, "invalidRequestPayload", f"The request body is not valid JSON: {exc}"),
            )

    def create_workflow(self, request: Request) -> Response:
        account, body, denied = self._authed_body(request)
        if denied:
            return denied
        actions = body if isinstance(body, list) else [body]
        if not actions or not all(isinstance(a, dict) for a in actions):
            return self._error(
                400, "invalidWorkflow", "A workflow is an action object or a non-empty array of them."
            )
        if problem := self._too_many(len(actions)):
            return self._error(400, "invalidWorkflow", problem)
        results, effects = [], []
        for i, action in enumerate(actions):
            kind = action.get("actionType")
            if kind not in KNOWN_ACTIONS:
                return self._error(400, "invalidWorkflow", f"actions[{i}]: unknown actionType {kind!r}.")
            if kind not in SYNC_ACTIONS:
                return self._error(
                    400, "invalidWorkflow", f"actions[{i}]: the sandbox runs only syncConversation."
                )
            url = action.get("personUrl")
            if not isinstance(url, str) or not url:
                return self._error(400, "invalidWorkflow", f"actions[{i}]: 'personUrl' is required.")
            result, syncs = self._sync_result(account, url, SYNC_ACTIONS[kind])
            item: dict[str, Any] = {"actionType": kind, **result}
            if "label" in action:
                item["label"] = action["label"]
            if syncs:
                until = self.sandbox.now() + int(self.options["sync_days"]) * 86400
                item["data"] = {"syncUntil": iso(until)}
                effects.append((url, SYNC_ACTIONS[kind]))
            results.append(item)
        job = Job(
            self._next_id("workflow"),
            "workflow",
            account.token,
            self.sandbox.elapsed(),
            float(self.options["sync_seconds"]),
            results if isinstance(body, list) else results[0],
            effects,
            pending=float(self.options["pending_seconds"]),
            held=bool(self.options["outside_working_hours"]),
            failure=self.options.get("fail_workflows"),
        )
        self.jobs[job.id] = job
        self._count("jobs_started", "workflows")
        return reply(200, {"success": True, "result": self._workflow_view(job)})

    def _workflow_view(self, job: Job) -> dict[str, Any]:
        view: dict[str, Any] = {"workflowId": job.id}
        now = self.sandbox.elapsed()
        if job.cancelled:
            message = "The workflow was cancelled."
            view.update(workflowStatus="failed", failure={"reason": "workflowCancelled", "message": message})
        elif job.held:
            opens = iso(self.sandbox.now() - self.sandbox.now() % 86400 + 86400 + 9 * 3600)
            message = f"The account is outside its working hours; the workflow will start at {opens}."
            view.update(workflowStatus="pending", pendingReason="outsideWorkingHours", message=message)
        elif now < job.created + job.pending:
            view.update(workflowStatus="pending", pendingReason="queued", message="Workflow queued.")
        elif now < job.ready_at():
            view.update(workflowStatus="running", message="Workflow is running.")
        elif job.failure:
            message = "The LinkedIn account is signed out; reconnect it in Linked API."
            view.update(workflowStatus="failed", failure={"reason": job.failure, "message": message})
        else:
            view.update(workflowStatus="completed", completion=job.results)
        return view

    def _workflow(self, request: Request) -> tuple[Job | None, Response | None]:
        account, denied = self._auth(request)
        if denied:
            return None, denied
        job = self.jobs.get(request.params["id"])
        if job is None or job.kind != "workflow" or job.account != account.token:
            return None, self._error(404, "workflowNotFound", f"Workflow {request.params['id']!r} not found.")
        return job, None

    def get_workflow(self, request: Request) -> Response:
        job, denied = self._workflow(request)
        if denied:
            return denied
        return reply(200, {"success": True, "result": self._workflow_view(job)})

    def cancel_workflow(self, request: Request) -> Response:
        job, denied = self._workflow(request)
        if denied:
            return denied
        cancel = not job.applied and not job.cancelled
        if cancel:
            job.cancelled = True
            self._count("cancelled")
        return reply(200, {"success": True, "result": {"cancelled": cancel}})

    def poll(self, request: Request) -> Response:
        account, body, denied = self._authed_body(request)
        if denied:
            return denied
        if not isinstance(body, list) or not body:
            return self._error(400, "invalidRequestPayload", "The body must be a non-empty array.")
        if problem := self._too_many(len(body)):
            return self._error(400, "invalidRequestPayload", problem)
        convs, unsynced = [], []
        for i, item in enumerate(body):
            ok = (
                isinstance(item, dict)
                and isinstance(item.get("personUrl"), str)
                and item.get("type") in ("st", "nv")
            )
            if not ok or ("since" in item and parse_iso(item["since"]) is None):
                msg = f"[{i}] must be {{personUrl, type: st|nv, since?: ISO-8601}}."
                return self._error(400, "invalidRequestPayload", msg)
            conv = self._conversation(account, item["personUrl"], item["type"])
            if conv is None or not conv.synced:
                unsynced.append(f"{item['personUrl']} ({item['type']})")
            convs.append(conv)
        self._count("poll", "get_or_poll")
        if unsynced:
            message = "Conversations are not synced: " + ", ".join(unsynced)
            return self._error(400, "conversationsNotSynced", message)
        result = []
        for item, conv in zip(body, convs, strict=True):
            entry = {"personUrl": item["personUrl"], "type": item["type"]}
            if "since" in item:
                entry["since"] = item["since"]
            messages = [{**m, "threadId": conv.thread_id} for m in self._since(conv, item.get("since"))]
            entry.update(
                messages=messages, syncUntil=iso(conv.sync_until) if conv.sync_until else None, personUrn=None
            )
            result.append(entry)
        return reply(200, {"success": True, "result": result})
