"""
The shared incremental machinery: watermark arithmetic, and both inbox operators mapped over accounts in a
real DAG run (``dag.test()`` on the SQLite metadata database).
"""

from __future__ import annotations

import pendulum
import pytest

from airflow_provider_linkmsg.io.state import WatermarkStore
from airflow_provider_linkmsg.operators.connectsafely import ConnectSafelyRetrieveMessagesOperator
from airflow_provider_linkmsg.operators.inbox import (
    Conversation,
    ReadWindow,
    is_current,
    next_watermark,
    read_window,
)
from airflow_provider_linkmsg.operators.linkup import LinkupRetrieveMessagesOperator
from airflow_provider_linkmsg.records import Message
from tests.fixtures.inbox import assert_exactly, staged_messages, truth_messages


def message(message_id: str, sent_at: str) -> Message:
    return Message(
        vendor="linkup",
        account_id="acc_1",
        conversation_id="c",
        message_id=message_id,
        sent_at=sent_at,
        direction="inbound",
    )


T0 = "2026-01-01T10:00:00.000000Z"
T1 = "2026-01-01T10:00:30.000000Z"
T2 = "2026-01-01T10:01:00.000000Z"


# ---- watermark arithmetic -------------------------------------------------------------------------------
def test_a_conversation_is_current_only_when_its_activity_is_not_newer():
    watermark = {"sent_at": T1, "last_activity": T1, "recent": {}}
    assert is_current(Conversation("c", last_activity=T1), watermark)
    assert is_current(Conversation("c", last_activity=T0), watermark)
    assert not is_current(Conversation("c", last_activity=T2), watermark)
    assert not is_current(Conversation("c", last_activity=None), watermark)  # unknown: read it
    assert not is_current(Conversation("c", last_activity=T0), None)  # never read


def test_the_watermark_boundary_is_deduplicated_by_id_without_an_overlap():
    first = next_watermark(None, Conversation("c", T1), [message("a", T0), message("b", T1)])
    assert first == {"sent_at": T1, "last_activity": T1, "recent": {"b": T1}}
    window = read_window(first)
    assert window.floor == T1 and window.since_ms() == 1767261629999
    # the vendor re-sends b (same ms): not new; c arrived later with the very same ms: new
    assert not window.is_new(message("b", T1)) and window.is_new(message("c", T1))
    assert window.below(message("a", T0)) and not window.is_new(message("a", T0))


def test_an_overlap_rereads_a_window_and_remembers_the_ids_in_it():
    overlap = 45
    first = next_watermark(
        None, Conversation("c", T2), [message("a", T0), message("b", T1), message("c", T2)], overlap
    )
    assert first["recent"] == {"b": T1, "c": T2}  # within 45 s of the newest
    window = read_window(first, overlap)
    assert window.floor == "2026-01-01T10:00:15.000000Z"
    late = message("late", "2026-01-01T10:00:40.000000Z")  # appeared after the read, with an earlier time
    assert window.is_new(late) and not window.is_new(message("b", T1))
    second = next_watermark(first, Conversation("c", T2), [late], overlap)
    assert second["sent_at"] == T2 and set(second["recent"]) == {"b", "c", "late"}


def test_activity_without_new_messages_still_moves_the_watermark():
    first = next_watermark(None, Conversation("c", T0), [message("a", T0)])
    second = next_watermark(first, Conversation("c", T2), [])
    assert second["sent_at"] == T0 and second["last_activity"] == T2
    assert is_current(Conversation("c", T2), second)
    assert ReadWindow().full and read_window(None).full and read_window({"sent_at": None}).full


# ---- a real DAG run -------------------------------------------------------------------------------------
def xcoms(dag_run, task_id: str) -> dict[int, dict]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(XComModel).filter_by(
            dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id=task_id, key="return_value"
        )
        return {row.map_index: XComModel.deserialize_value(row) for row in rows}


def test_both_operators_map_over_accounts_in_a_dag_run(sandbox_factory, inbox_run_dag, tmp_path):
    from airflow.sdk import DAG

    sizes = {"accounts": 2, "conversations": 6, "messages": 4}
    sandbox = sandbox_factory(seed=11, sizes={"connectsafely": sizes, "linkup": sizes})
    accounts = {v: [a["id"] for a in sandbox.truth(v)["accounts"]] for v in ("connectsafely", "linkup")}
    with DAG("inbox_mapped", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
        ConnectSafelyRetrieveMessagesOperator.partial(task_id="cs", staging_path=str(tmp_path)).expand(
            account_id=accounts["connectsafely"]
        )
        LinkupRetrieveMessagesOperator.partial(
            task_id="lk", staging_path=str(tmp_path), max_credits=100
        ).expand(account_id=accounts["linkup"])
    before = {v: truth_messages(sandbox, v) for v in accounts}
    first = inbox_run_dag(dag)
    assert first.state == "success"
    for task_id, vendor in (("cs", "connectsafely"), ("lk", "linkup")):
        values = xcoms(first, task_id)
        assert sorted(values) == [0, 1]
        for index, account in enumerate(accounts[vendor]):
            value = values[index]
            assert value["account_id"] == account and value["conversations_read"] == 6
            assert set(value) >= {"manifest", "records", "conversations_read", "api_calls", "credits"}
            assert_exactly(staged_messages(value["manifest"]), truth_messages(sandbox, vendor, account))
            assert len(WatermarkStore(tmp_path, vendor=vendor, account=account).all()) == 6
    assert xcoms(first, "lk")[0]["credits"] > 0 and xcoms(first, "cs")[0]["credits"] == 0

    sandbox.advance(
        seconds=3600, connectsafely={"conversations": 3, "messages": 2}, linkup={"conversations": 3}
    )
    second = inbox_run_dag(dag)
    assert second.state == "success" and second.run_id != first.run_id
    for task_id, vendor in (("cs", "connectsafely"), ("lk", "linkup")):
        values = xcoms(second, task_id)
        new = truth_messages(sandbox, vendor) - before[vendor]
        staged = [m for index in values for m in staged_messages(values[index]["manifest"])]
        assert_exactly(staged, new)
        assert sum(v["conversations_read"] for v in values.values()) == 3


@pytest.mark.parametrize("vendor", ["connectsafely", "linkup"])
def test_the_default_account_comes_from_the_connection(inbox_sandbox, tmp_path, inbox_context, vendor):
    sandbox = inbox_sandbox(vendor, conversations=3)
    operator = {
        "connectsafely": ConnectSafelyRetrieveMessagesOperator,
        "linkup": LinkupRetrieveMessagesOperator,
    }
    result = operator[vendor](task_id="t", staging_path=str(tmp_path)).execute(inbox_context())
    assert result["account_id"] == sandbox.truth(vendor)["accounts"][0]["id"]
    assert_exactly(staged_messages(result["manifest"]), truth_messages(sandbox, vendor))
