"""ConnectSafely against the sandbox over real HTTP: routes, pagination, errors, incremental retrieval."""

from __future__ import annotations

import math
import time
from contextlib import nullcontext

import pytest
import requests

from airflow_provider_linkmsg.exceptions import (
    LinkMsgAuthError,
    LinkMsgError,
    LinkMsgNotFoundError,
    LinkMsgResponseError,
    LinkMsgValidationError,
)
from airflow_provider_linkmsg.hooks.connectsafely import ConnectSafelyHook
from airflow_provider_linkmsg.io.state import WatermarkStore
from airflow_provider_linkmsg.operators.connectsafely import ConnectSafelyRetrieveMessagesOperator
from tests.fixtures.inbox import assert_exactly, reads, set_extra, staged_messages, truth_messages

#: the consumer of the tasks run with ``inbox_context`` (dag ``inbox_test``, task ``retrieve``)
STATE_KEY = "inbox_test.retrieve"
VENDOR = "connectsafely"
MESSAGES_ROUTE = "connectsafely GET /conversations/{urn}/messages"


def calls(sandbox, route: str | None = None) -> int:
    counted = sandbox.stats().get("calls", {})
    return int(sum(v for k, v in counted.items() if k.startswith(VENDOR) and (route is None or k == route)))


def retrieve(tmp_path, context, run_id: str, **kwargs) -> dict:
    op = ConnectSafelyRetrieveMessagesOperator(task_id="retrieve", staging_path=str(tmp_path), **kwargs)
    return op.execute(context(run_id))


def biggest_conversation(sandbox) -> dict:
    return max(sandbox.truth(VENDOR)["conversations"], key=lambda c: (c["messages"], c["conversation_id"]))


# ---- auth and accounts ----------------------------------------------------------------------------------
def test_a_wrong_key_is_401_and_an_expired_plan_is_403(inbox_sandbox, monkeypatch):
    sandbox = inbox_sandbox(
        VENDOR, expired_api_key="cs-expired-key-0001", extra={"password": "wrong-key-0001"}
    )
    with pytest.raises(LinkMsgAuthError) as err:
        ConnectSafelyHook().list_accounts()
    assert err.value.status == 401 and "Invalid credentials" in str(err.value)
    set_extra(monkeypatch, VENDOR, password="cs-expired-key-0001")
    with pytest.raises(LinkMsgAuthError) as err:
        ConnectSafelyHook().list_accounts()
    assert err.value.status == 403 and "subscription" in str(err.value)
    assert "cs-expired-key-0001" not in str(err.value)
    assert calls(sandbox) == 2  # never retried


def test_accounts_and_their_status(inbox_sandbox):
    sandbox = inbox_sandbox(VENDOR, accounts=2)
    truth = sandbox.truth(VENDOR)["accounts"]
    hook = ConnectSafelyHook()
    accounts = hook.list_accounts()
    assert [a["id"] for a in accounts] == [a["id"] for a in truth]
    assert all(a["status"] == "AVAILABLE" for a in accounts)
    assert [a["id"] for a in hook.list_accounts(q=truth[1]["owner"])] == [truth[1]["id"]]
    status = hook.get_account_status(truth[0]["id"])
    assert status["linkedinPlan"]["hasSalesNavigator"] is truth[0]["sales_nav"]
    with pytest.raises(LinkMsgNotFoundError):
        hook.get_account_status("0" * 24)
    before = calls(sandbox)
    with pytest.raises(LinkMsgValidationError, match="24 hex digits"):
        hook.get_account_status("acc_123")
    assert calls(sandbox) == before


# ---- conversations --------------------------------------------------------------------------------------
def test_conversations_of_several_accounts_page_through_both_cursor_forms(inbox_sandbox):
    sandbox = inbox_sandbox(VENDOR, accounts=2, conversations=7)
    truth = sandbox.truth(VENDOR)["conversations"]
    accounts = [a["id"] for a in sandbox.truth(VENDOR)["accounts"]]
    pages = list(ConnectSafelyHook().iter_conversation_pages(accounts, count=4))
    items = [c for p in pages for c in p.items]
    assert [c["conversationUrn"] for c in items] == [
        c["conversation_id"]
        for c in sorted(truth, key=lambda c: (-c["last_activity_ms"], c["conversation_id"]))
    ]
    assert len(pages) == 4 and pages[-1].stop_reason == "has_more_false"
    # the first page comes from the cache with an opaque cursor; later ones from LinkedIn ("linkedin:")
    assert not pages[0].cursor.startswith("linkedin:") and pages[1].cursor.startswith("linkedin:")
    assert {c["accountId"] for c in items} == set(accounts)


