"""Koneksi DAGs run with ``dag.test()`` on the real SQLite metadata DB, against the sandbox over HTTP."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from airflow_provider_linkmsg.io.staging import Manifest, iter_records
from airflow_provider_linkmsg.operators.koneksi import (
    KoneksiRequestMessageGenerationOperator,
    KoneksiRetrieveMessagesOperator,
)
from airflow_provider_linkmsg.sandbox.koneksi import SEED_001_ID
from airflow_provider_linkmsg.sensors.koneksi import KoneksiGenerationSensor
from tests.compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_3_PLUS, reschedule_count, xcom_value
from tests.fixtures.koneksi import (
    GENERATE,
    RETRIEVE,
    koneksi_calls,
    koneksi_counter,
    make_campaign,
    record_tuples,
    set_koneksi_conn,
    truth_messages,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def states(dag_run) -> dict[str, tuple[str, int]]:
    return {ti.task_id: (ti.state, ti.try_number) for ti in dag_run.get_task_instances()}


def build_dag(sandbox, tmp_path: Path, *, mode: str = "deferrable", retries: int = 0, **sensor_kwargs):
    from airflow.providers.common.compat.sdk import DAG

    leads_file = tmp_path / "leads.json"
    leads_file.write_text(__import__("json").dumps(sandbox.truth("koneksi")["leads"]))
    with DAG(
        dag_id=f"koneksi_e2e_{mode}_{uuid.uuid4().hex[:8]}",
        schedule=None,
        start_date=datetime(2026, 1, 1),
        default_args={"retries": retries, "retry_delay": timedelta(seconds=0)},
    ) as dag:
        request = KoneksiRequestMessageGenerationOperator(
            task_id="request",
            campaign=make_campaign(sandbox),
            leads=str(leads_file),
            max_messages=100,
            staging_path=str(tmp_path / "staging"),
        )
        wait = KoneksiGenerationSensor(
            task_id="wait",
            secure_request_id=sensor_kwargs.pop("secure_request_id", request.output),
            deferrable=mode == "deferrable",
            mode="reschedule" if mode == "reschedule" else "poke",
            poke_interval=sensor_kwargs.pop("poke_interval", 0.2),
            timeout=sensor_kwargs.pop("timeout", 60),
            retries=0,
            **sensor_kwargs,
        )
        retrieve = KoneksiRetrieveMessagesOperator(
            task_id="retrieve",
            secure_request_id=request.output,
            staging_path=str(tmp_path / "staging"),
        )
        request >> wait >> retrieve
    return dag


def how_it_waited(dag_run, log_text: str) -> tuple[bool, bool]:
    """
    (was rescheduled, was deferred) for the ``wait`` task, from the metadata DB. Airflow 2's ``dag.test``
    runs the trigger in line without a trigger row (``trigger_id`` stays unset), so there the sensor's own
    log line about deferring is the evidence.
    """
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = dag_run.get_task_instance("wait", session=session)
        if AIRFLOW_V_3_0_PLUS:
            deferred = ti.trigger_id is not None
        else:
            deferred = "deferring to the triggerer" in log_text
        return reschedule_count(session, ti) > 0, deferred


def only_request_id(sandbox) -> str:
    (request_id,) = sandbox.truth("koneksi")["requests"]
    return request_id


def staged(tmp_path: Path):
    (manifest_path,) = (tmp_path / "staging" / "koneksi").rglob("manifest.json")
    manifest = Manifest.load(str(manifest_path))
    return manifest, list(iter_records(manifest))


@pytest.mark.parametrize("mode", ["deferrable", "poke", "reschedule"])
def test_request_wait_retrieve_stages_exactly_the_ground_truth(
    koneksi_sandbox, koneksi_run_dag, tmp_path, mode, caplog, capfd
):
    sandbox = koneksi_sandbox
    # complete on the 4th retrieve (by count, not time): the request's check and the sensor's first check see
    # a 202, so the sensor must wait (poke, reschedule or defer), not take partial data
    sandbox.configure({"vendors": {"koneksi": {"polls_until_complete": 4}}})
    dag_run = koneksi_run_dag(build_dag(sandbox, tmp_path, mode=mode))
    assert states(dag_run) == {"request": ("success", 1), "wait": ("success", 1), "retrieve": ("success", 1)}
    assert (
        how_it_waited(dag_run, caplog.text + "".join(capfd.readouterr()))
        == {"poke": (False, False), "reschedule": (True, False), "deferrable": (False, True)}[mode]
    )
    request_id = only_request_id(sandbox)
    manifest, records = staged(tmp_path)
    assert record_tuples(records) == truth_messages(sandbox, request_id)
    assert len(records) == manifest.record_count == 12
    assert {r.status for r in records} == {"generated", "failed"}  # nothing pending: complete data only
    assert manifest.extra["secure_request_id"] == request_id and manifest.extra["pending"] == 0
    summary = xcom(dag_run, "retrieve")
    assert summary["manifest"] == str(manifest.path) and summary["records"] == 12
    assert (summary["generated"], summary["failed"], summary["pending"]) == (
        sum(r.status == "generated" for r in records),
        sum(r.status == "failed" for r in records),
        0,
    )
    assert xcom(dag_run, "request") == request_id
    assert xcom(dag_run, "wait")["generation_status"] == "complete"
    served = sandbox.stats()["served"]
    # the request task confirms the generation (one 202), and the wait saw partial results too
    assert served.get(f"{RETRIEVE} 202", 0) >= 2
    assert koneksi_counter(sandbox, "generations") == 1


def xcom(dag_run, task_id: str):
    return xcom_value(dag_run, task_id)


@pytest.mark.parametrize("mode", ["deferrable", "poke", "reschedule"])
@pytest.mark.parametrize("outcome", ["soft_fail", "accept_partial"])
def test_a_timeout_means_the_same_in_every_mode(koneksi_sandbox, koneksi_run_dag, mode, outcome):
    from airflow.providers.common.compat.sdk import DAG

    with DAG(
        dag_id=f"koneksi_timeout_{mode}_{uuid.uuid4().hex[:8]}",
        schedule=None,
        start_date=datetime(2026, 1, 1),
    ) as dag:
        KoneksiGenerationSensor(
            task_id="wait",
            secure_request_id=SEED_001_ID,  # seed 001's documented generation, forever in progress
            deferrable=mode == "deferrable",
            mode="reschedule" if mode == "reschedule" else "poke",
            poke_interval=0.3,
            timeout=1,
            soft_fail=outcome == "soft_fail",
            accept_partial_on_timeout=outcome == "accept_partial",
        )
    dag_run = koneksi_run_dag(dag)
    if outcome == "soft_fail":
        assert states(dag_run)["wait"][0] == "skipped"
    else:
        assert states(dag_run)["wait"][0] == "success"
        value = xcom(dag_run, "wait")
        assert value["partial"] is True and value["generation_status"] == "in_progress"
        assert (value["generated"], value["requested"]) == (3, 10)
    assert koneksi_calls(koneksi_sandbox, RETRIEVE) >= 2  # it did wait: more than the one first look


def test_a_failed_try_after_the_request_was_accepted_reuses_the_stored_id(
    koneksi_sandbox, koneksi_run_dag, tmp_path, monkeypatch
):
    sandbox = koneksi_sandbox
    # the POST succeeds and the id is stored; the confirming retrieval fails (no transport retries)
    set_koneksi_conn(monkeypatch, sandbox, max_retries=0)
    sandbox.set_faults(
        [{"vendor": "koneksi", "route": "GET /messages/retrieve_messages", "p_5xx": 1, "times": 1}]
    )
    dag_run = koneksi_run_dag(build_dag(sandbox, tmp_path, retries=1))
    assert states(dag_run)["request"] == ("success", 2)
    assert states(dag_run)["retrieve"][0] == "success"
    assert koneksi_counter(sandbox, "generations") == 1
    assert koneksi_calls(sandbox, GENERATE) == 1  # the retry did not POST again
    # under dag.test() the id went to Airflow's task_state_store (3.3+), not to the fallback file
    assert (tmp_path / "staging" / "_state").exists() is not AIRFLOW_V_3_3_PLUS


def test_a_lost_answer_to_the_request_is_retried_and_koneksi_deduplicates_it(
    koneksi_sandbox, koneksi_run_dag, tmp_path
):
    sandbox = koneksi_sandbox
    # the vendor accepts the generation but the answer is cut off: the task cannot know the id
    sandbox.set_faults(
        [
            {
                "vendor": "koneksi",
                "route": "POST /messages/request_message_generation",
                "p_truncate": 1,
                "times": 1,
            }
        ]
    )
    dag_run = koneksi_run_dag(build_dag(sandbox, tmp_path, retries=1))
    assert states(dag_run)["request"] == ("success", 2)
    assert koneksi_calls(sandbox, GENERATE) == 2
    assert koneksi_counter(sandbox, "generations") == 1
    assert koneksi_counter(sandbox, "duplicate_requests") == 1
    _, records = staged(tmp_path)
    assert record_tuples(records) == truth_messages(sandbox, only_request_id(sandbox))
