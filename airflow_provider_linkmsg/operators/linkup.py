"""Operators for LinkupAPI: incremental retrieval of LinkedIn inboxes within a credit budget (seed 004)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import cached_property
from typing import Any

from airflow_provider_linkmsg.hooks.linkup import MAX_COUNT, LinkupHook
from airflow_provider_linkmsg.hooks.pagination import check_conversation_urn, check_count
from airflow_provider_linkmsg.operators.inbox import BaseInboxRetrieveOperator, Conversation, ReadWindow
from airflow_provider_linkmsg.records import Message, to_utc_iso
from airflow_provider_linkmsg.validation import check_inbox_arguments, check_max_credits

#: conversations per ``list_inbox`` call (a credit per ten, so any multiple of ten costs the same)
INBOX_PAGE_SIZE = 50


class LinkupRetrieveMessagesOperator(BaseInboxRetrieveOperator):
    """
    Stage the messages of a LinkupAPI account's conversations that are new since the last run.

    Lists the inbox (most recent first), skips conversations with no activity since their watermark, and
    reads the others from the newest message backward, stopping at the first page that reaches the
    watermark. With ``max_credits`` no call is sent that could take the task's spend past it: the task
    stages what it read, reports the rest as pending, and the next run continues.

    :param linkup_conn_id: Airflow connection of type ``linkup``.
    :param account_id: ``acc_...``; the connection's ``account_id`` extra when not given.
    :param max_credits: the most credits this task may spend (``None``: no limit).
    :param page_size: messages per call, 1 to 100 (10: one credit a page, the cheapest for incremental reads).

    The other arguments are those of :class:`~airflow_provider_linkmsg.operators.inbox.BaseInboxRetrieveOperator`.

    :return: (XCom) ``{"manifest", "records", "conversations_read", "api_calls", "credits",
        "budget_exhausted", "conversations_pending", ...}``.
    """

    vendor = "linkup"
    default_page_size = 10
    template_fields: Sequence[str] = (
        *BaseInboxRetrieveOperator.template_fields,
        "linkup_conn_id",
        "max_credits",
    )

    def __init__(
        self,
        *,
        linkup_conn_id: str = LinkupHook.default_conn_name,
        max_credits: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.linkup_conn_id = linkup_conn_id
        self.max_credits = max_credits
        self._owner_urls: set[str] = set()

    @cached_property
    def hook(self) -> LinkupHook:
        return LinkupHook(self.linkup_conn_id, max_credits=self._max_credits())

    def _max_credits(self) -> float | None:
        return check_max_credits(self.max_credits, vendor=self.vendor)

    def default_account_id(self) -> str | None:
        return self.hook.default_account_id()

    def check_account_id(self, account_id: Any) -> str:
        return self.hook.check_account_id(account_id)

    def check_conversation_id(self, conversation_id: Any, field: str) -> str:
        return check_conversation_urn(conversation_id, field=field, sales_nav=False, vendor=self.vendor)

    def check_inputs(self) -> None:
        check_inbox_arguments(self)
        self._max_credits()
        check_count(self.effective_page_size, field="page_size", maximum=MAX_COUNT, vendor=self.vendor)

    def list_conversations(self, account_id: str) -> Iterator[Conversation]:
        for item in self.hook.iter_inbox(account_id, count=INBOX_PAGE_SIZE):
            self._owner_urls |= self.hook.owner_urls([item])
            time = (item.get("last_message") or {}).get("time")
            yield Conversation(
                id=item["conversation_id"],
                last_activity=to_utc_iso(time) if time not in (None, "") else None,
                channel=self.hook.channel_of(item),
                info={"participant_url": (item.get("participant") or {}).get("profile_url")},
            )

    def read_conversation(
        self, account_id: str, conversation: Conversation, window: ReadWindow
    ) -> Iterator[Message]:
        pages = self.hook.iter_messages(
            account_id, conversation_id=conversation.id, count=self.effective_page_size
        )
        for raw in pages:
            message = self.hook.to_message(
                raw,
                account_id=account_id,
                conversation_id=conversation.id,
                owner_urls=self._owner_urls,
                participant_url=conversation.info.get("participant_url"),
                channel=conversation.channel,
                include_raw=self.include_raw,
            )
            if window.below(message):
                return  # newest first: the rest is staged already, and no further page is fetched
            yield message

    def usage(self) -> dict[str, float]:
        if self._max_credits() is None:  # no budget: say what the run cost, so an unexpected bill shows
            self.log.info(
                "No max_credits set: this task spent %s credit(s) in %s call(s); set max_credits to cap it",
                self.hook.credits_used,
                self.hook.api_calls,
            )
        return {"api_calls": self.hook.api_calls, "credits": self.hook.credits_used}

    def listing_memo(self) -> dict[str, Any]:
        # the owner's profile URLs tell sent from received: keep them for runs that list only a page
        return {"owner_urls": sorted(self._owner_urls)}

    def recall_listing_memo(self, memo: dict[str, Any]) -> None:
        self._owner_urls |= set(memo.get("owner_urls") or [])
