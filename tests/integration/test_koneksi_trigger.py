"""KoneksiGenerationTrigger and KoneksiGenerationSensor against the sandbox, outside a DAG run."""

from __future__ import annotations

import asyncio
import itertools
import re
import time

import pytest
from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
)

from airflow_provider_linkmsg.hooks.koneksi import KoneksiHook
from airflow_provider_linkmsg.sandbox.koneksi import SEED_001_ID
from airflow_provider_linkmsg.sensors.koneksi import KoneksiGenerationFailedError, KoneksiGenerationSensor
from airflow_provider_linkmsg.triggers.koneksi import KoneksiGenerationTrigger
from tests.fixtures.koneksi import RETRIEVE, koneksi_calls, make_payload, set_koneksi_conn


async def first_event(trigger: KoneksiGenerationTrigger):
    return await anext(trigger.run())


async def test_the_event_loop_keeps_running_while_the_vendor_is_slow(
    shared_koneksi_sandbox, no_full_gc_pauses
):
    shared_koneksi_sandbox.set_faults(
        [{"vendor": "koneksi", "route": "GET /messages/retrieve_messages", "latency_ms": 1500}]
    )
    now = time.time()
    trigger = KoneksiGenerationTrigger(
        secure_request_id=SEED_001_ID, deadline=now + 0.5, poll_interval=0.2, started_at=now - 600
    )
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.02)

    ticking = asyncio.create_task(ticker())
    started = time.monotonic()
    event = await first_event(trigger)
    elapsed = time.monotonic() - started
    ticking.cancel()
    assert elapsed >= 1.5  # the slow answer really was awaited
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert len(ticks) > 30 and max(gaps) < 0.3  # the loop ticked on through the 1.5 s call
    assert event.payload["status"] == "timeout"
    # 10 minutes and the run's seconds (the process's first connection lookup takes ~2 s on Airflow 2.11 / 3.0)
    assert re.fullmatch(
        rf"Koneksi generation {SEED_001_ID} still in_progress after 10\.[01] minutes, generated 3 of 10",
        event.payload["message"],
    )
    assert koneksi_calls(shared_koneksi_sandbox, RETRIEVE) == 1


async def test_the_trigger_fires_success_once_complete(koneksi_sandbox):
    request_id = KoneksiHook().request_message_generation(make_payload(koneksi_sandbox))
    trigger = KoneksiGenerationTrigger(
        secure_request_id=request_id, deadline=time.time() + 30, poll_interval=0.05
    )
    event = await first_event(trigger)
    truth = koneksi_sandbox.truth("koneksi")["requests"][request_id]
    assert event.payload == {
        "status": "success",
        "summary": {
            "secure_request_id": request_id,
            "generation_status": "complete",
            "requested": 12,
            "generated": truth["generated"],
            "failed": truth["failed"],
            "failed_share": round(truth["failed"] / 12, 4),
        },
    }


async def test_the_trigger_polls_through_transient_errors(shared_koneksi_sandbox, monkeypatch):
    set_koneksi_conn(monkeypatch, shared_koneksi_sandbox, max_retries=0)
    shared_koneksi_sandbox.set_faults(
        [{"vendor": "koneksi", "route": "GET /messages/retrieve_messages", "p_5xx": 1, "times": 2}]
    )
    trigger = KoneksiGenerationTrigger(
        secure_request_id=SEED_001_ID, deadline=time.time() + 0.5, poll_interval=0.1
    )
    event = await first_event(trigger)
    assert event.payload["status"] == "timeout" and event.payload["summary"]["generated"] == 3
    assert koneksi_calls(shared_koneksi_sandbox, RETRIEVE) >= 3


@pytest.mark.parametrize(
    ("request_id", "password", "expected"),
    [
        ("3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f", None, "Not found"),
        (SEED_001_ID, "wrong-key-0123456789", "Invalid API key"),
    ],
)
async def test_the_trigger_reports_permanent_errors(
    shared_koneksi_sandbox, monkeypatch, request_id, password, expected
):
    if password:
        set_koneksi_conn(monkeypatch, shared_koneksi_sandbox, password=password)
    trigger = KoneksiGenerationTrigger(
        secure_request_id=request_id, deadline=time.time() + 30, poll_interval=0.1
    )
    event = await first_event(trigger)
    assert event.payload["status"] == "error" and expected in event.payload["message"]
    assert "wrong-key-0123456789" not in event.payload["message"]
    assert koneksi_calls(shared_koneksi_sandbox, RETRIEVE) == 1


