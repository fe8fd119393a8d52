"""Operators for LinkupAPI: incremental retrieval of LinkedIn inboxes within a credit budget (seed 004)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_linkmsg.operators.inbox import BaseInboxRetrieveOperator

# The hook, the inbox adapter and the checks are imported where they are used: DAG files import this module.
if TYPE_CHECKING:
    from airflow_provider_linkmsg.hooks.inbox.linkup import LinkupInbox
    from airflow_provider_linkmsg.hooks.linkup import LinkupHook


def __getattr__(name: str) -> Any:
    if name in ("INBOX_PAGE_SIZE", "LinkupInbox"):  # still importable from here (loaded on first use)
        from airflow_provider_linkmsg.hooks.inbox import linkup

        return getattr(linkup, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    #: the vendor counts each conversation's messages: a window read deepened on that count misses nothing,
    #: and a changed conversation costs one page (a credit) unless it has grown by more
    default_read_mode = "counted"
    template_fields: Sequence[str] = (
        *BaseInboxRetrieveOperator.template_fields,
        "linkup_conn_id",
        "max_credits",
    )

    def __init__(
        self,
        *,
        linkup_conn_id: str = "linkup_default",
        max_credits: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.linkup_conn_id = linkup_conn_id
        self.max_credits = max_credits

    @cached_property
    def hook(self) -> LinkupHook:
        from airflow_provider_linkmsg.hooks.linkup import LinkupHook

        return LinkupHook(self.linkup_conn_id, max_credits=self._max_credits())

    def _max_credits(self) -> float | None:
        from airflow_provider_linkmsg.validation import check_max_credits

        return check_max_credits(self.max_credits, vendor=self.vendor)

    def default_account_id(self) -> str | None:
        return self.hook.default_account_id()

    def check_account_id(self, account_id: Any) -> str:
        return self.hook.check_account_id(account_id)

    def check_conversation_id(self, conversation_id: Any, field: str) -> str:
        from airflow_provider_linkmsg.hooks.pagination import check_conversation_urn

        return check_conversation_urn(conversation_id, field=field, sales_nav=False, vendor=self.vendor)

    def check_inputs(self) -> None:
        from airflow_provider_linkmsg.hooks.linkup import MAX_COUNT
        from airflow_provider_linkmsg.hooks.pagination import check_count
        from airflow_provider_linkmsg.validation import check_inbox_arguments

        check_inbox_arguments(self)
        self._max_credits()
        check_count(self.effective_page_size, field="page_size", maximum=MAX_COUNT, vendor=self.vendor)

    def inbox(self, account_id: str) -> LinkupInbox:
        from airflow_provider_linkmsg.hooks.inbox.linkup import LinkupInbox

        return LinkupInbox(
            self.hook, account_id, page_size=self.effective_page_size, include_raw=self.include_raw
        )

    def usage(self, inbox: LinkupInbox) -> dict[str, float]:
        if self._max_credits() is None:  # no budget: say what the run cost, so an unexpected bill shows
            self.log.info(
                "No max_credits set: this task spent %s credit(s) in %s call(s); set max_credits to cap it",
                self.hook.credits_used,
                self.hook.api_calls,
            )
        return inbox.usage()
