"""
Inbox activity watchers against the sandbox over real HTTP: one event per new activity, none for an
unchanged inbox, none again after a restart (a new trigger from the same kwargs), the LinkupAPI daily
credit budget, and the connection's rate limit across many watchers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from airflow_provider_linkmsg.hooks.linkedapi import LinkedApiHook
from airflow_provider_linkmsg.triggers.watchers.connectsafely import ConnectSafelyInboxActivityTrigger
from airflow_provider_linkmsg.triggers.watchers.linkedapi import LinkedApiInboxActivityTrigger
from airflow_provider_linkmsg.triggers.watchers.linkup import LinkupInboxActivityTrigger
from tests.compat import requires_airflow
from tests.fixtures.inbox import set_extra

pytestmark = requires_airflow(
    "3.0.0", "activity watchers run as asset watchers (BaseEventTrigger, AssetWatcher), from Airflow 3.0"
)

POLL = 0.03
MORE = 3  # looks a watcher makes after a check holds, before the test says "no (second) event"
DEADLINE = 60.0  # seconds a wait may take on a loaded machine; the waits end as soon as their condition holds


class Watch:
    """
    Run a watcher in the background, as the triggerer does, and collect its events.

    ``looks`` counts the looks whose outcome is final: a look's event, if it has one, is in ``events``
    before the next look begins (the watcher's loop yields it first), so a look counts once the next one
    begins; ``observed`` counts the looks that returned (a look skipped for a spent budget included).
    Counting looks, not seconds, keeps the "no event" checks as strong on a loaded machine as on an idle one.
    """

    def __init__(self, trigger) -> None:
        self.trigger = trigger
        self.events: list[dict] = []
        self.begun = 0
        self.observed = 0
        observe = trigger.observe

        async def counted(*args, **kwargs):
            self.begun += 1
            try:
                return await observe(*args, **kwargs)
            finally:
                self.observed += 1

        trigger.observe = counted  # on this instance only: the watcher's own code runs unchanged
        self.task = asyncio.create_task(self._collect())

    @property
    def looks(self) -> int:
        return max(self.begun - 1, 0)

    async def _collect(self) -> None:
        async for event in self.trigger.run():
            self.events.append(event.payload)

    async def more_looks(self, count: int = MORE, *, also=lambda: True) -> None:
        """
        Wait until ``count`` more looks are final (an event they should not fire would show by then) and
        ``also()`` holds (the vendor's counters show those looks were made over HTTP).
        """
        target = self.looks + count
        await until(lambda: self.looks >= target and also())

    async def stop(self) -> None:  # the triggerer cancels a trigger it stops running
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task  # a watcher that had died raises its error here


async def until(check, timeout: float = DEADLINE) -> None:
    """Wait until ``check()`` holds (a loaded machine may take a while; an idle one returns at once)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting"
        await asyncio.sleep(0.02)


def calls(sandbox, prefix: str) -> float:
    return sum(v for k, v in sandbox.stats().get("calls", {}).items() if k.startswith(prefix))


def account_of(sandbox, vendor: str) -> str:
    return sandbox.truth(vendor)["accounts"][0]["id"]


def make(vendor: str, sandbox, tmp_path, **kwargs):
    kwargs.setdefault("poll_interval", POLL)
    kwargs.setdefault("staging_path", str(tmp_path))
    if vendor == "connectsafely":
        return ConnectSafelyInboxActivityTrigger(account_id=account_of(sandbox, vendor), **kwargs)
    kwargs.setdefault("daily_credit_budget", 10_000)
    return LinkupInboxActivityTrigger(account_id=account_of(sandbox, vendor), **kwargs)


@pytest.mark.parametrize("vendor", ["connectsafely", "linkup"])
async def test_fires_once_per_new_activity_and_not_again_after_a_restart(inbox_sandbox, tmp_path, vendor):
    sandbox = inbox_sandbox(vendor, conversations=30)
    trigger = make(vendor, sandbox, tmp_path)
    watch = Watch(trigger)
    await until(lambda: watch.events)
    await watch.more_looks()
    assert len(watch.events) == 1, watch.events  # the first look: the DAG's first retrieve
    first = watch.events[0]
    assert first["first_look"] is True and first["changed"] > 0
    assert first["vendor"] == vendor and first["account"] == trigger.account_id

    made = calls(sandbox, vendor)
    await watch.more_looks(also=lambda: calls(sandbox, vendor) >= made + MORE)  # unchanged inbox: no event
    assert len(watch.events) == 1, watch.events

    changed = sandbox.advance(seconds=60, conversations=1, messages=1)[vendor]["changed"]
    await until(lambda: len(watch.events) > 1)
    await watch.more_looks()
    assert len(watch.events) == 2, watch.events
    event = watch.events[1]
    assert event["conversations"] == changed and event["changed"] == 1 and event["first_look"] is False
    newest = max(m["sent_at"] for m in sandbox.truth(vendor)["messages"] if m["conversation_id"] in changed)
    assert event["newest_activity"] == newest
    await watch.stop()

    again = Watch(type(trigger)(**trigger.serialize()[1]))  # a triggerer restart: same kwargs, new instance
    made = calls(sandbox, vendor)
    await again.more_looks(also=lambda: calls(sandbox, vendor) >= made + MORE)
    assert again.events == []
    sandbox.advance(seconds=60, conversations=2, messages=1)
    await until(lambda: again.events)
    await again.more_looks()
    assert [e["changed"] for e in again.events] == [2]
    await again.stop()


@pytest.mark.parametrize("at", ["equal", "older"])
async def test_linkedapi_same_time_and_out_of_order_messages_fire(linkedapi_world, tmp_path, at):
    world = linkedapi_world("current")
    persons = [{"person": p["person"], "channel": p["channel"]} for p in world.truth["persons"]]
    hook = LinkedApiHook()
    hook.wait_for_job(hook.synchronize(persons), timeout=30)
    watch = Watch(
        LinkedApiInboxActivityTrigger(
            persons=persons, poll_interval=POLL, staging_path=str(tmp_path), fire_on_start=False
        )
    )
    await watch.more_looks(also=lambda: world.counter("get_or_poll") >= MORE)
    assert watch.events == []

    # a message at the very time of the conversation's newest, or a minute before it: no newer maximum
    target = next(p for p in world.truth["persons"] if p["channel"] == "standard")["person"]
    body = {"conversation_ids": [target], "messages": 1, "at": at, "older_by_ms": 60_000}
    world.sandbox.advance(seconds=1, linkedapi=body)
    await until(lambda: watch.events)
    await watch.more_looks()
    assert [e["conversations"] for e in watch.events] == [[target]]
    await watch.stop()


async def test_linkup_spends_only_its_daily_budget_across_restarts(inbox_sandbox, tmp_path, capsys):
    sandbox = inbox_sandbox("linkup", conversations=30)
    trigger = make("linkup", sandbox, tmp_path, daily_credit_budget=4, page_size=20)  # 2 credits a look
    watch = Watch(trigger)
    await until(lambda: watch.observed >= 3)  # two looks, then one the budget leaves out
    await watch.stop()
    assert calls(sandbox, "linkup") == 2
    assert sandbox.stats()["credits_by_action"]["list_inbox"] == 4
    assert [e["credits"] for e in watch.events] == [
        {"daily_budget": 4, "spent_today": 2, "day": watch.events[0]["credits"]["day"], "exhausted": False}
    ]
    logged = capsys.readouterr()
    assert "daily_credit_budget=4 reached (4 spent" in logged.out + logged.err  # structlog writes to stdout

    again = Watch(type(trigger)(**trigger.serialize()[1]))
    await until(lambda: again.observed >= 1)  # its first look: left out, the day's budget is spent
    await again.stop()
    assert calls(sandbox, "linkup") == 2, "a restart must not reset the day's spend"


async def test_linkup_retuned_watcher_keeps_the_days_spend_and_what_it_has_seen(inbox_sandbox, tmp_path):
    sandbox = inbox_sandbox("linkup", conversations=30)
    first = make("linkup", sandbox, tmp_path, daily_credit_budget=3, page_size=10)  # 1 credit a look
    watch = Watch(first)
    await until(lambda: watch.observed >= 4)  # three looks, then one the budget leaves out
    await watch.stop()
    assert calls(sandbox, "linkup") == 3 and len(watch.events) == 1

    # the DAG file edited: another poll_interval and budget (neither changes what a look reads)
    retuned = make(
        "linkup",
        sandbox,
        tmp_path,
        daily_credit_budget=4,
        page_size=10,
        poll_interval=POLL * 2,
        fire_on_start=False,
    )
    assert retuned.resolved_state_key() == first.resolved_state_key()
    again = Watch(retuned)
    await until(lambda: again.observed >= 2)  # one look, then one the budget leaves out
    await again.stop()
    assert calls(sandbox, "linkup") == 4, "the day's spend is per account: one more credit fits a budget of 4"
    assert again.events == [], "the same activity must not fire again"

    # another page size reads another page: a new watcher, but the same account's spend
    wider = make("linkup", sandbox, tmp_path, daily_credit_budget=4, page_size=20)
    assert wider.resolved_state_key() != first.resolved_state_key()
    other = Watch(wider)
    await until(lambda: other.observed >= 1)
    await other.stop()
    assert calls(sandbox, "linkup") == 4 and other.events == []


def test_the_state_key_names_what_is_watched_not_the_tuning():
    base = {"account_id": "acc_abc123", "daily_credit_budget": 5}
    key = LinkupInboxActivityTrigger(**base).resolved_state_key()
    for tuning in (
        {"poll_interval": 7.0},
        {"fire_on_start": False},
        {"staging_path": "/x"},
        {"daily_credit_budget": 9},
    ):
        assert LinkupInboxActivityTrigger(**{**base, **tuning}).resolved_state_key() == key, tuning
    for what in ({"account_id": "acc_other1"}, {"linkup_conn_id": "other"}, {"page_size": 20}):
        assert LinkupInboxActivityTrigger(**{**base, **what}).resolved_state_key() != key, what
    cs = ConnectSafelyInboxActivityTrigger(account_id="b1637db17bfb96d6131b4708")
    assert (
        cs.resolved_state_key() == type(cs)(**{**cs.serialize()[1], "poll_interval": 1}).resolved_state_key()
    )


async def test_linkup_counts_an_unreported_cost_as_the_most_a_look_can_cost(inbox_sandbox, tmp_path):
    sandbox = inbox_sandbox("linkup", conversations=30)
    sandbox.set_faults(
        [
            {
                "kind": "corrupt",
                "vendor": "linkup",
                "route": "POST /messages",
                "action": "list_inbox",
                "field": "metadata.credits_consumed",
                "delete": True,
            }
        ]
    )
    watch = Watch(make("linkup", sandbox, tmp_path, daily_credit_budget=3, page_size=10))  # 1 credit a look
    await until(lambda: watch.observed >= 4)  # three looks, then one the budget leaves out
    await watch.stop()
    assert calls(sandbox, "linkup") == 3, "an answer that reports no cost must not count as free"
    assert watch.events[0]["credits"]["spent_today"] == 1  # the first look, counted at its estimate


BAD_NUMBERS = [
    ("connectsafely", {"poll_interval": float("inf")}, "poll_interval"),
    ("connectsafely", {"poll_interval": 1e308}, "poll_interval"),
    ("connectsafely", {"poll_interval": float("nan")}, "poll_interval"),
    ("connectsafely", {"poll_interval": 0}, "poll_interval"),
    ("connectsafely", {"poll_interval": "300"}, "poll_interval"),
    ("connectsafely", {"page_size": 101}, "page_size"),
    ("linkup", {"poll_interval": 86400.5}, "poll_interval"),
    ("linkup", {"daily_credit_budget": float("inf")}, "daily_credit_budget"),
    ("linkup", {"daily_credit_budget": 1e308}, "daily_credit_budget"),
    ("linkup", {"daily_credit_budget": -1}, "daily_credit_budget"),
    ("linkup", {"page_size": 0}, "page_size"),
]


@pytest.mark.parametrize(("vendor", "bad", "field"), BAD_NUMBERS)
async def test_a_number_no_look_can_work_with_ends_the_watcher_before_any_call(
    inbox_sandbox, tmp_path, vendor, bad, field
):
    from airflow_provider_linkmsg.exceptions import LinkMsgValidationError

    sandbox = inbox_sandbox(vendor, conversations=3)
    trigger = make(vendor, sandbox, tmp_path, **bad)
    with pytest.raises(LinkMsgValidationError) as err:
        await asyncio.wait_for(anext(trigger.run()), 10)
    assert err.value.field == field and field in str(err.value)
    assert "to " in str(err.value) or "from 1 to" in str(err.value)  # the allowed range
    assert calls(sandbox, vendor) == 0


async def test_an_endless_overlap_ends_the_linkedapi_watcher_before_any_call(tmp_path):
    from airflow_provider_linkmsg.exceptions import LinkMsgValidationError

    trigger = LinkedApiInboxActivityTrigger(
        persons=["https://www.linkedin.com/in/someone"],
        overlap_seconds=float("inf"),
        staging_path=str(tmp_path),
    )
    with pytest.raises(LinkMsgValidationError, match="overlap_seconds must be a finite number") as err:
        await asyncio.wait_for(anext(trigger.run()), 10)
    assert err.value.field == "overlap_seconds"


async def test_watchers_of_one_connection_stay_within_its_rate_limit(inbox_sandbox, tmp_path, monkeypatch):
    sandbox = inbox_sandbox("connectsafely", conversations=5)
    rate, burst = 20.0, 2
    set_extra(monkeypatch, "connectsafely", requests_per_second=rate, burst=burst)
    watches = [
        Watch(make("connectsafely", sandbox, tmp_path, poll_interval=0.01, state_key=f"w{i}"))
        for i in range(30)
    ]
    started = time.monotonic()
    # enough looks that the limit shows, however slowly a loaded machine makes them
    await until(
        lambda: calls(sandbox, "connectsafely") >= 2 * rate and sum(len(w.events) for w in watches) >= 10
    )
    for watch in watches:
        await watch.stop()
    elapsed = time.monotonic() - started
    made = calls(sandbox, "connectsafely")
    assert made <= burst + rate * elapsed + 1, f"{made} calls in {elapsed:.2f} s at {rate}/s"
    fired = [len(w.events) for w in watches]
    assert max(fired) == 1, fired  # first looks through the queue, none twice


@pytest.mark.parametrize("api", ["seed", "current"])
async def test_linkedapi_fires_for_new_messages_only(linkedapi_world, tmp_path, api):
    world = linkedapi_world(api)
    persons = world.persons()
    hook = LinkedApiHook()
    hook.wait_for_job(hook.synchronize(persons), timeout=30)
    trigger = LinkedApiInboxActivityTrigger(
        persons=persons, poll_interval=POLL, staging_path=str(tmp_path), fire_on_start=False
    )
    watch = Watch(trigger)
    await watch.more_looks(also=lambda: world.counter("get_or_poll") >= MORE)
    assert watch.events == []

    added = world.sandbox.advance(seconds=5, linkedapi={"persons": 1, "messages": 2})["linkedapi"]["added"]
    await until(lambda: watch.events)
    await watch.more_looks()
    assert len(watch.events) == 1, watch.events
    person = added[0]["person"] + ("" if added[0]["type"] == "st" else "#sales_navigator")
    assert watch.events[0]["conversations"] == [person]
    await watch.stop()

    again = Watch(LinkedApiInboxActivityTrigger(**trigger.serialize()[1]))
    made = world.counter("get_or_poll")
    await again.more_looks(also=lambda: world.counter("get_or_poll") >= made + MORE)
    assert again.events == []
    await again.stop()


async def test_a_state_that_cannot_be_written_fires_nothing_until_it_can(inbox_sandbox, tmp_path):
    sandbox = inbox_sandbox("connectsafely", conversations=10)
    blocked = tmp_path / "state"
    blocked.write_text("a file where the state's folder should be")  # every write fails (OSError)
    watch = Watch(make("connectsafely", sandbox, tmp_path, staging_path=str(blocked), poll_interval=0.02))
    await until(lambda: watch.looks >= 2 and calls(sandbox, "connectsafely") >= 2)
    assert watch.events == [] and not watch.task.done()  # not fired (it could fire again), still running

    blocked.unlink()
    await until(lambda: watch.events)  # backing off: 2, 4, 8 ... intervals
    await watch.more_looks()
    assert len(watch.events) == 1 and watch.events[0]["first_look"] is True
    await watch.stop()
