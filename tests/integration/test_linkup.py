"""LinkupAPI against the sandbox over real HTTP: actions, credits, pagination, incremental retrieval, budget."""

from __future__ import annotations

import math
from contextlib import nullcontext

import pytest
import requests

from airflow_provider_linkmsg.exceptions import (
    LinkMsgAuthError,
    LinkMsgBudgetExceededError,
    LinkMsgNotFoundError,
    LinkMsgResponseError,
    LinkMsgValidationError,
)
from airflow_provider_linkmsg.hooks.linkup import LinkupHook
from airflow_provider_linkmsg.io.state import WatermarkStore
from airflow_provider_linkmsg.operators.linkup import LinkupRetrieveMessagesOperator
from airflow_provider_linkmsg.records import to_utc_iso
from tests.fixtures.inbox import assert_exactly, reads, set_extra, staged_messages, truth_messages

#: the consumer of the tasks run with ``inbox_context`` (dag ``inbox_test``, task ``retrieve``)
STATE_KEY = "inbox_test.retrieve"
VENDOR = "linkup"


def calls(sandbox) -> int:
    return int(sum(v for k, v in sandbox.stats().get("calls", {}).items() if k.startswith(VENDOR)))


def credits(sandbox, action: str | None = None) -> float:
    stats = sandbox.stats()
    if action is None:
        return stats.get("credits", {}).get(VENDOR, 0)
    return stats.get("credits_by_action", {}).get(action, 0)


def retrieve(tmp_path, context, run_id: str, **kwargs) -> dict:
    op = LinkupRetrieveMessagesOperator(task_id="retrieve", staging_path=str(tmp_path), **kwargs)
    return op.execute(context(run_id))


def account_of(sandbox) -> str:
    return sandbox.truth(VENDOR)["accounts"][0]["id"]


def biggest_conversation(sandbox) -> dict:
    return max(sandbox.truth(VENDOR)["conversations"], key=lambda c: (c["messages"], c["conversation_id"]))


# ---- auth, accounts, envelopes --------------------------------------------------------------------------
def test_auth_and_account_errors_are_typed_by_their_codes(inbox_sandbox, monkeypatch):
    sandbox = inbox_sandbox(VENDOR, accounts=2)
    first, second = (a["id"] for a in sandbox.truth(VENDOR)["accounts"])
    sandbox.configure({"vendors": {VENDOR: {"inactive_accounts": [second]}}})
    hook = LinkupHook()
    with pytest.raises(LinkMsgAuthError) as err:
        list(hook.iter_inbox(second))
    assert err.value.code == "ACCOUNT_INACTIVE" and err.value.status == 403
    with pytest.raises(LinkMsgNotFoundError) as err:
        list(hook.iter_inbox("acc_doesnotexist"))
    assert err.value.code == "INVALID_ACCOUNT"
    set_extra(monkeypatch, VENDOR, password="not-the-key-123")
    with pytest.raises(LinkMsgAuthError) as err:
        list(LinkupHook().iter_inbox(first))
    assert err.value.code == "INVALID_API_KEY" and "not-the-key-123" not in str(err.value)
    assert hook.credits_used == 0 and credits(sandbox) == 0  # errors cost nothing


def test_accounts_are_paged_by_offset(inbox_sandbox):
    sandbox = inbox_sandbox(VENDOR, accounts=3)
    accounts = list(LinkupHook().list_accounts(limit=2))
    assert [a["account_id"] for a in accounts] == [a["id"] for a in sandbox.truth(VENDOR)["accounts"]]
    assert calls(sandbox) == 2 and credits(sandbox) == 0
    assert LinkupHook().get_account(accounts[0]["account_id"])["status"] == "active"


