"""
What an activity watcher has seen, and what is new in a look: pure functions, no Airflow, no I/O.

The ledger maps a tracked key (a conversation; a message, for Linked API) to ``[marker, activity time]``.
A look fires for every sighting whose marker differs from the ledger's (or that the ledger lacks): a change
of the set of (conversation, activity) seen, not only a newer maximum time, so two activities at the same
time, or one that surfaces out of time order, are both seen. A repeat of what the ledger holds never fires.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_linkmsg.hooks.inbox.firstpage import Sighting

#: keys a ledger keeps at least (the most recently active first), so a conversation that drops off the first
#: page and comes back unchanged is not taken for new
MIN_KEEP = 1000


def new_sightings(ledger: Mapping[str, Any], sightings: Iterable[Sighting]) -> list[Sighting]:
    """The sightings whose marker the ledger does not hold, once each (the last of a repeated key)."""
    latest = {s.key: s for s in sightings}
    return [s for s in latest.values() if (ledger.get(s.key) or [None])[0] != s.marker]


def remember(ledger: Mapping[str, Any], sightings: Iterable[Sighting], keep: int) -> dict[str, tuple]:
    """
    The ledger with ``sightings`` recorded; past ``keep`` keys, the least recently active are dropped
    (unknown activity counts as oldest). Values are ``(marker, at)`` tuples of strings, which the garbage
    collector stops tracking: a thousand idle watchers add little to each full collection.
    """
    out = {key: (value[0], value[1]) for key, value in ledger.items()}
    for s in sightings:
        out[s.key] = (s.marker, s.at)
    if len(out) > keep:
        ranked = sorted(out.items(), key=lambda item: item[1][1] or "", reverse=True)
        out = dict(ranked[:keep])
    return out


def newest(sightings: Iterable[Sighting]) -> str | None:
    """The latest activity time among ``sightings`` (ISO-8601 UTC), or ``None``."""
    return max((s.at for s in sightings if s.at), default=None)


def changed_conversations(sightings: Iterable[Sighting]) -> list[str]:
    """The conversations of ``sightings``, most recently active first, each once."""
    ordered = sorted(sightings, key=lambda s: s.at or "", reverse=True)
    return list(dict.fromkeys(s.conversation for s in ordered))
