"""ConnectSafely inbox activity watcher: the first page of the account's conversation listing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_linkmsg.triggers.watchers.listing import FirstPageActivityTrigger

if TYPE_CHECKING:
    from airflow_provider_linkmsg.triggers.watchers.base import Observation
    from airflow_provider_linkmsg.triggers.watchers.store import WatcherStore


class ConnectSafelyInboxActivityTrigger(FirstPageActivityTrigger):
    """
    Watch a ConnectSafely account: one ``GET /conversations`` call (free; it counts against the
    connection's rate limit) per look, firing for every conversation on the first page whose listing
    (activity time, latest message) differs from what the watcher has seen.

    Its bound: activity in a conversation that the vendor does not list on the first page is seen when it
    reaches the first page. The vendor lists the most recently active first, so new activity does; raise
    ``page_size`` (up to 100, still one call) for accounts whose listing order you do not trust.

    :param account_id: 24-hex account id.
    :param connectsafely_conn_id: Airflow connection of type ``connectsafely``.
    :param page_size: conversations per look, 1 to 100.
    :param kwargs: the common watcher arguments (see :class:`InboxActivityTrigger`).
    """

    vendor = "connectsafely"
    conn_arg = "connectsafely_conn_id"

    def __init__(
        self,
        *,
        account_id: str,
        connectsafely_conn_id: str = "connectsafely_default",
        page_size: int = 20,
        **kwargs: Any,
    ) -> None:
        super().__init__(account_id=account_id, conn_id=connectsafely_conn_id, page_size=page_size, **kwargs)

    def make_hook(self) -> Any:
        from airflow_provider_linkmsg.hooks.connectsafely import ConnectSafelyHook

        return ConnectSafelyHook(self.connectsafely_conn_id)

    async def observe(self, hook: Any, state: dict[str, Any], store: WatcherStore) -> Observation:
        from airflow_provider_linkmsg.hooks.inbox.firstpage import connectsafely_first_page

        return self.observation(state, await connectsafely_first_page(hook, self.account_id, self.page_size))
