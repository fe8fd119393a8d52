"""LinkupAPI inbox activity watcher: the first ``list_inbox`` page, within a daily credit budget."""

from __future__ import annotations

import asyncio
import weakref
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_linkmsg.triggers.watchers.base import Observation, check_number
from airflow_provider_linkmsg.triggers.watchers.listing import FirstPageActivityTrigger

if TYPE_CHECKING:
    from airflow_provider_linkmsg.triggers.watchers.store import WatcherStore


#: the largest daily credit budget a watcher takes
MAX_DAILY_CREDITS = 1_000_000


class LinkupInboxActivityTrigger(FirstPageActivityTrigger):
    """
    Watch a LinkupAPI account: one ``list_inbox`` call per look (ceil(page_size / 10) credits), firing for
    every conversation on the first page whose last message differs from what the watcher has seen.

    Credits: the watcher spends at most ``daily_credit_budget`` per UTC day. Each look's most possible cost
    is counted (and persisted) before it is sent and corrected to what the vendor reports after (an answer
    that reports none counts its most possible cost). The day's spend is kept per connection and account
    (``_state/watchers/linkup/credits-<conn>-<account>.json``), not per watcher: a restart, a retuned
    watcher (another ``poll_interval`` or ``page_size``) or a second watcher of the account neither resets
    nor overruns it (each compares the shared spend with its own budget), in one triggerer or several: the
    spend is read, checked and written as one step, under an exclusive lock of the file on the local disk
    (``fcntl.flock``, across processes). On an object store (``s3://`` ...) there is no lock: two
    triggerers reserving at the very same moment can overrun the budget by one look each; keep the staging
    root of LinkupAPI watchers that share an account on a local or network disk with locks to rule that
    out. When the next look does not fit, the watcher logs
    a warning saying so and looks again after midnight UTC; every event carries ``credits``
    (``daily_budget``, ``spent_today``, ``day``, ``exhausted``: no look fits any more today).

    Its bound: as :class:`ConnectSafelyInboxActivityTrigger`, activity is seen once its conversation is on
    the first page (the vendor lists the most recent first).

    :param account_id: ``acc_...``.
    :param daily_credit_budget: credits the watcher may spend per UTC day (e.g. 288 for a look every five
        minutes with ``page_size`` 10).
    :param linkup_conn_id: Airflow connection of type ``linkup``.
    :param page_size: conversations per look, 1 to 100 (10 costs 1 credit a look).
    :param kwargs: the common watcher arguments (see :class:`InboxActivityTrigger`).
    """

    vendor = "linkup"
    conn_arg = "linkup_conn_id"

    def __init__(
        self,
        *,
        account_id: str,
        daily_credit_budget: float,
        linkup_conn_id: str = "linkup_default",
        page_size: int = 10,
        **kwargs: Any,
    ) -> None:
        super().__init__(account_id=account_id, conn_id=linkup_conn_id, page_size=page_size, **kwargs)
        self.daily_credit_budget = daily_credit_budget

    def vendor_kwargs(self) -> dict[str, Any]:
        return {**super().vendor_kwargs(), "daily_credit_budget": self.daily_credit_budget}

    def identity(self) -> dict[str, Any]:
        """As the base, without the budget: a new budget keeps what was seen (the spend is per account)."""
        return {k: v for k, v in self.vendor_kwargs().items() if k != "daily_credit_budget"}

    def ledger(self) -> WatcherStore:
        """The day's spend of the connection's account, shared by every watcher of it (not by state key)."""
        from airflow_provider_linkmsg.triggers.watchers.store import WatcherStore

        key = f"credits-{self.linkup_conn_id}-{self.account_id}"
        return WatcherStore(self.staging_path, self.staging_conn_id, vendor=self.vendor, key=key)

    def check_arguments(self) -> None:
        super().check_arguments()
        check_number(
            self.daily_credit_budget, "daily_credit_budget", self.vendor, low=0, high=MAX_DAILY_CREDITS
        )

    def make_hook(self) -> Any:
        from airflow_provider_linkmsg.hooks.linkup import LinkupHook

        return LinkupHook(self.linkup_conn_id)

    def _credits(self, day: str, spent: float, estimate: float) -> dict[str, Any]:
        return {
            "daily_budget": self.daily_credit_budget,
            "spent_today": spent,
            "day": day,
            "exhausted": spent + estimate > self.daily_credit_budget,
        }

    async def observe(self, hook: Any, state: dict[str, Any], store: WatcherStore) -> Observation:
        from airflow_provider_linkmsg.hooks.inbox.firstpage import linkup_first_page
        from airflow_provider_linkmsg.hooks.pagination import CreditBudget, per_ten

        now = datetime.now(UTC)
        day = now.date().isoformat()
        ledger = self.ledger()
        estimate = per_ten(self.page_size)
        reserved: dict[str, Any] = {}

        def reserve(kept: dict[str, Any]) -> None:  # under the file's lock: no other process in between
            spent = float(kept.get("spent") or 0) if kept.get("day") == day else 0.0
            fits = spent + estimate <= self.daily_credit_budget
            reserved.update(spent=spent, fits=fits, told=kept.get("stopped") == day)
            kept.clear()
            kept.update({"day": day, "spent": spent + estimate} if fits else {"day": day, "spent": spent})
            if not fits:
                kept["stopped"] = day

        async with _lock(ledger):
            await ledger.update(reserve)  # counted before it is sent
        spent = reserved["spent"]
        if not reserved["fits"]:
            midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
            if not reserved["told"]:
                self.log.warning(
                    "linkup watcher on %s: daily_credit_budget=%g reached (%g spent on %s, a look costs "
                    "up to %g); no look until %s",
                    self.account_id,
                    self.daily_credit_budget,
                    spent,
                    day,
                    estimate,
                    midnight.isoformat(),
                )
            wait = (midnight - now).total_seconds() + 1
            return Observation([], None, state, wait=wait, looked=False)
        budget = CreditBudget(self.daily_credit_budget - spent, vendor=self.vendor)
        try:
            sightings = await linkup_first_page(hook, self.account_id, self.page_size, budget)
        finally:  # corrected to what it cost (a lost answer: the estimate), whatever the other watchers spent

            def settle(kept: dict[str, Any]) -> None:
                if kept.get("day") == day:
                    kept["spent"] = reserved["spent"] = (
                        float(kept.get("spent") or 0) - estimate + budget.spent
                    )

            async with _lock(ledger):
                await ledger.update(settle)
            spent = reserved["spent"]
        extra = {"credits": self._credits(day, spent, estimate)}
        return self.observation(state, sightings, extra=extra)


_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def _lock(ledger: WatcherStore) -> asyncio.Lock:
    """
    One lock per ledger in the running event loop: the watchers of an account in one triggerer queue here
    (not in worker threads waiting for the file's lock, which orders them with other processes).
    """
    locks = _LOCKS.setdefault(asyncio.get_running_loop(), {})
    return locks.setdefault(ledger.key, asyncio.Lock())
