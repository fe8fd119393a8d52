"""LinkupAPI's inbox for the engine: ``list_inbox`` most recent first, conversations read newest first."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_linkmsg.engine.windows import Conversation, ReadWindow, listing_marker
from airflow_provider_linkmsg.exceptions import LinkMsgResponseError
from airflow_provider_linkmsg.records import Message, to_utc_iso, utc_to_epoch_ms

if TYPE_CHECKING:
    from airflow_provider_linkmsg.hooks.linkup import LinkupHook

#: conversations per ``list_inbox`` call (a credit per ten, so any multiple of ten costs the same)
INBOX_PAGE_SIZE = 50


@dataclass
class _Cut:
    """A page end: the oldest millisecond on the page, and the ids read at it (a tie the next page may skip)."""

    ms: int
    ids: set[str]


@dataclass
class _Place:
    """
    Where a read of one conversation stands: the rest of the page a windowed read stopped in (already
    paid), the next page's cursor (``None``: no more pages), the messages fetched and the page ends passed.
    """

    rest: list[dict[str, Any]] = field(default_factory=list)
    cursor: str | None = None
    fetched: int = 0
    cuts: list[_Cut] = field(default_factory=list)


class LinkupInbox:
    """
    One LinkupAPI account's inbox.

    The owner's profile URLs (seen as ``is_me`` senders in the listing) tell sent from received; they are
    remembered across runs (:meth:`memo`, :meth:`recall`) for runs whose listing stops early.

    :param hook: the vendor hook (with its credit budget).
    :param account_id: ``acc_...``.
    :param page_size: messages per call.
    :param include_raw: keep the vendor's JSON with each message.
    """

    def __init__(
        self, hook: LinkupHook, account_id: str, *, page_size: int = 10, include_raw: bool = False
    ) -> None:
        self.hook = hook
        self.account_id = account_id
        self.page_size = page_size
        self.include_raw = include_raw
        self.owner_urls: set[str] = set()

    def list_conversations(self) -> Iterator[Conversation]:
        for item in self.hook.iter_inbox(self.account_id, count=INBOX_PAGE_SIZE):
            self.owner_urls |= self.hook.owner_urls([item])
            last = item.get("last_message")
            time = (last or {}).get("time")
            sender = ((last or {}).get("sender") or {}).get("profile_url")
            listed_at = to_utc_iso(time) if time not in (None, "") else None
            yield Conversation(
                id=item["conversation_id"],
                last_activity=listed_at,
                channel=self.hook.channel_of(item),
                info={"participant_url": (item.get("participant") or {}).get("profile_url")},
                marker=listing_marker(time, (last or {}).get("text"), sender) if last else None,
                latest_at=listed_at,
                empty=last is None,  # ``last_message: null``: nothing to read, no credit to spend
            )

    def read_conversation(self, conversation: Conversation, window: ReadWindow) -> Iterator[Message]:
        """
        The conversation's messages, newest first, down to the first one below ``window``'s floor.

        A windowed read that stops there keeps its place on the conversation (:class:`_Place`); a full read
        of the same conversation in the same run (the engine deepening it) continues from that place
        instead of buying the newest pages again. A full read that ends with fewer messages than the
        vendor's ``total_message_count`` re-reads its page ends (:meth:`_ties`).
        """
        place = conversation.resume if window.full else None
        conversation.resume = None
        if isinstance(place, _Place):
            yield from (self._message(conversation, raw) for raw in place.rest)
            pages = self._pages(conversation, place.cursor) if place.cursor else iter(())
            place.rest, place.cursor = [], None
        else:
            place = _Place()
            pages = self._pages(conversation, None)
        for page in pages:
            items = self._counted(conversation, page)
            place.fetched += len(items)
            messages = [self._message(conversation, raw) for raw in items]
            if not page.last and messages:
                oldest = min(utc_to_epoch_ms(m.sent_at) for m in messages)
                at = {m.message_id for m in messages if utc_to_epoch_ms(m.sent_at) == oldest}
                place.cuts.append(_Cut(oldest, at))
            for index, message in enumerate(messages):
                if window.below(message):  # newest first: the rest is staged already; no further page
                    place.rest = items[index:]
                    place.cursor = None if page.last else (page.cursor or None)
                    conversation.resume = place
                    return
                yield message
        if not window.full:
            conversation.resume = place  # read to the end: a deepened read only checks the page ends
            return
        yield from self._ties(conversation, place)

    def _ties(self, conversation: Conversation, place: _Place) -> Iterator[Message]:
        """
        Messages a page end skipped: the cursor is a time (``timestamp < cursor``), so when the vendor ends
        a page inside a millisecond, the rest of that millisecond is on no page. Only when the read found
        fewer messages than the vendor counts, each page end is read again from its millisecond inclusive
        (``cursor`` = that time + 1 ms; what was read there is dropped by id), a page of ``page_size``,
        then of 100 if the tie fills it; a tie that fills a page of 100 cannot be paged by this API and is
        an error naming it, never a silent loss.
        """
        from airflow_provider_linkmsg.hooks.linkup import MAX_COUNT

        total = conversation.total
        for cut in place.cuts:
            if total is None or place.fetched >= total:
                return
            count = self.page_size
            while True:
                page = next(self._pages(conversation, str(cut.ms + 1), count=count, max_pages=1))
                self._counted(conversation, page)
                read = [self._message(conversation, raw) for raw in page.items]
                tied = [m for m in read if utc_to_epoch_ms(m.sent_at) == cut.ms]
                filled = len(tied) == len(read) and not page.last
                if filled and count < MAX_COUNT:
                    count = MAX_COUNT  # the tie fills the page: read as much of it as one call can
                    continue
                if filled:
                    raise LinkMsgResponseError(
                        f"get_conversation of {conversation.id}: a page of {MAX_COUNT} holds nothing but the "
                        f"millisecond {cut.ms} (a page end), and the cursor is a time: the rest of that "
                        "millisecond cannot be paged, and the vendor counts more messages than were read; "
                        "nothing of this conversation is staged (ask the vendor to page ties)",
                        vendor="linkup",
                    )
                break
            for message in tied:
                if message.message_id not in cut.ids:
                    cut.ids.add(message.message_id)
                    place.fetched += 1
                    yield message

    def _pages(
        self, conversation: Conversation, cursor: str | None, *, count: int | None = None, **kwargs: Any
    ) -> Iterator[Any]:
        return self.hook.iter_conversation_pages(
            self.account_id,
            conversation_id=conversation.id,
            count=count or self.page_size,
            cursor=cursor,
            **kwargs,
        )

    def _message(self, conversation: Conversation, raw: dict[str, Any]) -> Message:
        return self.hook.to_message(
            raw,
            account_id=self.account_id,
            conversation_id=conversation.id,
            owner_urls=self.owner_urls,
            participant_url=conversation.info.get("participant_url"),
            channel=conversation.channel,
            include_raw=self.include_raw,
        )

    @staticmethod
    def _counted(conversation: Conversation, page: Any) -> list[dict[str, Any]]:
        """The page's messages; the vendor's ``total_message_count`` goes on the conversation."""
        total = (page.meta or {}).get("total_message_count")
        if isinstance(total, int) and not isinstance(total, bool):
            conversation.total = total
        return page.items

    def full_read_shortfall(self, conversation: Conversation) -> float | None:
        """
        Credits a full read of ``conversation`` would lack in the hook's budget (``None``: unknown or none);
        a full read that continues a windowed one pays only the pages past it.
        """
        remaining = self.hook.budget.remaining
        if remaining is None or conversation.total is None:
            return None
        place = conversation.resume
        if isinstance(place, _Place):
            if place.cursor is None:
                return None  # nothing left to fetch
            unread = max(1, conversation.total - place.fetched)
        else:
            unread = conversation.total
        pages = max(1, -(-unread // self.page_size))
        cost = pages * max(1, -(-self.page_size // 10))
        return max(0.0, cost - remaining) or None

    def usage(self) -> dict[str, float]:
        return {"api_calls": self.hook.api_calls, "credits": self.hook.credits_used}

    def memo(self) -> dict[str, Any]:
        return {"owner_urls": sorted(self.owner_urls)}

    def recall(self, memo: dict[str, Any]) -> None:
        self.owner_urls |= set(memo.get("owner_urls") or [])