def test_conversation_filters(inbox_sandbox):
    sandbox = inbox_sandbox(VENDOR, conversations=30)
    truth = sandbox.truth(VENDOR)["conversations"]
    hook = ConnectSafelyHook()

    def ids(**kwargs):
        return {c["conversationUrn"] for c in hook.iter_conversations(count=7, **kwargs)}

    assert ids() == {c["conversation_id"] for c in truth}
    assert ids(unread_only=True) == {c["conversation_id"] for c in truth if c["unread"]}
    assert ids(labeled_only=True) == {c["conversation_id"] for c in truth if c["labels"]}
    assert ids(label_id="hot-lead") == ids(labeled_only=True) != set()
    assert ids(label_id="no-such-label") == set()


def test_an_unknown_account_is_404(inbox_sandbox):
    inbox_sandbox(VENDOR)
    with pytest.raises(LinkMsgNotFoundError, match="Account not found"):
        list(ConnectSafelyHook().iter_conversations("0" * 24))


# ---- messages -------------------------------------------------------------------------------------------
def test_messages_page_backward_and_since_reads_forward(inbox_sandbox):
    sandbox = inbox_sandbox(VENDOR, conversations=4, messages=12)
    conversation = biggest_conversation(sandbox)
    urn, n = conversation["conversation_id"], conversation["messages"]
    expected = sorted(
        (m for m in sandbox.truth(VENDOR)["messages"] if m["conversation_id"] == urn),
        key=lambda m: m["sent_at"],
    )
    hook = ConnectSafelyHook()
    before = calls(sandbox)
    got = list(hook.iter_messages(urn, count=3))
    assert sorted(m["messageUrn"] for m in got) == sorted(m["message_id"] for m in expected)
    assert calls(sandbox) - before == math.ceil(n / 3)
    # since: only what is newer, in one call
    cut = expected[-4]
    since = next(int(m["sentAt"]) for m in got if m["messageUrn"] == cut["message_id"])
    before = calls(sandbox)
    newer = list(hook.iter_messages(urn, since=since))
    assert [m["messageUrn"] for m in newer] == [m["message_id"] for m in expected[-3:]]
    assert calls(sandbox) - before == 1


def test_sales_navigator_threads_are_read_and_flagged(inbox_sandbox):
    sandbox = inbox_sandbox(VENDOR, conversations=16, sales_nav=0.5)
    truth = sandbox.truth(VENDOR)
    thread = next(c for c in truth["conversations"] if c["channel"] == "sales_navigator")
    assert thread["conversation_id"].startswith("urn:li:salesNav_thread:")
    hook = ConnectSafelyHook()
    account = truth["accounts"][0]["id"]
    got = {
        hook.to_message(m, account_id=account, conversation_urn=thread["conversation_id"])
        for m in hook.iter_messages(thread["conversation_id"])
    }
    assert got == {
        m for m in truth_messages(sandbox, VENDOR) if m.conversation_id == thread["conversation_id"]
    }
    assert {m.channel for m in got} == {"sales_navigator"}


def test_the_urn_is_percent_encoded_and_errors_are_typed(inbox_sandbox):
    sandbox = inbox_sandbox(VENDOR)
    urn = sandbox.truth(VENDOR)["conversations"][0]["conversation_id"]
    # the sandbox refuses a URN that is not encoded, as the vendor documents; the hook's reads succeed
    raw = requests.get(
        f"{sandbox.base_url}/connectsafely/linkedin/conversations/{urn}/messages",
        headers={"Authorization": f"Bearer {sandbox.apps[VENDOR].api_key}"},
    )
    assert raw.status_code == 400
    hook = ConnectSafelyHook()
    assert list(hook.iter_messages(urn))
    unknown = urn.replace("2-", "2-x")
    with pytest.raises(LinkMsgNotFoundError, match="Conversation not found") as err:
        list(hook.iter_messages(unknown))
    assert err.value.status == 404 and err.value.endpoint.startswith("/conversations/urn%3Ali")
    # the vendor's Zod-shaped 400 is read into a message that names the field
    with pytest.raises(LinkMsgValidationError, match="since: Expected number") as err:
        hook.request(
            "GET", f"/conversations/{requests.utils.quote(urn, safe='')}/messages", params={"since": "x"}
        )
    assert err.value.code == "ZodError"
    with pytest.raises(LinkMsgValidationError, match="count must be between 1 and 100") as err:
        hook.request("GET", "/conversations", params={"count": 500})
    assert err.value.code == "validation_error"


