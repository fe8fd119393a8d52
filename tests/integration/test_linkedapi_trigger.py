"""LinkedApiJobTrigger against the sandbox: its events, its deadline, and a loop that never blocks."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest

from airflow_provider_linkmsg.hooks.linkedapi import LinkedApiHook
from airflow_provider_linkmsg.triggers.linkedapi import LinkedApiJobTrigger


def trigger_for(handle, **kwargs) -> LinkedApiJobTrigger:
    kwargs.setdefault("end_time", time.time() + 30)
    kwargs.setdefault("poll_interval", 0.05)
    return LinkedApiJobTrigger(linkedapi_conn_id="linkedapi_default", handle=handle, **kwargs)


async def first_event(trigger: LinkedApiJobTrigger) -> dict:
    events = [event async for event in trigger.run()]
    assert len(events) == 1
    return events[0].payload


@pytest.mark.parametrize("api", ["seed", "current"])
async def test_fires_success_with_the_outcomes(linkedapi_world, api):
    world = linkedapi_world(api)
    handle = LinkedApiHook().synchronize(world.persons())

    event = await first_event(trigger_for(handle))

    assert event["status"] == "success" and event["handle"] == handle
    outcomes = {o["person"]: o["status"] for o in event["job"]["outcomes"]}
    assert {u for u, s in outcomes.items() if s == "not_found"} == set(world.truth["not_found"])
    assert sum(s == "synced" for s in outcomes.values()) == len(world.truth["persons"])
    assert json.loads(json.dumps(event)) == event


async def test_outside_working_hours_fires_at_once_when_asked(linkedapi_world):
    world = linkedapi_world("current", outside_working_hours=True)
    handle = LinkedApiHook().synchronize(world.persons()[:2])

    event = await first_event(trigger_for(handle, outside_working_hours="fail"))

    assert event["status"] == "outside_working_hours"
    assert event["job"]["reason"] == "outsideWorkingHours"
    assert "working hours" in event["message"]


async def test_waiting_outside_working_hours_ends_at_the_deadline_with_the_reason(linkedapi_world):
    world = linkedapi_world("current", outside_working_hours=True)
    handle = LinkedApiHook().synchronize(world.persons()[:2])

    event = await first_event(trigger_for(handle, end_time=time.time() + 0.3))

    assert event["status"] == "timeout"
    assert event["job"]["state"] == "pending" and event["job"]["reason"] == "outsideWorkingHours"


async def test_failed_and_cancelled_workflows(linkedapi_world):
    world = linkedapi_world("current", fail_workflows="linkedinAccountSignedOut")
    hook = LinkedApiHook()
    failed = await first_event(trigger_for(hook.synchronize(world.persons()[:2])))
    assert failed["status"] == "failed" and failed["job"]["reason"] == "linkedinAccountSignedOut"

    world.sandbox.configure({"vendors": {"linkedapi": {"fail_workflows": None, "sync_seconds": 30}}})
    handle = hook.synchronize(world.persons()[:2])
    hook.cancel_job(handle)
    cancelled = await first_event(trigger_for(handle))
    assert cancelled["status"] == "cancelled"


async def test_a_call_that_fails_past_retries_fires_error(linkedapi_world):
    world = linkedapi_world("current", conn_extra={"max_retries": 0})
    handle = LinkedApiHook().synchronize(world.persons()[:2])
    world.sandbox.set_faults([{"vendor": "linkedapi", "route": "GET /workflows/{id}", "p_5xx": 1.0}])

    event = await first_event(trigger_for(handle))

    assert event["status"] == "error" and "HTTP 503" in event["message"]
    assert world.conn["password"] not in event["message"]


async def test_http_calls_run_off_the_event_loop(linkedapi_world, no_full_gc_pauses):
    world = linkedapi_world("current", sync_seconds=0.5)
    handle = LinkedApiHook().synchronize(world.persons()[:2])
    world.sandbox.set_faults([{"vendor": "linkedapi", "route": "GET /workflows/{id}", "latency_ms": 300}])
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    event = await first_event(trigger_for(handle))
    task.cancel()

    assert event["status"] == "success"
    # each check holds its thread for 0.3 s; a blocked loop would tick only between checks
    assert ticks >= 20


def test_serialize_round_trips():
    trigger = trigger_for({"api": "current", "kind": "workflows", "jobs": ["wf-1"]}, end_time=123.0)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_linkmsg.triggers.linkedapi.LinkedApiJobTrigger"
    assert kwargs == {
        "linkedapi_conn_id": "linkedapi_default",
        "handle": {"api": "current", "kind": "workflows", "jobs": ["wf-1"]},
        "end_time": 123.0,
        "poll_interval": 0.05,
        "outside_working_hours": "wait",
    }
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert LinkedApiJobTrigger(**kwargs).serialize() == (classpath, kwargs)


async def test_a_pending_reason_echoing_the_key_is_redacted_in_the_log_and_the_event(
    linkedapi_world, capsys, caplog
):
    caplog.set_level(logging.INFO)  # on Airflow 2 an earlier dag.test() leaves the root logger at WARNING
    world = linkedapi_world("current", outside_working_hours=True)
    key = world.conn["password"]
    world.sandbox.set_faults(
        [
            {
                "kind": "corrupt",
                "vendor": "linkedapi",
                "route": "GET /workflows/{id}",
                "field": "result.pendingReason",
                "value": f"held by {key}",
            }
        ]
    )
    handle = LinkedApiHook().synchronize(world.persons()[:2])

    event = await first_event(trigger_for(handle, end_time=time.time() + 0.3))
    out = capsys.readouterr()
    logged = out.out + out.err + caplog.text  # Airflow 3 prints the trigger's log; Airflow 2 logs records

    assert world.sandbox.stats()["faults"]["linkedapi corrupt"] >= 1
    assert event["status"] == "timeout" and event["job"]["reason"].startswith("held by ")
    assert key not in json.dumps(event) and key not in logged
    assert "is pending (held by" in logged  # the reason is still logged, redacted
