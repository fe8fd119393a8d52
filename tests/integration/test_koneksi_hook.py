"""KoneksiHook and the Koneksi operators over real HTTP against the sandbox (contract part 1, §1.8)."""

from __future__ import annotations

import copy
import json
import time

import pytest
import requests

from airflow_provider_linkmsg.exceptions import (
    LinkMsgAuthError,
    LinkMsgBudgetExceededError,
    LinkMsgNotFoundError,
    LinkMsgValidationError,
)
from airflow_provider_linkmsg.hooks.koneksi import KoneksiGenerationInProgressError, KoneksiHook
from airflow_provider_linkmsg.io.staging import iter_records
from airflow_provider_linkmsg.operators.koneksi import (
    KoneksiRequestMessageGenerationOperator,
    KoneksiRetrieveMessagesOperator,
)
from airflow_provider_linkmsg.sandbox.koneksi import SEED_001_BODY, SEED_001_ID
from airflow_provider_linkmsg.webhooks import WebhookVerificationError
from tests.fixtures.koneksi import (
    GENERATE,
    koneksi_calls,
    koneksi_counter,
    make_campaign,
    make_payload,
    record_tuples,
    set_koneksi_conn,
    truth_messages,
)


def wait_complete(hook: KoneksiHook, request_id: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        result = hook.retrieve_messages(request_id)
        if result.complete or time.monotonic() > deadline:
            return result
        time.sleep(0.05)


class FakeTI:
    """Just what ``task_run_id`` reads from a task instance, for operators run outside a DAG run."""

    dag_id, task_id, run_id, map_index = "koneksi_direct", "task", "manual__1", -1


def direct_context() -> dict:
    return {"ti": FakeTI(), "run_id": FakeTI.run_id}


# ---- the happy path ---------------------------------------------------------------------------------------
def test_request_poll_and_retrieve_match_the_ground_truth(koneksi_sandbox):
    sandbox = koneksi_sandbox
    hook = KoneksiHook()
    request_id = hook.request_message_generation(make_payload(sandbox))
    result = wait_complete(hook, request_id)
    assert result.complete and result.http_status == 200
    truth = sandbox.truth("koneksi")["requests"][request_id]
    assert (result.requested, result.generated, result.failed) == (12, truth["generated"], truth["failed"])
    assert truth["generated"] > 0 and truth["failed"] > 0
    records = list(result.messages())
    assert record_tuples(records) == truth_messages(sandbox, request_id)
    assert {r.key for r in records} == {f"koneksi:{request_id}:{r.lead_id}:{r.message_type}" for r in records}
    failed = [r for r in records if r.status == "failed"]
    assert all(r.notice == "relevant research information not found" for r in failed)
    # failed messages are not charged
    assert sandbox.stats()["credits"]["koneksi"] == truth["generated"]


def test_partial_results_are_never_taken_for_complete_ones(sandbox_factory):
    sandbox = sandbox_factory(seed=3, sizes={"koneksi": {"polls_until_complete": 4, "failure_share": 0.0}})
    hook = KoneksiHook()
    request_id = hook.request_message_generation(make_payload(sandbox))
    first = hook.retrieve_messages(request_id)
    second = hook.retrieve_messages(request_id)
    for partial in (first, second):
        assert partial.http_status == 202 and not partial.complete and partial.failed is None
        statuses = {r.status for r in partial.messages()}
        assert "failed" not in statuses and "pending" in statuses
    assert 0 < second.generated < second.requested
    with pytest.raises(KoneksiGenerationInProgressError, match="still in progress"):
        list(hook.iter_generated_messages(request_id))  # the third poll, still a 202
    final = hook.retrieve_messages(request_id)
    assert final.complete
    assert record_tuples(final.messages()) == truth_messages(sandbox, request_id)


def test_generation_speed_is_configurable_and_time_can_be_advanced(sandbox_factory):
    sandbox = sandbox_factory(seed=3, sizes={"koneksi": {"seconds_per_message": 600}})
    hook = KoneksiHook()
    request_id = hook.request_message_generation(make_payload(sandbox))
    assert not hook.retrieve_messages(request_id).complete
    sandbox.advance(seconds=600 * 5)  # five messages' worth
    partial = hook.retrieve_messages(request_id)
    assert not partial.complete and partial.generated == sum(
        1
        for m in sandbox.truth("koneksi")["requests"][request_id]["messages"][:5]
        if m["status"] == "generated"
    )
    assert sandbox.advance(seconds=600 * 7)["koneksi"] == {"completed": [request_id]}
    assert hook.retrieve_messages(request_id).complete


def test_seed_001_documented_example_is_served_verbatim_and_read_as_in_progress(shared_koneksi_sandbox):
    result = KoneksiHook().retrieve_messages(SEED_001_ID)
    assert not result.complete and result.http_status == 202
    assert (result.requested, result.generated, result.failed) == (10, 3, None)
    assert result.retrieve_id == SEED_001_BODY["metadata"]["retrieve_messages_api_request_secure_request_id"]
    records = {(r.lead_id, r.message_type): r for r in result.messages()}
    assert records["lead_001", "connection_request"].text == "Hi John, I noticed your work at Acme Corp..."
    assert records["lead_001", "first_follow_up"].status == "pending"
    assert records["lead_002", "connection_request"].status == "pending"


# ---- de-duplication and credits ---------------------------------------------------------------------------
def test_an_identical_request_returns_the_same_id_without_a_second_generation(koneksi_sandbox):
    hook = KoneksiHook()
    payload = make_payload(koneksi_sandbox)
    first = hook.request_message_generation(payload)
    assert hook.request_message_generation(copy.deepcopy(payload)) == first
    assert koneksi_counter(koneksi_sandbox, "generations") == 1
    assert koneksi_counter(koneksi_sandbox, "duplicate_requests") == 1


def test_a_lead_and_type_pair_is_not_generated_or_charged_twice(koneksi_sandbox):
    sandbox = koneksi_sandbox
    hook = KoneksiHook()
    leads = sandbox.truth("koneksi")["leads"]
    first = hook.request_message_generation(make_payload(sandbox, lead_data=leads[:3]))
    wait_complete(hook, first)
    spent = sandbox.stats().get("credits", {}).get("koneksi", 0)
    # a second campaign (different name) with one old lead and one new one
    second = hook.request_message_generation(
        make_payload(sandbox, automation_tool_campaign_name="Campaign 2", lead_data=[leads[0], leads[3]])
    )
    assert second != first
    wait_complete(hook, second)
    old = {m for m in truth_messages(sandbox, first) if m[0] == leads[0]["external_prospect_id"]}
    assert old <= truth_messages(sandbox, second)  # the old lead's messages come back unchanged
    new_generated = sum(
        1
        for m in truth_messages(sandbox, second)
        if m[0] == leads[3]["external_prospect_id"] and m[3] == "generated"
    )
    assert sandbox.stats()["credits"]["koneksi"] == spent + new_generated


def test_short_credits_give_402_at_once(sandbox_factory):
    sandbox = sandbox_factory(seed=3, sizes={"koneksi": {"credits": 5}})
    with pytest.raises(LinkMsgBudgetExceededError, match="Not enough credits remaining") as info:
        KoneksiHook().request_message_generation(make_payload(sandbox))
    assert info.value.status == 402
    assert koneksi_calls(sandbox) == 1 and koneksi_counter(sandbox, "generations") == 0


# ---- auth -------------------------------------------------------------------------------------------------
def test_a_wrong_key_fails_at_once_without_retries(koneksi_sandbox, monkeypatch):
    set_koneksi_conn(monkeypatch, koneksi_sandbox, password="not-the-key-123456")
    hook = KoneksiHook()
    with pytest.raises(LinkMsgAuthError, match="Invalid API key") as info:
        hook.request_message_generation(make_payload(koneksi_sandbox))
    assert info.value.status == 401 and hook.retries == 0
    assert koneksi_calls(koneksi_sandbox) == 1
    assert "not-the-key-123456" not in str(info.value)


def test_a_revoked_key_is_reported_as_revoked(sandbox_factory):
    sandbox = sandbox_factory(seed=3, sizes={"koneksi": {"revoked_keys": ["kon-sandbox-3-key"]}})
    with pytest.raises(LinkMsgAuthError, match="API key has been revoked"):
        KoneksiHook().retrieve_messages(SEED_001_ID)
    assert koneksi_calls(sandbox) == 1


def test_legacy_auth_style_uses_the_start_and_get_keys(koneksi_sandbox, monkeypatch):
    set_koneksi_conn(monkeypatch, koneksi_sandbox, auth_style="legacy")
    hook = KoneksiHook()
    request_id = hook.request_message_generation(make_payload(koneksi_sandbox))
    assert wait_complete(hook, request_id).complete
    assert hook.test_connection() == (
        True,
        "Connection to Koneksi / Upscale Outreach succeeded: legacy keys accepted",
    )
    # the start key is not a get key
    set_koneksi_conn(
        monkeypatch, koneksi_sandbox, auth_style="legacy", get_messages_api_key="kon-sandbox-3-key"
    )
    with pytest.raises(LinkMsgAuthError):
        KoneksiHook().retrieve_messages(request_id)


def test_another_accounts_generation_and_an_unknown_id_are_not_found(koneksi_sandbox, monkeypatch):
    request_id = KoneksiHook().request_message_generation(make_payload(koneksi_sandbox))
    with pytest.raises(LinkMsgNotFoundError):
        KoneksiHook().retrieve_messages("3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f")
    set_koneksi_conn(monkeypatch, koneksi_sandbox, password="kon-sandbox-3-other")
    with pytest.raises(LinkMsgNotFoundError, match="Not found"):
        KoneksiHook().retrieve_messages(request_id)


# ---- validation: local first, and the sandbox's own 422 ----------------------------------------------------
def _without(payload: dict, key: str) -> dict:
    return {k: v for k, v in payload.items() if k != key}


def _lead_change(payload: dict, index: int, **changes) -> dict:
    leads = [dict(lead) for lead in payload["lead_data"]]
    leads[index].update(changes)
    return {**payload, "lead_data": leads}


BAD_REQUESTS = {
    "empty leads": (lambda p: {**p, "lead_data": []}, "lead_data"),
    "leads not a list": (lambda p: {**p, "lead_data": "lead_001"}, "lead_data"),
    "non-http URL": (
        lambda p: {**p, "proposition_company_url": "ftp://linkmsg.example.com"},
        "proposition_company_url",
    ),
    "URL without host": (
        lambda p: {**p, "completion_notification_url": "https://"},
        "completion_notification_url",
    ),
    "step 0": (
        lambda p: {**p, "message_sequence": [{"step": 0, "messageType": "connection_request"}]},
        "message_sequence[0].step",
    ),
    "step not an int": (
        lambda p: {**p, "message_sequence": [{"step": "1", "messageType": "connection_request"}]},
        "message_sequence[0].step",
    ),
    "steps with a gap": (
        lambda p: {
            **p,
            "message_sequence": [
                {"step": 1, "messageType": "connection_request"},
                {"step": 3, "messageType": "first_follow_up"},
            ],
        },
        "message_sequence",
    ),
    "unknown type": (
        lambda p: {**p, "message_sequence": [{"step": 1, "messageType": "cold_call"}]},
        "message_sequence[0].messageType",
    ),
    "sequence not a list": (lambda p: {**p, "message_sequence": {"step": 1}}, "message_sequence"),
    "share_material without material_link": (
        lambda p: {**p, "message_sequence": [{"step": 1, "messageType": "share_material"}]},
        "material_link",
    ),
    "hiring_activity without hiring_location": (
        lambda p: {**p, "message_sequence": [{"step": 1, "messageType": "hiring_activity"}]},
        "hiring_location",
    ),
    "blank customer id": (
        lambda p: {**p, "automation_tool_customer_id": "  "},
        "automation_tool_customer_id",
    ),
    "missing notification URL": (
        lambda p: _without(p, "completion_notification_url"),
        "completion_notification_url",
    ),
    "lead without first_name": (lambda p: _lead_change(p, 2, first_name=""), "lead_data[2].first_name"),
    "lead without linkedin": (lambda p: _lead_change(p, 0, linkedin=None), "lead_data[0].linkedin"),
    "duplicate lead id": (
        lambda p: _lead_change(p, 1, external_prospect_id="lead_001"),
        "lead_data[1].external_prospect_id",
    ),
}


@pytest.mark.parametrize("case", BAD_REQUESTS)
def test_bad_requests_name_the_field_and_call_nothing(shared_koneksi_sandbox, case):
    change, field = BAD_REQUESTS[case]
    payload = change(make_payload(shared_koneksi_sandbox))
    with pytest.raises(LinkMsgValidationError) as info:
        KoneksiHook().request_message_generation(payload)
    assert info.value.field == field
    assert field in str(info.value) and "nothing was sent" in str(info.value)
    assert koneksi_calls(shared_koneksi_sandbox) == 0
    # and the sandbox refuses the same body on its own, with the same field named
    conn = shared_koneksi_sandbox.connections()["koneksi_default"]
    response = requests.post(
        conn["extra"]["base_url"] + "/messages/request_message_generation",
        json=payload,
        headers={"Api-Key": conn["password"]},
        timeout=10,
    )
    assert response.status_code == 422 and field in response.json()["error"]


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "550e8400-e29b-11d4-a716-446655440000", "", None])
def test_a_malformed_request_id_is_refused_locally(shared_koneksi_sandbox, bad_id):
    with pytest.raises(LinkMsgValidationError) as info:
        KoneksiHook().retrieve_messages(bad_id)
    assert info.value.field == "secure_request_id"
    assert koneksi_calls(shared_koneksi_sandbox) == 0