def test_bad_inputs_fail_before_any_call(inbox_sandbox):
    sandbox = inbox_sandbox(VENDOR)
    hook = ConnectSafelyHook()
    thread = "urn:li:salesNav_thread:1"
    cases = [
        (
            lambda: hook.iter_messages("urn:li:msg_message:(urn:li:fsd_profile:A,2-b)"),
            "not a conversation URN",
        ),
        (lambda: hook.iter_message_pages("2-abc"), "not a conversation URN"),
        (lambda: hook.iter_message_pages(thread, count=0), "from 1 to 100"),
        (lambda: hook.iter_message_pages(thread, since=-1), "epoch milliseconds"),
        (lambda: hook.iter_message_pages(thread, account_id="acc_1"), "24 hex"),
        (lambda: hook.iter_conversation_pages(count=101), "from 1 to 100"),
        (lambda: hook.iter_conversation_pages(["0" * 24, "nope"]), "24 hex"),
    ]
    for call, match in cases:
        with pytest.raises(LinkMsgValidationError, match=match):
            next(iter(call()))
    assert calls(sandbox) == 0


# ---- pagination quirks ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("quirks", "extra_calls", "page_size", "complete"),
    [
        ({}, 0, 3, True),  # the last page has no cursor
        ({"cursor_on_last_page": True}, 0, 3, True),  # a cursor, but hasMore false
        ({"empty_tail": True}, 1, 3, True),  # one more call gets an empty page that still has a cursor
        ({"page_cap": 2}, 0, 2, True),  # short pages that are not the last
        ({"repeat_cursor": True}, None, 3, False),  # the vendor repeats a cursor: a typed error, never a loop
    ],
)
def test_message_pagination_stops_where_it_should(inbox_sandbox, quirks, extra_calls, page_size, complete):
    sandbox = inbox_sandbox(VENDOR, conversations=3, messages=14, pagination=quirks)
    conversation = biggest_conversation(sandbox)
    before = calls(sandbox)
    got: list[str] = []
    with pytest.raises(LinkMsgResponseError, match="a second time") if not complete else nullcontext():
        got.extend(
            m["messageUrn"]
            for m in ConnectSafelyHook().iter_messages(conversation["conversation_id"], count=3)
        )
    made = calls(sandbox) - before
    assert len(got) == len(set(got))
    if complete:
        assert len(got) == conversation["messages"]
        assert made == math.ceil(conversation["messages"] / page_size) + extra_calls
    else:
        assert made == 2 and len(got) == page_size  # the first page; the error comes with the second


def test_listing_short_pages_are_followed_to_the_end(inbox_sandbox):
    sandbox = inbox_sandbox(VENDOR, conversations=9, pagination={"page_cap": 2})
    pages = list(ConnectSafelyHook().iter_conversation_pages(count=5))
    assert [len(p.items) for p in pages] == [2, 2, 2, 2, 1]
    assert sum(len(p.items) for p in pages) == len(sandbox.truth(VENDOR)["conversations"])


# ---- incremental retrieval ------------------------------------------------------------------------------
def test_second_run_stages_exactly_the_new_messages_of_5_of_200_conversations(
    inbox_sandbox, tmp_path, inbox_context
):
    sandbox = inbox_sandbox(VENDOR, conversations=200, messages=3, sales_nav=0.1)
    first_truth = truth_messages(sandbox, VENDOR)
    first = retrieve(tmp_path, inbox_context, "run-1", max_workers=8)
    assert_exactly(staged_messages(first["manifest"]), first_truth)
    assert first["conversations_read"] == 200 and first["records"] == len(first_truth)
    assert {m.channel for m in first_truth} == {"standard", "sales_navigator"}

    sandbox.reset_stats()
    changed = sandbox.advance(seconds=3600, connectsafely={"conversations": 5, "messages": 2})[VENDOR]
    second = retrieve(tmp_path, inbox_context, "run-2", max_workers=8)
    assert_exactly(staged_messages(second["manifest"]), truth_messages(sandbox, VENDOR) - first_truth)
    assert second["records"] == 10 and second["conversations_read"] == 5
    # message reads only for the 5 changed conversations, one call each (forward with since)
    assert reads(sandbox) == {urn: 1 for urn in changed["changed"]}
    # every listing page (2 of 100: nothing can hide a change), five reads
    assert second["api_calls"] == calls(sandbox) == 2 + 5 and not second["listing_stopped_early"]

    sandbox.reset_stats()
    third = retrieve(tmp_path, inbox_context, "run-3")
    assert third["records"] == 0 and reads(sandbox) == {}


