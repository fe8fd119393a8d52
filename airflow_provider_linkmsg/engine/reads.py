"""
Reading the changed conversations of one run: a bounded pool of readers, each read de-duplicated by the
staged ids and deepened when the listing says more changed than it found (no Airflow imports).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_linkmsg.engine.windows import Conversation, ReadWindow, read_window
from airflow_provider_linkmsg.exceptions import LinkMsgAuthError, LinkMsgBudgetExceededError, LinkMsgError

if TYPE_CHECKING:
    from airflow_provider_linkmsg.engine.clock import RunClock
    from airflow_provider_linkmsg.records import Message


@dataclass
class Outcome:
    conversation: Conversation
    messages: list[Message] = field(default_factory=list)
    error: BaseException | None = None
    skipped: bool = False
    deepened: bool = False
    newest_read: str | None = None  # the newest message read in the window, staged before or not


class ConversationReads:
    """
    The reading part of :class:`~airflow_provider_linkmsg.engine.retrieval.InboxRetrieval` (see its
    arguments): :meth:`_read_all` reads the changed conversations, at most ``2 * max_workers`` in flight.
    """

    vendor: str
    account_id: str
    full_refresh: bool
    overlap_seconds: float
    max_workers: int
    known_ids: Callable[[str], set[str] | None]
    full_read_shortfall: Callable[[Conversation], float | None]
    read_mode: str
    clock: RunClock
    _stop: threading.Event

    def _info(self, *args: Any) -> None:
        raise NotImplementedError

    def _warn(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError

    def _read_all(
        self,
        changed: list[Conversation],
        watermarks: dict[str, dict],
        read_conversation: Callable[[Conversation, ReadWindow], Iterable[Message]],
    ) -> Iterable[Outcome]:
        """Read the conversations; at most ``2 * workers`` are read or waiting for the writer at once."""
        if not changed:
            return
        workers = max(1, min(self.max_workers, len(changed)))
        if workers == 1:  # one reader: read in this thread, one conversation after the other
            try:
                for conversation in changed:
                    watermark = None if self.full_refresh else watermarks.get(conversation.id)
                    yield self._read_one(conversation, watermark, read_conversation)
            finally:
                self._stop.set()
            return
        limit = 2 * workers
        pending: set[Future[Outcome]] = set()
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"linkmsg-{self.vendor}") as pool:
            try:
                for conversation in changed:
                    while len(pending) >= limit:
                        done, pending = wait(pending, return_when=FIRST_COMPLETED)
                        for future in done:
                            yield future.result()
                    watermark = None if self.full_refresh else watermarks.get(conversation.id)
                    pending.add(pool.submit(self._read_one, conversation, watermark, read_conversation))
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        yield future.result()
            finally:
                self._stop.set()

    def accounted(
        self,
        conversation: Conversation,
        watermark: dict[str, Any],
        window: ReadWindow,
        new: list[Message],
        known: set[str] | None,
        newest_read: str | None = None,
    ) -> bool:
        """
        Whether an incremental read accounts for what the listing says changed. Not when the vendor counts
        more messages than are staged and found; when the latest message listed is older than the read
        window (a late message, shown as the latest); when the listed activity is newer than every message
        staged or found (activity moved by a message the window did not reach); activity from the future
        is left out of that (no late, older message moves it there; the conversation is read again next run).
        """
        if self.read_mode == "counted" and (conversation.total is None or known is None):
            return False  # no count to check against: read in full
        if (
            conversation.total is not None
            and known is not None
            and len(known) + len(new) < conversation.total
        ):
            return False
        if conversation.latest_at and window.floor and conversation.latest_at < window.floor:
            return False
        newest = max([watermark.get("sent_at") or "", newest_read or "", *(m.sent_at for m in new)])
        activity = conversation.last_activity
        if self.clock.ahead(activity):
            return True
        return not (activity and newest and activity > newest)

    def _read_one(
        self,
        conversation: Conversation,
        watermark: dict[str, Any] | None,
        read_conversation: Callable[[Conversation, ReadWindow], Iterable[Message]],
    ) -> Outcome:
        if self._stop.is_set():
            return Outcome(conversation, skipped=True)
        window = read_window(watermark, self.overlap_seconds)
        known = self.known_ids(conversation.id) if watermark else None
        if watermark and self.read_mode == "full":
            return self._read_full(conversation, window, known, read_conversation)
        outcome = Outcome(conversation)
        ids: set[str] = set()

        def take(message: Message) -> None:
            if outcome.newest_read is None or message.sent_at > outcome.newest_read:
                outcome.newest_read = message.sent_at
            if message.message_id not in ids and (known is None or message.message_id not in known):
                ids.add(message.message_id)
                outcome.messages.append(message)

        try:
            for message in read_conversation(conversation, window):
                if window.is_new(message):
                    take(message)
            if watermark and not self.accounted(
                conversation, watermark, window, outcome.messages, known, outcome.newest_read
            ):
                lacking = self.full_read_shortfall(conversation)
                if lacking:
                    self._warn(
                        "%s %s: %s needs a full read that the remaining credit budget cannot pay (%.0f "
                        "credit(s) short): deferred without spending; raise max_credits to read it",
                        self.vendor,
                        self.account_id,
                        conversation.id,
                        lacking,
                    )
                    raise LinkMsgBudgetExceededError(
                        f"a full read of {conversation.id} needs {lacking:.0f} more credit(s) than remain "
                        "in max_credits",
                        vendor=self.vendor,
                    )
                outcome.deepened = True
                self._info(
                    "%s %s: %s changed more than its read since %s found: reading it in full (a reader that "
                    "can continues where the window stopped: no page is paid twice)",
                    self.vendor,
                    self.account_id,
                    conversation.id,
                    window.floor,
                )
                for message in read_conversation(conversation, ReadWindow()):
                    if known is not None or message.message_id not in window.seen:
                        take(message)
        except Exception as error:
            self._failed(outcome, error)
        finally:
            conversation.resume = None  # the reader's place in this read: released with it
        return outcome

    def _read_full(
        self,
        conversation: Conversation,
        window: ReadWindow,
        known: set[str] | None,
        read_conversation: Callable[[Conversation, ReadWindow], Iterable[Message]],
    ) -> Outcome:
        """
        A changed conversation read in full, keeping what the index of staged ids does not hold (with no
        index yet, state from before it: everything, once; the exports keep one row per key).
        """
        outcome = Outcome(conversation)
        ids: set[str] = set()
        try:
            for message in read_conversation(conversation, ReadWindow()):
                if outcome.newest_read is None or message.sent_at > outcome.newest_read:
                    outcome.newest_read = message.sent_at
                if message.message_id not in ids and (known is None or message.message_id not in known):
                    ids.add(message.message_id)
                    outcome.messages.append(message)
        except Exception as error:
            self._failed(outcome, error)
        return outcome

    def _failed(self, outcome: Outcome, error: Exception) -> None:
        outcome.messages = []
        outcome.error = error
        if isinstance(error, LinkMsgAuthError | LinkMsgBudgetExceededError):
            self._stop.set()  # no later conversation can succeed
        else:  # an error of ours (not the vendor's) keeps its traceback in the log
            self._warn(
                "%s %s: reading %s failed: %s",
                self.vendor,
                self.account_id,
                outcome.conversation.id,
                error,
                exc_info=not isinstance(error, LinkMsgError),
            )
