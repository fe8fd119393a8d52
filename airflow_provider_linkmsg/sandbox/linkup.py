"""
LinkupAPI (v2 messages) in the sandbox, under ``/linkup/v2`` (seed 004; contract §2.5).

Routes: ``GET /accounts``, ``GET /accounts/{id}``, ``GET /credits``, ``POST /messages`` with the
actions ``list_inbox``, ``get_conversation`` and ``send``, and the webhooks of :mod:`.linkup_webhooks`
(``POST``/``GET /webhooks``, ``DELETE /webhooks/{id}``; arriving messages are delivered to them).
Every answer uses the documented envelopes; costs go into ``metadata.credits_consumed`` and the sandbox's ``credits`` counter: ``list_inbox``
ceil(conversations / 10), ``get_conversation`` ceil(messages / 10) with a minimum of 1, ``send`` 1 (2 with
media), accounts 0. Errors cost nothing.

Options, besides the world sizes of :mod:`.inbox_world`:

* ``credits``: the balance (unlimited when unset); a call that costs more answers 402.
* ``max_count`` (100): the cap applied to ``count``.
* ``inactive_accounts``: account ids that answer 403 ``ACCOUNT_INACTIVE``.
* ``unknown_conversation``: ``[status, code]`` of the (undocumented) answer for an unknown conversation;
  ``[404, "INVALID_PARAMS"]`` by default.
* ``pagination``: quirks of :func:`.inbox_world.next_cursor` and ``page_cap`` of
  :func:`.inbox_world.take_page`; ``null_cursor`` ends a list with ``"next_cursor": null`` instead of
  omitting it; ``cut_ties`` ends a ``get_conversation`` page after ``count`` messages even inside a
  millisecond (the next page, ``timestamp < cursor``, then skips the rest of that millisecond, as the
  contract's cursor reads): by default a page grows over a tie at its end.
* ``fail_conversations``: conversation ids whose reads always answer 500 ``INTERNAL_ERROR``.

Counters: ``reads`` per conversation id (one per ``get_conversation``), ``lists`` per account and
``credits_by_action``.

The inbox lists by listed activity: ``last_message.time`` is the conversation's listed activity (which can
lag behind or run ahead of the newest message: see :meth:`.inbox_world.InboxWorld.add_messages`), and an
empty conversation lists with ``last_message: null`` at the time it was opened. ``total_message_count`` always
counts every message. A page of messages never ends inside a millisecond (the cursor is a time), unless
``pagination.cut_ties`` is set.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from datetime import UTC, datetime
from typing import Any

from airflow_provider_linkmsg.sandbox.core import BadJson, Request, Response, Route, reply
from airflow_provider_linkmsg.sandbox.inbox_world import (
    InboxApp,
    InboxWorld,
    Person,
    WorldAccount,
    WorldConversation,
    WorldMessage,
    next_cursor,
    take_page,
)
from airflow_provider_linkmsg.sandbox.linkup_webhooks import LinkupWebhooks

ACTIONS = ("get_conversation", "list_inbox", "send", "check_invitation")
_PROFILE = re.compile(r"^https?://([a-z]{2,3}\.)?(www\.)?linkedin\.com/in/([^/?#]+)/?$", re.IGNORECASE)


class LinkupWorld(InboxWorld):
    """LinkupAPI's names: ``acc_...`` account ids."""

    def account_id(self, token: str) -> str:
        return f"acc_{token[:12]}"


