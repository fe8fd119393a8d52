"""
Read windows and watermark maths of the incremental inbox engine (no Airflow, no I/O).

A watermark, per (vendor, account, conversation), is ``{"sent_at", "last_activity", "recent"}``: the
newest staged message time, the vendor's last activity when it was read, and the ids of the staged
messages within ``overlap_seconds`` of the newest (to de-duplicate the overlap of the next read).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from airflow_provider_linkmsg.records import Message, parse_utc, to_utc_iso, utc_to_epoch_ms


@dataclass
class Conversation:
    """
    A listed conversation.

    :param id: the vendor's conversation id (the key of its watermark).
    :param last_activity: the vendor's last activity, UTC ISO-8601 (:func:`to_utc_iso`); ``None`` if unknown.
    :param channel: ``standard`` or ``sales_navigator``.
    :param info: what the vendor's reader needs besides (a participant URL ...).
    """

    id: str
    last_activity: str | None = None
    channel: str = "standard"
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReadWindow:
    """
    What of a conversation is already staged: every message before ``floor``, and ``seen`` from it on.

    A full read has no floor. A reader that pages backward stops at the first message :meth:`below` the
    floor; one that reads forward asks for messages from :meth:`since_ms`.
    """

    floor: str | None = None
    seen: frozenset[str] = frozenset()

    @property
    def full(self) -> bool:
        return self.floor is None

    def since_ms(self) -> int | None:
        """Epoch ms just before the floor (safe whether the vendor's ``since`` is strict or not)."""
        return None if self.floor is None else max(0, utc_to_epoch_ms(self.floor) - 1)

    def below(self, message: Message) -> bool:
        """Whether ``message`` is older than the floor (a backward reader can stop there)."""
        return self.floor is not None and message.sent_at < self.floor

    def is_new(self, message: Message) -> bool:
        return not self.below(message) and message.message_id not in self.seen


def is_current(conversation: Conversation, watermark: dict[str, Any] | None) -> bool:
    """Whether the conversation has had no activity since its watermark (unknown activity: not current)."""
    last = (watermark or {}).get("last_activity")
    return bool(last and conversation.last_activity and conversation.last_activity <= last)


def read_window(watermark: dict[str, Any] | None, overlap_seconds: float = 0) -> ReadWindow:
    """The window of a conversation with this watermark (``None``: never read, so read everything)."""
    if not watermark or not watermark.get("sent_at"):
        return ReadWindow()
    floor = to_utc_iso(parse_utc(watermark["sent_at"]) - timedelta(seconds=overlap_seconds))
    return ReadWindow(floor, frozenset((watermark.get("recent") or {}).keys()))


def next_watermark(
    watermark: dict[str, Any] | None,
    conversation: Conversation,
    messages: Sequence[Message],
    overlap_seconds: float = 0,
) -> dict[str, Any]:
    """
    The watermark after staging ``messages`` (the new ones) of a conversation read completely.

    :param watermark: the previous watermark, or ``None`` after a full read.
    """
    previous = watermark or {}
    newest = previous.get("sent_at")
    recent = dict(previous.get("recent") or {})
    for message in messages:
        recent[message.message_id] = message.sent_at
        if newest is None or message.sent_at > newest:
            newest = message.sent_at
    if newest is not None:
        cut = to_utc_iso(parse_utc(newest) - timedelta(seconds=overlap_seconds))
        recent = {k: v for k, v in recent.items() if v >= cut}
    activity = [a for a in (previous.get("last_activity"), conversation.last_activity, newest) if a]
    return {"sent_at": newest, "last_activity": max(activity) if activity else None, "recent": recent}
