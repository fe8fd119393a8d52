"""Linked API answers (seed 003 and the current API): messages, poll answers and the seed's answers."""

from __future__ import annotations

from typing import Any

from airflow_provider_linkmsg.schemas.types import Id, Loose, StrictBool, StrictStr, Timestamp


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


class SeedData(Loose):
    """A ``conversations.get`` item's data; its messages are checked one by one (:class:`Message`)."""

    messages: list[Any] | None = None


class SeedResult(Loose):
    """One person's result in a seed answer: ``{"success", "data"?, "error"?}``."""

    success: StrictBool | None = None
    data: SeedData | None = None
    error: dict[str, Any] | None = None


class SeedItem(Loose):
    """One person of a seed answer's ``completion`` list."""

    person: StrictStr
    result: SeedResult | None = None


class SeedCompletion(Loose):
    """A seed answer's ``completion``: a list per channel."""

    standard: list[SeedItem] | None = None
    salesNavigator: list[SeedItem] | None = None


class SeedAnswer(Loose):
    """
    A ``complete`` answer of ``conversations.synchronize``, ``conversations.get`` or a result link (seed 003):
    ``{"status": "complete", "completion": {"standard": [...], "salesNavigator": [...]}}``.
    """

    status: StrictStr
    completion: SeedCompletion | None = None
