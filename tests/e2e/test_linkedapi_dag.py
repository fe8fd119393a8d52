"""Linked API DAGs run with ``dag.test()`` on the real SQLite metadata DB against the sandbox."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta

import pytest
from airflow.providers.common.compat.sdk import DAG

from airflow_provider_linkmsg.io.staging import iter_records
from airflow_provider_linkmsg.operators.linkedapi import (
    LinkedApiRetrieveMessagesOperator,
    LinkedApiSyncConversationsOperator,
)
from tests.compat import HAS_TASK_STATE_STORE

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _dag(name: str) -> DAG:
    return DAG(f"linkedapi_{name}_{uuid.uuid4().hex[:8]}", schedule=None, start_date=datetime(2026, 1, 1))


def _ti(dr, task_id: str):
    return next(ti for ti in dr.get_task_instances() if ti.task_id == task_id)


@pytest.mark.parametrize("api", ["seed", "current"])
def test_deferrable_sync_then_retrieve(linkedapi_world, linkedapi_run_dag, tmp_path, api):
    world = linkedapi_world(api, persons=20, not_found=3)
    with _dag(f"e2e_{api}") as dag:
        sync = LinkedApiSyncConversationsOperator(
            task_id="sync",
            persons=world.persons(),
            staging_path=str(tmp_path),
            poll_interval=0.05,
            timeout=60,
            deferrable=True,
        )
        retrieve = LinkedApiRetrieveMessagesOperator(
            task_id="retrieve", persons=world.persons(), staging_path=str(tmp_path)
        )
        sync >> retrieve

    dr = linkedapi_run_dag(dag)

    assert dr.state == "success"
    sync_out = _ti(dr, "sync").xcom_pull(task_ids="sync")
    got = _ti(dr, "retrieve").xcom_pull(task_ids="retrieve")
    assert sorted(sync_out["not_found"]) == sorted(world.truth["not_found"])
    assert len(sync_out["synced"]) == 20
    staged = {
        (m.conversation_id, m.message_id, m.sent_at, m.direction, m.text)
        for m in iter_records(got["manifest"])
    }
    assert staged == world.expected()
    assert sorted(got["not_found"]) == sorted(world.truth["not_found"])
    assert json.loads(json.dumps(got)) == got  # a small JSON value: paths and counts, no messages
    assert world.counter("jobs_started") == 1


@pytest.mark.parametrize(("api", "deferrable"), [("seed", True), ("current", True), ("current", False)])
def test_sync_retry_reconnects_to_the_job_it_started(
    linkedapi_world, linkedapi_run_dag, tmp_path, api, deferrable
):
    """The first try dies after the job was started and its handle saved; the retry must not start another."""
    world = linkedapi_world(api, conn_extra={"max_retries": 0})
    route = "GET /account/results/{hash}" if api == "seed" else "GET /workflows/{id}"
    world.sandbox.set_faults([{"vendor": "linkedapi", "route": route, "p_5xx": 1.0, "times": 1}])
    with _dag(f"retry_{api}") as dag:
        LinkedApiSyncConversationsOperator(
            task_id="sync",
            persons=world.persons(),
            staging_path=str(tmp_path),
            poll_interval=0.05,
            timeout=60,
            deferrable=deferrable,
            retries=1,
            retry_delay=timedelta(seconds=0),
        )

    dr = linkedapi_run_dag(dag)

    ti = _ti(dr, "sync")
    assert dr.state == "success"
    assert ti.try_number == 2  # the first try failed on the injected 5xx
    assert world.sandbox.stats()["faults"] == {"linkedapi 5xx": 1}
    assert world.counter("jobs_started") == 1  # the retry reconnected: no second job
    assert len(ti.xcom_pull(task_ids="sync")["synced"]) == 12
    jobs = tmp_path / "_state" / "linkedapi-jobs"
    if HAS_TASK_STATE_STORE:
        assert not jobs.exists()  # the handle lived in task_state_store
    else:  # the handle lived in the task run's state file, and is forgotten once the sync is done
        (state,) = jobs.glob("*.json")
        assert json.loads(state.read_text()) == {}


def test_a_retry_after_a_later_batch_failed_to_start_pays_for_no_batch_twice(
    linkedapi_world, linkedapi_run_dag, tmp_path
):
    """Batch 1's workflow starts, batch 2's start fails: the handle of batch 1 was kept, the retry reuses it."""
    world = linkedapi_world("current", conn_extra={"max_retries": 0})
    world.sandbox.set_faults(
        [{"vendor": "linkedapi", "route": "POST /workflows", "p_5xx": 1.0, "after": 1, "times": 1}]
    )
    with _dag("retry_batches") as dag:
        LinkedApiSyncConversationsOperator(
            task_id="sync",
            persons=world.persons(),
            staging_path=str(tmp_path),
            batch_size=7,
            poll_interval=0.05,
            timeout=60,
            deferrable=True,
            retries=1,
            retry_delay=timedelta(seconds=0),
        )

    dr = linkedapi_run_dag(dag)

    ti = _ti(dr, "sync")
    assert dr.state == "success" and ti.try_number == 2
    assert world.sandbox.stats()["faults"] == {"linkedapi 5xx": 1}
    assert world.counter("jobs_started") == 1  # batch 1's workflow, started once
    result = ti.xcom_pull(task_ids="sync")
    started = len(result["synced"]) + len(result["not_found"])
    assert started == 7 and len(result["not_started"]) == len(world.persons()) - 7


def test_401_fails_the_task_at_once(linkedapi_world, linkedapi_run_dag, tmp_path, monkeypatch):
    world = linkedapi_world("current")
    monkeypatch.setenv(
        "AIRFLOW_CONN_LINKEDAPI_DEFAULT", json.dumps({**world.conn, "password": "not-the-token"})
    )
    with _dag("auth") as dag:
        LinkedApiSyncConversationsOperator(
            task_id="sync",
            persons=world.persons(),
            staging_path=str(tmp_path),
            deferrable=True,
            retries=3,
            retry_delay=timedelta(seconds=0),
        )

    dr = linkedapi_run_dag(dag)

    ti = _ti(dr, "sync")
    assert dr.state == "failed" and ti.state == "failed"
    assert ti.try_number == 1  # no retry spent on a wrong key
    assert world.calls() == 1