def test_unknown_action_and_params_are_vendor_validation_errors(inbox_sandbox):
    sandbox = inbox_sandbox(VENDOR)
    hook = LinkupHook()
    with pytest.raises(LinkMsgValidationError) as err:
        hook.action("delete_everything", {}, account_id=account_of(sandbox), estimate=0)
    assert err.value.code == "INVALID_ACTION"
    with pytest.raises(LinkMsgValidationError) as err:
        hook.action("list_inbox", {"cursor": "not-a-cursor"}, account_id=account_of(sandbox), estimate=1)
    assert err.value.code == "INVALID_PARAMS"


# ---- inbox and conversations ----------------------------------------------------------------------------
def test_the_inbox_pages_newest_first_and_costs_a_credit_per_ten(inbox_sandbox):
    sandbox = inbox_sandbox(VENDOR, conversations=23)
    truth = sandbox.truth(VENDOR)["conversations"]
    hook = LinkupHook()
    pages = list(hook.iter_inbox_pages(account_of(sandbox), count=10))
    items = [c for p in pages for c in p.items]
    assert [c["conversation_id"] for c in items] == [
        c["conversation_id"]
        for c in sorted(truth, key=lambda c: (-c["last_activity_ms"], c["conversation_id"]))
    ]
    assert [p.meta["credits"] for p in pages] == [1, 1, 1] and pages[-1].stop_reason == "no_cursor"
    assert hook.credits_used == credits(sandbox, "list_inbox") == 3
    assert all(c["participant"]["profile_url"].startswith("https://www.linkedin.com/in/") for c in items)
    assert LinkupHook.owner_urls(items)  # the owner shows up as an is_me sender


def test_a_conversation_reads_newest_first_by_id_or_profile_url(inbox_sandbox):
    sandbox = inbox_sandbox(VENDOR, conversations=4, messages=12)
    conversation = biggest_conversation(sandbox)
    expected = sorted(
        (
            m
            for m in sandbox.truth(VENDOR)["messages"]
            if m["conversation_id"] == conversation["conversation_id"]
        ),
        key=lambda m: m["sent_at"],
        reverse=True,
    )
    hook = LinkupHook()
    account = account_of(sandbox)
    by_id = list(hook.iter_messages(account, conversation_id=conversation["conversation_id"], count=5))
    assert [m["entity_urn"] for m in by_id] == [m["message_id"] for m in expected]
    n = conversation["messages"]
    assert credits(sandbox, "get_conversation") == sum(
        math.ceil(len(expected[i : i + 5]) / 10) for i in range(0, n, 5)
    )
    by_url = list(hook.iter_messages(account, profile_url=conversation["participant"]))
    assert [m["entity_urn"] for m in by_url] == [m["message_id"] for m in expected]
    # the documented alias linkedin_url, sent by hand
    data, _ = hook.action(
        "get_conversation", {"linkedin_url": conversation["participant"]}, account_id=account, estimate=1
    )
    assert data["messages"][0]["entity_urn"] == expected[0]["message_id"]


def test_an_unknown_conversation_is_an_error_and_costs_nothing(inbox_sandbox):
    sandbox = inbox_sandbox(VENDOR)
    hook = LinkupHook()
    with pytest.raises(LinkMsgValidationError, match="Conversation not found") as err:
        list(hook.iter_messages(account_of(sandbox), profile_url="https://www.linkedin.com/in/nobody-0/"))
    assert err.value.status == 404 and hook.credits_used == 0


def test_bad_inputs_fail_before_any_call(inbox_sandbox):
    sandbox = inbox_sandbox(VENDOR)
    account = account_of(sandbox)
    hook = LinkupHook()
    cases = [
        (lambda: hook.iter_inbox_pages("acc 1"), "not a LinkupAPI account id"),
        (lambda: hook.iter_inbox_pages(account, count=101), "from 1 to 100"),
        (
            lambda: hook.iter_conversation_pages(account, profile_url="https://example.com/in/x"),
            "LinkedIn profile",
        ),
        (lambda: hook.iter_conversation_pages(account, conversation_id="2-abc"), "not a conversation URN"),
        (lambda: hook.iter_conversation_pages(account, profile_url="x", conversation_id="y"), "exactly one"),
        (lambda: hook.list_accounts(limit=0), "from 1 to 500"),
    ]
    for call, match in cases:
        with pytest.raises(LinkMsgValidationError, match=match):
            next(iter(call()))
    assert calls(sandbox) == 0


