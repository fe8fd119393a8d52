"""Linked API answers (seed 003 and the current API): one message of a synchronized conversation."""

from __future__ import annotations

from airflow_provider_linkmsg.schemas.types import Id, Loose, StrictStr, Timestamp


class Message(Loose):
    """A message as ``conversations.get`` and ``/conversations/poll`` return it."""

    id: Id
    time: Timestamp
    sender: StrictStr | None = None
    text: StrictStr | None = None
    threadId: StrictStr | None = None
