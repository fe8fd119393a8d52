"""
Malformed vendor answers: each a typed error before anything is mapped, nothing staged, no watermark moved,
and the next clean run complete.

Each case runs through the sandbox over HTTP: a clean run, time passes (new messages), then a run while the
sandbox's ``corrupt`` fault changes one field of one route's real answer, then a clean run again. The
corrupt run must fail with an error that names the vendor, the route and the field path ("malformed
answer: conversations.0.lastActivityAt ..."); the hook itself raises :class:`LinkMsgResponseError` with that
``field``. Afterwards the staged records and the watermark files are exactly what they were before the
corrupt run, and the clean run that follows stages everything the vendor holds.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_linkmsg.exceptions import LinkMsgError, LinkMsgResponseError
from airflow_provider_linkmsg.hooks.connectsafely import ConnectSafelyHook
from airflow_provider_linkmsg.hooks.koneksi import KoneksiHook
from airflow_provider_linkmsg.hooks.linkup import LinkupHook
from airflow_provider_linkmsg.operators.connectsafely import ConnectSafelyRetrieveMessagesOperator
from airflow_provider_linkmsg.operators.koneksi import (
    KoneksiRequestMessageGenerationOperator,
    KoneksiRetrieveMessagesOperator,
)
from airflow_provider_linkmsg.operators.linkedapi import (
    LinkedApiRetrieveMessagesOperator,
    LinkedApiSyncConversationsOperator,
)
from airflow_provider_linkmsg.operators.linkup import LinkupRetrieveMessagesOperator
from airflow_provider_linkmsg.sandbox import Sandbox
from tests.fixtures.koneksi import make_campaign
from tests.fixtures.linkedapi import FAST

SIZES = {
    "connectsafely": {"accounts": 1, "conversations": 3, "messages": 2},
    "linkup": {"accounts": 1, "conversations": 3, "messages": 2},
    "linkedapi": {"persons": 3, "not_found": 0, **FAST},
    "koneksi": {"leads": 2, "seconds_per_message": 0.001, "failure_share": 0},
}
CS_LIST, CS_READ = "GET /conversations", "GET /conversations/{urn}/messages"
LA_POLL = "POST /conversations/poll"
KN_RETRIEVE = "GET /messages/retrieve_messages"
SECONDS = 1766767988  # 2025-12-26 in epoch seconds: read as milliseconds, it is January 1970


@pytest.fixture(scope="module")
def _sandbox():
    with Sandbox(seed=14, sizes=SIZES) as sandbox:
        yield sandbox


@pytest.fixture
def sandbox(_sandbox, monkeypatch):
    for key, value in _sandbox.env().items():
        monkeypatch.setenv(key, value)
    conn = _sandbox.connections()["linkedapi_default"]
    conn["extra"].update({"api": "current", "requests_per_second": 0})
    monkeypatch.setenv("AIRFLOW_CONN_LINKEDAPI_DEFAULT", json.dumps(conn))
    _sandbox.set_faults([])
    yield _sandbox
    _sandbox.set_faults([])


def context(run_id: str) -> dict[str, Any]:
    ti = SimpleNamespace(dag_id="malformed", task_id="task", run_id=run_id, map_index=-1)
    return {"ti": ti, "run_id": run_id}


def staged(root: Path) -> dict[str, dict[str, Any]]:
    """Every record staged under ``root`` (manifests' part files), by key."""
    records = {}
    for part in root.rglob("*.jsonl"):
        if "_state" in part.parts or part.name.startswith("."):
            continue
        for line in part.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                records[record["key"]] = record
    return records


def watermarks(root: Path, vendor: str) -> dict[str, str]:
    """The watermark files of ``vendor`` (every ``*.json`` under ``_state/<vendor>``), by relative path."""
    folder = root / "_state" / vendor  # per task since the engine refactor: _state/<vendor>/<dag>.<task>/...
    files = sorted(p for p in folder.rglob("*.json") if not p.name.startswith(".")) if folder.exists() else []
    return {str(p.relative_to(folder)): p.read_text() for p in files}


# ---- the inbox vendors --------------------------------------------------------------------------------------
def run_inbox(
    vendor: str, root: Path, run_id: str, persons: list[dict[str, str]] | None = None, **kwargs: Any
) -> dict:
    if vendor == "connectsafely":
        op = ConnectSafelyRetrieveMessagesOperator(task_id="task", staging_path=str(root), **kwargs)
    elif vendor == "linkup":
        op = LinkupRetrieveMessagesOperator(task_id="task", staging_path=str(root), **kwargs)
    else:
        op = LinkedApiRetrieveMessagesOperator(task_id="task", staging_path=str(root), persons=persons)
    return op.execute(context(run_id))


def truth_ids(sandbox: Sandbox, vendor: str) -> set[str]:
    truth = sandbox.truth(vendor)
    if vendor == "linkedapi":
        return {m["id"] for m in truth["accounts"]["acc1"]["messages"]}
    return {m["message_id"] for m in truth["messages"]}


def la_persons(sandbox: Sandbox) -> list[dict[str, str]]:
    return [
        {"person": p["person"], "channel": p["channel"]}
        for p in sandbox.truth("linkedapi")["accounts"]["acc1"]["persons"]
    ]


def hook_call(vendor: str, sandbox: Sandbox) -> None:
    """One hook read of the corrupted route's kind, to see the typed error itself."""
    if vendor == "connectsafely":
        hook = ConnectSafelyHook()
        urn = sandbox.truth(vendor)["conversations"][0]["conversation_id"]
        list(hook.iter_conversations())
        list(hook.iter_messages(urn))
    elif vendor == "linkup":
        hook = LinkupHook()
        account = sandbox.truth(vendor)["accounts"][0]["id"]
        list(hook.iter_inbox(account))
        urn = sandbox.truth(vendor)["conversations"][0]["conversation_id"]
        list(hook.iter_messages(account, conversation_id=urn))


def case(vendor, route, field, value=None, *, path=None, action="*", delete=False, id):
    rule = {"kind": "corrupt", "vendor": vendor, "route": route, "field": field, "value": value}
    rule.update({"action": action, "delete": delete})
    return pytest.param(vendor, rule, path or field.replace("*", "0"), id=id)


INBOX_CASES = [
    case("connectsafely", CS_LIST, "", [], path="(body)", id="cs-listing-a-list"),
    case("connectsafely", CS_LIST, "", None, path="(body)", id="cs-listing-null"),
    case("connectsafely", CS_LIST, "conversations", "all of them", id="cs-conversations-a-string"),
    case("connectsafely", CS_LIST, "conversations.0", "urn:li:x", id="cs-conversation-a-string"),
    case("connectsafely", CS_LIST, "conversations.0.conversationUrn", None, id="cs-conversation-urn-null"),
    case("connectsafely", CS_LIST, "conversations.0.lastActivityAt", "yesterday", id="cs-activity-yesterday"),
    case("connectsafely", CS_LIST, "conversations.0.lastActivityAt", 1e20, id="cs-activity-1e20"),
    case("connectsafely", CS_LIST, "conversations.0.lastActivityAt", {"at": 1}, id="cs-activity-an-object"),
    case("connectsafely", CS_LIST, "conversations.0.lastActivityAt", SECONDS, id="cs-activity-in-seconds"),
    case("connectsafely", CS_LIST, "hasMore", "yes", id="cs-has-more-text"),
    case("connectsafely", CS_READ, "messages", {"0": {}}, id="cs-messages-an-object"),
    case("connectsafely", CS_READ, "messages.*.sentAt", "abc", id="cs-sent-at-abc"),
    case("connectsafely", CS_READ, "messages.*.sentAt", 1e20, id="cs-sent-at-1e20"),
    case("connectsafely", CS_READ, "messages.*.sentAt", SECONDS, id="cs-sent-at-in-seconds"),
    case("connectsafely", CS_READ, "messages.*.text", {"rich": "hi"}, id="cs-text-an-object"),
    case("connectsafely", CS_READ, "messages.*.messageUrn", None, id="cs-message-urn-null"),
    case("linkup", "POST /messages", "data.conversations", {"a": 1}, action="list_inbox", id="lk-conversations-a-dict"),
    case("linkup", "POST /messages", "data.conversations.0.last_message", "hi", action="list_inbox", id="lk-last-message-a-string"),
    case("linkup", "POST /messages", "data.conversations.0.conversation_id", delete=True, action="list_inbox", id="lk-conversation-id-missing"),
    case("linkup", "POST /messages", "data.conversations.0.conversation_id", "conv-1", action="list_inbox", id="lk-conversation-id-not-a-urn"),
    case("linkup", "POST /messages", "data.conversations.0.last_message.time", SECONDS, action="list_inbox", id="lk-last-message-in-seconds"),
    case("linkup", "POST /messages", "metadata.credits_consumed", "1", action="list_inbox", id="lk-credits-as-text"),
    case("linkup", "POST /messages", "metadata.credits_consumed", True, action="get_conversation", id="lk-credits-true"),
    case("linkup", "POST /messages", "data.messages.*.sender_info", "ada", action="get_conversation", id="lk-sender-info-a-string"),
    case("linkup", "POST /messages", "data.messages.*.timestamp", "never", action="get_conversation", id="lk-timestamp-never"),
    case("linkup", "POST /messages", "data.messages.*.timestamp", 4e13, action="get_conversation", id="lk-timestamp-far-future"),
    case("linkup", "POST /messages", "data.messages.*.text", {"x": 1}, action="get_conversation", id="lk-text-an-object"),
    case("linkup", "POST /messages", "data.messages", "none", action="get_conversation", id="lk-messages-a-string"),
    case("connectsafely", CS_LIST, "conversations.*.conversationUrn", "urn:li:msg_conversation:(urn:li:fsd_profile:A,1)", path="conversations", id="cs-duplicate-conversation-ids"),
    case("connectsafely", CS_READ, "messages.*.messageUrn", "urn:li:msg_message:same", path="messages", id="cs-duplicate-message-ids"),
    case("linkup", "POST /messages", "data.messages.*.entity_urn", "urn:li:msg_message:same", path="data.messages", action="get_conversation", id="lk-duplicate-message-ids"),
    case("linkedapi", LA_POLL, "result.*.messages.*.time", "never", path="messages[].time", id="la-time-never"),
    case("linkedapi", LA_POLL, "result.*.messages.*.time", "2299-01-01T00:00:00Z", path="messages[].time", id="la-time-far-future"),
    case("linkedapi", LA_POLL, "result.*.messages.*.text", {"x": 1}, path="messages[].text", id="la-text-an-object"),
    case("linkedapi", LA_POLL, "result.*.messages.*.id", None, path="messages[].id", id="la-id-null"),
    case("linkedapi", LA_POLL, "result.*.messages.*", "hello", path="messages[]", id="la-message-a-string"),
    case("linkedapi", LA_POLL, "result", "done", id="la-result-a-string"),
    case("linkedapi", LA_POLL, "result.0", 7, id="la-result-item-a-number"),
    case("linkedapi", LA_POLL, "result.0.messages", {"m": 1}, id="la-messages-an-object"),
]  # fmt: skip

NEWS = {
    "connectsafely": {"connectsafely": {"conversations": 2, "messages": 2}},
    "linkup": {"linkup": {"conversations": 2, "messages": 2}},
    "linkedapi": {"linkedapi": {"persons": 2, "messages": 2}},
}


@pytest.mark.parametrize(("vendor", "rule", "path"), INBOX_CASES)
def test_a_malformed_inbox_answer_stages_nothing_and_moves_no_watermark(
    sandbox, tmp_path, vendor, rule, path
):
    persons = None
    if vendor == "linkedapi":
        persons = la_persons(sandbox)
        sync = LinkedApiSyncConversationsOperator(
            task_id="sync", staging_path=str(tmp_path), persons=persons, poll_interval=0.05, deferrable=False
        )
        sync.execute(context("sync"))
    run_inbox(vendor, tmp_path, "run-1", persons)
    sandbox.advance(seconds=60, **NEWS[vendor])
    before, marks = staged(tmp_path), watermarks(tmp_path, vendor)
    assert before and marks, "the clean run staged nothing: the case proves nothing"

    sandbox.set_faults([rule])
    with pytest.raises(LinkMsgError) as info:
        run_inbox(vendor, tmp_path, "run-2", persons)
    corrupted = sandbox.stats().get("faults", {}).get(f"{vendor} corrupt", 0)
    if vendor != "linkedapi":
        with pytest.raises(LinkMsgResponseError) as typed:
            hook_call(vendor, sandbox)
        assert typed.value.field == path, str(typed.value)
    sandbox.set_faults([])

    text = str(info.value)
    assert corrupted >= 1
    assert "malformed answer" in text and path in text and vendor in text, text
    assert staged(tmp_path) == before, "records of the malformed run were staged"
    assert watermarks(tmp_path, vendor) == marks, "a watermark moved"

    run_inbox(vendor, tmp_path, "run-3", persons)
    ids = {r["message_id"] for r in staged(tmp_path).values()}
    assert ids == truth_ids(sandbox, vendor), "the clean run after the malformed one is incomplete"


# ---- vendors that loop: cursors that come back, pages that bring (almost) nothing new ----------------------
LK_READ = {"kind": "corrupt", "vendor": "linkup", "route": "POST /messages", "action": "get_conversation"}
LOOP_CASES = [
    # (no ConnectSafely cursor loop here: a ConnectSafely read is one ``since`` answer and never follows a
    # cursor; paginate's own test keeps the repeated-cursor guard: tests/unit/test_pagination.py)
    pytest.param(
        "linkup",
        [
            {**LK_READ, "field": "data.next_cursor", "value": "9999999999999", "fresh": True, "times": 60},
            {**LK_READ, "field": "data.messages.0.entity_urn", "value": "urn:li:msg_message:fake-", "fresh": True,
             "times": 60},
        ],
        "new id",
        {"page_size": 2},
        id="lk-fresh-cursor-one-new-id-a-page",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("vendor", "rules", "reason", "kwargs"), LOOP_CASES)
def test_a_vendor_that_loops_is_a_typed_error_within_a_few_pages(
    sandbox, tmp_path, vendor, rules, reason, kwargs
):
    """A repeated cursor is no end of the list, and pages that add one id each are no progress."""
    run_inbox(vendor, tmp_path, "run-1", page_size=1)
    sandbox.advance(seconds=60, **NEWS[vendor])
    before, marks = staged(tmp_path), watermarks(tmp_path, vendor)
    counted = sandbox.stats().get("faults", {}).get(f"{vendor} corrupt", 0)  # the module's sandbox so far
    sandbox.set_faults(rules)
    with pytest.raises(LinkMsgError, match=reason) as info:
        run_inbox(vendor, tmp_path, "run-2", **kwargs)
    served = sandbox.stats().get("faults", {}).get(f"{vendor} corrupt", 0) - counted
    sandbox.set_faults([])
    reads = str(info.value).count(reason)  # one per conversation whose read looped
    assert reads and served <= len(rules) * 6 * reads, (
        f"{served} corrupted answers for {reads} looping read(s)"
    )
    assert staged(tmp_path) == before, "records of the looping read were staged"
    assert watermarks(tmp_path, vendor) == marks, "a watermark moved"
    run_inbox(vendor, tmp_path, "run-3")
    ids = {r["message_id"] for r in staged(tmp_path).values()}
    assert ids == truth_ids(sandbox, vendor), "the clean run after the looping one is incomplete"


def test_a_looping_linkup_conversation_stops_within_five_pages(sandbox):
    """The hook itself: one conversation read with fresh cursors and one fresh id a page."""
    account = sandbox.truth("linkup")["accounts"][0]["id"]
    urn = sandbox.truth("linkup")["conversations"][0]["conversation_id"]
    sandbox.set_faults(next(c for c in LOOP_CASES if c.id == "lk-fresh-cursor-one-new-id-a-page").values[1])
    pages = []
    with pytest.raises(LinkMsgResponseError, match="new id"):
        for page in LinkupHook().iter_conversation_pages(account, conversation_id=urn, count=2):
            pages.append(page)
    assert len(pages) == 4, f"{len(pages)} pages yielded before the guard stopped the loop"


def test_an_iso_sent_at_is_read_the_same_way_by_the_schema_and_the_since_filter(sandbox):
    """ConnectSafely: ISO-8601 ``sentAt`` (allowed by the schema) must not crash the ``since`` filter."""
    urn = sandbox.truth("connectsafely")["conversations"][0]["conversation_id"]
    rule = {"kind": "corrupt", "vendor": "connectsafely", "route": CS_READ, "field": "messages.*.sentAt"}
    held = len(list(ConnectSafelyHook().iter_messages(urn)))
    sandbox.set_faults([{**rule, "value": "2026-01-01T10:00:00Z"}])
    assert len(list(ConnectSafelyHook().iter_messages(urn, since=1000))) == held  # all after 1970-01-01
    sandbox.set_faults([{**rule, "value": "10 o'clock"}])
    with pytest.raises(LinkMsgResponseError) as info:
        list(ConnectSafelyHook().iter_messages(urn, since=1767225600000))
    assert info.value.field == "messages.0.sentAt"


# ---- Koneksi ----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def _generation(_sandbox, tmp_path_factory):
    """One finished generation of the sandbox's leads (its id and how many messages it holds)."""
    env = dict(_sandbox.env())
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        campaign = make_campaign(_sandbox)
        leads = _sandbox.truth("koneksi")["leads"]
        root = tmp_path_factory.mktemp("koneksi-request")
        request_id = KoneksiRequestMessageGenerationOperator(
            task_id="request", campaign=campaign, leads=leads, staging_path=str(root)
        ).execute(context("request"))
        hook, deadline = KoneksiHook(), time.monotonic() + 30
        while not hook.retrieve_messages(request_id).complete:
            assert time.monotonic() < deadline, "the sandbox generation did not finish in 30 s"
            time.sleep(0.05)
        return request_id, len(leads) * len(campaign["message_sequence"])
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


KONEKSI_CASES = [
    case("koneksi", KN_RETRIEVE, "campaign", [], id="kn-campaign-a-list"),
    case("koneksi", KN_RETRIEVE, "metadata.generated_message_count", "1", id="kn-generated-count-text"),
    case("koneksi", KN_RETRIEVE, "metadata.requested_message_count", 2.5, id="kn-requested-count-fraction"),
    case("koneksi", KN_RETRIEVE, "campaign.leads_data", "leads", id="kn-leads-a-string"),
    case("koneksi", KN_RETRIEVE, "campaign.leads_data.0", ["lead"], id="kn-lead-a-list"),
    case("koneksi", KN_RETRIEVE, "campaign.message_sequence.0.step", "1", id="kn-step-text"),
    case("koneksi", KN_RETRIEVE, "campaign.message_sequence", {"step": 1}, id="kn-steps-an-object"),
    case("koneksi", KN_RETRIEVE, "campaign.leads_data.0.outreach_message", {"x": 1}, path="campaign.leads_data.0", id="kn-message-an-object"),
    case("koneksi", KN_RETRIEVE, "campaign.leads_data.0.external_prospect_id", None, id="kn-lead-id-null"),
    case("koneksi", KN_RETRIEVE, "campaign.leads_data", [], path="(body)", id="kn-no-leads-for-generated-messages"),
]  # fmt: skip


@pytest.mark.parametrize(("vendor", "rule", "path"), KONEKSI_CASES)
def test_a_malformed_koneksi_answer_stages_nothing(sandbox, _generation, tmp_path, vendor, rule, path):
    request_id, expected = _generation

    def retrieve(run_id: str) -> dict[str, Any]:
        op = KoneksiRetrieveMessagesOperator(
            task_id="retrieve", secure_request_id=request_id, staging_path=str(tmp_path)
        )
        return op.execute(context(run_id))

    sandbox.set_faults([rule])
    with pytest.raises(LinkMsgResponseError) as info:
        retrieve("run-1")
    sandbox.set_faults([])
    assert info.value.field == path, str(info.value)
    assert "koneksi" in str(info.value) and KN_RETRIEVE.split(" ")[1] in str(info.value)
    assert staged(tmp_path) == {}, "records of the malformed answer were staged"

    result = retrieve("run-2")
    assert result["records"] == len(staged(tmp_path)) == expected


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        ("metadata.generated_message_count", 1000, "(body)"),
        ("campaign.leads_data.1.external_prospect_id", "__FIRST__", "campaign.leads_data"),
    ],
    ids=["kn-generated-1000-for-4", "kn-lead-id-twice"],
)
def test_a_koneksi_answer_that_does_not_add_up_stages_nothing(
    sandbox, _generation, tmp_path, field, value, path
):
    """Two leads with one id (compared as text), or a generated count that the messages do not match."""
    request_id, expected = _generation
    first = str(sandbox.truth("koneksi")["leads"][0]["external_prospect_id"])
    if value == "__FIRST__":
        value = first
    sandbox.set_faults(
        [{"kind": "corrupt", "vendor": "koneksi", "route": KN_RETRIEVE, "field": field, "value": value}]
    )
    op = KoneksiRetrieveMessagesOperator(
        task_id="retrieve", secure_request_id=request_id, staging_path=str(tmp_path)
    )
    with pytest.raises(LinkMsgResponseError) as info:
        op.execute(context("run-1"))
    sandbox.set_faults([])
    assert info.value.field == path, str(info.value)
    assert staged(tmp_path) == {}, "records of the malformed answer were staged"
    assert op.execute(context("run-2"))["records"] == len(staged(tmp_path)) == expected


def test_lead_ids_are_compared_as_text():
    from airflow_provider_linkmsg.schemas import koneksi as schema
    from airflow_provider_linkmsg.schemas import parse

    leads = [{"external_prospect_id": 7}, {"external_prospect_id": "7"}]
    with pytest.raises(LinkMsgResponseError, match="'7' appears twice") as info:
        parse(schema.Campaign, {"leads_data": leads}, vendor="koneksi", route=KN_RETRIEVE, prefix="campaign")
    assert info.value.field == "campaign.leads_data"


def test_the_suite_has_at_least_thirty_cases_across_the_four_vendors():
    vendors = {p.values[0] for p in INBOX_CASES + KONEKSI_CASES}
    assert len(INBOX_CASES) + len(KONEKSI_CASES) >= 30
    assert vendors == {"connectsafely", "linkup", "linkedapi", "koneksi"}
