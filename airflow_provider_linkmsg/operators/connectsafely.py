"""Operators for ConnectSafely: incremental retrieval of LinkedIn inboxes (seed 002)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

from airflow_provider_linkmsg.hooks.connectsafely import MAX_COUNT, ConnectSafelyHook
from airflow_provider_linkmsg.hooks.inbox.connectsafely import ConnectSafelyInbox
from airflow_provider_linkmsg.hooks.pagination import check_conversation_urn, check_count
from airflow_provider_linkmsg.operators.inbox import BaseInboxRetrieveOperator
from airflow_provider_linkmsg.validation import check_inbox_arguments


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
    default_page_size = MAX_COUNT
    template_fields: Sequence[str] = (*BaseInboxRetrieveOperator.template_fields, "connectsafely_conn_id")

    def __init__(
        self, *, connectsafely_conn_id: str = ConnectSafelyHook.default_conn_name, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.connectsafely_conn_id = connectsafely_conn_id

    @cached_property
    def hook(self) -> ConnectSafelyHook:
        return ConnectSafelyHook(self.connectsafely_conn_id)

    def default_account_id(self) -> str | None:
        return self.hook.default_account_id()

    def check_account_id(self, account_id: Any) -> str:
        return self.hook.check_account_id(account_id)

    def check_conversation_id(self, conversation_id: Any, field: str) -> str:
        return check_conversation_urn(conversation_id, field=field, vendor=self.vendor)

    def check_inputs(self) -> None:
        check_inbox_arguments(self)
        check_count(self.effective_page_size, field="page_size", maximum=MAX_COUNT, vendor=self.vendor)

    def inbox(self, account_id: str) -> ConnectSafelyInbox:
        return ConnectSafelyInbox(
            self.hook, account_id, page_size=self.effective_page_size, include_raw=self.include_raw
        )
