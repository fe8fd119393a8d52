"""
Hook for LinkupAPI (v2): LinkedIn inboxes, credits charged per call (seed 004).

Every messaging call is ``POST /messages`` with ``{"account_id", "action", "params"}``; answers come in the
envelope ``{"success", "data" | "error": {"code", "message"}, "metadata": {"credits_consumed", ...}}``.
Errors are typed by ``error.code``. The hook adds up ``metadata.credits_consumed`` and, given
``max_credits``, refuses before sending any call that could take the spend past it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from airflow_provider_linkmsg.exceptions import (
    LinkMsgAuthError,
    LinkMsgBudgetExceededError,
    LinkMsgError,
    LinkMsgNotFoundError,
    LinkMsgRateLimitedError,
    LinkMsgResponseError,
    LinkMsgValidationError,
    LinkMsgVendorError,
)
from airflow_provider_linkmsg.hooks.base import LinkMsgHook
from airflow_provider_linkmsg.hooks.forms import ConnectionFormMixin
from airflow_provider_linkmsg.hooks.pagination import (
    DEFAULT_MAX_PAGES,
    CreditBudget,
    Page,
    check_conversation_urn,
    check_count,
    check_profile_url,
    page_items,
    paginate,
    paginate_messages,
    per_ten,
    require,
)
from airflow_provider_linkmsg.records import Message, to_utc_iso
from airflow_provider_linkmsg.schemas import linkup as schema

ACCOUNT_ID = re.compile(r"\Aacc_[A-Za-z0-9_-]{1,64}\Z")  # \Z: a trailing newline is no id
#: the largest ``count`` asked for (undocumented; the sandbox caps at 100)
MAX_COUNT = 100

_ERRORS: dict[str, type[LinkMsgError]] = {
    "INVALID_API_KEY": LinkMsgAuthError,
    "ACCOUNT_INACTIVE": LinkMsgAuthError,
    "INVALID_ACCOUNT": LinkMsgNotFoundError,
    "INVALID_ACTION": LinkMsgValidationError,
    "INVALID_PARAMS": LinkMsgValidationError,
    "RATE_LIMITED": LinkMsgRateLimitedError,
    "INSUFFICIENT_CREDITS": LinkMsgBudgetExceededError,
    "INTERNAL_ERROR": LinkMsgVendorError,
}


class LinkupHook(ConnectionFormMixin, LinkMsgHook):
    """
    Interact with LinkupAPI v2.

    :param linkup_conn_id: Airflow connection of type ``linkup``; its extra ``account_id`` is the account
        used when a call names none.
    :param max_credits: the most this hook may spend; a call that could exceed it raises
        :class:`~airflow_provider_linkmsg.exceptions.LinkMsgBudgetExceededError` before it is sent.
    """

    conn_type = "linkup"
    conn_name_attr = "linkup_conn_id"
    default_conn_name = "linkup_default"
    hook_name = "LinkupAPI"
    vendor = "linkup"
    account_id_pattern = ACCOUNT_ID
    account_id_form = "acc_ followed by letters and digits, such as acc_abc123"
    auth_statuses = frozenset({401, 403})  # INVALID_API_KEY and ACCOUNT_INACTIVE are 403

    def __init__(
        self, linkup_conn_id: str = default_conn_name, *, max_credits: float | None = None, **kwargs: Any
    ) -> None:
        super().__init__(linkup_conn_id, **kwargs)
        self.budget = CreditBudget(max_credits, vendor=self.vendor)

    @property
    def credits_used(self) -> float:
        """Credits the vendor reported for this hook's calls."""
        return self.budget.spent

    def auth_headers(self) -> dict[str, str]:
        return {"x-api-key": self.conn_params.api_key}

    def check_connection(self) -> str:
        data = (self.request("GET", "/accounts", params={"limit": 1}).data or {}).get("data") or {}
        return f"{data.get('total', 0)} account(s)"

    def error_class(self, status: int, code: str | None) -> type[LinkMsgError]:
        """The type for the vendor's ``error.code``; the HTTP status only when the code is unknown."""
        return _ERRORS.get(code or "") or super().error_class(status, code)

    # ---- inputs ---------------------------------------------------------------------------------------

    # ---- the action call ------------------------------------------------------------------------------
    def action(
        self,
        action: str,
        params: dict[str, Any],
        *,
        account_id: str,
        estimate: float,
        category: str = "messages",
        idempotent: bool = True,
    ) -> tuple[dict[str, Any], float]:
        """
        ``POST /{category}`` with one action; returns ``(data, credits_consumed)``.

        The call is refused before it is sent when ``estimate`` (the most it can cost) does not fit the
        budget. ``null`` and empty parameters are dropped, as the vendor's own clients do.

        :param action: e.g. ``get_conversation``.
        :param params: the action's parameters.
        :param account_id: ``acc_...``.
        :param estimate: the most this call can cost, in credits.
        :param idempotent: false for calls that act (``send``): they are not retried after a doubtful failure.
        """
        self.check_account_id(account_id)
        body = {
            "account_id": account_id,
            "action": action,
            "params": {k: v for k, v in params.items() if v is not None and v != ""},
        }
        self.budget.reserve(estimate, f"{action} on {account_id}")
        credits: float = 0
        try:
            response = self.request(
                "POST",
                f"/{category}",
                json_body=body,
                idempotent=idempotent,
                on_lost_answer=lambda: self.budget.charge_lost(estimate, f"{action} on {account_id}"),
            )
            data, credits = self.open_envelope(response, action, estimate=estimate, category=category)
            return data, credits
        except LinkMsgError as exc:
            credits = getattr(exc, "credits", 0)
            raise
        finally:
            self.budget.settle(estimate, credits)

    def open_envelope(
        self, response: Any, action: str, *, estimate: float, category: str = "messages"
    ) -> tuple[dict[str, Any], float]:
        """
        The ``data`` and ``credits_consumed`` of one action's answer (for :meth:`action` and the async look of
        the activity watcher).

        :param response: the transport's answer.
        :param action: the action sent, for the error.
        :param estimate: the most the call could cost.
        :param category: the endpoint's category.
        :raises LinkMsgError: typed by ``error.code`` for an error envelope (nothing charged), or
            :class:`LinkMsgResponseError` for a malformed one; the error's ``credits`` is what the call may
            have cost (``estimate`` when the answer cannot say).
        """
        envelope = response.data if isinstance(response.data, dict) else {}
        if envelope.get("success") is not True:
            message, code = self.describe_error(response.status, self.redact.deep(envelope), "")
            message, code = self.redact(message), code and self.redact(str(code))
            raise self.error_class(response.status, code)(
                f"{action}: {message}",
                vendor=self.vendor,
                method="POST",
                endpoint=f"/{category}",
                code=code,
            )
        try:
            self.check(schema.Envelope, envelope, route=f"POST /{category} {action}")
        except LinkMsgResponseError as exc:
            exc.credits = estimate  # type: ignore[attr-defined]  # the vendor may have charged: the most it could
            raise
        credits = (envelope.get("metadata") or {}).get("credits_consumed")
        if credits is None:  # an unreported cost counts as the most the call can cost
            credits = estimate
            if not getattr(self, "_said_unreported", False):
                self._said_unreported = True
                self.log.warning(
                    "LinkupAPI %s: the answer reports no metadata.credits_consumed; counting the most the "
                    "call can cost (%g credits) for this and every such answer of this hook",
                    action,
                    estimate,
                )
        data = envelope.get("data")
        if not isinstance(data, dict):
            error = LinkMsgResponseError(
                f"{action}: the answer has no data object", vendor=self.vendor, endpoint=f"/{category}"
            )
            error.credits = credits  # type: ignore[attr-defined]
            raise error
        return data, credits

    # ---- accounts -------------------------------------------------------------------------------------
    def list_accounts(self, *, limit: int = 50) -> Iterator[dict[str, Any]]:
        """
        Every account of this API key (``GET /accounts``, paged by offset; free).

        :param limit: accounts per page, 1 to 500.
        """
        check_count(limit, field="limit", maximum=500, vendor=self.vendor)
        offset = 0
        while True:
            data = self.request("GET", "/accounts", params={"limit": limit, "offset": offset}).data["data"]
            items = list(data.get("items") or [])
            yield from items
            offset += len(items)
            if not items or offset >= int(data.get("total") or 0):
                return

    def get_account(self, account_id: str) -> dict[str, Any]:
        """One account's status (``GET /accounts/{id}``)."""
        self.check_account_id(account_id)
        return self.request("GET", f"/accounts/{account_id}").data["data"]

    # ---- webhooks -------------------------------------------------------------------------------------
    def create_webhook(
        self,
        account_id: str,
        url: str,
        *,
        events: Iterable[str] = ("message_received",),
        enable_signature: bool = True,
    ) -> dict[str, Any]:
        """
        Register a webhook for an account (``POST /webhooks``; free to create, LinkupAPI bills about 10
        credits a day per monitored account). Not retried after a doubtful failure: a second call would
        register a second webhook, and every message would arrive twice.

        :param account_id: ``acc_...``.
        :param url: where LinkupAPI POSTs: the provider's plugin endpoint,
            :func:`airflow_provider_linkmsg.events.webhook_url` (``..., "linkup", conn_id)``).
        :param events: ``message_received``, ``accepted_invitation`` or ``all``.
        :param enable_signature: sign deliveries; the answer's ``secret`` is shown once.
        :return: the vendor's ``data``: ``webhook_id``, ``secret`` (store it in this connection's extra
            ``webhook_secrets`` under the account id; it is masked in logs) ...
        """
        self.check_account_id(account_id)
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise LinkMsgValidationError(
                f"url must be the http(s) URL of the webhook endpoint, got {url!r}",
                field="url",
                vendor=self.vendor,
            )
        body = {
            "account_id": account_id,
            "url": url,
            "events": list(events),
            "enable_signature": enable_signature,
        }
        response = self.request("POST", "/webhooks", json_body=body, idempotent=False)
        envelope = response.data if isinstance(response.data, dict) else {}
        data = envelope.get("data")
        if envelope.get("success") is not True or not isinstance(data, dict) or not data.get("webhook_id"):
            raise LinkMsgResponseError(
                f"create webhook for {account_id}: the answer has no data.webhook_id",
                vendor=self.vendor,
                method="POST",
                endpoint="/webhooks",
            )
        if data.get("secret"):
            from airflow.providers.common.compat.sdk import mask_secret

            mask_secret(data["secret"])
        return data

    # ---- inbox ----------------------------------------------------------------------------------------
    def iter_inbox_pages(
        self,
        account_id: str,
        *,
        count: int = 50,
        category: str | None = None,
        unread_only: bool | None = None,
        cursor: str | None = None,
        max_pages: int | None = DEFAULT_MAX_PAGES,
    ) -> Iterator[Page[dict[str, Any]]]:
        """
        Pages of ``list_inbox``, most recent first; each costs one credit per ten conversations.

        :param account_id: ``acc_...``.
        :param count: conversations per page, 1 to 100.
        :param category: the vendor's inbox category (e.g. ``STARRED``).
        :param unread_only: only conversations with unread messages.
        :param cursor: a ``next_cursor`` to start from.
        :param max_pages: raise rather than follow more pages than this.
        """
        self.check_account_id(account_id)
        check_count(count, maximum=MAX_COUNT, vendor=self.vendor)
        params = {"count": count, "category": category, "unread_only": unread_only}

        def fetch(page_cursor: str | None) -> Page[dict[str, Any]]:
            data, credits = self.action(
                "list_inbox",
                {**params, "cursor": page_cursor},
                account_id=account_id,
                estimate=per_ten(count),
            )
            self.check(schema.InboxData, data, route="POST /messages list_inbox", prefix="data")
            return Page(
                list(data.get("conversations") or []), data.get("next_cursor"), meta={"credits": credits}
            )

        key = lambda item: item.get("conversation_id")  # noqa: E731
        return paginate(
            fetch, cursor=cursor, max_pages=max_pages, what="inbox", vendor=self.vendor, item_key=key
        )

    def iter_inbox(self, account_id: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Every conversation of the inbox; takes the arguments of :meth:`iter_inbox_pages`."""
        yield from page_items(self.iter_inbox_pages(account_id, **kwargs))

    # ---- conversations --------------------------------------------------------------------------------
    def iter_conversation_pages(
        self,
        account_id: str,
        *,
        conversation_id: str | None = None,
        profile_url: str | None = None,
        count: int = 10,
        cursor: str | None = None,
        max_pages: int | None = DEFAULT_MAX_PAGES,
    ) -> Iterator[Page[dict[str, Any]]]:
        """
        Pages of ``get_conversation``, newest messages first, each page older than the one before.

        Lazy: a caller that stops iterating (it reached what it already has) spends nothing more. Each page
        costs one credit per ten messages, at least one.

        :param account_id: ``acc_...``.
        :param conversation_id: the conversation's URN, from :meth:`iter_inbox`.
        :param profile_url: instead of ``conversation_id``: the other member's LinkedIn profile URL.
        :param count: messages per page, 1 to 100.
        :param cursor: a ``next_cursor`` from an earlier page.
        :param max_pages: raise rather than follow more pages than this.
        """
        self.check_account_id(account_id)
        check_count(count, maximum=MAX_COUNT, vendor=self.vendor)
        if (conversation_id is None) == (profile_url is None):
            raise LinkMsgValidationError(
                "give exactly one of conversation_id and profile_url",
                field="conversation_id",
                vendor=self.vendor,
            )
        params: dict[str, Any] = {"count": count}
        if conversation_id is not None:
            params["conversation_id"] = check_conversation_urn(
                conversation_id, sales_nav=False, vendor=self.vendor
            )
        else:
            params["profile_url"] = check_profile_url(profile_url, vendor=self.vendor)

        def fetch(page_cursor: str | None) -> Page[dict[str, Any]]:
            data, credits = self.action(
                "get_conversation",
                {**params, "cursor": page_cursor},
                account_id=account_id,
                estimate=per_ten(count, minimum=1),
            )
            self.check(schema.ConversationData, data, route="POST /messages get_conversation", prefix="data")
            total = data.get("total_message_count")  # paginate bounds the read by it
            meta = {"credits": credits, "total_message_count": total, "total": total}
            return Page(list(data.get("messages") or []), data.get("next_cursor"), meta=meta)

        return paginate_messages(
            fetch,
            conversation=conversation_id or profile_url,
            id_field="entity_urn",
            cursor=cursor,
            max_pages=max_pages,
            vendor=self.vendor,
        )

    def iter_messages(self, account_id: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """A conversation's messages, newest first; takes the arguments of :meth:`iter_conversation_pages`."""
        yield from page_items(self.iter_conversation_pages(account_id, **kwargs))

    # ---- records --------------------------------------------------------------------------------------
    @staticmethod
    def owner_urls(conversations: Iterable[dict[str, Any]]) -> set[str]:
        """Profile URLs of the account owner, seen as ``is_me`` senders in ``list_inbox`` items."""
        urls = set()
        for item in conversations:
            sender = (item.get("last_message") or {}).get("sender") or {}
            if sender.get("is_me") and sender.get("profile_url"):
                urls.add(_same_profile(sender["profile_url"]))
        return urls

    @staticmethod
    def channel_of(conversation: dict[str, Any]) -> str:
        """``sales_navigator`` for a ``list_inbox`` item of a Sales Navigator / InMail type, else ``standard``."""
        kind = str(conversation.get("type") or "normal").lower()
        return "sales_navigator" if "sales" in kind or "inmail" in kind else "standard"

    def to_message(
        self,
        raw: dict[str, Any],
        *,
        account_id: str,
        conversation_id: str,
        owner_urls: Iterable[str] = (),
        participant_url: str | None = None,
        channel: str = "standard",
        include_raw: bool = False,
    ) -> Message:
        """
        Normalize one ``get_conversation`` message.

        LinkupAPI does not flag the owner's messages, so the direction comes from the sender's profile URL:
        ``outbound`` when it is one of ``owner_urls``, else ``inbound`` when it is the conversation's
        participant or when the owner is known.

        :param raw: the vendor's message object.
        :param account_id: the account whose inbox it is.
        :param conversation_id: its conversation.
        :param owner_urls: the account owner's profile URL(s) (:meth:`owner_urls`).
        :param participant_url: the other member's profile URL (``list_inbox`` ``participant``).
        :param channel: ``standard`` or ``sales_navigator``.
        :param include_raw: keep the vendor's JSON in ``raw``.
        """
        require(raw, "entity_urn", "timestamp", what=f"a message of {conversation_id}", vendor=self.vendor)
        info = raw.get("sender_info") or {}
        sender_url = info.get("profile_url")
        owners = {_same_profile(u) for u in owner_urls}
        sender = _same_profile(sender_url) if sender_url else None
        if sender is not None and sender in owners:
            direction = "outbound"
        elif owners or participant_url is None or sender is None:
            direction = "inbound"
        else:
            direction = "inbound" if sender == _same_profile(participant_url) else "outbound"
        name = raw.get("sender") or " ".join(p for p in (info.get("first_name"), info.get("last_name")) if p)
        return Message(
            vendor=self.vendor,
            account_id=account_id,
            conversation_id=conversation_id,
            message_id=str(raw["entity_urn"]),
            sent_at=to_utc_iso(raw["timestamp"]),
            direction=direction,
            sender_id=sender_url,
            sender_name=name or None,
            text=raw.get("text") or "",
            message_type=str(raw.get("message_type") or "TEXT"),
            has_attachments=bool(raw.get("attachments") or raw.get("media")),
            channel=channel,
            raw=raw if include_raw else None,
        )


def _same_profile(url: str) -> str:
    """A profile URL in a form that compares equal across ``http``/``www``/trailing-slash variants."""
    text = url.strip().lower().split("?", 1)[0].rstrip("/")
    return re.sub(r"^https?://([a-z]{2,3}\.)?(www\.)?", "", text)
