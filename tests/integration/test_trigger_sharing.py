"""
Triggers of one connection share one client and one rate limiter in the event loop (and nothing outlives
them); a changed connection reaches the triggers that start after it.
"""

from __future__ import annotations

import asyncio
import json
import os
import time

import pytest

from airflow_provider_linkmsg.hooks.koneksi import KoneksiHook
from airflow_provider_linkmsg.hooks.transport import alookup, apool
from airflow_provider_linkmsg.sandbox.koneksi import SEED_001_ID
from airflow_provider_linkmsg.triggers.koneksi import KoneksiGenerationTrigger
from tests.fixtures.koneksi import RETRIEVE, koneksi_calls, set_koneksi_conn


@pytest.fixture
def lookups(monkeypatch):
    """How many times Airflow was asked for a connection."""
    seen: list[str] = []
    original = alookup.get_async_connection  # Airflow's own lookup, on every line

    async def counting(conn_id, hook=None):
        seen.append(conn_id)
        return await original(conn_id, hook=hook)

    monkeypatch.setattr(alookup, "get_async_connection", counting)
    return seen


async def test_many_triggers_share_one_client_and_leave_nothing_behind(shared_koneksi_sandbox, lookups):
    now = time.time()
    triggers = [
        KoneksiGenerationTrigger(secure_request_id=SEED_001_ID, deadline=now + 6.0, poll_interval=1.0)
        for _ in range(200)
    ]
    seen_entries: list[tuple[int, int]] = []

    async def watch() -> None:
        while True:
            entries = list(apool.loop_pool().entries.values())
            seen_entries.append((len(entries), max((e.users for e in entries), default=0)))
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch())
    tasks = []
    for trigger in triggers:  # as Airflow's TriggerRunner starts them
        await asyncio.sleep(0)
        tasks.append(asyncio.create_task(anext(trigger.run())))
    events = await asyncio.gather(*tasks)
    watcher.cancel()
    assert {e.payload["status"] for e in events} == {"timeout"}
    assert max(n for n, _ in seen_entries) == 1, "more than one client for one connection"
    assert max(users for _, users in seen_entries) == 200
    assert len(lookups) <= 2, f"{len(lookups)} connection lookups for 200 triggers"
    assert koneksi_calls(shared_koneksi_sandbox, RETRIEVE) >= 300  # every trigger polled, more than once
    assert apool.loop_pool().entries == {}  # the last trigger out closed the client


async def test_the_connection_rate_limit_holds_across_triggers(shared_koneksi_sandbox, monkeypatch):
    set_koneksi_conn(monkeypatch, shared_koneksi_sandbox, requests_per_second=20, burst=1)
    now = time.time()
    triggers = [  # a deadline already past: each trigger makes exactly one retrieval, then fires
        KoneksiGenerationTrigger(secure_request_id=SEED_001_ID, deadline=now - 1, poll_interval=1)
        for _ in range(30)
    ]
    started = time.monotonic()
    events = await asyncio.gather(*(anext(t.run()) for t in triggers))
    elapsed = time.monotonic() - started
    assert {e.payload["status"] for e in events} == {"timeout"}
    assert koneksi_calls(shared_koneksi_sandbox, RETRIEVE) == 30
    # one bucket of 20 a second for all 30 (a bucket per trigger would let all 30 go at once)
    assert elapsed >= 29 / 20 * 0.95


async def test_a_changed_connection_reaches_new_triggers_and_the_old_client_serves_its_own(
    shared_koneksi_sandbox, monkeypatch, lookups
):
    monkeypatch.setattr(apool, "CONNECTION_TTL", 0.0)
    old = KoneksiHook()
    await old.aconnect()
    old_key = os.environ["AIRFLOW_CONN_KONEKSI_DEFAULT"]
    conn = json.loads(old_key)
    conn["password"] = "rotated-key-0123456789"
    monkeypatch.setenv("AIRFLOW_CONN_KONEKSI_DEFAULT", json.dumps(conn))
    new = KoneksiHook()
    await new.aconnect()
    try:
        assert new.aclient is not old.aclient and len(apool.loop_pool().entries) == 2
        assert "rotated-key-0123456789" in json.dumps(dict(new.aclient.headers))
        assert "rotated-key-0123456789" not in json.dumps(dict(old.aclient.headers))
        assert len(lookups) == 2
        old_client = old.aclient
        await old.aclose()  # the old connection's last user leaves: its client closes
        assert old_client.is_closed and len(apool.loop_pool().entries) == 1 and not new.aclient.is_closed
    finally:
        await new.aclose()
    assert apool.loop_pool().entries == {}


