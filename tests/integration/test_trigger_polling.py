"""The triggers' shared poller against the sandbox: few threads, wake-ups only on change, fresh connections."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from airflow_provider_linkmsg.hooks.koneksi import KoneksiHook
from airflow_provider_linkmsg.sandbox.koneksi import SEED_001_ID
from airflow_provider_linkmsg.triggers.koneksi import KoneksiGenerationTrigger
from airflow_provider_linkmsg.triggers.polling import MAX_THREADS, Watch
from tests.fixtures.koneksi import RETRIEVE, koneksi_calls, set_koneksi_conn


def summary_of(hook: KoneksiHook) -> dict:
    return hook.retrieve_messages(SEED_001_ID).summary()  # in progress forever: 3 of 10


def poller_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("linkmsg-poll-")]


async def wait_for_no_poller_threads(timeout: float = 2.0) -> list[threading.Thread]:
    deadline = time.monotonic() + timeout
    while poller_threads() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return poller_threads()


async def test_unchanged_polls_do_not_wake_the_loop(shared_koneksi_sandbox, no_full_gc_pauses):
    updates = []
    async with Watch(KoneksiHook, "koneksi_default", summary_of, interval=0.02, until=time.time() + 0.5) as w:
        async for value, final in w:
            updates.append((value["generated"], final))

    polls = koneksi_calls(shared_koneksi_sandbox, RETRIEVE)
    assert polls >= 10  # polled every ~20 ms for half a second ...
    assert updates == [(3, False), (3, True)]  # ... but the loop heard only the first answer and the last
    assert await wait_for_no_poller_threads() == []


@pytest.mark.parametrize(("max_in_flight", "threads"), [(3, 3), (16, MAX_THREADS)])
async def test_a_thousand_waits_share_a_few_threads(
    shared_koneksi_sandbox, monkeypatch, max_in_flight, threads
):
    set_koneksi_conn(monkeypatch, shared_koneksi_sandbox, max_in_flight=max_in_flight)
    most_threads = 0

    async def count_threads() -> None:
        nonlocal most_threads
        while True:
            most_threads = max(most_threads, len(poller_threads()))
            await asyncio.sleep(0.01)

    counting = asyncio.create_task(count_threads())
    deadline = time.time() + 1.0
    triggers = [
        KoneksiGenerationTrigger(secure_request_id=SEED_001_ID, deadline=deadline, poll_interval=0.2)
        for _ in range(1000)
    ]
    events = await asyncio.gather(*(anext(t.run()) for t in triggers))
    counting.cancel()

    assert {e.payload["status"] for e in events} == {"timeout"}
    assert {e.payload["summary"]["generated"] for e in events} == {3}
    assert most_threads == threads
    assert await wait_for_no_poller_threads() == []  # the threads end with the last wait


async def test_a_cancelled_trigger_stops_polling(shared_koneksi_sandbox):
    trigger = KoneksiGenerationTrigger(
        secure_request_id=SEED_001_ID, deadline=time.time() + 60, poll_interval=0.02
    )
    task = asyncio.create_task(anext(trigger.run()))
    await asyncio.sleep(0.3)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert await wait_for_no_poller_threads() == []
    polls = koneksi_calls(shared_koneksi_sandbox, RETRIEVE)
    await asyncio.sleep(0.2)
    assert polls >= 5 and koneksi_calls(shared_koneksi_sandbox, RETRIEVE) == polls


async def test_a_trigger_uses_the_connection_as_it_is_when_it_starts(shared_koneksi_sandbox, monkeypatch):
    waiting = KoneksiGenerationTrigger(
        secure_request_id=SEED_001_ID, deadline=time.time() + 1.0, poll_interval=0.05
    )
    first = asyncio.create_task(anext(waiting.run()))
    await asyncio.sleep(0.2)  # the poller has made its hook with the right key

    set_koneksi_conn(monkeypatch, shared_koneksi_sandbox, password="wrong-key-0123456789")
    late = KoneksiGenerationTrigger(
        secure_request_id=SEED_001_ID, deadline=time.time() + 1.0, poll_interval=0.05
    )
    late_event = await anext(late.run())
    first_event = await first

    assert late_event.payload["status"] == "error" and "Invalid API key" in late_event.payload["message"]
    # the connection is one for every wait on it: the earlier trigger heard of the wrong key too
    assert first_event.payload["status"] == "error"


async def test_a_rotated_key_is_picked_up_without_failing_the_wait(koneksi_sandbox, monkeypatch):
    """The vendor revokes the key and the connection gets the new one: the next poll reads the connection."""
    conn = koneksi_sandbox.connections()["koneksi_default"]
    trigger = KoneksiGenerationTrigger(
        secure_request_id=SEED_001_ID, deadline=time.time() + 1.0, poll_interval=0.05
    )
    waiting = asyncio.create_task(anext(trigger.run()))
    await asyncio.sleep(0.2)

    koneksi_sandbox.configure({"vendors": {"koneksi": {"revoked_keys": [conn["password"]]}}})
    set_koneksi_conn(monkeypatch, koneksi_sandbox, auth_style="legacy")  # the get-messages key
    event = await waiting

    assert event.payload["status"] == "timeout" and event.payload["summary"]["generated"] == 3
    assert koneksi_sandbox.stats()["served"][f"{RETRIEVE} 401"] == 1  # the revoked key, met once