def test_the_sandbox_collects_every_422_problem_into_one_body(shared_koneksi_sandbox):
    conn = shared_koneksi_sandbox.connections()["koneksi_default"]
    base, headers = conn["extra"]["base_url"], {"Api-Key": conn["password"]}
    body = make_payload(
        shared_koneksi_sandbox, automation_tool_customer_id="", proposition_company_url="nope"
    )
    body["lead_data"] = [
        {**body["lead_data"][0], "first_name": ""},
        {**body["lead_data"][1], "lead_company": None},
    ]
    response = requests.post(
        base + "/messages/request_message_generation", json=body, headers=headers, timeout=10
    )
    assert response.status_code == 422
    assert response.json() == {
        "error": "automation_tool_customer_id is required but was missing or blank "
        "proposition_company_url must be a valid HTTP or HTTPS URL "
        "lead_data[0].first_name is required but was missing or blank "
        "lead_data[1].lead_company is required but was missing or blank"
    }
    malformed = requests.get(
        base + "/messages/retrieve_messages",
        params={"request_message_generation_secure_request_id": "abc"},
        headers=headers,
        timeout=10,
    )
    assert malformed.status_code == 422
    assert malformed.json() == {"error": "request_message_generation_secure_request_id must be a valid UUID"}


def test_the_request_operator_refuses_a_generation_over_max_messages_before_calling(
    shared_koneksi_sandbox, tmp_path
):
    operator = KoneksiRequestMessageGenerationOperator(
        task_id="request",
        campaign=make_campaign(shared_koneksi_sandbox),
        leads=shared_koneksi_sandbox.truth("koneksi")["leads"],
        max_messages=11,
        staging_path=str(tmp_path),
    )
    with pytest.raises(
        LinkMsgBudgetExceededError, match=r"12 messages \(6 leads x 2 steps\), more than max_messages=11"
    ):
        operator.execute(direct_context())
    assert koneksi_calls(shared_koneksi_sandbox) == 0