async def test_a_refused_key_is_looked_up_again(shared_koneksi_sandbox, monkeypatch, lookups):
    set_koneksi_conn(monkeypatch, shared_koneksi_sandbox, password="wrong-key-0123456789")
    trigger = KoneksiGenerationTrigger(secure_request_id=SEED_001_ID, deadline=time.time() + 5)
    assert (await anext(trigger.run())).payload["status"] == "error"
    set_koneksi_conn(monkeypatch, shared_koneksi_sandbox)  # the key is fixed in the connection
    trigger = KoneksiGenerationTrigger(secure_request_id=SEED_001_ID, deadline=time.time() - 1)
    assert (await anext(trigger.run())).payload["status"] == "timeout"  # within the cache's TTL
    assert len(lookups) == 2


async def test_triggers_over_the_rate_limit_sleep_once_per_look_and_hold_the_limit(
    shared_koneksi_sandbox, monkeypatch
):
    """
    Triggers that poll faster than their connection allows: each look costs one sleep (the poll interval
    and the wait for the connection's turn merged, :meth:`AsyncTransport.asleep_until_turn`), not a poll
    sleep and then a second one in the limiter; the limit still holds over all of them.
    """
    from airflow_provider_linkmsg.hooks.transport.aratelimit import AsyncRateLimiter

    set_koneksi_conn(monkeypatch, shared_koneksi_sandbox, requests_per_second=20, burst=1)
    turns_waited: list[float] = []
    real_turn = AsyncRateLimiter.turn

    async def turn(self) -> None:
        turns_waited.append(time.monotonic())
        await real_turn(self)

    monkeypatch.setattr(AsyncRateLimiter, "turn", turn)
    now = time.time()
    triggers = [  # 20 triggers polling every 0.2 s want 100 calls a second; the connection allows 20
        KoneksiGenerationTrigger(secure_request_id=SEED_001_ID, deadline=now + 4.0, poll_interval=0.2)
        for _ in range(20)
    ]
    started = time.monotonic()
    events = await asyncio.gather(*(anext(t.run()) for t in triggers))
    elapsed = time.monotonic() - started
    calls = koneksi_calls(shared_koneksi_sandbox, RETRIEVE)
    assert {e.payload["status"] for e in events} == {"timeout"}
    assert calls <= 20 * elapsed + 1 + 1, f"{calls} calls in {elapsed:.1f} s at 20/s"
    assert calls >= 40  # every trigger looked more than once
    # every look's turn is booked in the sleep before it (the first one's once the trigger has connected
    # after its random start); only a look whose hook could not book one (not connected) takes a turn in the
    # call (without the merge: one turn per call)
    assert len(turns_waited) <= 20 + 2, f"{len(turns_waited)} turns waited for {calls} calls"


async def test_calls_queued_on_the_in_flight_cap_hold_no_call_state(shared_koneksi_sandbox, monkeypatch):
    """
    A vendor slower than the rate allows: calls queue on the connection's in-flight cap. They wait there
    before their request, retry state and attempt are built (each waiting call holds its own frames only),
    and every call still gets its answer.
    """
    import gc

    from airflow_provider_linkmsg.hooks.transport.retry import Call

    set_koneksi_conn(
        monkeypatch, shared_koneksi_sandbox, requests_per_second=1000, burst=100, max_in_flight=2
    )
    shared_koneksi_sandbox.set_faults([{"vendor": "koneksi", "route": "*", "latency_ms": 200}])
    hooks = [KoneksiHook() for _ in range(30)]
    tasks = [asyncio.create_task(h.aretrieve_messages(SEED_001_ID)) for h in hooks]
    await asyncio.sleep(0.3)  # every call has taken its turn; two are in flight, the rest queue
    gc.collect()  # only this test's calls alive now count (not an earlier test's, garbage or not)
    ours = {id(h) for h in hooks}
    live_calls = sum(1 for o in gc.get_objects() if type(o) is Call and id(o.hook) in ours)
    results = await asyncio.gather(*tasks)
    for h in hooks:
        await h.aclose()
    assert all(r.secure_request_id == SEED_001_ID for r in results)
    assert live_calls <= 2 + 1, f"{live_calls} calls built while 2 may be in flight"


