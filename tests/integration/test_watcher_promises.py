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

import pytest

from airflow_provider_linkmsg.triggers.watchers.linkedapi import LinkedApiInboxActivityTrigger
from tests.fixtures.hostile import send

# no Airflow 3 marker: the watcher classes (common.compat BaseEventTrigger) run the same on 2.11

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


# ---- the same activity spelled another way (first-page watchers) ------------------------------------------
CS_ACCOUNT, LK_ACCOUNT = "b1637db17bfb96d6131b4708", "acc_880be66a5baf"
URN = "urn:li:msg_conversation:(urn:li:fsd_profile:ACoAAB1,2-abc)"
MS, ISO, ISO_MS = 1764496800000, "2025-11-30T10:00:00Z", "2025-11-30T10:00:00.000Z"


def cs_page(activity, sent, name):
    latest = {"sentAt": sent, "text": "see you then", "senderName": name}
    return {"conversations": [{"conversationUrn": URN, "lastActivityAt": activity, "latestMessage": latest}]}


def linkup_page(time, profile):
    last = {"time": time, "text": "see you then", "sender": {"profile_url": profile, "name": "Ana"}}
    data = {"conversations": [{"conversation_id": URN, "last_message": last}]}
    return {"success": True, "data": data, "metadata": {"credits_consumed": 1}}


SPELLINGS = [
    pytest.param(
        "connectsafely", [cs_page(ISO, ISO, "Ana Diaz"), cs_page(ISO_MS, ISO_MS, "Ana Diaz")], id="cs-millis"
    ),
    pytest.param(
        "connectsafely", [cs_page(MS, MS, "Ana Diaz"), cs_page(ISO_MS, ISO_MS, "Ana Diaz")], id="cs-ms-iso"
    ),
    pytest.param(
        "connectsafely", [cs_page(MS, MS, "Ana Diaz"), cs_page(MS, MS, "Ana Diaz, MBA")], id="cs-renamed"
    ),
    pytest.param(
        "linkup",
        [
            linkup_page(MS, "https://www.linkedin.com/in/ana"),
            linkup_page(ISO, "https://www.linkedin.com/in/ana"),
        ],
        id="linkup-ms-iso",
    ),
    pytest.param(
        "linkup",
        [
            linkup_page(MS, "https://www.linkedin.com/in/ana"),
            linkup_page(MS, "https://www.linkedin.com/in/ana-diaz"),
        ],
        id="linkup-renamed",
    ),
]


@pytest.mark.parametrize(("vendor", "pages"), SPELLINGS)
async def test_the_same_activity_spelled_another_way_does_not_fire(
    monkeypatch, hostile_factory, tmp_path, vendor, pages
):
    from airflow_provider_linkmsg.triggers.watchers.connectsafely import ConnectSafelyInboxActivityTrigger
    from airflow_provider_linkmsg.triggers.watchers.linkup import LinkupInboxActivityTrigger

    server, looks = hostile_factory(), []

    def answer(seen, handler):  # the two spellings of one activity, in turn
        looks.append(seen.path)
        body = json.dumps(pages[len(looks) % 2]).encode()
        send(handler, 200, body, Content_Type="application/json")

    server.answer = answer
    key, account = (
        ("cs-test-key-0123456789", CS_ACCOUNT)
        if vendor == "connectsafely"
        else ("lk-test-key-0123456789", LK_ACCOUNT)
    )
    extra = {"base_url": server.url, "requests_per_second": 0, "account_id": account}
    conn = {"conn_type": vendor, "password": key, "extra": extra}
    monkeypatch.setenv(f"AIRFLOW_CONN_{vendor.upper()}_DEFAULT", json.dumps(conn))
    common = {
        "account_id": account,
        "poll_interval": POLL,
        "staging_path": str(tmp_path),
        "fire_on_start": False,
    }
    if vendor == "connectsafely":
        trigger = ConnectSafelyInboxActivityTrigger(**common)
    else:
        trigger = LinkupInboxActivityTrigger(daily_credit_budget=10_000, **common)
    events = await collect(trigger, lambda: len(looks) >= 10)
    assert len(looks) >= 10, looks
    assert events == []  # one activity, seen on the first look (which only remembers)
