"""LinkupAPI answers (seed 004): the ``POST /messages`` envelope, ``list_inbox`` and ``get_conversation``."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, field_validator

from airflow_provider_linkmsg.hooks.pagination import check_conversation_urn
from airflow_provider_linkmsg.schemas.types import (
    Amount,
    Count,
    Id,
    Loose,
    StrictBool,
    StrictStr,
    Timestamp,
    unique_ids,
)


def _urn(value: Any) -> Any:
    try:
        return check_conversation_urn(value, sales_nav=False)
    except ValueError:
        raise ValueError(f"{value!r} is not a conversation URN (urn:li:msg_conversation:(...))") from None


ConversationUrn = Annotated[StrictStr, AfterValidator(_urn)]


class Metadata(Loose):
    credits_consumed: Amount | None = None


class Envelope(Loose):
    """Every ``POST /messages`` answer: ``{"success", "data", "metadata"}``."""

    success: StrictBool | None = None
    metadata: Metadata | None = None


class Sender(Loose):
    profile_url: StrictStr | None = None
    is_me: StrictBool | None = None
    name: StrictStr | None = None


class LastMessage(Loose):
    time: Timestamp | None = None
    text: StrictStr | None = None
    sender: Sender | None = None


class Participant(Loose):
    profile_url: StrictStr | None = None
    name: StrictStr | None = None


class InboxConversation(Loose):
    conversation_id: ConversationUrn
    last_message: LastMessage | None = None
    participant: Participant | None = None
    type: StrictStr | None = None


class InboxData(Loose):
    """``list_inbox``'s ``data``."""

    conversations: list[InboxConversation] | None = None
    next_cursor: StrictStr | None = None

    @field_validator("conversations")
    @classmethod
    def _unique(cls, items: list[InboxConversation] | None) -> list[InboxConversation] | None:
        return unique_ids(items, "conversation_id")


class SenderInfo(Loose):
    profile_url: StrictStr | None = None
    first_name: StrictStr | None = None
    last_name: StrictStr | None = None


class Message(Loose):
    entity_urn: Id
    timestamp: Timestamp
    text: StrictStr | None = None
    sender: StrictStr | None = None
    sender_info: SenderInfo | None = None
    message_type: StrictStr | None = None


class ConversationData(Loose):
    """``get_conversation``'s ``data``."""

    messages: list[Message] | None = None
    next_cursor: StrictStr | None = None
    total_message_count: Count | None = None

    @field_validator("messages")
    @classmethod
    def _unique(cls, items: list[Message] | None) -> list[Message] | None:
        return unique_ids(items, "entity_urn")
