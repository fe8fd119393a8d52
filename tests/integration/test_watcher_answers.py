"""
A Linked API watcher meeting malformed answers, over real HTTP against the sandbox (its ``corrupt`` fault).

What a serious watcher does, and what the base watcher does for every typed error: a malformed answer is a
:class:`LinkMsgResponseError` (checked against the seed's and the current API's schemas, message by
message), the look fails with a warning naming the field, nothing fires, and the watcher keeps running,
backing off; once the vendor answers well again it fires for what is new. Only arguments that cannot work
(:class:`LinkMsgValidationError`) or a bug end it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from airflow_provider_linkmsg.exceptions import LinkMsgResponseError, LinkMsgValidationError
from airflow_provider_linkmsg.hooks.inbox.firstpage import linkedapi_since
from airflow_provider_linkmsg.hooks.linkedapi import LinkedApiHook, parse_persons
from airflow_provider_linkmsg.triggers.watchers.linkedapi import LinkedApiInboxActivityTrigger
from tests.compat import requires_airflow

POLL = 0.03
SEED_GET, POLL_ROUTE = "POST /account/conversations.get", "POST /conversations/poll"

CASES = [
    # (api, route, field, value, the field path the error names)
    pytest.param("seed", SEED_GET, "completion.standard.0.person", 42, "person", id="seed-person-a-number"),
    pytest.param(
        "seed",
        SEED_GET,
        "completion.standard.0.person",
        "https://example.com/x",
        "person",
        id="seed-not-linkedin",
    ),
    pytest.param(
        "seed", SEED_GET, "completion.standard", "all", "completion.standard", id="seed-list-a-string"
    ),
    pytest.param(
        "seed",
        SEED_GET,
        "completion.standard.*.result.data.messages.0.time",
        "yesterday",
        "time",
        id="seed-time",
    ),
    pytest.param("current", POLL_ROUTE, "result.*.messages.0.time", "yesterday", "time", id="poll-time"),
    pytest.param("current", POLL_ROUTE, "result.0.personUrl", "not a url", "personUrl", id="poll-person"),
]


def _rule(api: str, route: str, field: str, value, times: int | None) -> dict:
    return {
        "kind": "corrupt",
        "vendor": "linkedapi",
        "route": route,
        "field": field,
        "value": value,
        "times": times,
    }


def _synced(world):
    persons = world.persons()
    hook = LinkedApiHook()
    hook.wait_for_job(hook.synchronize(persons), timeout=30)
    return persons


@contextlib.asynccontextmanager
async def _watching(trigger):
    """Run ``trigger`` in the background as the triggerer does; its events, and a wait that fails if it ends."""
    events: list[dict] = []
    deadline = time.monotonic() + 30

    async def collect() -> None:
        async for event in trigger.run():
            events.append(event.payload)

    task = asyncio.create_task(collect())

    async def until(check, what: str) -> None:
        while not check():
            assert not task.done(), f"the watcher ended on a malformed answer: {task.exception()!r}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.02)
        assert not task.done()

    try:
        yield events, until
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.mark.parametrize(("api", "route", "field", "value", "path"), CASES)
async def test_a_malformed_answer_is_a_typed_error_of_the_look(
    linkedapi_world, api, route, field, value, path
):
    world = linkedapi_world(api)
    persons = _synced(world)
    world.sandbox.set_faults([_rule(api, route, field, value, None)])
    hook = LinkedApiHook()
    try:
        with pytest.raises(LinkMsgResponseError) as err:
            await linkedapi_since(hook, [(p, None) for p in parse_persons(persons)])
    finally:
        await hook.aclose()
        world.sandbox.set_faults([])
    assert not isinstance(err.value, LinkMsgValidationError)  # the vendor's fault, not the user's arguments
    text = str(err.value)
    assert "malformed answer" in text and path in text and "linkedapi" in text, text
    assert world.sandbox.stats()["faults"]["linkedapi corrupt"] >= 1


@requires_airflow(
    "3.0.0", "activity watchers run as asset watchers (BaseEventTrigger, AssetWatcher), from Airflow 3.0"
)
@pytest.mark.parametrize(("api", "route", "field", "value", "path"), CASES)
async def test_the_watcher_logs_a_malformed_answer_survives_and_fires_after(
    linkedapi_world, tmp_path, capsys, api, route, field, value, path
):
    world = linkedapi_world(api)
    persons = _synced(world)
    world.sandbox.set_faults([_rule(api, route, field, value, 3)])  # three malformed answers, then good ones
    trigger = LinkedApiInboxActivityTrigger(
        persons=persons, poll_interval=POLL, staging_path=str(tmp_path), fire_on_start=False
    )
    async with _watching(trigger) as (events, until):
        try:
            # the three malformed looks, then (backing off 2, 4, 8 intervals) a good one that sets the state
            await until(
                lambda: (
                    world.sandbox.stats().get("faults", {}).get("linkedapi corrupt", 0) >= 3
                    and any((tmp_path / "_state").rglob("*.json"))
                ),
                "the malformed looks",
            )
            assert events == []
            out = capsys.readouterr()
            failed = [line for line in (out.out + out.err).splitlines() if "look failed" in line]
            assert len(failed) >= 3 and all("malformed answer" in m and path in m for m in failed[:3]), failed

            added = world.sandbox.advance(seconds=5, linkedapi={"persons": 1, "messages": 2})["linkedapi"][
                "added"
            ]
            await until(lambda: events, "the event after the malformed looks")
            person = added[0]["person"] + ("" if added[0]["type"] == "st" else "#sales_navigator")
            assert [e["conversations"] for e in events] == [[person]]
        finally:
            world.sandbox.set_faults([])


# ---- the policy: a malformed answer is survived, a bug in the provider is not ---------------------------
DEEP = b"[" * 100_000 + b"]" * 100_000  # 200 KB of nesting, far below max_response_bytes


@requires_airflow(
    "3.0.0", "activity watchers run as asset watchers (BaseEventTrigger, AssetWatcher), from Airflow 3.0"
)
async def test_a_body_nested_too_deep_is_logged_and_survived(
    inbox_sandbox, hostile_factory, tmp_path, capsys, monkeypatch
):
    import json
    import os

    import requests

    from airflow_provider_linkmsg.triggers.watchers.connectsafely import ConnectSafelyInboxActivityTrigger
    from tests.fixtures.hostile import send

    sandbox = inbox_sandbox("connectsafely", conversations=4)
    real = json.loads(os.environ["AIRFLOW_CONN_CONNECTSAFELY_DEFAULT"])["extra"]["base_url"]
    deep_answers = 3

    def answer(seen, handler) -> None:  # three answers nested too deep, then the sandbox's own
        if sum(r.path.startswith("/x/") for r in server.received) <= deep_answers:
            send(handler, 200, DEEP, Content_Type="application/json")
            return
        headers = {k: v for k, v in seen.headers.items() if k.lower() not in ("host", "accept-encoding")}
        upstream = requests.get(real + seen.path[2:], headers=headers, timeout=10)
        send(handler, upstream.status_code, upstream.content, Content_Type="application/json")

    server = hostile_factory()
    server.answer = answer
    conn = json.loads(os.environ["AIRFLOW_CONN_CONNECTSAFELY_DEFAULT"])
    conn["extra"].update(base_url=server.url + "/x", max_retries=0)  # each bad answer: a failed look
    monkeypatch.setenv("AIRFLOW_CONN_CONNECTSAFELY_DEFAULT", json.dumps(conn))
    trigger = ConnectSafelyInboxActivityTrigger(
        account_id=sandbox.truth("connectsafely")["accounts"][0]["id"],
        poll_interval=POLL,
        staging_path=str(tmp_path),
    )
    async with _watching(trigger) as (events, until):
        # the three bad looks (backing off 2, 4, 8 intervals), then a good one fires
        await until(lambda: events, "the look after the bad ones")
    assert [e["changed"] for e in events] == [4]
    out = capsys.readouterr()
    failed = [line for line in (out.out + out.err).splitlines() if "look failed" in line]
    assert len(failed) == deep_answers and all("unparsable body" in line for line in failed), failed


@requires_airflow(
    "3.0.0", "activity watchers run as asset watchers (BaseEventTrigger, AssetWatcher), from Airflow 3.0"
)
async def test_a_bug_in_the_provider_ends_the_watcher_loudly(inbox_sandbox, tmp_path, capsys, monkeypatch):
    from airflow_provider_linkmsg.hooks.inbox import firstpage
    from airflow_provider_linkmsg.triggers.watchers.connectsafely import ConnectSafelyInboxActivityTrigger

    sandbox = inbox_sandbox("connectsafely", conversations=2)

    async def broken(*args, **kwargs):  # stands for a bug of ours in a look (not the vendor's answer)
        return {}["no such key"]

    monkeypatch.setattr(firstpage, "connectsafely_first_page", broken)
    trigger = ConnectSafelyInboxActivityTrigger(
        account_id=sandbox.truth("connectsafely")["accounts"][0]["id"],
        poll_interval=POLL,
        staging_path=str(tmp_path),
    )
    with pytest.raises(KeyError):
        await asyncio.wait_for(anext(trigger.run()), 10)
    out = capsys.readouterr()
    assert "a bug in the provider" in out.out + out.err
