"""
The loop every inbox activity watcher runs: look, compare with what it has seen, persist, fire, sleep.

Order of a look that finds new activity: the new state is written with the event in it as ``pending``,
the event is yielded, and when the generator resumes (Airflow's triggerer resumes it only after it has put
the event in its outgoing queue) the state is written again without it. A watcher re-created from its
kwargs (a triggerer restart, an asset watcher moved to another triggerer) reads the state back: it never
fires again for a look whose event was recorded as taken, and fires a ``pending`` event again (marked
``redelivered``). Bounds: a kill before the triggerer takes the event loses nothing (it fires after the
restart); a kill between the triggerer taking it and the end of the clearing write (one state write: no
other await comes first) fires it a second time, marked ``redelivered``; an event the triggerer has taken
but not yet sent on to be committed when it dies is lost, like any trigger event (Airflow's window; the
next run's incremental retrieve still reads those messages, since the watcher only starts runs).

Two copies of one watcher at once (Airflow may run duplicates of a trigger; an asset watcher runs on each
triggerer of an HA pair) share the state, and each write is a compare-and-swap on its revision
(:class:`~airflow_provider_linkmsg.triggers.watchers.store.WatcherStore`): a copy whose look wrote second
adopts the stored state and does not fire (the other copy fired, or its next look sees what is still new),
and keeps the other copy's pending event in what it writes until that copy clears it. Bounds: two copies
that start while an event is pending both fire it again (marked ``redelivered``); on an object store
(no lock) the compare-and-swap narrows the race to the moment between its read and its write.

Failures of a look: a vendor's error or malformed answer (every :class:`LinkMsgError`, e.g. a body nested
too deep to read) and a network or staging failure (``OSError``) are logged and survived, backing off;
arguments no look can work with (:class:`LinkMsgValidationError`) end the watcher; anything else is a bug
in the provider: logged with its traceback and raised, so the triggerer records the trigger as failed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.triggers import BaseEventTrigger
from airflow.triggers.base import TriggerEvent

from airflow_provider_linkmsg.exceptions import LinkMsgAuthError, LinkMsgError, LinkMsgValidationError
from airflow_provider_linkmsg.triggers.logs import ClassLogMixin
from airflow_provider_linkmsg.triggers.watchers.store import WatcherStateConflict

if TYPE_CHECKING:
    from airflow_provider_linkmsg.triggers.watchers.store import WatcherStore

#: conversation ids named in one event at most (``changed`` gives the full count)
MAX_LISTED = 100
#: the state's key for an event written before it is yielded and removed once the triggerer took it
PENDING = "pending"
#: the longest wait after failed looks (seconds)
MAX_BACKOFF = 3600.0
#: the longest poll interval (seconds): a day
MAX_POLL_INTERVAL = 86400.0


def check_number(
    value: Any, field: str, vendor: str, *, low: float, high: float, above: bool = False
) -> float:
    """
    ``value`` if it is a finite number from ``low`` (above it, when ``above``) to ``high``, else a
    :class:`LinkMsgValidationError` naming the field and the range (``inf``, ``nan`` and ``1e308`` included).
    """
    ok = not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
    if not ok or not (value > low if above else value >= low) or value > high:
        shown = f"above {low:g}" if above else f"from {low:g}"
        raise LinkMsgValidationError(
            f"{field} must be a finite number {shown} to {high:g}, got {value!r}", field=field, vendor=vendor
        )
    return value


@dataclass
class Observation:
    """
    What one look found.

    :param changed: conversations with new activity, most recently active first.
    :param newest: the newest activity time among them (ISO-8601 UTC).
    :param state: the watcher's whole state after this look (persisted when it differs).
    :param extra: more for the event (e.g. the credits of a LinkupAPI watcher).
    :param wait: seconds until the next look, when not the poll interval (a spent budget).
    :param looked: false when no look was made (a spent budget): the watcher is still new after it.
    """

    changed: list[str]
    newest: str | None
    state: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)
    wait: float | None = None
    looked: bool = True


class InboxActivityTrigger(ClassLogMixin, BaseEventTrigger):
    """
    Base of the inbox activity watchers (one per vendor): fires a ``TriggerEvent`` whenever a look at
    the account shows activity it has not fired for.

    The event's payload: ``vendor``, ``conn_id``, ``account``, ``conversations`` (at most 100 ids, most
    recently active first), ``changed`` (how many), ``newest_activity`` (ISO-8601 UTC), ``first_look``,
    ``watcher`` (the state key) and vendor extras.

    :param poll_interval: seconds between looks (jittered by 10%; the first look comes at a random time
        within the first interval, so watchers started together do not look together); the connection's
        rate limiter, shared by every watcher and trigger of the connection in the triggerer, spaces the
        calls further when needed.
    :param fire_on_start: when the watcher has no state yet (first look ever, or a new ``state_key``), fire
        for the activity the first look shows (default: the DAG makes its first retrieve); ``False``: only
        remember it and fire for what comes after.
    :param state_key: names the persisted state; by default a digest of what identifies the watched thing
        (the connection, the account or persons, and what changes what a look reads: ``page_size``,
        ``overlap_seconds``), not of the tuning (``poll_interval``, ``fire_on_start``, staging, a budget):
        a retuned watcher keeps its state. Set it to keep the state across any other change.
    :param staging_path: root of the state (default ``[linkmsg] staging_path``); shared by every triggerer
        that may run the watcher (a URL such as ``s3://bucket/linkmsg`` with ``staging_conn_id``).
    :param staging_conn_id: connection of the staging store.
    """

    vendor: ClassVar[str]
    #: the event this copy last wrote as pending (told apart from another copy's by identity)
    _fired: dict[str, Any] | None = None

    def __init__(
        self,
        *,
        poll_interval: float = 300.0,
        fire_on_start: bool = True,
        state_key: str | None = None,
        staging_path: str | None = None,
        staging_conn_id: str | None = None,
    ) -> None:
        super().__init__()
        self.poll_interval = poll_interval
        self.fire_on_start = fire_on_start
        self.state_key = state_key
        self.staging_path = staging_path
        self.staging_conn_id = staging_conn_id

    # ---- what a vendor watcher provides ----------------------------------------------------------------
    def vendor_kwargs(self) -> dict[str, Any]:
        """The vendor watcher's own arguments (serialized with the common ones)."""
        raise NotImplementedError

    def make_hook(self) -> Any:
        """The vendor hook the looks go through."""
        raise NotImplementedError

    def account(self, hook: Any) -> str:
        """The account watched, for the event and the logs."""
        raise NotImplementedError

    async def observe(self, hook: Any, state: dict[str, Any], store: WatcherStore) -> Observation:
        """One look: what is new since ``state``, and the state after it."""
        raise NotImplementedError

    # ---- the common part --------------------------------------------------------------------------------
    def common_kwargs(self) -> dict[str, Any]:
        return {
            "poll_interval": self.poll_interval,
            "fire_on_start": self.fire_on_start,
            "state_key": self.state_key,
            "staging_path": self.staging_path,
            "staging_conn_id": self.staging_conn_id,
        }

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", {
            **self.vendor_kwargs(),
            **self.common_kwargs(),
        }

    def identity(self) -> dict[str, Any]:
        """What identifies the watched thing (the vendor arguments; a subclass leaves out its tuning ones)."""
        return self.vendor_kwargs()

    def resolved_state_key(self) -> str:
        """
        ``state_key``, or ``{vendor}-{digest of the class and identity()}``: connection, account (or
        persons) and what changes what a look reads, never the tuning (``poll_interval``,
        ``fire_on_start``, staging, a budget), so a retuned watcher keeps what it has seen.
        """
        if self.state_key:
            return self.state_key
        classpath, _ = self.serialize()
        text = json.dumps([classpath, self.identity()], sort_keys=True, default=str)
        return f"{self.vendor}-{hashlib.sha256(text.encode()).hexdigest()[:20]}"

    def check_arguments(self) -> None:
        """Raise :class:`LinkMsgValidationError` for arguments no look can work with (before any call)."""
        check_number(
            self.poll_interval, "poll_interval", self.vendor, low=0, high=MAX_POLL_INTERVAL, above=True
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_linkmsg.triggers.pacing import first_delay
        from airflow_provider_linkmsg.triggers.watchers.store import WatcherStore

        self.check_arguments()
        key = self.resolved_state_key()
        store = WatcherStore(self.staging_path, self.staging_conn_id, vendor=self.vendor, key=key)
        hook = self.make_hook()
        failures = 0
        state: dict[str, Any] | None = None
        try:
            # watchers started together spread their first looks over one interval; the connection is looked
            # up meanwhile (one lookup for all of them) and the first look's turn booked when the spread ends,
            # in one sleep: watchers that start together and ask more than the limit wait for their first look
            # there, not inside the look (holding its frames), and nothing wakes them all when the lookup ends
            await hook.astart(first_delay(self.poll_interval, math.inf))
            while True:
                wait = self.poll_interval * random.uniform(0.9, 1.1)
                payload: dict[str, Any] | None = None
                failed = False
                try:
                    if state is None:
                        state = await store.load()
                        payload = self._replay(key, state)
                    if payload is None:
                        state, payload, after = await self._look(hook, key, state, store)
                        wait = wait if after is None else after
                except LinkMsgValidationError:
                    raise  # the watcher's arguments cannot work: a retry cannot fix them
                except (LinkMsgError, OSError) as exc:  # nothing fired: the next look sees it all again
                    failures += 1
                    wait = min(
                        self.poll_interval * 2 ** min(failures, 10), max(MAX_BACKOFF, self.poll_interval)
                    )
                    level = self.log.error if isinstance(exc, LinkMsgAuthError) else self.log.warning
                    level("%s watcher %s: look failed (%s); next look in %.0f s", self.vendor, key, exc, wait)
                    failed = True  # the error and its traceback go before the sleep
                except Exception:  # not the vendor's answer nor the network: a bug here, loudly
                    self.log.exception(
                        "%s watcher %s: unexpected error, not a vendor or network failure (a bug in the "
                        "provider: please report it); the watcher stops",
                        self.vendor,
                        key,
                    )
                    raise
                if failed:
                    await asyncio.sleep(wait)
                    continue
                failures = 0
                if payload is not None:
                    self.log.info(
                        "%s watcher %s: %d conversation(s) with new activity on %s (newest %s)",
                        self.vendor,
                        key,
                        payload["changed"],
                        payload["account"],
                        payload["newest_activity"],
                    )
                    yield TriggerEvent(payload)
                    # resumed: the triggerer has taken the event; no await before the write starts
                    state = await self._taken(store, key, state)
                del payload  # an idle watcher sleeps holding its state only
                # the poll interval and the connection's rate limit in one sleep
                await hook.asleep_until_turn(wait)
        finally:
            await hook.aclose()

    async def _look(
        self, hook: Any, key: str, state: dict[str, Any], store: WatcherStore
    ) -> tuple[dict[str, Any], dict[str, Any] | None, float | None]:
        """
        One look and its state write: ``(state written, event to fire or None, wait or None)``. The event
        is written into the state as ``pending`` before it is returned (and yielded).
        """
        first = not state.get("initialized")
        found = await self.observe(hook, {k: v for k, v in state.items() if k != PENDING}, store)
        if found.looked:
            found.state = {**found.state, "initialized": True}
        payload = None
        if found.changed and (self.fire_on_start or not first):
            payload = self._fired = self._payload(hook, key, found, first)
        theirs = state.get(PENDING)  # another copy's event not yet taken: kept for it; ours is cleared
        if theirs is self._fired:
            theirs = None
        new = {**found.state, PENDING: payload or theirs} if payload or theirs else found.state
        if new == state:  # an idle look: keep the state held since the last change, let this copy die young
            return state, payload, found.wait
        try:  # before the event: a restart fires a pending event again, never loses it
            await store.save(new)
        except WatcherStateConflict as lost:
            self.log.info(
                "%s watcher %s: another copy of this watcher recorded a look first; taking its state, "
                "not firing (the next look fires for what is still new)",
                self.vendor,
                key,
            )
            return lost.stored, None, found.wait
        return new, payload, found.wait

    def _replay(self, key: str, state: dict[str, Any]) -> dict[str, Any] | None:
        """The event a stopped watcher left pending (it may never have reached the triggerer), or None."""
        pending = state.get(PENDING)
        if not pending:
            return None
        self._fired = pending
        self.log.warning(
            "%s watcher %s: firing again the event of the look of %s activity, pending when the watcher "
            "stopped (the triggerer may not have taken it)",
            self.vendor,
            key,
            pending.get("newest_activity"),
        )
        return {**pending, "redelivered": True}

    async def _taken(self, store: WatcherStore, key: str, state: dict[str, Any]) -> dict[str, Any]:
        """
        The state with the event no longer pending, written. A failed write keeps it pending in memory
        too: the next look's write clears it (until then, a restart fires it again).
        """
        done = {k: v for k, v in state.items() if k != PENDING}
        try:
            try:
                await store.save(done)
            except WatcherStateConflict as lost:  # another copy wrote since: clear the event in its state
                if lost.stored.get(PENDING) != state.get(PENDING):
                    return lost.stored
                done = {k: v for k, v in lost.stored.items() if k != PENDING}
                await store.save(done)
        except WatcherStateConflict as lost:  # raced twice: it stays pending (a restart fires it again)
            return lost.stored
        except (LinkMsgError, OSError) as exc:
            self.log.warning(
                "%s watcher %s: could not record that the triggerer took the event (%s); a restart before "
                "the next look fires it again",
                self.vendor,
                key,
                exc,
            )
            return state
        return done

    def _payload(self, hook: Any, key: str, found: Observation, first: bool) -> dict[str, Any]:
        return {
            "vendor": self.vendor,
            "conn_id": hook.conn_id,
            "account": self.account(hook),
            "conversations": found.changed[:MAX_LISTED],
            "changed": len(found.changed),
            "newest_activity": found.newest,
            "first_look": first,
            "watcher": key,
            **found.extra,
        }
