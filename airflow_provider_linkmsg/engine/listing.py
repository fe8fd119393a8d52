"""
Listing an inbox; and the sweep marker, for the opt-in shortcut that lets a listing stop early.

By default every run lists every page (one call per page) and reads only the conversations whose
listing changed since their watermark: nothing listed can hide a change.

The *listing shortcut* (opt-in, ``listing_shortcut=True``) saves listing calls on large inboxes. The
vendors list conversations most recently active first, and after a run that listed and read everything
it had to, the account's *sweep* marker says up to which activity time everything is staged. A run with
the shortcut stops listing at the first conversation last active before that time, less
``overlap_seconds`` or :data:`LISTING_MARGIN` (whichever is longer), **whose listing has not changed
since its watermark**: a conversation whose listed activity moved is read, never taken as the stopping
point. The order is checked as far as each listing goes (one out of activity order clears the marker,
and runs list in full until one is in order again), and once every :data:`FULL_LISTING_EVERY` a run lists
in full anyway.

Its bound: a conversation below the stopping point whose listed activity moved to a time still before
it (a vendor that backdates activity to a late message's own time) is not listed until the next full
listing, at most :data:`FULL_LISTING_EVERY` (24 hours) later. Runs that use the shortcut say so and name
this bound in their log and XCom value (``listing_shortcut``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_linkmsg.engine.windows import Conversation
from airflow_provider_linkmsg.exceptions import LinkMsgBudgetExceededError
from airflow_provider_linkmsg.records import parse_utc, to_utc_iso

if TYPE_CHECKING:
    from airflow_provider_linkmsg.engine.clock import RunClock

_EPOCH = "1970-01-01T00:00:00.000000Z"
#: how often a run with the listing shortcut lists the whole inbox anyway: the shortcut's staleness bound
FULL_LISTING_EVERY = timedelta(days=1)
#: how far before the sweep marker's time a listing goes on, at least (messages that surface late)
LISTING_MARGIN = timedelta(minutes=15)


@dataclass
class Listing:
    """What one listing found."""

    conversations: list[Conversation] = field(default_factory=list)
    complete: bool = True  # listed to the end, or down to what the sweep marker covers
    stopped_early: bool = False  # at the sweep marker
    in_order: bool = True  # most recently active first, as far as it went
    budget_error: LinkMsgBudgetExceededError | None = None


def shortcut_bound() -> dict[str, Any]:
    """The XCom value's ``listing_shortcut`` part: the shortcut's staleness bound."""
    return {"staleness_bound_hours": FULL_LISTING_EVERY.total_seconds() / 3600}


def list_inbox(
    list_conversations: Callable[[], Iterable[Conversation]],
    sweep: dict[str, Any] | None,
    overlap_seconds: float = 0,
    *,
    unchanged: Callable[[Conversation], bool] = lambda conversation: True,
    heartbeat: Callable[[], None] = lambda: None,
) -> Listing:
    """
    List the conversations; with a sweep marker (the shortcut), down to those it covers.

    :param sweep: the marker, or ``None`` to list in full.
    :param unchanged: whether a conversation's listing is unchanged since its watermark (only such a
        conversation may be the stopping point).
    :param heartbeat: called once per conversation listed (keeps the run's lease).
    """
    listing = Listing()
    cutoff = None
    fresh = (
        sweep and datetime.now(UTC) - parse_utc(sweep.get("listed_in_full_at") or _EPOCH) < FULL_LISTING_EVERY
    )
    if fresh and sweep.get("through"):
        margin = max(timedelta(seconds=overlap_seconds), LISTING_MARGIN)
        cutoff = to_utc_iso(parse_utc(sweep["through"]) - margin)
    seen: set[str] = set()
    previous: str | None = None
    try:
        for conversation in list_conversations():
            heartbeat()
            activity = conversation.last_activity
            if conversation.empty and activity is None:
                pass  # nothing in it: no activity to order by
            elif activity is None or (previous is not None and activity > previous):
                listing.in_order = False
            elif cutoff is not None and listing.in_order and activity < cutoff and unchanged(conversation):
                listing.stopped_early = True  # this one and all after it are covered
                break
            previous = activity or previous
            if conversation.id not in seen:  # a conversation moved up while we paged: keep it once
                seen.add(conversation.id)
                listing.conversations.append(conversation)
    except LinkMsgBudgetExceededError as error:
        if error.status is not None:  # the vendor's own "insufficient credits"
            raise
        listing.complete, listing.budget_error = False, error
    return listing


def next_sweep(
    listing: Listing,
    sweep: dict[str, Any] | None,
    memo: dict[str, Any],
    clock: RunClock | None = None,
) -> dict[str, Any] | None:
    """
    The marker after a run that read all it listed: through its newest activity (None: out of order).

    :param clock: our clock: an activity from the future counts as the run's start (see
        :mod:`airflow_provider_linkmsg.engine.clock`).
    """
    if not listing.in_order:
        return None
    activity = [c.last_activity for c in listing.conversations if c.last_activity]
    if clock is not None:
        activity = [clock.clamp(a) or a for a in activity]
    if sweep and sweep.get("through"):
        activity.append(sweep["through"])
    if not activity:
        return None
    in_full = (
        sweep.get("listed_in_full_at") if sweep and listing.stopped_early else to_utc_iso(datetime.now(UTC))
    )
    return {"through": max(activity), "listed_in_full_at": in_full, "memo": memo}