def test_insufficient_credits_is_the_vendors_402(inbox_sandbox):
    sandbox = inbox_sandbox(VENDOR, credits=0)
    with pytest.raises(LinkMsgBudgetExceededError) as err:
        list(LinkupHook().iter_inbox(account_of(sandbox)))
    assert err.value.status == 402 and err.value.code == "INSUFFICIENT_CREDITS"


def test_max_credits_refuses_a_call_before_sending_it(inbox_sandbox):
    sandbox = inbox_sandbox(VENDOR, conversations=30)
    hook = LinkupHook(max_credits=3)
    with pytest.raises(LinkMsgBudgetExceededError, match="could cost up to 5 credits") as err:
        list(hook.iter_inbox(account_of(sandbox), count=50))
    assert err.value.status is None and calls(sandbox) == 0
    pages = hook.iter_inbox_pages(account_of(sandbox), count=20)
    assert len(next(pages).items) == 20 and hook.credits_used == 2
    # the next page could cost 2 (it would cost 1: 10 conversations are left), and 2 + 2 > 3
    with pytest.raises(LinkMsgBudgetExceededError, match="2 of max_credits=3 are spent"):
        next(pages)
    assert calls(sandbox) == 1 and credits(sandbox) == 2


def test_an_answer_without_credits_consumed_counts_the_most_the_call_can_cost(inbox_sandbox, capsys, caplog):
    sandbox = inbox_sandbox(VENDOR, conversations=50)
    sandbox.set_faults(
        [
            {
                "kind": "corrupt",
                "vendor": VENDOR,
                "route": "POST /messages",
                "action": "list_inbox",
                "field": "metadata.credits_consumed",
                "delete": True,
            }
        ]
    )
    hook = LinkupHook(max_credits=3)
    pages = hook.iter_inbox_pages(account_of(sandbox), count=10)
    assert len(next(pages).items) == 10 and hook.credits_used == 1  # unreported: the estimate, not 0
    next(pages), next(pages)
    with pytest.raises(LinkMsgBudgetExceededError, match="3 of max_credits=3 are spent"):
        next(pages)
    assert calls(sandbox) == 3 and sandbox.stats()["faults"]["linkup corrupt"] == 3
    logged = (
        capsys.readouterr()
    )  # Airflow 3 prints the hook's log; Airflow 2 logs records (and may print them)
    said = max(
        text.count("reports no metadata.credits_consumed") for text in (logged.out + logged.err, caplog.text)
    )
    assert said == 1, said  # said once, not per call


# ---- pagination quirks ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("quirks", "extra_calls", "page_size", "complete"),
    [
        ({}, 0, 4, True),  # next_cursor omitted on the last page
        ({"null_cursor": True}, 0, 4, True),  # next_cursor: null on the last page
        ({"cursor_on_last_page": True}, 1, 4, True),  # a cursor on the last page: one empty page follows
        ({"empty_tail": True}, 1, 4, True),  # an empty page that still carries a cursor
        ({"page_cap": 3}, 0, 3, True),  # short pages that are not the last
        ({"repeat_cursor": True}, None, 4, False),  # the vendor repeats a cursor: a typed error, never a loop
    ],
)
def test_conversation_pagination_stops_where_it_should(
    inbox_sandbox, quirks, extra_calls, page_size, complete
):
    sandbox = inbox_sandbox(VENDOR, conversations=3, messages=14, pagination=quirks)
    conversation = biggest_conversation(sandbox)
    got: list[str] = []
    with pytest.raises(LinkMsgResponseError, match="a second time") if not complete else nullcontext():
        got.extend(
            m["entity_urn"]
            for m in LinkupHook().iter_messages(
                account_of(sandbox), conversation_id=conversation["conversation_id"], count=4
            )
        )
    made = calls(sandbox)
    assert len(got) == len(set(got))
    if complete:
        assert len(got) == conversation["messages"]
        assert made == math.ceil(conversation["messages"] / page_size) + extra_calls
    else:
        assert made == 2 and len(got) == page_size  # the first page; the error comes with the second


