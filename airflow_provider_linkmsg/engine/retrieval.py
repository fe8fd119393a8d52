"""
Incremental inbox retrieval, shared by the operators of the inbox vendors (no Airflow imports).

One run reads one account's inbox:

1. list the conversations (the vendor's part; every page unless the opt-in listing shortcut is on,
   see :mod:`airflow_provider_linkmsg.engine.listing`) and keep those asked for (``conversation_ids``);
2. skip each conversation whose listing has not changed since its watermark, and the empty ones;
3. read the new messages of the others (the vendor's part, given a :class:`ReadWindow` that starts
   ``overlap_seconds`` before the newest staged message), concurrently in a bounded thread pool under
   the hook's shared rate limiter; what is already staged for the conversation is dropped by id;
4. when the listing says more changed than the read found (:meth:`InboxRetrieval.accounted`: the
   vendor's message count, a latest message older than the window, activity newer than every message),
   *deepen* the read: read the conversation in full and keep what is not staged yet (a reader that keeps
   its place, :attr:`Conversation.resume`, continues where the window stopped: no page is paid twice);
5. stage the messages of each conversation read completely, with a manifest, releasing each
   conversation once written (at most ``2 * max_workers`` conversations are held at once);
6. only then commit the watermarks of those conversations.

A conversation's messages are held until it is read completely, so a conversation that fails half-way
(or meets the credit budget) stages nothing and keeps its watermark: the next run reads it again, and
nothing is staged twice. When some conversations fail, the others are staged and committed before the
task fails, and a retry of the task (same staging directory) carries over what the failed try staged,
starting its reads from the watermarks the carried records cover.

The storage is given to the engine (a staging writer, a watermark store, how to carry over and how to
commit), so that this module knows nothing of Airflow or of where the data lives.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_linkmsg.engine.clock import RunClock, trusted_sweep, trusted_watermark
from airflow_provider_linkmsg.engine.listing import Listing, list_inbox, next_sweep, shortcut_bound
from airflow_provider_linkmsg.engine.progress import DEFAULT_INTERVAL, Progress
from airflow_provider_linkmsg.engine.reads import ConversationReads, Outcome
from airflow_provider_linkmsg.engine.windows import (
    DEFAULT_OVERLAP_SECONDS,
    Conversation,
    ReadWindow,
    is_changed,
    next_watermark,
    read_window,
)
from airflow_provider_linkmsg.exceptions import (
    LinkMsgAuthError,
    LinkMsgBudgetExceededError,
    LinkMsgError,
)

if TYPE_CHECKING:
    import logging

    from airflow_provider_linkmsg.records import Message

#: failed conversations named in an error message or XCom value, at most
_SHOWN = 10

#: how a changed conversation is read: what each mode guarantees
READ_MODES = {
    "full": "in full, de-duplicated by id against the staged ids: any message the vendor shows is staged",
    "counted": "from the overlap window, read in full whenever the vendor's message count is unknown or "
    "exceeds the staged and found messages: any message the vendor counts is staged",
    "window": "from the overlap window only (opt-in)",
}
#: the staleness bound of ``read_mode="window"`` (log and XCom value of every run that uses it)
WINDOW_BOUND = (
    "a message that reaches the vendor later than overlap_seconds ({overlap:.0f} s) after its own time, "
    "with a newer message beside it, is missed until a full_refresh run"
)


class InboxRetrieval(ConversationReads):
    """
    One incremental retrieval of one account's inbox into a staging run (see the module docstring).

    :param vendor: vendor name (records, staging and state paths).
    :param account_id: the vendor's account id.
    :param store: the account's watermark store (``all``, ``sweep``, ``stage``, ``stage_sweep``,
        ``discard``, ``staged``).
    :param writer: the run's staging writer (``write``, ``add_stats``, ``set_watermarks``, ``close``,
        ``abort``).
    :param carry_over: the records an earlier try of this run staged (empty when none).
    :param carried_watermarks: the watermarks those records cover (from the earlier try's manifest).
    :param commit: commits the store once the manifest that ``writer.close()`` returned is durable.
    :param known_ids: the message ids already staged for a conversation (``None``: not known).
    :param full_read_shortfall: how many credits a full read of a conversation would lack in the
        remaining budget (``None`` or 0: affordable); a deepened read that cannot be paid in full is
        deferred before any of it is spent (its pages would be thrown away at the budget).
    :param heartbeat: called as the run goes (keeps the run's lease on the state).
    :param full_refresh: ignore watermarks: read every conversation completely.
    :param overlap_seconds: re-read this much before each watermark (de-duplicated by message id).
    :param read_mode: how a changed conversation is read (see :data:`READ_MODES`): ``full`` (the
        default: in full, de-duplicated by id against the index of staged ids), ``counted`` (from the
        window, deepened in full whenever the vendor's message count is unknown or exceeds what is
        staged and found) or ``window`` (opt-in: from the window, deepened only on what the listing
        shows; its bound is :data:`WINDOW_BOUND`).
    :param listing_shortcut: stop the listing at what the last complete pass covered (opt-in; see
        :mod:`airflow_provider_linkmsg.engine.listing` for its bound).
    :param conversation_ids: only these conversations.
    :param max_workers: conversations read at once (and ``2 * max_workers`` held at most).
    :param fail_on_error: raise when conversations failed (after staging and committing the others);
        when false, only report them.
    :param clock: our clock (each run starts a new one by default): no vendor time from the future
        enters the state (see :mod:`airflow_provider_linkmsg.engine.clock`).
    :param log: where to report.
    :param progress_seconds: seconds between progress lines while listing and reading (1 to 30; see
        :mod:`airflow_provider_linkmsg.engine.progress`).
    """

    def __init__(
        self,
        *,
        vendor: str,
        account_id: str,
        store: Any,
        writer: Any,
        carry_over: Callable[[], Iterable[Message]] = lambda: (),
        carried_watermarks: Callable[[], dict[str, dict]] = dict,
        commit: Callable[[Any], Any] = lambda manifest: None,
        known_ids: Callable[[str], set[str] | None] = lambda conversation_id: None,
        full_read_shortfall: Callable[[Conversation], float | None] = lambda conversation: None,
        heartbeat: Callable[[], None] = lambda: None,
        full_refresh: bool = False,
        overlap_seconds: float = DEFAULT_OVERLAP_SECONDS,
        read_mode: str = "full",
        listing_shortcut: bool = False,
        conversation_ids: Sequence[str] | None = None,
        max_workers: int = 4,
        fail_on_error: bool = True,
        clock: RunClock | None = None,
        log: logging.Logger | Any = None,
        progress_seconds: float = DEFAULT_INTERVAL,
    ) -> None:
        self.vendor = vendor
        self.account_id = account_id
        self.store = store
        self.writer = writer
        self.carry_over = carry_over
        self.carried_watermarks = carried_watermarks
        self.commit = commit
        self.known_ids = known_ids
        self.full_read_shortfall = full_read_shortfall
        self.heartbeat = heartbeat
        self.full_refresh = full_refresh
        self.overlap_seconds = overlap_seconds
        if read_mode not in READ_MODES:
            raise ValueError(f"read_mode must be one of {sorted(READ_MODES)}, got {read_mode!r}")
        self.read_mode = read_mode
        self.listing_shortcut = listing_shortcut
        self.conversation_ids = list(conversation_ids) if conversation_ids is not None else None
        self.max_workers = max_workers
        self.fail_on_error = fail_on_error
        self.log = log
        self.progress_seconds = progress_seconds
        self._stop = threading.Event()
        self._given_clock = clock
        self.clock = clock or RunClock()
        self._watermarks: dict[str, dict] = {}
        self._future = 0  # conversations with a time from the future this run

    # ---- the run --------------------------------------------------------------------------------------
    def run(
        self,
        *,
        list_conversations: Callable[[], Iterable[Conversation]],
        read_conversation: Callable[[Conversation, ReadWindow], Iterable[Message]],
        usage: Callable[[], dict[str, float]],
        listing_memo: Callable[[], dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """
        List, read, stage and commit; returns the XCom value.

        :param list_conversations: the vendor's listing (most recent activity first).
        :param read_conversation: yields the messages of a conversation that may be new in the window
            (it may yield some that are not: they are dropped here); it should stop paging once below it.
        :param usage: the hook's counters, ``{"api_calls": n, "credits": x}``.
        :param listing_memo: what the vendor operator learnt from the listing and needs on runs that stop
            listing early (kept in the sweep marker as ``memo``; see :attr:`previous_memo`).
        :raises LinkMsgError: after staging and committing what was read, when conversations failed.
        """
        label = f"{self.vendor} {self.account_id}"
        with Progress(self.log, label, usage=usage, interval=self.progress_seconds) as progress:
            return self._run(progress, list_conversations, read_conversation, usage, listing_memo)

    def _run(
        self,
        progress: Progress,
        list_conversations: Callable[[], Iterable[Conversation]],
        read_conversation: Callable[[Conversation, ReadWindow], Iterable[Message]],
        usage: Callable[[], dict[str, float]],
        listing_memo: Callable[[], dict[str, Any]] | None,
    ) -> dict[str, Any]:
        def listed_one_by_one() -> Iterable[Conversation]:
            progress.start_phase("listing", unit="conversation(s) listed")
            for conversation in list_conversations():
                progress.advance()
                yield conversation

        self.clock = self._given_clock or RunClock()
        sweep = self._trusted_sweep(self.store.sweep())
        shortcut = self.listing_shortcut and not self._lists_in_full
        try:
            carried = self._carry_over()
            watermarks = self.store.all()
            watermarks.update(self.store.staged)  # those the carried records cover
            watermarks = self._watermarks = {c: self._trusted(c, w) for c, w in watermarks.items()}
            listing = list_inbox(
                listed_one_by_one,
                sweep if shortcut else None,
                self.overlap_seconds,
                unchanged=lambda c: not is_changed(c, watermarks.get(c.id)),
                heartbeat=self.heartbeat,
            )
        except BaseException:
            self.writer.abort()
            self.store.discard()
            raise
        listed, listing_complete, budget_error = listing.conversations, listing.complete, listing.budget_error
        wanted = listed
        missing: list[str] = []
        if self.conversation_ids is not None:
            by_id = {c.id: c for c in listed}
            wanted = [by_id[i] for i in dict.fromkeys(self.conversation_ids) if i in by_id]
            missing = [i for i in self.conversation_ids if i not in by_id]
            if missing and listing_complete:
                self._warn(
                    "%d conversation(s) asked for are not in the inbox: %s", len(missing), missing[:_SHOWN]
                )
        empty = sum(1 for c in wanted if c.empty)
        changed = [
            c for c in wanted if not c.empty and (self.full_refresh or is_changed(c, watermarks.get(c.id)))
        ]
        listed_count = len(listed)
        self._info(
            "%s %s: %d conversation(s) listed%s, %d wanted, %d changed since their watermark, %d empty",
            self.vendor,
            self.account_id,
            listed_count,
            f" (the rest were last active before {sweep['through']}, all staged)"
            if listing.stopped_early
            else "",
            len(wanted),
            len(changed),
            empty,
        )
        if shortcut:
            self._warn(
                "%s %s: listing shortcut on: a conversation below the sweep marker whose activity moved to an "
                "earlier time is found by the next full listing, at most %.0f h later (listed in full at %s)",
                self.vendor,
                self.account_id,
                shortcut_bound()["staleness_bound_hours"],
                (sweep or {}).get("listed_in_full_at") if listing.stopped_early else "this run",
            )
        if self.read_mode == "window" and not self.full_refresh:
            self._warn(
                "%s %s: read_mode='window' (opt-in): %s",
                self.vendor,
                self.account_id,
                self.window_bound(),
            )
        progress.start_phase("reading", unit="conversation(s) read", total=len(changed))
        outcomes = self._read_all(changed, watermarks, read_conversation)
        read, deepened, failed, skipped = 0, 0, [], []
        fatal: BaseException | None = None
        new_records = 0
        try:
            for outcome in outcomes:
                conversation = outcome.conversation
                progress.advance(records=len(outcome.messages))
                if outcome.skipped:
                    skipped.append(conversation.id)
                    continue
                if outcome.error is not None:
                    error = outcome.error
                    if isinstance(error, LinkMsgBudgetExceededError) and error.status is None:
                        budget_error = budget_error or error
                        skipped.append(conversation.id)
                        continue
                    failed.append((conversation.id, error))
                    if isinstance(error, LinkMsgAuthError | LinkMsgBudgetExceededError) and fatal is None:
                        fatal = error
                    continue
                self._write(outcome.messages)
                new_records += len(outcome.messages)
                old = None if self.full_refresh else watermarks.get(conversation.id)
                self._warn_future(conversation, outcome)
                watermark = next_watermark(
                    old,
                    conversation,
                    outcome.messages,
                    self.overlap_seconds,
                    clock=self.clock,
                    newest_read=outcome.newest_read,
                )
                self.store.stage(conversation.id, watermark)
                read += 1
                deepened += outcome.deepened
                outcome.messages = []  # released: the writer has them
                self.heartbeat()
            covered = listing_complete and not failed and not skipped and budget_error is None
            if self.conversation_ids is None and covered:  # everything listed is staged or current
                self._stage_sweep(listing, sweep, listing_memo)
            stats = usage()
            self.writer.add_stats(
                api_calls=int(stats.get("api_calls", 0)),
                credits=stats.get("credits", 0),
                account_id=self.account_id,
                conversations_listed=listed_count,
                conversations_changed=len(changed),
                conversations_read=read,
                conversations_failed=len(failed),
            )
            self.writer.set_watermarks(self.store.staged)
            manifest = self.writer.close()
        except BaseException:
            self.writer.abort()
            self.store.discard()
            raise
        self.commit(manifest)
        result = {
            **manifest.summary(),
            "account_id": self.account_id,
            "conversations_listed": listed_count,
            "listing_complete": listing_complete,
            "listing_stopped_early": listing.stopped_early,
            "listing_shortcut": {**shortcut_bound(), "stopped_early": listing.stopped_early}
            if shortcut
            else None,
            "overlap_seconds": self.overlap_seconds,
            "read_mode": self.read_mode,
            "read_mode_bound": self.window_bound() if self.read_mode == "window" else None,
            "conversations_changed": len(changed),
            "conversations_empty": empty,
            "conversations_deepened": deepened,
            "conversations_read": read,
            "conversations_failed": len(failed),
            "conversations_pending": len(skipped),
            "records_new": new_records,
            "records_carried_over": carried,
            "budget_exhausted": budget_error is not None,
            "conversations_future_times": self._future,
        }
        if missing:
            result["conversations_missing"] = missing[:_SHOWN]
        if failed:
            result["failed"] = [cid for cid, _ in failed[:_SHOWN]]
            result["first_error"] = str(failed[0][1])[:500]
        self._info(
            "%s %s: staged %d new message(s) from %d conversation(s) (%d failed, %d left for the next run) "
            "with %s call(s) and %s credit(s): %s",
            self.vendor,
            self.account_id,
            new_records,
            read,
            len(failed),
            len(skipped),
            manifest.api_calls,
            manifest.credits,
            manifest.path,
        )
        if budget_error is not None:
            self._warn(
                "Stopped at the credit budget: %d conversation(s) left for the next run (%s)",
                len(skipped),
                budget_error.detail,
            )
        if fatal is not None:
            raise fatal
        if failed and self.fail_on_error:
            self._raise_failed(failed, read, manifest)
        return result

    # ---- parts ----------------------------------------------------------------------------------------
    def _carry_over(self) -> int:
        """
        Re-stage what an earlier try of this run staged (its watermarks may already be committed), and
        start from the watermarks it covers where they are ahead of the committed ones.
        """
        count = 0
        for record in self.carry_over():
            self.writer.write(record)
            count += 1
        if count:
            committed = self.store.all()
            for conversation_id, carried in self.carried_watermarks().items():
                old = committed.get(conversation_id) or {}
                if (carried or {}).get("sent_at") and (carried["sent_at"] > (old.get("sent_at") or "")):
                    self.store.stage(conversation_id, carried)
            self._info("Carried over %d record(s) staged by an earlier try of this run", count)
        return count

    def _write(self, messages: list[Message]) -> None:
        """Stage a conversation's messages (in one call when the writer takes several at once)."""
        if hasattr(self.writer, "write_many"):
            return self.writer.write_many(messages)
        for message in messages:
            self.writer.write(message)

    def window(self, conversation_id: str) -> ReadWindow:
        """The read window of a conversation in this run (for readers that batch their ``since``)."""
        watermark = None if self.full_refresh else self._watermarks.get(conversation_id)
        return read_window(watermark, self.overlap_seconds)

    def _trusted(self, conversation_id: str, watermark: dict[str, Any]) -> dict[str, Any]:
        trusted, field = trusted_watermark(watermark, self.clock)
        if field:
            self._future += 1
            self._warn(
                "%s %s: the watermark of %s has %s=%s, after our clock (%s): reading it in full once",
                self.vendor,
                self.account_id,
                conversation_id,
                field,
                watermark.get(field),
                self.clock.horizon(),
            )
        return trusted

    def _trusted_sweep(self, sweep: dict[str, Any] | None) -> dict[str, Any] | None:
        trusted = trusted_sweep(sweep, self.clock)
        if sweep and trusted is None:
            self._warn(
                "%s %s: the sweep marker's time %s is after our clock (%s): listing in full",
                self.vendor,
                self.account_id,
                sweep.get("through"),
                self.clock.horizon(),
            )
        return trusted

    def _warn_future(self, conversation: Conversation, outcome: Outcome) -> None:
        """Name the times of a conversation from the future (they do not enter its watermark)."""
        times = {"activity": conversation.last_activity, "newest message": outcome.newest_read}
        ahead = {name: value for name, value in times.items() if self.clock.ahead(value)}
        if ahead:
            self._future += 1
            self._warn(
                "%s %s: %s shows %s after our clock (%s, slack %s): not taken as its watermark; it is "
                "read again until a staged message accounts for its activity",
                self.vendor,
                self.account_id,
                conversation.id,
                ", ".join(f"{name} {value}" for name, value in ahead.items()),
                self.clock.horizon(),
                self.clock.slack,
            )

    def window_bound(self) -> str:
        """The staleness bound of ``read_mode="window"``, with this run's overlap."""
        return WINDOW_BOUND.format(overlap=self.overlap_seconds)

    @property
    def _lists_in_full(self) -> bool:
        return self.full_refresh or self.conversation_ids is not None

    @property
    def previous_memo(self) -> dict[str, Any]:
        """The vendor operator's ``listing_memo`` as of the last complete pass (``{}`` if none)."""
        return dict((self.store.sweep() or {}).get("memo") or {})

    def _stage_sweep(
        self,
        listing: Listing,
        sweep: dict[str, Any] | None,
        listing_memo: Callable[[], dict[str, Any]] | None,
    ) -> None:
        if not listing.in_order and sweep:
            self._warn(
                "%s %s: the listing is not in activity order: it is listed in full",
                self.vendor,
                self.account_id,
            )
        self.store.stage_sweep(next_sweep(listing, sweep, listing_memo() if listing_memo else {}, self.clock))

    def _raise_failed(self, failed: list[tuple[str, BaseException]], read: int, manifest: Any) -> None:
        shown = "; ".join(f"{cid}: {error}" for cid, error in failed[:3])
        more = f" (and {len(failed) - 3} more)" if len(failed) > 3 else ""
        raise LinkMsgError(
            f"{len(failed)} conversation(s) of account {self.account_id} could not be read: {shown}{more}. "
            f"The {read} conversation(s) read are staged in {manifest.path} and their watermarks saved; a "
            "retry or the next run reads the failed ones again.",
            vendor=self.vendor,
        )

    def _info(self, *args: Any) -> None:
        if self.log is not None:
            self.log.info(*args)

    def _warn(self, *args: Any, **kwargs: Any) -> None:
        if self.log is not None:
            self.log.warning(*args, **kwargs)
