"""
Triggers run as Airflow's triggerer runs them, for the benchmarks: each inside its ``TriggerRunner.run_trigger``
(:func:`start_trigger`), and the runner's state handled every second as ``TriggerRunner.arun`` handles it
(:func:`drain`).
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any


def trigger_runner() -> Any:
    """
    Airflow's ``TriggerRunner`` (the triggerer's async side), whose ``run_trigger`` :func:`start_trigger` wraps
    each trigger in; ``None`` where this Airflow has none to borrow (the triggers then run as bare tasks): Airflow
    2's ``TriggerRunner`` is a thread with another bookkeeping, and has no event triggers.
    """
    try:
        from airflow.jobs.triggerer_job_runner import TriggerRunner
        from airflow.triggers.base import BaseEventTrigger  # noqa: F401 - Airflow 3's runner

        runner = TriggerRunner()
        runner.triggers, runner.events  # noqa: B018 - what start_trigger uses
    except Exception:  # an Airflow line without it: bare tasks
        return None
    return runner


def start_trigger(runner: Any, trigger_id: int, trigger: Any) -> asyncio.Task:
    """
    Start ``trigger`` as ``TriggerRunner.create_triggers`` does (its bookkeeping entry, then a task running
    ``run_trigger``); the events go to ``runner.events``. With no runner, a bare task that returns the first
    event's payload.
    """
    if runner is None:

        async def first_event() -> Any:
            async for event in trigger.run():
                return event.payload
            return None

        return asyncio.create_task(first_event())
    from airflow.triggers.base import BaseEventTrigger

    name = f"ID {trigger_id}"
    trigger.task_instance = None
    trigger.trigger_id = trigger_id
    trigger.timeout_after = None
    runner.triggers[trigger_id] = {
        "task": None,
        "is_watcher": isinstance(trigger, BaseEventTrigger),
        "name": name,
        "events": 0,
    }
    accepted = inspect.signature(runner.run_trigger).parameters
    kwargs = {"timeout_after": None, "context": None}
    coro = runner.run_trigger(trigger_id, trigger, **{k: v for k, v in kwargs.items() if k in accepted})
    task = runner.triggers[trigger_id]["task"] = asyncio.create_task(coro, name=name)
    return task


def drain(runner: Any, first: dict[int, str]) -> None:
    """
    What ``TriggerRunner.arun`` does with the runner's state every second, but the sending: the events go (to
    the supervisor there; here each trigger's first event's status is kept in ``first``) and the finished
    triggers' entries are dropped (``cleanup_finished_triggers``). A run that kept them all to the end would
    hold every finished trigger's event, task and context, which a triggerer does not.
    """
    events = runner.events
    while events:
        entry = events.popleft()
        if hasattr(entry, "trigger_id"):
            trigger_id, event = entry.trigger_id, entry.event
        else:  # Airflow 3.0: (trigger_id, event) pairs
            trigger_id, event = entry
        first.setdefault(trigger_id, (event.payload or {}).get("status", "none"))
    for trigger_id, details in list(runner.triggers.items()):
        if details["task"] is not None and details["task"].done():
            del runner.triggers[trigger_id]