# ---- operators outside a DAG run (file-based id store) -------------------------------------------------------
def test_operators_keep_the_id_in_a_file_when_there_is_no_task_state_store(koneksi_sandbox, tmp_path):
    sandbox = koneksi_sandbox
    leads_csv = tmp_path / "leads.csv"
    leads = sandbox.truth("koneksi")["leads"]
    columns = list(leads[0])
    leads_csv.write_text(
        ",".join(columns) + "\n" + "\n".join(",".join(lead[c] for c in columns) for lead in leads) + "\n"
    )
    kwargs = {"task_id": "request", "campaign": make_campaign(sandbox), "staging_path": str(tmp_path)}
    request_id = KoneksiRequestMessageGenerationOperator(leads=str(leads_csv), **kwargs).execute(
        direct_context()
    )
    (state_file,) = (tmp_path / "_state" / "koneksi" / "requests").glob("*.json")
    assert json.loads(state_file.read_text())["koneksi_secure_request_id"]["secure_request_id"] == request_id
    # a second try of the same task run reuses the id: no second POST
    again = KoneksiRequestMessageGenerationOperator(leads=str(leads_csv), **kwargs).execute(direct_context())
    assert again == request_id and koneksi_calls(sandbox, GENERATE) == 1
    wait_complete(KoneksiHook(), request_id)
    summary = KoneksiRetrieveMessagesOperator(
        task_id="retrieve", secure_request_id=request_id, staging_path=str(tmp_path)
    ).execute(direct_context())
    assert summary["records"] == 12 and summary["pending"] == 0
    assert record_tuples(iter_records(summary["manifest"])) == truth_messages(sandbox, request_id)


