"""
The watchers that look at the first page of an account's conversation listing (ConnectSafely, LinkupAPI):
their common arguments and what a page's sightings make of the watcher's state.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_linkmsg.triggers.watchers.base import InboxActivityTrigger, Observation
from airflow_provider_linkmsg.triggers.watchers.ledger import (
    MIN_KEEP,
    changed_conversations,
    new_sightings,
    newest,
    remember,
)

if TYPE_CHECKING:
    from airflow_provider_linkmsg.hooks.inbox.firstpage import Sighting


class FirstPageActivityTrigger(InboxActivityTrigger):
    """
    Base of the first-page watchers: an account, a connection and a page size.

    :param account_id: the vendor's account id.
    :param conn_id: the vendor connection (the subclass's ``<vendor>_conn_id`` argument).
    :param page_size: conversations per look, 1 to 100.
    :param kwargs: the common watcher arguments (see :class:`InboxActivityTrigger`).
    """

    #: the name of the connection argument (``connectsafely_conn_id``, ``linkup_conn_id``)
    conn_arg: ClassVar[str]

    def __init__(self, *, account_id: str, conn_id: str, page_size: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.account_id = account_id
        self.page_size = page_size
        setattr(self, self.conn_arg, conn_id)

    @property
    def vendor_conn_id(self) -> str:
        return getattr(self, self.conn_arg)

    def vendor_kwargs(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            self.conn_arg: self.vendor_conn_id,
            "page_size": self.page_size,
        }

    def check_arguments(self) -> None:
        from airflow_provider_linkmsg.hooks.pagination import check_count

        super().check_arguments()
        check_count(self.page_size, field="page_size", maximum=100, vendor=self.vendor)

    def account(self, hook: Any) -> str:
        return self.account_id

    def observation(
        self,
        state: dict[str, Any],
        sightings: Iterable[Sighting],
        *,
        more_state: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Observation:
        """
        What a page shows against the ledger in ``state``: the conversations whose listing changed, and the
        state with the ledger updated (it keeps ``10 x page_size`` conversations, at least ``MIN_KEEP``).

        :param state: the watcher's state before the look.
        :param sightings: the page's sightings.
        :param more_state: more keys for the new state (a LinkupAPI watcher's credits).
        :param extra: more for the event.
        """
        sightings = list(sightings)
        ledger = state.get("seen") or {}
        new = new_sightings(ledger, sightings)
        seen = remember(ledger, sightings, keep=max(MIN_KEEP, 10 * self.page_size))
        new_state = {**state, "seen": seen, **(more_state or {})}
        return Observation(changed_conversations(new), newest(new), new_state, dict(extra or {}))