class LinkupApp(InboxApp):
    name = "linkup"
    prefix = "/linkup/v2"

    def __init__(self, sandbox) -> None:
        super().__init__(sandbox)
        self.api_key = self.options.get("api_key", f"lk-sandbox-{sandbox.seed}-key")
        self.world = LinkupWorld(self.rng, self.options)
        self.webhooks = LinkupWebhooks(self)

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/accounts", self.accounts),
            Route("GET", "/accounts/{account_id}", self.account),
            Route("GET", "/credits", self.credits),
            Route("POST", "/messages", self.messages),
            Route("POST", "/webhooks", self.create_webhook),
            Route("GET", "/webhooks", self.list_webhooks),
            Route("DELETE", "/webhooks/{webhook_id}", self.delete_webhook),
        ]

    # ---- webhooks (see .linkup_webhooks) ------------------------------------------------------------------
    def create_webhook(self, request: Request) -> Response:
        if denied := self._auth(request):
            return denied
        try:
            data, problem = self.webhooks.create(request.json())
        except BadJson:
            data, problem = None, "The request body must be JSON"
        if data is None:
            return self.error(400, "INVALID_PARAMS", problem, "create_webhook")
        return self.ok(data, "create_webhook", data["account_id"])

    def list_webhooks(self, request: Request) -> Response:
        return self._auth(request) or self.ok({"items": self.webhooks.listing()}, "list_webhooks")

    def delete_webhook(self, request: Request) -> Response:
        if denied := self._auth(request):
            return denied
        if not self.webhooks.delete(request.params["webhook_id"]):
            return self.error(404, "INVALID_PARAMS", "Webhook not found", "delete_webhook")
        return self.ok({"deleted": True}, "delete_webhook")

    def advance(self, body):
        """New messages arrive (see :meth:`InboxApp.advance`); received ones go to the account's webhooks."""
        out = super().advance(body)
        if self.webhooks.hooks:
            out["webhooks"] = self.webhooks.announce(out.get("changed") or [], out.get("messages") or [])
        return out

    # ---- plumbing -------------------------------------------------------------------------------------
    def client_key(self, request: Request) -> str | None:
        return request.header("x-api-key")

    def _timestamp(self) -> str:
        return datetime.fromtimestamp(self.sandbox.now(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def error(self, status: int, code: str, message: str, action: str | None = None) -> Response:
        metadata = {"action": action, "credits_consumed": 0, "timestamp": self._timestamp()}
        return reply(
            status, {"success": False, "error": {"code": code, "message": message}, "metadata": metadata}
        )

    def ok(self, data: Any, action: str, account_id: str | None = None, credits: int = 0) -> Response:
        if credits:
            self.spend(credits)
            self.sandbox.count("credits_by_action", action, credits)
            if self.options.get("credits") is not None:
                self.options["credits"] = self.options["credits"] - credits
        metadata = {
            "action": action,
            "account_id": account_id,
            "credits_consumed": credits,
            "timestamp": self._timestamp(),
        }
        return reply(200, {"success": True, "data": data, "metadata": metadata})

    def _auth(self, request: Request) -> Response | None:
        if request.header("x-api-key") != self.api_key:
            return self.error(403, "INVALID_API_KEY", "The provided API key is invalid or missing")
        return None

    def rate_limited(self, retry_after: int) -> Response:
        response = self.error(429, "RATE_LIMITED", "Too many requests")
        response.headers["Retry-After"] = str(retry_after)
        return response

    def server_error(self) -> Response:
        return self.error(500, "INTERNAL_ERROR", "Internal server error")

    def connection(self, base_url: str) -> dict[str, Any]:
        extra = {"base_url": base_url, "account_id": self.world.accounts[0].id, "requests_per_second": 0}
        return {"conn_type": "linkup", "password": self.api_key, "extra": extra}

    # ---- accounts and credits -------------------------------------------------------------------------
    def _account_json(self, account: WorldAccount) -> dict[str, Any]:
        return {
            "account_id": account.id,
            "platform": "linkedin",
            "account_name": account.owner.name,
            "is_active": self._active(account),
            "status": "active" if self._active(account) else "inactive",
            "country": "FR",
            "created_at": "2025-06-01T09:00:00Z",
            "updated_at": self._timestamp(),
        }

    def _active(self, account: WorldAccount) -> bool:
        return account.id not in (self.options.get("inactive_accounts") or [])

    def accounts(self, request: Request) -> Response:
        if denied := self._auth(request):
            return denied
        try:
            limit = int(request.arg("limit") or 50)
            offset = int(request.arg("offset") or 0)
        except ValueError:
            return self.error(400, "INVALID_PARAMS", "limit and offset must be integers", "list_accounts")
        if not 1 <= limit <= 500 or offset < 0:
            return self.error(400, "INVALID_PARAMS", "limit must be 1-500 and offset >= 0", "list_accounts")
        items = [self._account_json(a) for a in self.world.accounts[offset : offset + limit]]
        data = {"items": items, "total": len(self.world.accounts), "limit": limit, "offset": offset}
        return self.ok(data, "list_accounts")

    def account(self, request: Request) -> Response:
        if denied := self._auth(request):
            return denied
        account = self.world.account(request.params["account_id"])
        if account is None:
            return self.error(404, "INVALID_ACCOUNT", "Account not found", "get_account")
        return self.ok(self._account_json(account), "get_account", account.id)

    def credits(self, request: Request) -> Response:
        if denied := self._auth(request):
            return denied
        return self.ok({"credits": self.options.get("credits")}, "get_credits")

    # ---- POST /messages -------------------------------------------------------------------------------
    def messages(self, request: Request) -> Response:
        if denied := self._auth(request):
            return denied
        try:
            body = request.json()
        except BadJson:
            return self.error(400, "INVALID_PARAMS", "The request body must be JSON")
        if not isinstance(body, dict) or not body.get("action"):
            return self.error(400, "INVALID_PARAMS", "'action' is required")
        action = body["action"]
        account = self.world.account(str(body.get("account_id") or ""))
        if account is None:
            return self.error(404, "INVALID_ACCOUNT", "account_id is unknown or not yours", action)
        if not self._active(account):
            return self.error(403, "ACCOUNT_INACTIVE", "The account is inactive or suspended", action)
        if action not in ACTIONS:
            return self.error(
                400, "INVALID_ACTION", f"Action {action!r} is not supported on /messages", action
            )
        params = body.get("params") or {}
        if not isinstance(params, dict):
            return self.error(400, "INVALID_PARAMS", "'params' must be an object", action)
        if action == "list_inbox":
            return self.list_inbox(account, params)
        if action == "get_conversation":
            return self.get_conversation(account, params)
        if action == "send":
            return self.send(account, params)
        return self.error(400, "INVALID_PARAMS", "check_invitation needs profile_url", action)

    def _count(self, params: dict[str, Any], default: int, action: str) -> int | Response:
        count = params.get("count", default)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            return self.error(400, "INVALID_PARAMS", "count must be a positive integer", action)
        return min(count, int(self.options.get("max_count", 100)))

    def _afford(self, cost: int, action: str) -> Response | None:
        balance = self.options.get("credits")
        if balance is not None and balance < cost:
            return self.error(402, "INSUFFICIENT_CREDITS", f"This call costs {cost} credits", action)
        return None

    def _end(self, data: dict[str, Any], cursor: str | None) -> dict[str, Any]:
        if cursor is not None:
            data["next_cursor"] = cursor
        elif (self.options.get("pagination") or {}).get("null_cursor"):
            data["next_cursor"] = None
        return data

    @staticmethod
    def _inbox_token(c: WorldConversation) -> str:
        return base64.b64encode(f"DESCENDING&{c.listed_ms}&2-{c.token}".encode()).decode()

    def _person_json(self, person, *, is_me: bool | None = None) -> dict[str, Any]:
        data = {
            "name": person.name,
            "headline": person.headline,
            "profile_url": person.profile_url,
            "profile_picture": None,
        }
        if is_me is not None:
            data["is_me"] = is_me
        return data

    def list_inbox(self, account: WorldAccount, params: dict[str, Any]) -> Response:
        action = "list_inbox"
        count = self._count(params, 10, action)
        if isinstance(count, Response):
            return count
        items = self.world.newest_first(self.world.conversations([account]))
        if params.get("unread_only"):
            items = [c for c in items if c.unread]
        cursor = params.get("cursor")
        if cursor:
            try:
                _, last_ms, thread = base64.b64decode(str(cursor), validate=True).decode().split("&", 2)
                key = (-int(last_ms), thread)
            except (binascii.Error, ValueError, UnicodeDecodeError):
                return self.error(400, "INVALID_PARAMS", "cursor is not a cursor this API returned", action)
            items = [c for c in items if (-c.listed_ms, f"2-{c.token}") > key]
        quirks = self.options.get("pagination") or {}
        page, more = take_page(items, count, quirks)
        cursor_out, _ = next_cursor(page, more, cursor, quirks, self._inbox_token)
        cost = math.ceil(len(page) / 10)
        if refused := self._afford(cost, action):
            return refused
        self.sandbox.count("lists", account.id)
        conversations = []
        for c in page:
            last = c.listed_message
            conversations.append(
                {
                    "conversation_id": c.id,
                    "participant": self._person_json(c.person),
                    "last_message": None
                    if last is None
                    else {
                        "text": last.text,
                        "time": c.listed_ms,
                        "sender": self._person_json(c.sender(last), is_me=last.outbound),
                    },
                    "unread": c.unread,
                    "type": "normal",
                }
            )
        data = self._end({"conversations": conversations, "total_results": len(page)}, cursor_out)
        return self.ok(data, action, account.id, cost)

    def _find_conversation(
        self, account: WorldAccount, params: dict[str, Any]
    ) -> WorldConversation | Response:
        action = "get_conversation"
        conversation_id = params.get("conversation_id")
        profile_url = params.get("profile_url") or params.get("linkedin_url")
        if not conversation_id and not profile_url:
            return self.error(400, "INVALID_PARAMS", "conversation_id or profile_url is required", action)
        found = None
        if conversation_id:
            found = self.world.by_id.get(str(conversation_id))
        else:
            match = _PROFILE.match(str(profile_url))
            if not match:
                return self.error(400, "INVALID_PARAMS", "profile_url must be a LinkedIn profile URL", action)
            slug = match.group(3).lower()
            found = next((c for c in account.conversations if c.person.slug == slug), None)
        if found is None or found.account is not account:
            status, code = self.options.get("unknown_conversation") or (404, "INVALID_PARAMS")
            return self.error(int(status), str(code), "Conversation not found", action)
        return found

    def _message_json(self, c: WorldConversation, m: WorldMessage) -> dict[str, Any]:
        sender = c.sender(m)
        data = {
            "text": m.text,
            "timestamp": m.sent_ms,
            "sender": sender.name,
            "sender_info": {
                "first_name": sender.first_name,
                "last_name": sender.last_name,
                "profile_url": sender.profile_url,
            },
            "message_type": m.kind,
            "entity_urn": m.id,
        }
        if m.attachments:  # [I] not in the documented fields; shown only when a message has one
            data["attachments"] = [{"name": a["name"], "type": a["mediaType"]} for a in m.attachments]
        return data

    def get_conversation(self, account: WorldAccount, params: dict[str, Any]) -> Response:
        action = "get_conversation"
        count = self._count(params, 10, action)
        if isinstance(count, Response):
            return count
        cursor = params.get("cursor")
        if cursor not in (None, "") and not str(cursor).isdigit():
            return self.error(
                400, "INVALID_PARAMS", "cursor must be a next_cursor from a previous call", action
            )
        conversation = self._find_conversation(account, params)
        if isinstance(conversation, Response):
            return conversation
        self.sandbox.count("reads", conversation.id)
        if conversation.id in (self.options.get("fail_conversations") or []):
            return self.error(500, "INTERNAL_ERROR", "LinkedIn did not answer", action)
        newest_first = conversation.messages[::-1]
        if cursor not in (None, ""):
            newest_first = [m for m in newest_first if m.sent_ms < int(cursor)]
        quirks = self.options.get("pagination") or {}
        tie = None if quirks.get("cut_ties") else (lambda m: m.sent_ms)
        page, more = take_page(newest_first, count, quirks, tie=tie)
        cursor_out, _ = next_cursor(page, more, cursor or None, quirks, lambda m: str(m.sent_ms))
        cost = max(1, math.ceil(len(page) / 10))
        if refused := self._afford(cost, action):
            return refused
        last_seen = next((m.sent_ms for m in reversed(conversation.messages) if not m.outbound), None)
        data = {
            "total_message_count": len(conversation.messages),
            "unread_count": conversation.unread,
            "last_seen_message": bool(page) and conversation.unread == 0,
            "last_seen_at": last_seen,
            "messages": [self._message_json(conversation, m) for m in page],
        }
        return self.ok(self._end(data, cursor_out), action, account.id, cost)

    def send(self, account: WorldAccount, params: dict[str, Any]) -> Response:
        action = "send"
        text = params.get("message_text")
        if not text or not isinstance(text, str):
            return self.error(400, "INVALID_PARAMS", "message_text is required", action)
        conversation = self._find_conversation(account, params)
        if isinstance(conversation, Response):
            return conversation
        cost = 2 if params.get("media_link") else 1
        if refused := self._afford(cost, action):
            return refused
        sent_ms = max(conversation.last_ms + 1, int(self.sandbox.now() * 1000))
        message = WorldMessage(
            id=self.world.message_id(conversation, self.world.token()),
            sent_ms=sent_ms,
            outbound=True,
            text=text,
        )
        listed_ms = conversation.listed_ms
        conversation.messages.append(message)
        activity = max(sent_ms, listed_ms + 1)  # a message sent moves the listing
        conversation.activity_ms, conversation.shown = (None if activity == sent_ms else activity), None
        data = {"entity_urn": message.id, "conversation_id": conversation.id, "delivered_at": sent_ms}
        return self.ok(data, action, account.id, cost)

    def sender_id(self, person: Person) -> str:
        return person.profile_url  # LinkupAPI identifies senders by their profile URL