# ---- the sensor's deferrable path, end to end without a DAG run --------------------------------------------
def run_deferrable(sensor: KoneksiGenerationSensor):
    """execute → (TaskDeferred) → the trigger's first event → execute_complete, as the task runner does."""
    from airflow.providers.common.compat.sdk import TaskDeferred

    try:
        return sensor.execute({})
    except TaskDeferred as deferred:
        classpath, kwargs = deferred.trigger.serialize()
        assert classpath == "airflow_provider_linkmsg.triggers.koneksi.KoneksiGenerationTrigger"
        event = asyncio.run(first_event(KoneksiGenerationTrigger(**kwargs)))
        return sensor.execute_complete({}, event.payload)


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferrable", "poke"])
def test_a_timeout_fails_with_the_progress_message(shared_koneksi_sandbox, deferrable):
    sensor = KoneksiGenerationSensor(
        task_id="wait", secure_request_id=SEED_001_ID, deferrable=deferrable, poke_interval=0.1, timeout=1
    )
    with pytest.raises(
        AirflowSensorTimeout, match=r"still in_progress after 0\.0 minutes, generated 3 of 10"
    ):
        run_deferrable(sensor)
    assert koneksi_calls(shared_koneksi_sandbox, RETRIEVE) >= 2


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferrable", "poke"])
def test_too_many_failed_messages_fail_the_sensor(koneksi_sandbox, deferrable):
    request_id = KoneksiHook().request_message_generation(make_payload(koneksi_sandbox))
    truth = koneksi_sandbox.truth("koneksi")["requests"][request_id]
    share = truth["failed"] / truth["requested"]
    assert 0 < share < 1
    kwargs = {
        "task_id": "wait",
        "secure_request_id": request_id,
        "deferrable": deferrable,
        "poke_interval": 0.05,
    }
    with pytest.raises(KoneksiGenerationFailedError, match=f"{truth['failed']} of 12 messages failed"):
        run_deferrable(KoneksiGenerationSensor(max_failed_share=share - 0.01, **kwargs))
    accepted = run_deferrable(KoneksiGenerationSensor(max_failed_share=share, **kwargs))
    assert accepted["failed"] == truth["failed"] and accepted["partial"] is False


def test_soft_fail_skips_a_failure_in_the_deferrable_first_look(koneksi_sandbox, monkeypatch):
    set_koneksi_conn(monkeypatch, koneksi_sandbox, password="wrong-key-0123456789")
    sensor = KoneksiGenerationSensor(
        task_id="wait", secure_request_id=SEED_001_ID, deferrable=True, soft_fail=True, timeout=5
    )
    with pytest.raises(AirflowSkipException):
        sensor.execute({})
    with pytest.raises(AirflowFailException):
        KoneksiGenerationSensor(task_id="wait2", secure_request_id=SEED_001_ID, deferrable=True).execute({})


async def test_the_trigger_starts_no_thread_of_ours(koneksi_sandbox):
    import threading

    request_id = KoneksiHook().request_message_generation(make_payload(koneksi_sandbox))
    before = {t.ident for t in threading.enumerate()}
    trigger = KoneksiGenerationTrigger(
        secure_request_id=request_id, deadline=time.time() + 30, poll_interval=0.05
    )
    event = await first_event(trigger)
    assert event.payload["status"] == "success"
    assert koneksi_calls(koneksi_sandbox, RETRIEVE) >= 1  # it polled, on the event loop
    new = [t for t in threading.enumerate() if t.ident not in before]
    # the in-process sandbox (its webhook sender, a server thread per connection) and Airflow's own
    # connection lookup may start threads; nothing else may
    others = ("koneksi-webhook", "asgiref", "ThreadPoolExecutor")
    sandbox = "(process_request_thread)"
    assert [t.name for t in new if not t.name.startswith(others) and not t.name.endswith(sandbox)] == []


def test_a_retry_resumed_with_the_failed_try_event_waits_afresh(shared_koneksi_sandbox):
    """Airflow 3.0 resumes a retry with the trigger event that failed the try before: it must wait again."""
    from types import SimpleNamespace

    from airflow.providers.common.compat.sdk import TaskDeferred

    sensor = KoneksiGenerationSensor(task_id="wait", secure_request_id=SEED_001_ID, deferrable=True)
    stale = {"status": "error", "message": "koneksi GET ... -> HTTP 503"}
    retry = {"ti": SimpleNamespace(try_number=2)}
    with pytest.raises(TaskDeferred) as deferred:  # checked the generation (still in progress) and deferred
        sensor.execute_complete(retry, stale, deferred_try=1)
    assert deferred.value.kwargs == {"deferred_try": 2}
    assert koneksi_calls(shared_koneksi_sandbox, RETRIEVE) == 1
    with pytest.raises(AirflowFailException, match="HTTP 503"):  # its own try's event still counts
        sensor.execute_complete(retry, stale, deferred_try=2)
