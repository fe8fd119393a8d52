"""
ConnectSafely in the sandbox, under ``/connectsafely/linkedin`` (seed 002; contract §1.8).

Routes: ``GET /accounts``, ``GET /account/status``, ``GET /account/{id}/status``, ``GET /conversations``
and ``GET /conversations/{urn}/messages``. Options (``sizes`` or ``PUT /_sandbox/config``), besides the
world sizes of :mod:`.inbox_world`:

* ``expired_api_key``: a key that answers 403 (trial expired / no subscription).
* ``rate_limit``: ``[limit, window_seconds]`` installs a per-key limit (the vendor documents 60 a minute).
  Its 429s carry the ``X-RateLimit-*`` headers and what ``rate_limit_fields`` lists of ``hold_until``
  (``holdUntil`` in the body), ``reset_header`` (``X-RateLimit-Reset``, ISO) and ``retry_after``; by
  default the first two, as the vendor documents (injected 429 faults always carry a ``Retry-After``).
* ``pagination``: quirks of :func:`.inbox_world.next_cursor` and ``page_cap`` of :func:`.inbox_world.take_page`.
* ``fail_conversations``: URNs whose messages always answer ``fail_status`` (500).
* ``sync_latency_ms``: added when a request asks ``sync=true``.

Counters: ``reads`` per conversation URN (one per messages request) and ``lists`` per account.

Conversations list by their listed activity (``lastActivityAt``, which can lag behind or run ahead of the
newest message: see :meth:`.inbox_world.InboxWorld.add_messages`); an empty one lists with
``latestMessage: null`` and the time it was opened. A page of messages never ends inside a millisecond (the
``cursor`` is a time, and the next page starts strictly before it).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow_provider_linkmsg.sandbox.core import Request, Response, Route, WindowLimiter, reply
from airflow_provider_linkmsg.sandbox.inbox_world import (
    InboxApp,
    InboxWorld,
    WorldAccount,
    WorldConversation,
    WorldMessage,
    next_cursor,
    take_page,
)

_HEX24 = re.compile(r"^[0-9a-f]{24}$")
_MAX_COUNT = 100


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _invalid(field: str, expected: str, received: Any, message: str) -> Response:
    """A 400 in the Zod shape that the cookbook documents."""
    issue = {"code": "invalid_type", "expected": expected, "received": received, "path": [field]}
    error = {"name": "ZodError", "issues": [{**issue, "message": message}]}
    return reply(400, {"success": False, "error": error})


class ConnectSafelyWorld(InboxWorld):
    """ConnectSafely's names: 24-hex account ids, ``msg_conversation`` and ``salesNav_thread`` URNs."""

    def conversation_id(self, account: WorldAccount, token: str, sales_nav: bool) -> str:
        if sales_nav:
            return f"urn:li:salesNav_thread:{token}"
        return super().conversation_id(account, token, sales_nav)

    def message_id(self, conversation: WorldConversation, token: str) -> str:
        if conversation.sales_nav:
            return f"urn:li:salesNav_message:{token}"
        return super().message_id(conversation, token)


