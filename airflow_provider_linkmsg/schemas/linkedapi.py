"""Linked API answers (seed 003 and the current API): one message of a synchronized conversation."""

from __future__ import annotations

from typing import Any

from airflow_provider_linkmsg.schemas.types import Id, Loose, StrictStr, Timestamp


class Message(Loose):
    """A message as ``conversations.get`` and ``/conversations/poll`` return it."""

    id: Id
    time: Timestamp
    sender: StrictStr | None = None
    text: StrictStr | None = None
    threadId: StrictStr | None = None


class PollItem(Loose):
    """One person of ``POST /conversations/poll``; its messages are checked one by one (:class:`Message`)."""

    personUrl: StrictStr
    type: StrictStr | None = None
    messages: list[Any] | None = None


class PollAnswer(Loose):
    """``POST /conversations/poll``: ``{"result": [{"personUrl", "type", "messages"}, ...]}``."""

    result: list[PollItem] | None = None