def test_the_retrieve_operator_refuses_partial_results_unless_allowed(sandbox_factory, tmp_path):
    sandbox = sandbox_factory(seed=3, sizes={"koneksi": {"polls_until_complete": 100}})
    request_id = KoneksiHook().request_message_generation(make_payload(sandbox))
    kwargs = {"task_id": "retrieve", "secure_request_id": request_id, "staging_path": str(tmp_path)}
    with pytest.raises(KoneksiGenerationInProgressError):
        KoneksiRetrieveMessagesOperator(**kwargs).execute(direct_context())
    assert not list(tmp_path.rglob("manifest.json"))
    summary = KoneksiRetrieveMessagesOperator(allow_partial=True, include_raw=True, **kwargs).execute(
        direct_context()
    )
    assert summary["generation_status"] == "in_progress" and summary["pending"] > 0 and summary["failed"] == 0
    records = list(iter_records(summary["manifest"]))
    assert all(r.raw and r.raw["external_prospect_id"] == r.lead_id for r in records)


# ---- the completion webhook ------------------------------------------------------------------------------
def test_the_webhook_is_signed_retried_and_verified_once(koneksi_sandbox, webhook_receiver):
    sandbox = koneksi_sandbox
    webhook_receiver.statuses = [500, 503]  # two failures, then the default 200
    hook = KoneksiHook()
    request_id = hook.request_message_generation(
        make_payload(sandbox, completion_notification_url=webhook_receiver.url)
    )
    deliveries = webhook_receiver.wait(3)
    assert len(deliveries) == 3
    assert len({d["body"] for d in deliveries}) == 1  # a retry re-sends the same delivery
    # the receiver records a delivery before it answers; the sandbox counts it once the answer is back
    deadline = time.monotonic() + 30
    while koneksi_counter(sandbox, "webhooks", "koneksi delivered") == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert koneksi_counter(sandbox, "webhooks", "koneksi delivered") == 1
    delivery = deliveries[-1]
    payload = hook.verify_webhook(delivery["body"], delivery["headers"].get("koneksi-signature"), max_age=600)
    truth = sandbox.truth("koneksi")["requests"][request_id]
    assert payload["secure_request_id"] == request_id and payload["status"] == "complete"
    assert (payload["requested_messages_count"], payload["generated_messages_count"]) == (
        12,
        truth["generated"],
    )
    with pytest.raises(WebhookVerificationError) as info:
        hook.verify_webhook(delivery["body"], delivery["headers"].get("koneksi-signature"))
    assert info.value.reason == "replay"


