"""
Linked API in the sandbox: the world both API generations read and change.

Accounts keyed by identification token, their persons and conversations, the jobs (a seed request or a
current-API workflow) and what time does to them (:meth:`LinkedApiWorld._tick`), the ground truth and the
``advance`` modes. :class:`~airflow_provider_linkmsg.sandbox.linkedapi.LinkedApiApp` mixes it in.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import random

    from airflow_provider_linkmsg.sandbox.core import SandboxState

CHANNELS = {"standard": "st", "salesNavigator": "nv"}
LIST_NAMES = {code: name for name, code in CHANNELS.items()}
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


class LinkedApiWorld:
    """Accounts, persons, conversations and jobs of the Linked API sandbox; what time does to them."""

    sandbox: SandboxState
    options: dict[str, Any]
    rng: random.Random
    accounts: dict[str, Account]
    jobs: dict[str, Job]
    _ids: int

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
