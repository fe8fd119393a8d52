"""
Issue 17's promises for the activity watchers against vendors that answer in ways the sandbox does not: a
scripted loopback server (real HTTP) plays the vendor.

"It never fires twice for the same activity" and "yields an event when conversations gained activity":
a Linked API vendor that answers with more than ``since`` asks, or a message stamped in the future, must
neither make an old message fire again nor hide a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime, timedelta

from airflow_provider_linkmsg.triggers.watchers.linkedapi import LinkedApiInboxActivityTrigger
from tests.compat import requires_airflow
from tests.fixtures.hostile import send

pytestmark = requires_airflow(
    "3.0.0", "activity watchers run as asset watchers (BaseEventTrigger, AssetWatcher), from Airflow 3.0"
)

PERSON = "https://www.linkedin.com/in/someone"
POLL = 0.05


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def linkedapi_vendor(monkeypatch, hostile_factory, messages):
    """A Linked API (current API) whose ``/conversations/poll`` answers ``messages(since)``; the sinces asked."""
    server, sinces = hostile_factory(), []

    def answer(seen, handler):
        if not seen.path.endswith("/conversations/poll"):
            send(handler, 200, b"{}", Content_Type="application/json")
            return
        since = json.loads(seen.body)[0].get("since")
        sinces.append(since)
        result = [{"personUrl": PERSON, "type": "st", "messages": messages(since)}]
        send(handler, 200, json.dumps({"result": result}).encode(), Content_Type="application/json")

    server.answer = answer
    conn = {
        "conn_type": "linkedapi",
        "password": "la-test-token-0123456789",
        "extra": {
            "identification_token": "la-test-idtoken",
            "base_url": server.url,
            "api": "current",
            "requests_per_second": 0,
        },
    }
    monkeypatch.setenv("AIRFLOW_CONN_LINKEDAPI_DEFAULT", json.dumps(conn))
    return sinces


async def collect(trigger, until, timeout: float = 20.0) -> list[dict]:
    """Run ``trigger`` as the triggerer does until ``until()`` holds (or ``timeout``); its events."""
    events: list[dict] = []

    async def run() -> None:
        async for event in trigger.run():
            events.append(event.payload)

    task = asyncio.create_task(run())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not until() and loop.time() < deadline and not task.done():
        await asyncio.sleep(0.02)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return events


def watcher(tmp_path) -> LinkedApiInboxActivityTrigger:
    return LinkedApiInboxActivityTrigger(
        persons=[PERSON], poll_interval=POLL, staging_path=str(tmp_path), fire_on_start=False
    )


async def test_linkedapi_an_old_message_returned_again_never_fires_again(
    monkeypatch, hostile_factory, tmp_path
):
    now = datetime.now(UTC)
    inbox = [
        {"id": "m-old", "time": iso(now - timedelta(hours=2)), "sender": "them", "text": "earlier today"},
        {"id": "m-new", "time": iso(now - timedelta(minutes=1)), "sender": "them", "text": "just now"},
    ]
    # the vendor applies since at the day's grain: the whole day every time
    sinces = linkedapi_vendor(monkeypatch, hostile_factory, lambda since: inbox)
    events = await collect(watcher(tmp_path), lambda: len(sinces) >= 12)
    assert len(sinces) >= 12 and sinces[1] is not None, sinces  # looks with since, the test shows something
    assert events == []  # nothing happened after the first look (which only remembers)


async def test_linkedapi_a_future_stamped_message_hides_no_later_reply(
    monkeypatch, hostile_factory, tmp_path
):
    now = datetime.now(UTC)
    inbox = [{"id": "m-skewed", "time": iso(now + timedelta(hours=2)), "sender": "them", "text": "2 h ahead"}]

    def honest(since):  # since applied exactly; a real reply arrives at the third look
        if len(sinces) == 3:
            inbox.append({"id": "m-real", "time": iso(datetime.now(UTC)), "sender": "them", "text": "hi"})
        cut = datetime.fromisoformat(since.replace("Z", "+00:00")) if since else None
        return [
            m for m in inbox if cut is None or datetime.fromisoformat(m["time"].replace("Z", "+00:00")) >= cut
        ]

    sinces = linkedapi_vendor(monkeypatch, hostile_factory, honest)
    events = await collect(watcher(tmp_path), lambda: len(sinces) >= 8)
    assert len(sinces) >= 8, sinces
    assert sinces[1] <= iso(datetime.now(UTC)), sinces  # never a since past the look's own clock
    assert [(e["conversations"], e["changed"]) for e in events] == [([PERSON], 1)], events
    assert events[0]["newest_activity"].startswith(inbox[1]["time"][:19]), events  # m-real, once