# ---- incremental retrieval ------------------------------------------------------------------------------
@pytest.mark.parametrize("shortcut", [False, True])
def test_second_run_spends_credits_only_on_the_listing_and_the_5_changed_conversations(
    inbox_sandbox, tmp_path, inbox_context, shortcut
):
    sandbox = inbox_sandbox(VENDOR, conversations=200, messages=4)
    first_truth = truth_messages(sandbox, VENDOR)
    first = retrieve(tmp_path, inbox_context, "run-1", max_workers=8, listing_shortcut=shortcut)
    assert_exactly(staged_messages(first["manifest"]), first_truth)
    assert first["credits"] == credits(sandbox) and first["conversations_read"] == 200
    assert {m.direction for m in first_truth} == {"inbound", "outbound"}

    sandbox.reset_stats()
    changed = sandbox.advance(seconds=3600, linkup={"conversations": 5, "messages": 3})[VENDOR]
    second = retrieve(tmp_path, inbox_context, "run-2", max_workers=8, listing_shortcut=shortcut)
    assert_exactly(staged_messages(second["manifest"]), truth_messages(sandbox, VENDOR) - first_truth)
    assert second["records"] == 15 and second["conversations_deepened"] == 0
    # one read of one page (10 messages, 1 credit) for each changed conversation, and nothing else
    assert reads(sandbox) == {c: 1 for c in changed["changed"]}
    assert credits(sandbox, "get_conversation") == 5
    if not shortcut:  # by default every page is listed: 4 pages of 50 (20 credits)
        assert not second["listing_stopped_early"] and second["conversations_listed"] == 200
        assert second["listing_shortcut"] is None
        assert credits(sandbox, "list_inbox") == 20 and second["credits"] == credits(sandbox) == 25
        return
    # the 5 changed moved to the top; the listing stops at the first conversation the last pass covered:
    # one page of 50 (5 credits) instead of all 200 (20 credits)
    # (listed: the 5, and the newest of the last pass, which is current: not read)
    assert second["listing_stopped_early"] and second["conversations_listed"] == 6
    assert second["listing_shortcut"] == {"staleness_bound_hours": 24.0, "stopped_early": True}
    assert credits(sandbox, "list_inbox") == 5
    assert second["credits"] == credits(sandbox) == 10
    sweep = WatermarkStore(
        str(tmp_path), vendor=VENDOR, account=second["account_id"], consumer=STATE_KEY
    ).sweep()
    newest = max(c["last_activity_ms"] for c in sandbox.truth(VENDOR)["conversations"])
    assert sweep["through"] == to_utc_iso(newest)
    assert sweep["memo"]["owner_urls"]  # the owner learnt from the first, full listing is kept


def test_backward_reads_stop_at_the_first_page_that_reaches_the_watermark(
    inbox_sandbox, tmp_path, inbox_context
):
    sandbox = inbox_sandbox(VENDOR, conversations=3, messages=30)
    conversation = biggest_conversation(sandbox)["conversation_id"]
    retrieve(tmp_path, inbox_context, "run-1", page_size=5)
    sandbox.reset_stats()
    sandbox.advance(seconds=60, linkup={"conversation_ids": [conversation], "messages": 7})
    second = retrieve(tmp_path, inbox_context, "run-2", page_size=5)
    assert second["records"] == 7
    # pages of 5, newest first: 5 new, then 2 new and 3 old; the third page is never asked for
    assert reads(sandbox) == {conversation: 2} and credits(sandbox, "get_conversation") == 2


