"""
The shared incremental machinery: watermark arithmetic, and both inbox operators mapped over accounts in a
real DAG run (``dag.test()`` on the SQLite metadata database).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pendulum
import pytest

from airflow_provider_linkmsg.engine import (
    Conversation,
    ReadWindow,
    is_current,
    next_watermark,
    read_window,
)
from airflow_provider_linkmsg.exceptions import LinkMsgError, LinkMsgVendorError
from airflow_provider_linkmsg.io.state import WatermarkStore
from airflow_provider_linkmsg.operators.connectsafely import ConnectSafelyRetrieveMessagesOperator
from airflow_provider_linkmsg.operators.inbox import build_retrieval
from airflow_provider_linkmsg.operators.linkup import LinkupRetrieveMessagesOperator
from airflow_provider_linkmsg.records import Message, parse_utc, to_utc_iso
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
    assert first == {"sent_at": T1, "last_activity": T1, "listed": None, "recent": {"b": T1}}
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
    from airflow.utils.session import create_session

    from tests.compat import xcom_model, xcom_row_value

    XComModel = xcom_model()
    with create_session() as session:
        rows = session.query(XComModel).filter_by(
            dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id=task_id, key="return_value"
        )
        return {row.map_index: xcom_row_value(row) for row in rows}


def test_both_operators_map_over_accounts_in_a_dag_run(sandbox_factory, inbox_run_dag, tmp_path):
    from airflow.providers.common.compat.sdk import DAG

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
            store = WatermarkStore(
                tmp_path, vendor=vendor, account=account, consumer=f"inbox_mapped.{task_id}"
            )
            assert len(store.all()) == 6 and value["state_key"] == f"inbox_mapped.{task_id}"
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


# ---- the opt-in listing shortcut: listing stops at what the last complete pass covered ----------------------
def iso(hour: float) -> str:
    return to_utc_iso(datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=hour))


class Inbox:
    """A vendor inbox as plain data: conversation id -> message times (hours); listed by activity."""

    def __init__(self, conversations: dict[str, list[int]]) -> None:
        self.conversations = conversations
        self.swap_first_two = False  # a listing out of activity order near its top
        self.listed: list[str] = []  # what the last listing handed out, in order
        self.fail: set[str] = set()

    def listing(self):
        order = sorted(self.conversations, key=lambda c: -max(self.conversations[c]))
        if self.swap_first_two:
            order[:2] = order[1::-1]
        for cid in order:
            self.listed.append(cid)
            yield Conversation(cid, last_activity=iso(max(self.conversations[cid])))

    def read(self, conversation, window):
        if conversation.id in self.fail:
            raise LinkMsgVendorError("HTTP 500", vendor="linkup")
        for minute in self.conversations[conversation.id]:
            yield Message(
                "linkup", "acc_1", conversation.id, f"{conversation.id}-{minute}", iso(minute), "inbound"
            )

    def run(self, root, run_id: str, **kwargs):
        """One run of the engine; with the listing shortcut unless told otherwise (these tests are about it)."""
        kwargs.setdefault("listing_shortcut", True)
        self.listed = []
        retrieval = build_retrieval(
            vendor="linkup",
            account_id="acc_1",
            root=str(root),
            run_id=run_id,
            conn_id=None,
            include_raw=False,
            **kwargs,
        )
        return retrieval.run(
            list_conversations=self.listing,
            read_conversation=self.read,
            usage=lambda: {},
            listing_memo=lambda: {"seen": True},
        )


def sweep_of(root) -> dict | None:
    return WatermarkStore(str(root), vendor="linkup", account="acc_1").sweep()


def test_a_rerun_lists_only_down_to_what_the_last_complete_pass_covered(tmp_path):
    inbox = Inbox({"a": [1, 2], "b": [3], "c": [5, 6], "d": [4]})
    first = inbox.run(tmp_path, "r1")
    assert (
        first["records"] == 6 and not first["listing_stopped_early"] and inbox.listed == ["c", "d", "b", "a"]
    )
    assert sweep_of(tmp_path)["through"] == iso(6) and sweep_of(tmp_path)["memo"] == {"seen": True}

    inbox.conversations["a"].append(7)  # a moves to the top
    second = inbox.run(tmp_path, "r2")
    assert second["records"] == 1 and second["listing_stopped_early"]
    assert inbox.listed == ["a", "c", "d"]  # c is current (not read); d is older than the marker: stop
    assert sweep_of(tmp_path)["through"] == iso(7)

    third = inbox.run(tmp_path, "r3")  # the marker is at a (7): c (6) is more than the margin before
    assert third["records"] == 0 and inbox.listed == ["a", "c"]
    inbox.run(tmp_path, "r4", overlap_seconds=7200)  # an overlap of 2 h reaches back to c and past it
    assert inbox.listed == ["a", "c", "d"]


def test_the_listing_goes_on_a_margin_before_the_marker_for_messages_that_surface_late(tmp_path):
    inbox = Inbox({"a": [1], "b": [5]})
    inbox.run(tmp_path, "r1")  # marker: 5:00
    inbox.conversations["a"].append(4.9)  # a message of 4:54 in a, seen by the vendor only now
    second = inbox.run(tmp_path, "r2")
    assert second["records"] == 1 and inbox.listed == ["b", "a"]


def test_a_failed_conversation_keeps_the_marker_so_the_next_run_lists_down_to_it(tmp_path):
    inbox = Inbox({"a": [1], "b": [2]})
    inbox.run(tmp_path, "r1")
    inbox.conversations["a"].append(3)
    inbox.conversations["b"].append(4)
    inbox.fail = {"a"}
    with pytest.raises(LinkMsgError, match="1 conversation"):
        inbox.run(tmp_path, "r2")
    assert sweep_of(tmp_path)["through"] == iso(2)  # not advanced past a, which failed

    inbox.fail = set()
    third = inbox.run(tmp_path, "r3")
    assert third["conversations_read"] == 1 and inbox.listed == ["b", "a"]  # a is listed and read again


def test_a_listing_out_of_activity_order_clears_the_marker_and_is_listed_in_full(tmp_path):
    inbox = Inbox({"a": [1], "b": [2], "c": [3]})
    inbox.run(tmp_path, "r1")
    inbox.conversations["a"].append(9)
    inbox.swap_first_two = True  # c (3) before a (9)
    second = inbox.run(tmp_path, "r2")
    assert not second["listing_stopped_early"] and inbox.listed == ["c", "a", "b"] and second["records"] == 1
    assert sweep_of(tmp_path) is None

    inbox.swap_first_two = False
    inbox.run(tmp_path, "r3")
    assert inbox.listed == ["a", "c", "b"]  # no marker: in full (and in order: a marker again)
    assert sweep_of(tmp_path)["through"] == iso(9)


def test_a_run_lists_in_full_once_a_day(tmp_path):
    inbox = Inbox({"a": [1], "b": [2], "c": [3]})
    inbox.run(tmp_path, "r1")
    inbox.run(tmp_path, "r2")
    assert inbox.listed == ["c", "b"]  # stopped at b
    store = WatermarkStore(str(tmp_path), vendor="linkup", account="acc_1")
    store.stage_sweep({**store.sweep(), "listed_in_full_at": "2025-12-30T10:00:00.000000Z"})
    store.commit()
    third = inbox.run(tmp_path, "r3")
    assert inbox.listed == ["c", "b", "a"] and not third["listing_stopped_early"]
    assert parse_utc(sweep_of(tmp_path)["listed_in_full_at"]) > parse_utc("2026-01-01T00:00:00Z")


def test_runs_for_some_conversations_or_a_full_refresh_list_in_full(tmp_path):
    inbox = Inbox({"a": [1], "b": [2], "c": [3]})
    inbox.run(tmp_path, "r1")
    inbox.run(tmp_path, "r2", conversation_ids=["a"])
    assert inbox.listed == ["c", "b", "a"]
    inbox.run(tmp_path, "r3", full_refresh=True)
    assert inbox.listed == ["c", "b", "a"]
    inbox.run(tmp_path, "r4")
    assert inbox.listed == ["c", "b"]  # c, current; b is older than the marker (c's time): stop


def test_the_shortcut_never_stops_at_a_conversation_whose_listed_activity_moved(tmp_path):
    inbox = Inbox({"a": [1], "b": [2], "c": [10]})
    inbox.run(tmp_path, "r1")  # the marker: 10:00
    inbox.conversations["b"].append(3)  # b's activity moves, to a time still far below the marker
    second = inbox.run(tmp_path, "r2")
    assert second["records"] == 1 and inbox.listed == ["c", "b", "a"]  # b read; stopped at a, unchanged
