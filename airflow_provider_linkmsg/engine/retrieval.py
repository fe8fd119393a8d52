"""
Incremental inbox retrieval, shared by the operators of the inbox vendors (no Airflow imports).

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

The storage is given to the engine (a staging writer, a watermark store, how to carry over and how to
commit), so that this module knows nothing of Airflow or of where the data lives.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_linkmsg.engine.listing import Listing, list_inbox, next_sweep
from airflow_provider_linkmsg.engine.windows import (
    Conversation,
    ReadWindow,
    is_current,
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
    :param store: the account's watermark store (``all``, ``sweep``, ``stage``, ``stage_sweep``,
        ``discard``, ``staged``).
    :param writer: the run's staging writer (``write``, ``add_stats``, ``set_watermarks``, ``close``,
        ``abort``).
    :param carry_over: the records an earlier try of this run staged (empty when none).
    :param commit: commits the store once the manifest that ``writer.close()`` returned is durable.
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
        store: Any,
        writer: Any,
        carry_over: Callable[[], Iterable[Message]] = lambda: (),
        commit: Callable[[Any], Any] = lambda manifest: None,
        full_refresh: bool = False,
        overlap_seconds: float = 0,
        conversation_ids: Sequence[str] | None = None,
        max_workers: int = 4,
        fail_on_error: bool = True,
        log: logging.Logger | Any = None,
    ) -> None:
        self.vendor = vendor
        self.account_id = account_id
        self.store = store
        self.writer = writer
        self.carry_over = carry_over
        self.commit = commit
        self.full_refresh = full_refresh
        self.overlap_seconds = overlap_seconds
        self.conversation_ids = list(conversation_ids) if conversation_ids is not None else None
        self.max_workers = max_workers
        self.fail_on_error = fail_on_error
        self.log = log
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
            listing = list_inbox(
                list_conversations, None if self._lists_in_full else sweep, self.overlap_seconds
            )
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
                self._stage_sweep(listing, sweep, listing_memo)
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
        self.commit(manifest)
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
        count = 0
        for record in self.carry_over():
            if record.key not in keys:
                keys.add(record.key)
                self.writer.write(record)
                count += 1
        if count:
            self._info("Carried over %d record(s) staged by an earlier try of this run", count)
        return count

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
        self.store.stage_sweep(next_sweep(listing, sweep, listing_memo() if listing_memo else {}))

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