def test_staged_set_equals_truth_under_fault_injection(inbox_sandbox, tmp_path, inbox_context):
    sandbox = inbox_sandbox(VENDOR, conversations=40, messages=6)
    sandbox.set_faults(
        [{"vendor": VENDOR, "p_5xx": 0.10, "p_429": 0.05, "retry_after": "0", "p_reset": 0.02}]
    )
    result = retrieve(tmp_path, inbox_context, "run-1", page_size=4, max_workers=6)
    assert_exactly(staged_messages(result["manifest"]), truth_messages(sandbox, VENDOR))
    faults = sandbox.stats()["faults"]
    assert faults.get("connectsafely 5xx") and faults.get("connectsafely 429")
    sandbox.advance(connectsafely={"conversations": 6, "messages": 3})
    second = retrieve(tmp_path, inbox_context, "run-2", page_size=4, max_workers=6)
    assert second["records"] == 18


def test_the_documented_rate_limit_is_respected_with_few_429s(inbox_sandbox, tmp_path, inbox_context):
    # 60 a minute scaled down to 20 per 2 s; the client's bucket stays under it: 8 a second, burst 2
    sandbox = inbox_sandbox(
        VENDOR, conversations=40, messages=3, rate_limit=[20, 2], extra={"requests_per_second": 8, "burst": 2}
    )
    result = retrieve(tmp_path, inbox_context, "run-1", max_workers=4)
    assert_exactly(staged_messages(result["manifest"]), truth_messages(sandbox, VENDOR))
    limited = sandbox.stats().get("rate_limited", {}).get(VENDOR, 0)
    assert limited <= 2 and calls(sandbox) == result["api_calls"] + limited == 41 + limited


def test_a_429_carries_the_documented_headers(inbox_sandbox):
    sandbox = inbox_sandbox(VENDOR, rate_limit=[1, 60])
    url = f"{sandbox.base_url}/connectsafely/linkedin/accounts"
    headers = {"Authorization": f"Bearer {sandbox.apps[VENDOR].api_key}"}
    assert requests.get(url, headers=headers).status_code == 200
    limited = requests.get(url, headers=headers)
    assert limited.status_code == 429 and "Retry-After" not in limited.headers  # not documented
    assert limited.headers["X-RateLimit-Limit"] == "1" and limited.headers["X-RateLimit-Remaining"] == "0"
    assert limited.headers["X-RateLimit-Reset"].endswith("Z") and "holdUntil" in limited.json()
    sandbox.configure({"vendors": {VENDOR: {"rate_limit_fields": ["retry_after"]}}})  # a fresh window
    assert requests.get(url, headers=headers).status_code == 200
    limited = requests.get(url, headers=headers)
    assert int(limited.headers["Retry-After"]) >= 1 and "X-RateLimit-Reset" not in limited.headers


@pytest.mark.parametrize("fields", [["hold_until", "reset_header"], ["reset_header"], ["hold_until"]])
def test_a_429_is_waited_out_until_the_documented_reset(inbox_sandbox, fields):
    """No Retry-After: the wait comes from holdUntil or X-RateLimit-Reset, not from guessed back-off."""
    sandbox = inbox_sandbox(
        VENDOR, rate_limit=[2, 3], rate_limit_fields=fields, extra={"requests_per_second": 0}
    )
    hook = ConnectSafelyHook()
    started = time.monotonic()
    for _ in range(3):
        hook.list_accounts()
    elapsed = time.monotonic() - started

    assert sandbox.stats()["rate_limited"][VENDOR] == 1  # one 429, then one wait to the reset
    assert 2.0 <= elapsed < 6.0 and hook.retries == 1


