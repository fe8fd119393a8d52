"""
LinkupAPI pages cut inside one millisecond (issue 12): ``get_conversation``'s cursor is a time and the next
page returns ``timestamp < cursor``, so a vendor that ends a page inside a millisecond leaves the rest of that
millisecond on no page. The sandbox's ``pagination.cut_ties`` serves pages that way; the reader must still
stage every message once, on a first read and on an incremental one.
"""

from __future__ import annotations

import pytest

from airflow_provider_linkmsg.exceptions import LinkMsgError
from airflow_provider_linkmsg.operators.linkup import LinkupRetrieveMessagesOperator
from tests.fixtures.inbox import assert_exactly, reads, staged_messages, truth_messages

CUT = {"cut_ties": True}


def retrieve(tmp_path, context, run_id: str, **kwargs) -> dict:
    operator = LinkupRetrieveMessagesOperator(task_id="retrieve", staging_path=str(tmp_path), **kwargs)
    return operator.execute(context(run_id))


def newest_conversation(sandbox) -> str:
    rows = sorted(sandbox.truth("linkup")["conversations"], key=lambda c: -c["last_activity_ms"])
    return rows[0]["conversation_id"]


def tie(sandbox, conversation: str, size: int, *, seconds: float = 60) -> None:
    """``size`` messages in one new millisecond: one newer than the newest, the rest equal to it."""
    sandbox.advance(seconds=seconds, linkup={"conversation_ids": [conversation], "at": "newer"})
    if size > 1:
        body = {"conversation_ids": [conversation], "messages": size - 1, "at": "equal"}
        sandbox.advance(seconds=0, linkup=body)


@pytest.mark.parametrize("tie_size", [4, 7])
def test_a_first_read_stages_a_tie_cut_at_a_page_end(inbox_sandbox, tmp_path, inbox_context, tie_size):
    sandbox = inbox_sandbox("linkup", conversations=2, messages=5, pagination=CUT)
    target = newest_conversation(sandbox)
    tie(sandbox, target, tie_size)
    # an older neighbour one millisecond below the tie, so the page after the cut is not empty
    sandbox.advance(seconds=0, linkup={"conversation_ids": [target], "at": "older", "older_by_ms": 1})
    first = retrieve(tmp_path, inbox_context, "run-1", page_size=3)
    assert_exactly(staged_messages(first["manifest"]), truth_messages(sandbox, "linkup"))

    sandbox.reset_stats()
    again = retrieve(tmp_path, inbox_context, "run-2", page_size=3)
    assert again["records"] == 0 and reads(sandbox) == {}  # settled: the count is met, nothing re-read


def test_an_incremental_read_stages_a_tie_cut_at_a_page_end(inbox_sandbox, tmp_path, inbox_context):
    sandbox = inbox_sandbox("linkup", conversations=3, messages=6, pagination=CUT)
    first_truth = truth_messages(sandbox, "linkup")
    retrieve(tmp_path, inbox_context, "run-1", page_size=3)
    target = newest_conversation(sandbox)
    tie(sandbox, target, 5)
    sandbox.advance(seconds=0, linkup={"conversation_ids": [target], "at": "newer"})
    second = retrieve(tmp_path, inbox_context, "run-2", page_size=3)
    assert_exactly(staged_messages(second["manifest"]), truth_messages(sandbox, "linkup") - first_truth)

    sandbox.reset_stats()
    third = retrieve(tmp_path, inbox_context, "run-3", page_size=3)
    assert third["records"] == 0 and reads(sandbox) == {}


def test_a_tie_no_page_can_hold_is_an_error_not_a_loss(inbox_sandbox, tmp_path, inbox_context):
    sandbox = inbox_sandbox("linkup", conversations=1, messages=2, pagination=CUT)
    target = newest_conversation(sandbox)
    tie(sandbox, target, 102)  # more than get_conversation's largest page (100) in one millisecond
    sandbox.advance(seconds=0, linkup={"conversation_ids": [target], "at": "older", "older_by_ms": 1})
    with pytest.raises(LinkMsgError, match="a page of 100 holds nothing but the millisecond"):
        retrieve(tmp_path, inbox_context, "run-1", page_size=10)
