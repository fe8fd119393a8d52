"""ConnectSafely's inbox for the engine: conversations listed most recent first, messages read with ``since``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from airflow_provider_linkmsg.engine.windows import Conversation, ReadWindow, listing_marker
from airflow_provider_linkmsg.hooks.connectsafely import MAX_COUNT
from airflow_provider_linkmsg.records import Message, to_utc_iso

if TYPE_CHECKING:
    from airflow_provider_linkmsg.hooks.connectsafely import ConnectSafelyHook


class ConnectSafelyInbox:
    """
    One ConnectSafely account's inbox.

    :param hook: the vendor hook.
    :param account_id: 24-hex account id.
    :param page_size: messages per call.
    :param include_raw: keep the vendor's JSON with each message.
    """

    def __init__(
        self,
        hook: ConnectSafelyHook,
        account_id: str,
        *,
        page_size: int = MAX_COUNT,
        include_raw: bool = False,
    ) -> None:
        self.hook = hook
        self.account_id = account_id
        self.page_size = page_size
        self.include_raw = include_raw

    def list_conversations(self) -> Iterator[Conversation]:
        for item in self.hook.iter_conversations(self.account_id, count=MAX_COUNT):
            urn = item["conversationUrn"]
            latest = item.get("latestMessage") or {}
            activity = item.get("lastActivityAt") or latest.get("sentAt")
            yield Conversation(
                id=urn,
                last_activity=to_utc_iso(activity) if activity not in (None, "") else None,
                channel=self.hook.channel_of(urn, item.get("source")),
                marker=listing_marker(
                    activity, latest.get("sentAt"), latest.get("text"), latest.get("senderName")
                ),
                latest_at=to_utc_iso(latest["sentAt"]) if latest.get("sentAt") not in (None, "") else None,
            )

    def read_conversation(self, conversation: Conversation, window: ReadWindow) -> Iterator[Message]:
        # a full read asks ``since=0`` (every message after the epoch, in one answer by the contract): the
        # backward ``cursor`` route (``sentAt < cursor``) skips messages sharing the millisecond a page is
        # cut in when more of them share it than a page holds
        since = window.since_ms()
        to_message, account_id, include_raw = self.hook.to_message, self.account_id, self.include_raw
        for page in self.hook.iter_message_pages(
            conversation.id,
            account_id=account_id,
            count=self.page_size,
            since=0 if since is None else since,
        ):
            for raw in page.items:  # a page at a time (iter_messages would add a generator per message)
                yield to_message(
                    raw, account_id=account_id, conversation_urn=conversation.id, include_raw=include_raw
                )

    def usage(self) -> dict[str, float]:
        return {"api_calls": self.hook.api_calls, "credits": 0}
