"""Operators for ConnectSafely: incremental retrieval of LinkedIn inboxes (seed 002)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_linkmsg.operators.inbox import BaseInboxRetrieveOperator

# The hook, the inbox adapter and the checks are imported where they are used: DAG files import this module.
if TYPE_CHECKING:
    from airflow_provider_linkmsg.hooks.connectsafely import ConnectSafelyHook
    from airflow_provider_linkmsg.hooks.inbox.connectsafely import ConnectSafelyInbox


class ConnectSafelyRetrieveMessagesOperator(BaseInboxRetrieveOperator):
    """
    Stage the messages of a ConnectSafely account's conversations that are new since the last run.

    Lists the conversations (most recent first), skips those with no activity since their watermark,
    and reads the others forward from their watermark with ``since`` (a first read pages back through the
    whole history). Sales Navigator threads are read like the others and staged with channel
    ``sales_navigator``.

    :param connectsafely_conn_id: Airflow connection of type ``connectsafely``.
    :param account_id: 24-hex account id; the connection's ``account_id`` extra when not given.
    :param page_size: messages per call, 1 to 100 (100).

    The other arguments are those of :class:`~airflow_provider_linkmsg.operators.inbox.BaseInboxRetrieveOperator`.

    :return: (XCom) ``{"manifest", "records", "conversations_read", "api_calls", "credits": 0, ...}``.
    """

    vendor = "connectsafely"
    default_page_size = 100  # the hook's MAX_COUNT
    template_fields: Sequence[str] = (*BaseInboxRetrieveOperator.template_fields, "connectsafely_conn_id")

    def __init__(self, *, connectsafely_conn_id: str = "connectsafely_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.connectsafely_conn_id = connectsafely_conn_id

    @cached_property
    def hook(self) -> ConnectSafelyHook:
        from airflow_provider_linkmsg.hooks.connectsafely import ConnectSafelyHook

        return ConnectSafelyHook(self.connectsafely_conn_id)

    def default_account_id(self) -> str | None:
        return self.hook.default_account_id()

    def check_account_id(self, account_id: Any) -> str:
        return self.hook.check_account_id(account_id)

    def check_conversation_id(self, conversation_id: Any, field: str) -> str:
        from airflow_provider_linkmsg.hooks.pagination import check_conversation_urn

        return check_conversation_urn(conversation_id, field=field, vendor=self.vendor)

    def check_inputs(self) -> None:
        from airflow_provider_linkmsg.hooks.connectsafely import MAX_COUNT
        from airflow_provider_linkmsg.hooks.pagination import check_count
        from airflow_provider_linkmsg.validation import check_inbox_arguments

        check_inbox_arguments(self)
        check_count(self.effective_page_size, field="page_size", maximum=MAX_COUNT, vendor=self.vendor)

    def inbox(self, account_id: str) -> ConnectSafelyInbox:
        from airflow_provider_linkmsg.hooks.inbox.connectsafely import ConnectSafelyInbox

        return ConnectSafelyInbox(
            self.hook, account_id, page_size=self.effective_page_size, include_raw=self.include_raw
        )
