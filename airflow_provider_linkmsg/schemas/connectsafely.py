"""ConnectSafely answers (seed 002): ``GET /conversations`` and ``GET /conversations/{urn}/messages``."""

from __future__ import annotations

from typing import Any

from pydantic import field_validator

from airflow_provider_linkmsg.schemas.types import Id, Loose, StrictBool, StrictStr, Timestamp, unique_ids


class LatestMessage(Loose):
    sentAt: Timestamp | None = None
    text: StrictStr | None = None


class Conversation(Loose):
    conversationUrn: Id
    lastActivityAt: Timestamp | None = None
    latestMessage: LatestMessage | None = None
    source: StrictStr | None = None


class ConversationsPage(Loose):
    """``GET /conversations``."""

    conversations: list[Conversation] | None = None
    nextCursor: StrictStr | None = None
    hasMore: StrictBool | None = None

    @field_validator("conversations")
    @classmethod
    def _unique(cls, items: list[Conversation] | None) -> list[Conversation] | None:
        return unique_ids(items, "conversationUrn")


class Message(Loose):
    messageUrn: Id
    sentAt: Timestamp
    text: StrictStr | None = None
    isSentByOwner: StrictBool | None = None
    senderProfileId: StrictStr | None = None
    senderName: StrictStr | None = None
    type: StrictStr | None = None
    hasAttachment: StrictBool | None = None
    attachments: list[Any] | None = None


class MessagesPage(Loose):
    """``GET /conversations/{urn}/messages``."""

    messages: list[Message] | None = None
    cursor: StrictStr | None = None
    hasMore: StrictBool | None = None

    @field_validator("messages")
    @classmethod
    def _unique(cls, items: list[Message] | None) -> list[Message] | None:
        return unique_ids(items, "messageUrn")