def test_an_account_without_a_webhook_secret_gets_no_webhook(koneksi_sandbox, monkeypatch, webhook_receiver):
    set_koneksi_conn(monkeypatch, koneksi_sandbox, password="kon-sandbox-3-other")
    hook = KoneksiHook()
    request_id = hook.request_message_generation(
        make_payload(koneksi_sandbox, completion_notification_url=webhook_receiver.url)
    )
    assert wait_complete(hook, request_id).complete
    time.sleep(0.3)
    assert webhook_receiver.deliveries == []
    assert koneksi_counter(koneksi_sandbox, "webhooks", "koneksi skipped (no secret)") == 1


def test_the_offline_sandbox_sends_no_webhook_off_this_machine(koneksi_sandbox, monkeypatch):
    """A campaign naming an outside notification URL (as the example DAG does) gets no delivery attempt."""
    set_koneksi_conn(monkeypatch, koneksi_sandbox)
    hook = KoneksiHook()
    request_id = hook.request_message_generation(
        make_payload(koneksi_sandbox, completion_notification_url="https://hooks.example.com/koneksi/done")
    )
    assert wait_complete(hook, request_id).complete
    time.sleep(0.3)
    assert koneksi_counter(koneksi_sandbox, "webhooks", "koneksi not sent (not on loopback)") == 1
    assert koneksi_counter(koneksi_sandbox, "webhooks", "koneksi attempts") == 0
