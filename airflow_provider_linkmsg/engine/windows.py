"""
Read windows and watermark maths of the incremental inbox engine (no Airflow, no I/O).

A watermark, per (consumer, vendor, account, conversation), is ``{"sent_at", "last_activity", "listed",
"recent"}``: the newest staged message time, the vendor's last activity when it was read, what the
listing showed of the conversation then (an opaque marker), and the ids of the staged messages within
``overlap_seconds`` of the newest (to de-duplicate the overlap of the next read).

Why :data:`DEFAULT_OVERLAP_SECONDS` is five minutes: a message can reach the vendor after a newer one
and still carry an earlier time (the sender's clock, LinkedIn's own sync, a vendor that fills its
database from LinkedIn later). Each read of a changed conversation starts that much before the newest
staged message and drops what is already staged by id, so such messages are caught by the read that the
newer message causes anyway, at the price of at most a page more per changed conversation. What comes
later still (older than the overlap) is caught when the listing shows it (see ``accounted`` in
:mod:`airflow_provider_linkmsg.engine.retrieval`): then the conversation's read is deepened.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_linkmsg.records import Message, parse_utc, to_utc_iso, utc_to_epoch_ms

if TYPE_CHECKING:
    from airflow_provider_linkmsg.engine.clock import RunClock

#: the default re-read before each watermark (see the module docstring for the reasoning)
DEFAULT_OVERLAP_SECONDS = 300


@dataclass
class Conversation:
    """
    A listed conversation.

    :param id: the vendor's conversation id (the key of its watermark).
    :param last_activity: the vendor's last activity, UTC ISO-8601 (:func:`to_utc_iso`); ``None`` if unknown.
    :param channel: ``standard`` or ``sales_navigator``.
    :param info: what the vendor's reader needs besides (a participant URL ...).
    :param marker: what the listing shows of the conversation (its activity and latest message), opaque:
        when it equals the watermark's ``listed``, the conversation has not changed.
    :param latest_at: the time of the latest message the listing shows, UTC ISO-8601.
    :param empty: the listing says the conversation has no message (nothing to read).
    :param total: the vendor's count of the conversation's messages, when a read learns it.
    :param resume: the vendor reader's place in a windowed read of this run (opaque), so that a deepened
        read continues it rather than paying its pages again; the engine drops it once the read is done.
    """

    id: str
    last_activity: str | None = None
    channel: str = "standard"
    info: dict[str, Any] = field(default_factory=dict)
    marker: str | None = None
    latest_at: str | None = None
    empty: bool = False
    total: int | None = None
    resume: Any = field(default=None, repr=False, compare=False)


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


def listing_marker(*parts: Any) -> str:
    """An opaque, short marker of what a listing shows of a conversation (for :attr:`Conversation.marker`)."""
    text = json.dumps(parts, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def is_current(conversation: Conversation, watermark: dict[str, Any] | None) -> bool:
    """Whether the conversation has had no activity since its watermark (unknown activity: not current)."""
    last = (watermark or {}).get("last_activity")
    return bool(last and conversation.last_activity and conversation.last_activity <= last)


def is_changed(conversation: Conversation, watermark: dict[str, Any] | None) -> bool:
    """
    Whether the listing shows a change since the watermark: its marker differs (when both have one), else
    its activity is newer or unknown. Never read: changed.
    """
    if not watermark:
        return True
    listed = watermark.get("listed")
    if conversation.marker is not None and listed is not None:
        return conversation.marker != listed
    return not is_current(conversation, watermark)


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
    *,
    clock: RunClock | None = None,
    newest_read: str | None = None,
) -> dict[str, Any]:
    """
    The watermark after staging ``messages`` (the new ones) of a conversation read completely.

    :param watermark: the previous watermark, or ``None`` after a full read.
    :param clock: our clock: no time from the future enters the watermark (see
        :mod:`airflow_provider_linkmsg.engine.clock`); ``None`` trusts every time.
    :param newest_read: the newest time among the messages read that were staged already (a full read
        of a conversation whose watermark had no trusted time).
    """
    previous = watermark or {}
    newest = previous.get("sent_at")
    recent = dict(previous.get("recent") or {})
    if newest_read and (newest is None or newest_read > newest):
        newest = newest_read
    for message in messages:
        recent[message.message_id] = message.sent_at
        if newest is None or message.sent_at > newest:
            newest = message.sent_at
    if clock is not None:
        newest = clock.clamp(newest)
    if newest is not None:
        cut = to_utc_iso(parse_utc(newest) - timedelta(seconds=overlap_seconds))
        recent = {k: v for k, v in recent.items() if v >= cut}
    listed_activity = conversation.last_activity
    marker = conversation.marker
    activity = [a for a in (previous.get("last_activity"), listed_activity, newest) if a]
    last_activity = max(activity) if activity else None
    if clock is not None:
        last_activity = clock.clamp(last_activity)
        if clock.ahead(listed_activity) and not any(v >= listed_activity for v in recent.values()):
            marker = None  # no staged message accounts for it yet: read it again next run
    return {
        "sent_at": newest,
        "last_activity": last_activity,
        "listed": marker,
        "recent": recent,
    }
