"""
Hook for ConnectSafely: LinkedIn inboxes over a Bearer-authenticated REST API (seed 002).

Routes used: ``GET /accounts``, ``GET /account/status``, ``GET /conversations`` (cursor ``nextCursor``,
``hasMore``) and ``GET /conversations/{urn}/messages`` (``cursor`` to older messages, ``since`` to newer).
Timestamps are epoch milliseconds.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from airflow_provider_linkmsg.exceptions import LinkMsgValidationError
from airflow_provider_linkmsg.hooks.base import LinkMsgHook, _short, parse_reset_time
from airflow_provider_linkmsg.hooks.forms import ConnectionFormMixin
from airflow_provider_linkmsg.hooks.pagination import (
    DEFAULT_MAX_PAGES,
    Page,
    check_conversation_urn,
    check_count,
    page_items,
    paginate,
    paginate_messages,
    require,
)
from airflow_provider_linkmsg.records import Message, to_utc_iso, utc_to_epoch_ms
from airflow_provider_linkmsg.schemas import connectsafely as schema

ACCOUNT_ID = re.compile(r"\A[0-9a-f]{24}\Z")  # \Z: a trailing newline is no id
SALES_NAV_PREFIX = "urn:li:salesNav_thread:"
#: the largest ``count`` asked for (the vendor documents no maximum; the sandbox caps at 100)
MAX_COUNT = 100


class ConnectSafelyHook(ConnectionFormMixin, LinkMsgHook):
    """
    Interact with the ConnectSafely API.

    :param connectsafely_conn_id: Airflow connection of type ``connectsafely``; its extra ``account_id`` is
        the account used when a call names none.
    """

    conn_type = "connectsafely"
    conn_name_attr = "connectsafely_conn_id"
    default_conn_name = "connectsafely_default"
    hook_name = "ConnectSafely"
    vendor = "connectsafely"
    account_id_pattern = ACCOUNT_ID
    account_id_form = "24 hex digits such as 696ce9e780e0483585e4e553"
    auth_statuses = frozenset({401, 403})  # 403: trial expired or no subscription

    def __init__(self, connectsafely_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(connectsafely_conn_id, **kwargs)

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.conn_params.api_key}"}

    def check_connection(self) -> str:
        accounts = self.request("GET", "/accounts").data or []
        return f"{len(accounts)} LinkedIn account(s)"

    def describe_error(self, status: int, body: Any, text: str) -> tuple[str, str | None]:
        """Also reads the cookbook's Zod shape ``{"error": {"name": "ZodError", "issues": [...]}}``."""
        err = body.get("error") if isinstance(body, dict) else None
        if isinstance(err, dict) and isinstance(err.get("issues"), list):
            issues = "; ".join(
                f"{'.'.join(str(p) for p in i.get('path') or []) or '(body)'}: {i.get('message')}"
                for i in err["issues"][:20]  # the message is shortened anyway: do not join megabytes
                if isinstance(i, dict)
            )
            name = _short(str(err.get("name") or "validation_error"))
            return _short(issues or name), name
        message, code = super().describe_error(status, body, text)
        if status == 403 and code is None:
            message += " (ConnectSafely answers 403 when the trial has expired or there is no subscription)"
        return message, code

    def retry_after(self, headers: Mapping[str, str], body: Any) -> float | None:
        """
        ``Retry-After`` if sent, else the 429 body's ``holdUntil`` (ISO), else ``X-RateLimit-Reset``
        (ISO-8601 per the cookbook, Unix time per an older page): ConnectSafely documents the last two.
        """
        seconds = super().retry_after(headers, body)
        if seconds is None and isinstance(body, dict):
            seconds = parse_reset_time(body.get("holdUntil"))
        if seconds is None:
            seconds = parse_reset_time(headers.get("X-RateLimit-Reset"))
        return seconds

    # ---- accounts -------------------------------------------------------------------------------------
    def list_accounts(self, q: str | None = None) -> list[dict[str, Any]]:
        """
        The LinkedIn accounts of this API key (``GET /accounts``).

        :param q: a name, public id, account id or profile URL to match.
        """
        return list(self.request("GET", "/accounts", params={"q": q}).data or [])

    def get_account_status(self, account_id: str | None = None) -> dict[str, Any]:
        """
        Status, plan and Sales Navigator flag of an account (the default account when none is given).

        :param account_id: 24-hex account id.
        """
        if account_id is None:
            return self.request("GET", "/account/status").data
        self.check_account_id(account_id)
        return self.request("GET", f"/account/{account_id}/status").data

    # ---- conversations --------------------------------------------------------------------------------
    def iter_conversation_pages(
        self,
        account_id: str | Sequence[str] | None = None,
        *,
        count: int = MAX_COUNT,
        unread_only: bool = False,
        labeled_only: bool = False,
        label_id: str | None = None,
        cursor: str | None = None,
        max_pages: int | None = DEFAULT_MAX_PAGES,
    ) -> Iterator[Page[dict[str, Any]]]:
        """
        Pages of ``GET /conversations``, most recent activity first.

        :param account_id: one account id, or several (a multi-account batch); the default account if none.
        :param count: conversations per page, 1 to 100.
        :param unread_only: only conversations with unread messages.
        :param labeled_only: only conversations that carry a label.
        :param label_id: only conversations with this label.
        :param cursor: a ``nextCursor`` to start from (opaque; the ``linkedin:`` form included).
        :param max_pages: raise rather than follow more pages than this.
        """
        check_count(count, maximum=MAX_COUNT, vendor=self.vendor)
        params: dict[str, Any] = {
            "count": count,
            "unreadOnly": "true" if unread_only else None,
            "labeledOnly": "true" if labeled_only else None,
            "labelId": label_id,
        }
        if isinstance(account_id, str):
            params["accountId"] = self.check_account_id(account_id)
        elif account_id:
            ids = [self.check_account_id(a, "account_id[]") for a in account_id]
            params["linkedinAccountIds"] = ",".join(ids)

        def fetch(page_cursor: str | None) -> Page[dict[str, Any]]:
            data = self.request("GET", "/conversations", params={**params, "nextCursor": page_cursor}).data
            self.check(schema.ConversationsPage, data, route="GET /conversations")
            return Page(list(data.get("conversations") or []), data.get("nextCursor"), data.get("hasMore"))

        return paginate(
            fetch,
            cursor=cursor,
            max_pages=max_pages,
            what="conversations",
            vendor=self.vendor,
            item_key=lambda item: item.get("conversationUrn"),
        )

    def iter_conversations(
        self, account_id: str | Sequence[str] | None = None, **kwargs: Any
    ) -> Iterator[dict]:
        """Every conversation, one at a time; takes the arguments of :meth:`iter_conversation_pages`."""
        yield from page_items(self.iter_conversation_pages(account_id, **kwargs))

    # ---- messages -------------------------------------------------------------------------------------
    def iter_message_pages(
        self,
        conversation_urn: str,
        *,
        account_id: str | None = None,
        count: int = MAX_COUNT,
        cursor: str | None = None,
        since: int | None = None,
        sync: bool | None = None,
        max_pages: int | None = DEFAULT_MAX_PAGES,
    ) -> Iterator[Page[dict[str, Any]]]:
        """
        Pages of a conversation's messages: backward from the newest (or ``cursor``), or those after ``since``.

        With ``since``, items at or before it are dropped and paging stops at the first page that reaches it,
        whether the vendor answers in one page (as documented) or pages back towards it.

        :param conversation_urn: the conversation's URN (standard or ``urn:li:salesNav_thread:``), not encoded.
        :param account_id: 24-hex account id (the default account if none).
        :param count: messages per page, 1 to 100.
        :param cursor: a ``cursor`` from an earlier page: fetch older messages.
        :param since: epoch ms: only messages newer than this.
        :param sync: wait for LinkedIn's answer (the vendor's ``sync``).
        :param max_pages: raise rather than follow more pages than this.
        """
        check_conversation_urn(conversation_urn, field="conversation_urn", vendor=self.vendor)
        check_count(count, maximum=MAX_COUNT, vendor=self.vendor)
        if account_id is not None:
            self.check_account_id(account_id)
        if since is not None and (isinstance(since, bool) or not isinstance(since, int) or since < 0):
            raise LinkMsgValidationError(
                f"since must be epoch milliseconds (an int >= 0), got {since!r}",
                field="since",
                vendor=self.vendor,
            )
        endpoint = f"/conversations/{quote(conversation_urn, safe='')}/messages"
        params = {"accountId": account_id, "count": count, "since": since}
        if sync is not None:
            params["sync"] = "true" if sync else "false"

        def fetch(page_cursor: str | None) -> Page[dict[str, Any]]:
            data = self.request("GET", endpoint, params={**params, "cursor": page_cursor}).data
            self.check(schema.MessagesPage, data, route="GET /conversations/{urn}/messages")
            items = list(data.get("messages") or [])
            if since is not None:
                newer = [m for m in items if utc_to_epoch_ms(m["sentAt"]) > since]  # ms or ISO
                if len(newer) < len(items):  # reached ``since``: nothing older is wanted
                    return Page(newer, None, False, meta={"participants": data.get("participants")})
                items = newer
            return Page(
                items,
                data.get("cursor"),
                data.get("hasMore"),
                meta={"participants": data.get("participants")},
            )

        return paginate_messages(
            fetch,
            conversation=conversation_urn,
            id_field="messageUrn",
            cursor=cursor,
            max_pages=max_pages,
            vendor=self.vendor,
        )

    def iter_messages(self, conversation_urn: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Every message asked for, one at a time; takes the arguments of :meth:`iter_message_pages`."""
        yield from page_items(self.iter_message_pages(conversation_urn, **kwargs))

    # ---- records --------------------------------------------------------------------------------------
    @staticmethod
    def channel_of(conversation_urn: str, source: str | None = None) -> str:
        """``sales_navigator`` for Sales Navigator threads, else ``standard``."""
        sales_nav = conversation_urn.startswith(SALES_NAV_PREFIX) or source == "sales_navigator"
        return "sales_navigator" if sales_nav else "standard"

    def to_message(
        self, raw: dict[str, Any], *, account_id: str, conversation_urn: str, include_raw: bool = False
    ) -> Message:
        """
        Normalize one message of ``GET /conversations/{urn}/messages``.

        :param raw: the vendor's message object.
        :param account_id: the account whose inbox it is.
        :param conversation_urn: its conversation.
        :param include_raw: keep the vendor's JSON in ``raw``.
        """
        if type(raw) is not dict or raw.get("messageUrn") in (None, "") or raw.get("sentAt") in (None, ""):
            require(raw, "messageUrn", "sentAt", what=f"a message of {conversation_urn}", vendor=self.vendor)
        return Message(
            vendor=self.vendor,
            account_id=account_id,
            conversation_id=conversation_urn,
            message_id=str(raw["messageUrn"]),
            sent_at=to_utc_iso(raw["sentAt"]),
            direction="outbound" if raw.get("isSentByOwner") else "inbound",
            sender_id=raw.get("senderProfileId"),
            sender_name=raw.get("senderName"),
            text=raw.get("text") or "",
            message_type=str(raw.get("type") or "TEXT"),
            has_attachments=bool(raw.get("hasAttachment") or raw.get("attachments")),
            channel=self.channel_of(conversation_urn),
            raw=raw if include_raw else None,
        )
