"""
Incremental inbox retrieval, shared by the operators of the inbox vendors.

One run reads one account's inbox:

1. list the conversations (the vendor's part) and keep those asked for (``conversation_ids``);
2. skip each conversation whose last activity is not newer than its watermark;
3. read the new messages of the others (the vendor's part, given a :class:`ReadWindow` that says what
   is already staged), concurrently in a bounded thread pool under the hook's shared rate limiter;
4. stage the messages of each conversation read completely, with a manifest;
5. only then commit the watermarks of those conversations.

A conversation's messages are held until it is read completely, so a conversation that fails half-way
(or meets the credit budget) stages nothing and keeps its watermark: the next run reads it again, and
nothing is staged twice. When some conversations fail, the others are staged and committed before the
task fails, and a retry of the task (same staging directory) carries over what the failed try staged.

A watermark, per (vendor, account, conversation), is ``{"sent_at", "last_activity", "recent"}``: the
newest staged message time, the vendor's last activity when it was read, and the ids of the staged
messages within ``overlap_seconds`` of the newest (to de-duplicate the overlap of the next read).

Listing costs calls (and LinkupAPI credits) too, so the listing stops early when it can: the vendors
list conversations most recently active first, and after a run that listed and read everything it had
to, the account's *sweep* marker says up to which activity time everything is staged. The next run
stops listing at the first conversation last active before that time, less ``overlap_seconds`` or
``LISTING_MARGIN`` (15 minutes), whichever is longer: all later ones are older still, and already
covered. (The margin is for messages that reach the vendor a little after the time they carry: a
message in an older conversation that surfaces later than that is found by the daily full listing.) The order is checked as far as each listing goes: one
found out of activity order clears the marker, and runs list in full until one is in order again; and
once a day (``FULL_LISTING_EVERY``) a run lists in full anyway, so a vendor that ever lists out of
order below the stopping point cannot hide a change for longer. Runs with ``conversation_ids`` or
``full_refresh`` always list in full; a run with failed or left-over conversations keeps the old
marker, so the next run lists down to them again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_linkmsg.exceptions import (
    LinkMsgAuthError,
    LinkMsgBudgetExceededError,
    LinkMsgError,
    LinkMsgValidationError,
)
from airflow_provider_linkmsg.io.staging import Manifest, StagingWriter, exists, iter_records, staging_root
from airflow_provider_linkmsg.io.state import WatermarkStore, commit_after
from airflow_provider_linkmsg.records import Message, parse_utc, to_utc_iso, utc_to_epoch_ms
from airflow_provider_linkmsg.utils import task_run_id

if TYPE_CHECKING:
    import logging

    from airflow.providers.common.compat.sdk import Context, ObjectStoragePath

#: failed conversations named in an error message or XCom value, at most
_SHOWN = 10
_EPOCH = "1970-01-01T00:00:00.000000Z"
#: how often a run lists the whole inbox even though the sweep marker would let it stop early
FULL_LISTING_EVERY = timedelta(days=1)
#: how far before the sweep marker's time a listing goes on, at least (messages that surface late)
LISTING_MARGIN = timedelta(minutes=15)


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


@dataclass
class _Listing:
    conversations: list[Conversation] = field(default_factory=list)
    complete: bool = True  # listed to the end, or down to what the sweep marker covers
    stopped_early: bool = False  # at the sweep marker
    in_order: bool = True  # most recently active first, as far as it went
    budget_error: LinkMsgBudgetExceededError | None = None


@dataclass
class _Outcome:
    conversation: Conversation
    messages: list[Message] = field(default_factory=list)
    error: BaseException | None = None
    skipped: bool = False


class InboxRetrieval:
    """
    One incremental retrieval of one account's inbox into a staging run (see the module docstring).

    :param vendor: vendor name (records, staging and state paths).
    :param account_id: the vendor's account id.
    :param root: staging root; watermarks live under ``{root}/_state``.
    :param run_id: staging run id (stable across retries of a task; a rerun carries over what is staged).
    :param conn_id: connection of the staging store.
    :param include_raw: stage the vendor's JSON with each record.
    :param full_refresh: ignore watermarks: read every conversation completely.
    :param overlap_seconds: re-read this much before each watermark (de-duplicated by message id).
    :param conversation_ids: only these conversations.
    :param max_workers: conversations read at once.
    :param fail_on_error: raise when conversations failed (after staging and committing the others);
        when false, only report them.
    :param log: where to report.
    """

    def __init__(
        self,
        *,
        vendor: str,
        account_id: str,
        root: str | ObjectStoragePath,
        run_id: str,
        conn_id: str | None = None,
        include_raw: bool = False,
        full_refresh: bool = False,
        overlap_seconds: float = 0,
        conversation_ids: Sequence[str] | None = None,
        max_workers: int = 4,
        fail_on_error: bool = True,
        log: logging.Logger | Any = None,
    ) -> None:
        self.vendor = vendor
        self.account_id = account_id
        self.full_refresh = full_refresh
        self.overlap_seconds = overlap_seconds
        self.conversation_ids = list(conversation_ids) if conversation_ids is not None else None
        self.max_workers = max_workers
        self.fail_on_error = fail_on_error
        self.log = log
        self.store = WatermarkStore(root, vendor=vendor, account=account_id, conn_id=conn_id)
        self.writer = StagingWriter(
            root,
            vendor=vendor,
            record_type="message",
            run_id=run_id,
            conn_id=conn_id,
            include_raw=include_raw,
        )
        self._stop = threading.Event()

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
        keys: set[str] = set()
        sweep = self.store.sweep()
        try:
            carried = self._carry_over(keys)
            listing = self._list(list_conversations, None if self._lists_in_full else sweep)
        except BaseException:
            self.writer.abort()
            raise
        listed, listing_complete, budget_error = listing.conversations, listing.complete, listing.budget_error
        watermarks = self.store.all()
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
        changed = [c for c in wanted if self.full_refresh or not is_current(c, watermarks.get(c.id))]
        self._info(
            "%s %s: %d conversation(s) listed%s, %d wanted, %d changed since their watermark",
            self.vendor,
            self.account_id,
            len(listed),
            f" (the rest were last active before {sweep['through']}, all staged)"
            if listing.stopped_early
            else "",
            len(wanted),
            len(changed),
        )
        outcomes = self._read_all(changed, watermarks, read_conversation)
        read, failed, skipped = [], [], []
        fatal: BaseException | None = None
        new_records = 0
        try:
            for outcome in outcomes:
                conversation = outcome.conversation
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
                for message in outcome.messages:
                    if message.key not in keys:
                        keys.add(message.key)
                        self.writer.write(message)
                        new_records += 1
                old = None if self.full_refresh else watermarks.get(conversation.id)
                self.store.stage(
                    conversation.id, next_watermark(old, conversation, outcome.messages, self.overlap_seconds)
                )
                read.append(conversation.id)
            covered = listing_complete and not failed and not skipped and budget_error is None
            if self.conversation_ids is None and covered:  # everything listed is staged or current
                self.store.stage_sweep(self._next_sweep(listing, sweep, listing_memo))
            stats = usage()
            self.writer.add_stats(
                api_calls=int(stats.get("api_calls", 0)),
                credits=stats.get("credits", 0),
                account_id=self.account_id,
                conversations_listed=len(listed),
                conversations_changed=len(changed),
                conversations_read=len(read),
                conversations_failed=len(failed),
            )
            self.writer.set_watermarks(self.store.staged)
            manifest = self.writer.close()
        except BaseException:
            self.writer.abort()
            self.store.discard()
            raise
        commit_after(manifest, self.store)
        result = {
            **manifest.summary(),
            "account_id": self.account_id,
            "conversations_listed": len(listed),
            "listing_complete": listing_complete,
            "listing_stopped_early": listing.stopped_early,
            "conversations_changed": len(changed),
            "conversations_read": len(read),
            "conversations_failed": len(failed),
            "conversations_pending": len(skipped),
            "records_new": new_records,
            "records_carried_over": carried,
            "budget_exhausted": budget_error is not None,
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
            len(read),
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
            self._raise_failed(failed, len(read), manifest)
        return result

    # ---- parts ----------------------------------------------------------------------------------------
    def _carry_over(self, keys: set[str]) -> int:
        """Re-stage what an earlier try of this run staged (its watermarks may already be committed)."""
        if not exists(self.writer.manifest_path):
            return 0
        count = 0
        for record in iter_records(Manifest.load(self.writer.manifest_path)):
            if record.key not in keys:
                keys.add(record.key)
                self.writer.write(record)
                count += 1
        self._info("Carried over %d record(s) staged by an earlier try of this run", count)
        return count

    @property
    def _lists_in_full(self) -> bool:
        return self.full_refresh or self.conversation_ids is not None

    @property
    def previous_memo(self) -> dict[str, Any]:
        """The vendor operator's ``listing_memo`` as of the last complete pass (``{}`` if none)."""
        return dict((self.store.sweep() or {}).get("memo") or {})

    def _list(
        self, list_conversations: Callable[[], Iterable[Conversation]], sweep: dict[str, Any] | None
    ) -> _Listing:
        """List the conversations, down to those the sweep marker covers (when there is one)."""
        listing = _Listing()
        cutoff = None
        fresh = (
            sweep
            and datetime.now(UTC) - parse_utc(sweep.get("listed_in_full_at") or _EPOCH) < FULL_LISTING_EVERY
        )
        if fresh and sweep.get("through"):
            margin = max(timedelta(seconds=self.overlap_seconds), LISTING_MARGIN)
            cutoff = to_utc_iso(parse_utc(sweep["through"]) - margin)
        seen: set[str] = set()
        previous: str | None = None
        try:
            for conversation in list_conversations():
                activity = conversation.last_activity
                if activity is None or (previous is not None and activity > previous):
                    listing.in_order = False
                if cutoff is not None and listing.in_order and activity < cutoff:
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

    def _next_sweep(
        self,
        listing: _Listing,
        sweep: dict[str, Any] | None,
        listing_memo: Callable[[], dict[str, Any]] | None,
    ) -> dict[str, Any] | None:
        """The marker after a run that read all it listed: through its newest activity (None: out of order)."""
        if not listing.in_order:
            if sweep:
                self._warn(
                    "%s %s: the listing is not in activity order: it is listed in full",
                    self.vendor,
                    self.account_id,
                )
            return None
        activity = [c.last_activity for c in listing.conversations if c.last_activity]
        if sweep and sweep.get("through"):
            activity.append(sweep["through"])
        if not activity:
            return None
        in_full = (
            sweep.get("listed_in_full_at")
            if sweep and listing.stopped_early
            else to_utc_iso(datetime.now(UTC))
        )
        return {
            "through": max(activity),
            "listed_in_full_at": in_full,
            "memo": listing_memo() if listing_memo else {},
        }

    def _read_all(
        self,
        changed: list[Conversation],
        watermarks: dict[str, dict],
        read_conversation: Callable[[Conversation, ReadWindow], Iterable[Message]],
    ) -> Iterable[_Outcome]:
        if not changed:
            return
        workers = max(1, min(self.max_workers, len(changed)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"linkmsg-{self.vendor}") as pool:
            futures = [
                pool.submit(self._read_one, c, watermarks.get(c.id), read_conversation) for c in changed
            ]
            try:
                for future in as_completed(futures):
                    yield future.result()
            finally:
                self._stop.set()

    def _read_one(
        self,
        conversation: Conversation,
        watermark: dict[str, Any] | None,
        read_conversation: Callable[[Conversation, ReadWindow], Iterable[Message]],
    ) -> _Outcome:
        if self._stop.is_set():
            return _Outcome(conversation, skipped=True)
        window = ReadWindow() if self.full_refresh else read_window(watermark, self.overlap_seconds)
        outcome = _Outcome(conversation)
        seen: set[str] = set()
        try:
            for message in read_conversation(conversation, window):
                if window.is_new(message) and message.message_id not in seen:
                    seen.add(message.message_id)
                    outcome.messages.append(message)
        except Exception as error:
            outcome.messages = []
            outcome.error = error
            if isinstance(error, LinkMsgAuthError | LinkMsgBudgetExceededError):
                self._stop.set()  # no later conversation can succeed
            else:  # an error of ours (not the vendor's) keeps its traceback in the log
                self._warn(
                    "%s %s: reading %s failed: %s",
                    self.vendor,
                    self.account_id,
                    conversation.id,
                    error,
                    exc_info=not isinstance(error, LinkMsgError),
                )
        return outcome

    def _raise_failed(self, failed: list[tuple[str, BaseException]], read: int, manifest: Manifest) -> None:
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


class BaseInboxRetrieveOperator(BaseOperator):
    """
    Stage the new messages of one account's inbox; vendor operators supply the listing and the reading.

    Map it over accounts with ``.partial(...).expand(account_id=[...])``: each mapped task stages its own
    manifest and keeps its own watermarks.

    :param account_id: the vendor's account id; the connection's ``account_id`` extra when not given.
    :param conversation_ids: only these conversations (the listing still decides which changed).
    :param full_refresh: ignore the watermarks and read every conversation completely.
    :param overlap_seconds: re-read this many seconds before each watermark, for messages that appear late
        with an earlier time; the overlap is de-duplicated by message id.
    :param max_workers: conversations read at once (all under the connection's rate limit).
    :param page_size: messages per call (the vendor operator's default when ``None``).
    :param staging_path: root of staged data and watermarks (``[linkmsg] staging_path`` by default).
    :param staging_conn_id: connection of the staging store (object storage).
    :param include_raw: stage the vendor's JSON with each message.
    :param fail_on_error: fail the task when some conversations could not be read (after staging and
        saving the others); when false, report them in the XCom value only.
    :return: (XCom) ``{"manifest", "records", "conversations_read", "api_calls", "credits", ...}``.
    """

    vendor: ClassVar[str] = ""
    default_page_size: ClassVar[int] = 100

    template_fields: Sequence[str] = ("account_id", "conversation_ids", "staging_path", "staging_conn_id")
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        account_id: str | None = None,
        conversation_ids: list[str] | None = None,
        full_refresh: bool = False,
        overlap_seconds: float = 0,
        max_workers: int = 4,
        page_size: int | None = None,
        staging_path: str | None = None,
        staging_conn_id: str | None = None,
        include_raw: bool = False,
        fail_on_error: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.account_id = account_id
        self.conversation_ids = conversation_ids
        self.full_refresh = full_refresh
        self.overlap_seconds = overlap_seconds
        self.max_workers = max_workers
        self.page_size = page_size
        self.staging_path = staging_path
        self.staging_conn_id = staging_conn_id
        self.include_raw = include_raw
        self.fail_on_error = fail_on_error

    # ---- the vendor's part ----------------------------------------------------------------------------
    def default_account_id(self) -> str | None:
        """The connection's default account."""
        raise NotImplementedError

    def check_account_id(self, account_id: Any) -> str:
        raise NotImplementedError

    def check_conversation_id(self, conversation_id: Any, field: str) -> str:
        raise NotImplementedError

    def check_inputs(self) -> None:
        """Vendor checks of the other arguments, before any call."""

    def list_conversations(self, account_id: str) -> Iterable[Conversation]:
        raise NotImplementedError

    def read_conversation(
        self, account_id: str, conversation: Conversation, window: ReadWindow
    ) -> Iterable[Message]:
        raise NotImplementedError

    def usage(self) -> dict[str, float]:
        """``{"api_calls": n, "credits": x}`` of this task's hook."""
        raise NotImplementedError

    def listing_memo(self) -> dict[str, Any]:
        """What the listing taught this operator that a later run, stopping its listing early, needs."""
        return {}

    def recall_listing_memo(self, memo: dict[str, Any]) -> None:
        """Take back, before listing, what :meth:`listing_memo` kept at the last complete pass."""

    # ---- shared -----------------------------------------------------------------------------------------
    @property
    def effective_page_size(self) -> int:
        return self.page_size if self.page_size is not None else self.default_page_size

    def _check_common(self) -> tuple[str, list[str] | None]:
        for name in ("overlap_seconds", "max_workers"):
            value = getattr(self, name)
            minimum = 0 if name == "overlap_seconds" else 1
            if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
                raise LinkMsgValidationError(
                    f"{name} must be a number of at least {minimum}, got {value!r}",
                    field=name,
                    vendor=self.vendor,
                )
        account = self.account_id if self.account_id not in (None, "") else self.default_account_id()
        if account is None:
            raise LinkMsgValidationError(
                "no account_id: pass account_id to the operator or set the connection's 'account_id' extra",
                field="account_id",
                vendor=self.vendor,
            )
        account = self.check_account_id(account)
        ids = self.conversation_ids
        if isinstance(ids, str):
            ids = [ids]
        if ids is not None:
            if not isinstance(ids, list | tuple):
                raise LinkMsgValidationError(
                    f"conversation_ids must be a list of conversation ids, got {ids!r}",
                    field="conversation_ids",
                    vendor=self.vendor,
                )
            ids = [self.check_conversation_id(c, f"conversation_ids[{i}]") for i, c in enumerate(ids)]
        self.check_inputs()
        return account, ids

    def execute(self, context: Context) -> dict[str, Any]:
        account_id, conversation_ids = self._check_common()
        retrieval = InboxRetrieval(
            vendor=self.vendor,
            account_id=account_id,
            root=staging_root(self.staging_path, self.staging_conn_id),
            run_id=task_run_id(context),
            conn_id=self.staging_conn_id,
            include_raw=self.include_raw,
            full_refresh=self.full_refresh,
            overlap_seconds=self.overlap_seconds,
            conversation_ids=conversation_ids,
            max_workers=int(self.max_workers),
            fail_on_error=self.fail_on_error,
            log=self.log,
        )
        self.recall_listing_memo(retrieval.previous_memo)
        return retrieval.run(
            list_conversations=lambda: self.list_conversations(account_id),
            read_conversation=lambda c, w: self.read_conversation(account_id, c, w),
            usage=self.usage,
            listing_memo=self.listing_memo,
        )