async def test_triggers_held_back_by_the_in_flight_cap_wait_as_one_future_each(
    shared_koneksi_sandbox, monkeypatch
):
    """
    A vendor slower than the rate allows, with triggers: a look whose turn has come while the connection's
    in-flight cap is full waits for its slot in the trigger's own wait (one future, queued at the limiter), so
    no call of it has begun: no ``arequest`` coroutine beyond those holding a slot (before: each queued look
    waited inside its call, its coroutines built). Every trigger still fires, and no slot is lost.
    """
    import gc

    set_koneksi_conn(
        monkeypatch, shared_koneksi_sandbox, requests_per_second=1000, burst=100, max_in_flight=2
    )
    shared_koneksi_sandbox.set_faults([{"vendor": "koneksi", "route": "*", "latency_ms": 150}])
    now = time.time()
    triggers = [  # 40 triggers looking every 0.3 s ask for ~130 calls a second; 2 x 150 ms serve ~13
        KoneksiGenerationTrigger(secure_request_id=SEED_001_ID, deadline=now + 3.0, poll_interval=0.3)
        for _ in range(40)
    ]
    tasks = [asyncio.create_task(anext(t.run())) for t in triggers]
    samples: list[tuple[int, int]] = []
    for _ in range(8):
        await asyncio.sleep(0.25)
        calls = sum(
            1
            for o in gc.get_objects()
            if type(o).__name__ == "coroutine" and o.__qualname__.endswith(".arequest")
        )
        entries = list(apool.loop_pool().entries.values())
        queued = entries[0].limiter._in_flight.waiting() if entries else 0
        samples.append((calls, queued))
    events = await asyncio.gather(*tasks)
    assert {e.payload["status"] for e in events} == {"timeout"}
    assert max(q for _, q in samples) >= 10, samples  # looks did queue on the cap
    assert max(c for c, _ in samples) <= 2 + 1, samples  # but only those holding a slot began their call
    assert apool.loop_pool().entries == {}


async def test_triggers_started_together_look_up_once_and_wait_once_per_look(
    shared_koneksi_sandbox, monkeypatch, lookups
):
    """
    A triggerer restarting with many triggers of one connection: they look the connection up once between
    them, however long their random start spreads them past the lookup cache's TTL (the lookup starts with
    them and none waits on it), and every look, the first included, costs one wait on the shared timers,
    with its turn of the rate limit booked in it (not a wait for the start, then one for the turn).
    """
    from airflow_provider_linkmsg.hooks.transport import asleep
    from airflow_provider_linkmsg.hooks.transport.aratelimit import AsyncRateLimiter

    monkeypatch.setattr(apool, "CONNECTION_TTL", 0.1)  # the spread below is 20 of them
    set_koneksi_conn(monkeypatch, shared_koneksi_sandbox, requests_per_second=20, burst=1)
    waits: list[float] = []
    turns: list[float] = []
    real_sleep, real_turn = asleep.Sleeps.sleep, AsyncRateLimiter.turn

    def counted_sleep(self, seconds, then_book=None, **kwargs):
        waits.append(seconds)
        return real_sleep(self, seconds, then_book, **kwargs)

    async def counted_turn(self) -> None:
        turns.append(time.monotonic())
        await real_turn(self)

    monkeypatch.setattr(asleep.Sleeps, "sleep", counted_sleep)
    monkeypatch.setattr(AsyncRateLimiter, "turn", counted_turn)
    now = time.time()
    triggers = [  # the first looks spread over 2 s, then one more at the deadline
        KoneksiGenerationTrigger(secure_request_id=SEED_001_ID, deadline=now + 2.0, poll_interval=10.0)
        for _ in range(30)
    ]
    tasks = []
    for trigger in triggers:  # as Airflow's TriggerRunner starts them
        await asyncio.sleep(0)
        tasks.append(asyncio.create_task(anext(trigger.run())))
    events = await asyncio.gather(*tasks)
    calls = koneksi_calls(shared_koneksi_sandbox, RETRIEVE)
    assert {e.payload["status"] for e in events} == {"timeout"}
    assert len(lookups) == 1, f"{len(lookups)} connection lookups for 30 triggers started together"
    assert calls >= 30
    # one wait per look; a trigger whose start ended before the lookup answered (it started within a few ms
    # of it) takes its first turn inside the call instead: a wait and a turn for that one look
    assert len(waits) + len(turns) <= calls + 3, (len(waits), len(turns), calls)


async def test_a_missing_connection_ends_every_trigger_with_an_error_naming_it(shared_koneksi_sandbox):
    """Triggers of a connection that does not exist fire an ``error`` event that names it and the fix (they
    raised Airflow's not-found exception out of ``run()`` before), each once, and leave nothing behind."""
    now = time.time()
    triggers = [
        KoneksiGenerationTrigger(
            secure_request_id=SEED_001_ID, deadline=now + 5, poll_interval=0.5, koneksi_conn_id="no_such_conn"
        )
        for _ in range(20)
    ]
    events = await asyncio.gather(*(anext(t.run()) for t in triggers))
    assert {e.payload["status"] for e in events} == {"error"}
    message = events[0].payload["message"]
    assert "'no_such_conn' is not defined" in message and "koneksi_conn_id" in message, message
    assert apool.loop_pool().entries == {} and apool.loop_pool().lookups == {}