class ConnectSafelyApp(InboxApp):
    name = "connectsafely"
    prefix = "/connectsafely/linkedin"

    def __init__(self, sandbox) -> None:
        super().__init__(sandbox)
        self.api_key = self.options.get("api_key", f"cs-sandbox-{sandbox.seed}-key")
        self.world = ConnectSafelyWorld(self.rng, self.options, sales_nav=True)
        self.configure({})

    def configure(self, settings) -> None:
        super().configure(settings)
        if limit := self.options.get("rate_limit"):
            self.sandbox.rate_limits[self.name] = WindowLimiter(int(limit[0]), float(limit[1]))

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/accounts", self.accounts),
            Route("GET", "/account/status", self.account_status),
            Route("GET", "/account/{account_id}/status", self.account_status),
            Route("GET", "/conversations", self.conversations),
            Route("GET", "/conversations/{urn}/messages", self.messages),
        ]

    # ---- plumbing -------------------------------------------------------------------------------------
    def client_key(self, request: Request) -> str | None:
        return request.header("Authorization")

    def _auth(self, request: Request) -> Response | None:
        given = request.header("Authorization")
        expired = self.options.get("expired_api_key")
        if expired and given == f"Bearer {expired}":
            return reply(
                403, {"success": False, "error": "Trial expired - an active subscription is required"}
            )
        if given != f"Bearer {self.api_key}":
            return reply(401, {"success": False, "error": "Unauthorized - Invalid credentials"})
        return None

    def rate_limited(self, retry_after: int) -> Response:
        limiter = self.sandbox.rate_limits.get(self.name)
        limit = limiter.limit if limiter else 60
        reset = datetime.now(UTC) + timedelta(seconds=retry_after)
        fields = self.options.get("rate_limit_fields", ["hold_until", "reset_header"])
        body: dict[str, Any] = {"success": False, "error": "Rate limit exceeded"}
        headers = {
            "X_RateLimit_Action": "api_request",
            "X_RateLimit_Limit": str(limit),
            "X_RateLimit_Used": str(limit),
            "X_RateLimit_Remaining": "0",
        }
        if "hold_until" in fields:
            body["holdUntil"] = reset.isoformat()
        if "reset_header" in fields:  # whole seconds, rounded up: never before the window opens
            whole = datetime.fromtimestamp(math.ceil(reset.timestamp()), UTC)
            headers["X_RateLimit_Reset"] = whole.isoformat().replace("+00:00", "Z")
        if "retry_after" in fields:
            headers["Retry_After"] = str(retry_after)
        return reply(429, body, **headers)

    def server_error(self) -> Response:
        return reply(500, {"success": False, "error": "Internal server error"})

    def connection(self, base_url: str) -> dict[str, Any]:
        extra = {"base_url": base_url, "account_id": self.world.accounts[0].id, "requests_per_second": 0}
        return {"conn_type": "connectsafely", "password": self.api_key, "extra": extra}

    def _count(self, request: Request, name: str, default: int, maximum: int) -> int | Response:
        raw = request.arg(name)
        if raw is None or raw == "":
            return default
        if not raw.isdigit():
            return _invalid(name, "number", "string", f"{name} must be a positive integer")
        value = int(raw)
        if not 1 <= value <= maximum:
            return reply(
                400,
                {
                    "success": False,
                    "code": "validation_error",
                    "message": f"{name} must be between 1 and {maximum}",
                },
            )
        return value

    def _accounts_of(self, request: Request) -> list[WorldAccount] | Response:
        ids = [i for i in (request.arg("linkedinAccountIds") or "").split(",") if i]
        if not ids and request.arg("accountId"):
            ids = [request.arg("accountId")]
        if not ids:
            return self.world.accounts[:1]  # the default (most recently used) account
        accounts = [self.world.account(i) for i in ids]
        if any(a is None for a in accounts):
            return reply(404, {"success": False, "error": "Account not found"})
        return accounts

    # ---- accounts -------------------------------------------------------------------------------------
    def _account_json(self, account: WorldAccount) -> dict[str, Any]:
        return {
            "id": account.id,
            "firstName": account.owner.first_name,
            "lastName": account.owner.last_name,
            "publicId": account.owner.slug,
            "picture": None,
            "status": "AVAILABLE" if account.active else "ERROR",
            "apiSeatAllocated": True,
        }

    def accounts(self, request: Request) -> Response:
        if denied := self._auth(request):
            return denied
        q = (request.arg("q") or "").lower()
        found = [
            self._account_json(a)
            for a in self.world.accounts
            if not q
            or q in (a.id, a.owner.profile_url.lower())
            or q in f"{a.owner.name} {a.owner.slug}".lower()
        ]
        return reply(200, found)

    def account_status(self, request: Request) -> Response:
        if denied := self._auth(request):
            return denied
        account_id = request.params.get("account_id") or request.arg("accountId")
        if account_id is None:
            account = self.world.accounts[0]
        elif not _HEX24.match(account_id):
            return reply(400, {"error": "Invalid account ID format"})
        elif (account := self.world.account(account_id)) is None:
            return reply(404, {"success": False, "error": "Account not found"})
        plan = {
            "premiumType": "sales_navigator" if account.sales_nav else None,
            "isPremium": account.sales_nav,
        }
        body = {
            **self._account_json(account),
            "platform": "linkedin",
            "enabled": account.active,
            "lastUsed": _iso(int(self.sandbox.now() * 1000)),
            "hasTokens": True,
            "linkedinPlan": {**plan, "hasSalesNavigator": account.sales_nav, "hasRecruiter": False},
        }
        return reply(200, body)

    # ---- conversations --------------------------------------------------------------------------------
    def _conversation_json(self, c: WorldConversation) -> dict[str, Any]:
        last = c.listed_message
        item = {
            "conversationUrn": c.id,
            "conversationId": c.token if c.sales_nav else f"2-{c.token}",
            "accountId": c.account.id,
            "lastActivityAt": _iso(c.listed_ms),
            "unreadCount": c.unread,
            "labels": list(c.labels),
            "participants": [
                {
                    "profileId": c.person.slug,
                    "name": c.person.name,
                    "headline": c.person.headline,
                    "profileUrl": c.person.profile_url,
                    "profilePicture": None,
                    "distance": "DISTANCE_1",
                }
            ],
            "latestMessage": None
            if last is None
            else {
                "text": last.text,
                "sentAt": last.sent_ms,
                "senderName": c.sender(last).name,
                "hasAttachment": bool(last.attachments),
            },
            "source": "sales_navigator" if c.sales_nav else "linkedin",
        }
        if c.sales_nav:
            item["salesNavThreadId"] = c.token
        return item

    @staticmethod
    def _list_token(c: WorldConversation) -> str:
        return base64.urlsafe_b64encode(json.dumps([c.listed_ms, c.id]).encode()).decode()

    def conversations(self, request: Request) -> Response:
        if denied := self._auth(request):
            return denied
        count = self._count(request, "count", 20, _MAX_COUNT)
        if isinstance(count, Response):
            return count
        accounts = self._accounts_of(request)
        if isinstance(accounts, Response):
            return accounts
        items = self.world.newest_first(self.world.conversations(accounts))
        if request.arg("unreadOnly") == "true":
            items = [c for c in items if c.unread]
        if request.arg("labeledOnly") == "true":
            items = [c for c in items if c.labels]
        if label := request.arg("labelId"):
            items = [c for c in items if label in c.labels]
        cursor = request.arg("nextCursor")
        if cursor:
            try:
                token = cursor.removeprefix("linkedin:")
                last_ms, last_id = json.loads(base64.urlsafe_b64decode(token.encode()))
            except (binascii.Error, ValueError, TypeError):
                return reply(400, {"success": False, "error": "Invalid nextCursor"})
            items = [c for c in items if (-c.listed_ms, c.id) > (-int(last_ms), str(last_id))]
        for account in accounts:
            self.sandbox.count("lists", account.id)
        quirks = self.options.get("pagination") or {}
        page, more = take_page(items, count, quirks)
        # pages after the first come from LinkedIn's API (the "linkedin:" cursor form), not the cache
        prefix = "linkedin:" if cursor else ""
        token_of = lambda c: prefix + self._list_token(c)  # noqa: E731
        cursor_out, more = next_cursor(page, more, cursor, quirks, token_of)
        body = {
            "success": True,
            "conversations": [self._conversation_json(c) for c in page],
            "accounts": [{"id": a.id, "name": a.owner.name} for a in accounts],
            "nextCursor": cursor_out,
            "hasMore": more,
            "fromCache": not cursor,
        }
        return reply(200, body)

    # ---- messages -------------------------------------------------------------------------------------
    def _message_json(self, c: WorldConversation, m: WorldMessage) -> dict[str, Any]:
        sender = c.sender(m)
        return {
            "messageUrn": m.id,
            "text": m.text,
            "sentAt": m.sent_ms,
            "senderProfileId": sender.slug,
            "senderName": sender.name,
            "senderPhoto": None,
            "isSentByOwner": m.outbound,
            "hasAttachment": bool(m.attachments),
            "attachments": [{"file": dict(a)} for a in m.attachments],
        }

    def messages(self, request: Request) -> Response:
        if denied := self._auth(request):
            return denied
        raw = request.raw_path
        if any(ch in raw for ch in "(),"):
            return reply(400, {"success": False, "error": "conversationUrn must be URL-encoded"})
        urn = request.params["urn"]
        if not urn.startswith("urn:li:"):
            return _invalid("conversationUrn", "urn", urn[:40], "conversationUrn must be a URN (urn:li:...)")
        count = self._count(request, "count", 50, _MAX_COUNT)
        if isinstance(count, Response):
            return count
        numbers: dict[str, int | None] = {}
        for name in ("cursor", "since"):
            value = request.arg(name)
            if value not in (None, "") and not value.isdigit():
                return _invalid(name, "number", "string", f"Expected number, received string for {name}")
            numbers[name] = int(value) if value not in (None, "") else None
        conversation = self.world.by_id.get(urn)
        account_id = request.arg("accountId")
        if conversation is None or (account_id and conversation.account.id != account_id):
            return reply(404, {"success": False, "error": "Conversation not found"})
        self.sandbox.count("reads", urn)
        if urn in (self.options.get("fail_conversations") or []):
            return reply(
                int(self.options.get("fail_status", 500)), {"success": False, "error": "LinkedIn error"}
            )
        if request.arg("sync") == "true" and self.options.get("sync_latency_ms"):
            time.sleep(float(self.options["sync_latency_ms"]) / 1000)
        older_first = conversation.messages
        if numbers["since"] is not None:
            page = [m for m in older_first if m.sent_ms > numbers["since"]]
            cursor_out, more = (str(page[0].sent_ms) if page else None), False
        else:
            below = [m for m in older_first if numbers["cursor"] is None or m.sent_ms < numbers["cursor"]]
            quirks = self.options.get("pagination") or {}
            page, more = take_page(below[::-1], count, quirks, tie=lambda m: m.sent_ms)
            request_cursor = request.arg("cursor")
            cursor_out, more = next_cursor(page, more, request_cursor, quirks, lambda m: str(m.sent_ms))
            page.reverse()  # oldest first within a page
        body = {
            "success": True,
            "messages": [self._message_json(conversation, m) for m in page],
            "participants": [
                {
                    "profileId": conversation.person.slug,
                    "name": conversation.person.name,
                    "headline": conversation.person.headline,
                    "profilePicture": None,
                }
            ],
            "hasMore": more,
            "cursor": cursor_out,
            "note": "sales_navigator" if conversation.sales_nav else None,
        }
        return reply(200, body)

    def message_type(self, message: WorldMessage) -> str:
        return "TEXT"  # ConnectSafely has no message types