def test_staged_set_equals_truth_under_fault_injection(inbox_sandbox, tmp_path, inbox_context):
    sandbox = inbox_sandbox(VENDOR, conversations=40, messages=12)
    sandbox.set_faults(
        [{"vendor": VENDOR, "p_5xx": 0.10, "p_429": 0.05, "retry_after": "0", "p_reset": 0.02}]
    )
    result = retrieve(tmp_path, inbox_context, "run-1", page_size=5, max_workers=6)
    assert_exactly(staged_messages(result["manifest"]), truth_messages(sandbox, VENDOR))
    faults = sandbox.stats()["faults"]
    assert faults.get("linkup 5xx") and faults.get("linkup 429")
    # a reset comes after the request was sent, so the client cannot tell it was not charged: each
    # one counts its estimate (a page of 5 messages: 1 credit, of the inbox listing: 5); the credits
    # reported never fall short of those charged
    resets = faults.get("linkup reset", 0)
    assert credits(sandbox) <= result["credits"] <= credits(sandbox) + 5 * resets


def test_max_credits_stops_before_the_budget_and_later_runs_continue(inbox_sandbox, tmp_path, inbox_context):
    sandbox = inbox_sandbox(VENDOR, conversations=30, messages=4)
    truth = truth_messages(sandbox, VENDOR)
    staged, runs = [], []
    for run in range(1, 8):
        sandbox.reset_stats()
        result = retrieve(tmp_path, inbox_context, f"run-{run}", max_credits=12, max_workers=4)
        runs.append(result)
        staged += staged_messages(result["manifest"])
        assert credits(sandbox) <= 12 and result["credits"] == credits(sandbox)
        if not result["budget_exhausted"]:
            break
    first = runs[0]
    assert first["budget_exhausted"] and first["conversations_pending"] > 0
    assert first["conversations_read"] == 12 - 3  # the listing (30 conversations) cost 3
    assert len(runs) == 4 and runs[-1]["conversations_pending"] == 0
    assert_exactly(staged, truth)  # across the runs: everything, nothing twice


def test_a_budget_too_small_for_the_listing_stages_nothing_and_says_so(
    inbox_sandbox, tmp_path, inbox_context
):
    sandbox = inbox_sandbox(VENDOR, conversations=5)
    result = retrieve(tmp_path, inbox_context, "run-1", max_credits=2)
    assert result["budget_exhausted"] and not result["listing_complete"] and result["records"] == 0
    assert calls(sandbox) == 0
    assert (
        WatermarkStore(tmp_path, vendor=VENDOR, account=account_of(sandbox), consumer=STATE_KEY).all() == {}
    )


def test_overlap_and_subset(inbox_sandbox, tmp_path, inbox_context):
    sandbox = inbox_sandbox(VENDOR, conversations=8, messages=6)
    truth = truth_messages(sandbox, VENDOR)
    hour = 3600
    retrieve(tmp_path, inbox_context, "run-1", overlap_seconds=hour)
    changed = sandbox.advance(seconds=60, linkup={"conversations": 3, "messages": 2})[VENDOR]["changed"]
    second = retrieve(tmp_path, inbox_context, "run-2", overlap_seconds=hour, conversation_ids=changed[:2])
    assert_exactly(
        staged_messages(second["manifest"]),
        {m for m in truth_messages(sandbox, VENDOR) - truth if m.conversation_id in changed[:2]},
    )
    sandbox.reset_stats()
    third = retrieve(tmp_path, inbox_context, "run-3", overlap_seconds=hour)
    assert set(reads(sandbox)) == {changed[2]} and third["records"] == 2


def test_the_sandbox_refuses_a_profile_url_that_is_not_linkedin(inbox_sandbox):
    sandbox = inbox_sandbox(VENDOR)
    response = requests.post(
        f"{sandbox.base_url}/linkup/v2/messages",
        headers={"x-api-key": sandbox.apps[VENDOR].api_key},
        json={
            "account_id": account_of(sandbox),
            "action": "get_conversation",
            "params": {"profile_url": "x"},
        },
    )
    assert response.status_code == 400
    body = response.json()
    assert body["error"]["code"] == "INVALID_PARAMS" and body["metadata"]["credits_consumed"] == 0
