"""LinkupAPI's inbox for the engine: ``list_inbox`` most recent first, conversations read newest first."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from airflow_provider_linkmsg.engine.windows import Conversation, ReadWindow, listing_marker
from airflow_provider_linkmsg.records import Message, to_utc_iso

if TYPE_CHECKING:
    from airflow_provider_linkmsg.hooks.linkup import LinkupHook

#: conversations per ``list_inbox`` call (a credit per ten, so any multiple of ten costs the same)
INBOX_PAGE_SIZE = 50


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
        pages = self.hook.iter_conversation_pages(
            self.account_id, conversation_id=conversation.id, count=self.page_size
        )
        for raw in (item for page in pages for item in self._counted(conversation, page)):
            message = self.hook.to_message(
                raw,
                account_id=self.account_id,
                conversation_id=conversation.id,
                owner_urls=self.owner_urls,
                participant_url=conversation.info.get("participant_url"),
                channel=conversation.channel,
                include_raw=self.include_raw,
            )
            if window.below(message):
                return  # newest first: the rest is staged already, and no further page is fetched
            yield message

    @staticmethod
    def _counted(conversation: Conversation, page: Any) -> list[dict[str, Any]]:
        """The page's messages; the vendor's ``total_message_count`` goes on the conversation."""
        total = (page.meta or {}).get("total_message_count")
        if isinstance(total, int) and not isinstance(total, bool):
            conversation.total = total
        return page.items

    def full_read_shortfall(self, conversation: Conversation) -> float | None:
        """Credits a full read of ``conversation`` would lack in the hook's budget (``None``: unknown or none)."""
        remaining = self.hook.budget.remaining
        if remaining is None or conversation.total is None:
            return None
        pages = max(1, -(-conversation.total // self.page_size))
        cost = pages * max(1, -(-self.page_size // 10))
        return max(0.0, cost - remaining) or None

    def usage(self) -> dict[str, float]:
        return {"api_calls": self.hook.api_calls, "credits": self.hook.credits_used}

    def memo(self) -> dict[str, Any]:
        return {"owner_urls": sorted(self.owner_urls)}

    def recall(self, memo: dict[str, Any]) -> None:
        self.owner_urls |= set(memo.get("owner_urls") or [])
