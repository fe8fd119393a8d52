"""Linked API inbox activity watcher: the given persons' conversations read with ``since``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_linkmsg.engine.windows import listing_marker
from airflow_provider_linkmsg.records import parse_utc, to_utc_iso
from airflow_provider_linkmsg.triggers.watchers.base import InboxActivityTrigger, Observation, check_number
from airflow_provider_linkmsg.triggers.watchers.ledger import changed_conversations, newest

if TYPE_CHECKING:
    from airflow_provider_linkmsg.triggers.watchers.store import WatcherStore


#: the longest overlap a look reads again (seconds): a week
MAX_OVERLAP = 7 * 86400.0


class LinkedApiInboxActivityTrigger(InboxActivityTrigger):
    """
    Watch Linked API conversations: one free ``/conversations/poll`` (current API) or ``conversations.get``
    (seed API, ``long`` result handling) call per look for all ``persons``, each with ``since`` set
    ``overlap_seconds`` before the newest message the watcher has seen in it. A message id not seen before
    fires, whatever its time within that window: the vendor does not say whether ``since`` is inclusive,
    nor that messages surface in time order. A message older than that window never fires, whatever the
    vendor answers: the watcher keeps the ids of the whole window, so a vendor that returns more than
    ``since`` asks (the day's messages, say) cannot make an old message fire again. Persons whose
    conversation is not synchronized are logged and skipped; synchronize them
    (``LinkedApiSynchronizeConversationsOperator``) for the watcher to see them.

    Its bound: a message that surfaces more than ``overlap_seconds`` older than the newest one seen in its
    conversation (or than the look's own clock, when that newest one is stamped in the future) is not seen
    by ``since`` reads (the incremental retrieve's own overlap still reads it on the next run). A message
    stamped in the future does not move ``since`` past the look's clock, so it hides no real reply.

    :param persons: the persons whose conversations to watch, as the Linked API operators take them.
    :param linkedapi_conn_id: Airflow connection of type ``linkedapi``.
    :param overlap_seconds: how far before the newest message seen each look reads again.
    :param kwargs: the common watcher arguments (see :class:`InboxActivityTrigger`).
    """

    vendor = "linkedapi"

    def __init__(
        self,
        *,
        persons: list[Any],
        linkedapi_conn_id: str = "linkedapi_default",
        overlap_seconds: float = 300.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.persons = persons
        self.linkedapi_conn_id = linkedapi_conn_id
        self.overlap_seconds = overlap_seconds

    def vendor_kwargs(self) -> dict[str, Any]:
        return {
            "persons": self.persons,
            "linkedapi_conn_id": self.linkedapi_conn_id,
            "overlap_seconds": self.overlap_seconds,
        }

    def check_arguments(self) -> None:
        from airflow_provider_linkmsg.hooks.linkedapi import parse_persons

        super().check_arguments()
        check_number(self.overlap_seconds, "overlap_seconds", self.vendor, low=0, high=MAX_OVERLAP)
        parse_persons(self.persons)

    def make_hook(self) -> Any:
        from airflow_provider_linkmsg.hooks.linkedapi import LinkedApiHook

        return LinkedApiHook(self.linkedapi_conn_id)

    def account(self, hook: Any) -> str:
        return hook.account_id

    def _since(self, entry: dict[str, Any] | None, now: datetime) -> str | None:
        """
        ``overlap_seconds`` before the newest message seen, or before ``now`` when that one is stamped in the
        future (a vendor clock slip must not hide the replies that come next): the floor of a look.
        """
        if not entry or not entry.get("newest"):
            return None
        top = min(parse_utc(entry["newest"]), now)
        return to_utc_iso(top - timedelta(seconds=self.overlap_seconds))

    async def observe(self, hook: Any, state: dict[str, Any], store: WatcherStore) -> Observation:
        from airflow_provider_linkmsg.hooks.inbox.firstpage import Sighting, linkedapi_since
        from airflow_provider_linkmsg.hooks.linkedapi import parse_persons

        persons = parse_persons(self.persons)
        kept: dict[str, Any] = state.get("persons") or {}
        now = datetime.now(UTC)
        floors = {p.key: self._since(kept.get(p.key), now) for p in persons}
        results = await linkedapi_since(hook, [(p, floors[p.key]) for p in persons])
        after: dict[str, Any] = {}
        new: list[Sighting] = []
        unread: dict[str, str] = {}
        for result in results:
            key, entry = result.person.key, kept.get(result.person.key) or {"newest": None, "ids": {}}
            if result.error is not None:
                unread[key] = result.error
                after[key] = entry
                continue
            ids, floor = dict(entry.get("ids") or {}), floors.get(key)
            for message in result.messages:
                at = to_utc_iso(message["time"]) if message.get("time") else None
                if floor and at and at < floor:
                    continue  # before the window the look asked for: seen already (its id may be pruned)
                mid = str(message.get("id") or listing_marker(at, message.get("sender"), message.get("text")))
                if mid not in ids:
                    new.append(Sighting(result.person.conversation_id, mid, at or "", at))
                    ids[mid] = at
            top = max(
                [at for at in ids.values() if at] + ([entry["newest"]] if entry.get("newest") else []),
                default=None,
            )
            floor = self._since({"newest": top}, now) if top else None  # the next look's is not earlier
            after[key] = {
                "newest": top,
                "ids": {m: at for m, at in ids.items() if not floor or (at or "") >= floor},
            }
        if unread != (state.get("unread") or {}) and unread:
            self.log.warning(
                "linkedapi watcher: %d person(s) not read and skipped: %s",
                len(unread),
                ", ".join(f"{k} ({v})" for k, v in sorted(unread.items())[:10]),
            )
        return Observation(
            changed_conversations(new), newest(new), {**state, "persons": after, "unread": unread}
        )