def test_a_conversation_that_keeps_failing_does_not_lose_the_others(inbox_sandbox, tmp_path, inbox_context):
    sandbox = inbox_sandbox(VENDOR, conversations=12, messages=4, extra={"max_retries": 1})
    truth = truth_messages(sandbox, VENDOR)
    broken = sorted(c["conversation_id"] for c in sandbox.truth(VENDOR)["conversations"])[5]
    sandbox.configure({"vendors": {VENDOR: {"fail_conversations": [broken]}}})
    with pytest.raises(LinkMsgError, match=r"1 conversation\(s\) of account .* could not be read") as err:
        retrieve(tmp_path, inbox_context, "run-1")
    assert broken in str(err.value) and "watermarks saved" in str(err.value)
    # the 11 others are staged and their watermarks committed; the broken one has none
    manifest = next(tmp_path.glob("connectsafely/*/manifest.json"))
    assert_exactly(staged_messages(str(manifest)), {m for m in truth if m.conversation_id != broken})
    account = sandbox.truth(VENDOR)["accounts"][0]["id"]
    watermarks = WatermarkStore(tmp_path, vendor=VENDOR, account=account, consumer=STATE_KEY).all()
    assert len(watermarks) == 11 and broken not in watermarks

    # a retry of the same task carries over what the failed try staged and reads only the broken one
    sandbox.configure({"vendors": {VENDOR: {"fail_conversations": []}}})
    sandbox.reset_stats()
    retry = retrieve(tmp_path, inbox_context, "run-1")
    assert reads(sandbox) == {broken: 1}
    assert retry["records_carried_over"] == len(truth) - retry["records_new"]
    assert_exactly(staged_messages(retry["manifest"]), truth)


def test_failures_can_be_reported_instead_of_failing_the_task(inbox_sandbox, tmp_path, inbox_context):
    sandbox = inbox_sandbox(VENDOR, conversations=5, extra={"max_retries": 0})
    broken = sandbox.truth(VENDOR)["conversations"][0]["conversation_id"]
    sandbox.configure({"vendors": {VENDOR: {"fail_conversations": [broken]}}})
    result = retrieve(tmp_path, inbox_context, "run-1", fail_on_error=False)
    assert result["conversations_failed"] == 1 and result["failed"] == [broken]
    assert "HTTP 500" in result["first_error"] and result["conversations_read"] == 4


def test_full_refresh_subset_and_overlap(inbox_sandbox, tmp_path, inbox_context):
    sandbox = inbox_sandbox(VENDOR, conversations=10, messages=5)
    truth = truth_messages(sandbox, VENDOR)
    day = 86_400
    retrieve(tmp_path, inbox_context, "run-1", overlap_seconds=day)
    # an overlap re-reads a day before each watermark, yet stages nothing twice
    new = sandbox.advance(seconds=600, connectsafely={"conversations": 3, "messages": 2})[VENDOR]
    overlapped = retrieve(tmp_path, inbox_context, "run-2", overlap_seconds=day)
    assert_exactly(staged_messages(overlapped["manifest"]), truth_messages(sandbox, VENDOR) - truth)
    # a subset reads only the conversations asked for, and only if they changed
    subset = sorted(new["changed"])[:2]
    sandbox.advance(connectsafely={"conversation_ids": new["changed"], "messages": 1})
    sandbox.reset_stats()
    partial = retrieve(tmp_path, inbox_context, "run-3", conversation_ids=subset)
    assert set(reads(sandbox)) == set(subset) and partial["records"] == 2
    # a full refresh reads and stages everything again
    sandbox.reset_stats()
    full = retrieve(tmp_path, inbox_context, "run-4", full_refresh=True)
    assert_exactly(staged_messages(full["manifest"]), truth_messages(sandbox, VENDOR))
    assert len(reads(sandbox)) == 10


def test_operator_inputs_are_checked_before_any_call(inbox_sandbox, tmp_path, inbox_context):
    sandbox = inbox_sandbox(VENDOR)
    for kwargs in (
        {"account_id": "acc_123"},
        {"conversation_ids": ["urn:li:msg_conversation:2-abc"]},
        {"page_size": 0},
        {"overlap_seconds": -1},
        {"max_workers": 0},
    ):
        with pytest.raises(LinkMsgValidationError):
            retrieve(tmp_path, inbox_context, "run-1", **kwargs)
    # a well-formed but unknown account reaches the vendor once and fails clearly
    with pytest.raises(LinkMsgNotFoundError, match="Account not found"):
        retrieve(tmp_path, inbox_context, "run-1", account_id="0" * 24)
    assert calls(sandbox) == 1
    assert not list(tmp_path.glob("connectsafely/*/manifest.json"))
