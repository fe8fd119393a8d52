"""Koneksi pieces that need no server: parsing, validation, leads files, webhook checks, events."""

from __future__ import annotations

import calendar
import copy
import inspect
import json
import time

import pytest
from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    conf,
)

from airflow_provider_linkmsg.exceptions import LinkMsgAuthError, LinkMsgValidationError
from airflow_provider_linkmsg.hooks.koneksi import (
    KoneksiGenerationResult,
    message_field,
    validate_generation_request,
    validate_secure_request_id,
)
from airflow_provider_linkmsg.operators.koneksi import (
    KoneksiRequestMessageGenerationOperator,
    KoneksiRetrieveMessagesOperator,
    load_leads,
)
from airflow_provider_linkmsg.sandbox.koneksi import SEED_001_BODY, SEED_001_ID
from airflow_provider_linkmsg.sensors.koneksi import KoneksiGenerationSensor
from airflow_provider_linkmsg.triggers.koneksi import KoneksiGenerationTrigger
from airflow_provider_linkmsg.webhooks import (
    MemorySeenStore,
    WebhookVerificationError,
    sign_koneksi_payload,
    verify_koneksi_webhook,
)

REQUEST_ID = "a8bd1fec-94dd-4d6a-b54d-2109994748ac"


def complete_body(**metadata) -> dict:
    body = copy.deepcopy(SEED_001_BODY)
    body["metadata"].update(
        {
            "request_message_generation_api_request_secure_request_id": REQUEST_ID,
            "generation_status": "complete",
            "status_message": "Message generation is complete.",
            "generated_message_count": 3,
            "failed_messages_count": 1,
            "failed_messages_reason": "relevant research information not found",
            "requested_message_count": 4,
            **metadata,
        }
    )
    body["campaign"]["leads_data"][0]["first_follow_up_message"] = "Thanks John!"
    body["campaign"]["leads_data"][1].update(outreach_message="Hi Jane", no_job_posts=True)
    return body


# ---- retrieve results ---------------------------------------------------------------------------------------
def test_the_documented_202_example_is_in_progress_with_pending_messages():
    result = KoneksiGenerationResult.from_response(SEED_001_ID, 202, SEED_001_BODY)
    assert not result.complete and result.failed is None and result.progress() == "generated 3 of 10"
    records = list(result.messages(retrieved_at="2026-01-01T00:00:00.000000Z"))
    assert [(r.lead_id, r.message_type, r.step, r.status) for r in records] == [
        ("lead_001", "connection_request", 1, "generated"),
        ("lead_001", "first_follow_up", 2, "pending"),
        ("lead_002", "connection_request", 1, "pending"),
        ("lead_002", "first_follow_up", 2, "pending"),
    ]
    assert records[0].customer_id == "customer_12345" and records[0].campaign_id == "campaign_67890"
    assert all(r.notice is None for r in records)  # the in-progress placeholder is not a failure reason


def test_a_202_is_never_complete_whatever_its_body_says():
    assert not KoneksiGenerationResult.from_response(REQUEST_ID, 202, complete_body()).complete
    assert not KoneksiGenerationResult.from_response(REQUEST_ID, 200, SEED_001_BODY).complete
    assert KoneksiGenerationResult.from_response(REQUEST_ID, 200, complete_body()).complete


def test_a_complete_result_marks_empty_fields_failed_with_the_notice():
    result = KoneksiGenerationResult.from_response(REQUEST_ID, 200, complete_body())
    records = {(r.lead_id, r.message_type): r for r in result.messages()}
    failed = records["lead_002", "first_follow_up"]
    assert failed.status == "failed" and failed.text is None and failed.notice == "no_job_posts"
    assert records["lead_002", "connection_request"].notice == "no_job_posts"  # a per-lead notice
    assert records["lead_001", "first_follow_up"].status == "generated"
    assert result.summary() == {
        "secure_request_id": REQUEST_ID,
        "generation_status": "complete",
        "requested": 4,
        "generated": 3,
        "failed": 1,
        "failed_share": 0.25,
    }


def test_the_plural_count_spellings_of_the_older_pages_are_read():
    body = complete_body()
    meta = body["metadata"]
    meta["requested_messages_count"] = meta.pop("requested_message_count")
    meta["generated_messages_count"] = meta.pop("generated_message_count")
    result = KoneksiGenerationResult.from_response(REQUEST_ID, 200, body)
    assert (result.requested, result.generated) == (4, 3)


def test_message_types_map_to_fields_and_unknown_types_are_kept():
    assert message_field("connection_request") == "outreach_message"
    assert message_field("first_follow_up") == "first_follow_up_message"
    assert message_field("hiring_activity") == "hiring_activity_message"
    body = complete_body()
    body["campaign"]["message_sequence"].append({"step": 3, "messageType": "re-engagement"})
    lead = body["campaign"]["leads_data"][0]
    lead["re_engagement_message"] = "Back again, John"  # the vendor's field spelling may drop the hyphen
    lead["breakup_message"] = "Last note, John"  # a type the echoed sequence does not even list
    body["metadata"]["generated_message_count"] += 2  # a complete answer holds what it reports
    result = KoneksiGenerationResult.from_response(REQUEST_ID, 200, body)
    records = {(r.lead_id, r.message_type): r for r in result.messages()}
    assert records["lead_001", "re-engagement"].text == "Back again, John"
    assert records["lead_001", "re-engagement"].step == 3
    assert (records["lead_001", "breakup"].text, records["lead_001", "breakup"].step) == (
        "Last note, John",
        0,
    )
    assert records["lead_002", "re-engagement"].status == "failed"


def test_a_body_without_metadata_is_a_response_error():
    with pytest.raises(Exception, match="without a metadata object"):
        KoneksiGenerationResult.from_response(REQUEST_ID, 200, {"error": "?"})


# ---- local validation ---------------------------------------------------------------------------------------
def valid_payload() -> dict:
    return {
        "completion_notification_url": "https://hooks.example.com/koneksi",
        "automation_tool_customer_id": "c1",
        "automation_tool_campaign_id": "k1",
        "automation_tool_campaign_name": "Campaign",
        "proposition_company_name": "Linkmsg",
        "proposition_company_url": "https://linkmsg.example.com",
        "message_sequence": [
            {"step": 1, "messageType": "connection_request"},
            {"step": 2, "messageType": "share_material"},
        ],
        "material_link": "https://linkmsg.example.com/deck.pdf",
        "lead_data": [
            {
                "external_prospect_id": "l1",
                "first_name": "Ada",
                "lead_company": "Acme",
                "linkedin": "https://x/in/a",
            }
        ],
    }


def test_a_valid_payload_passes_and_every_problem_is_listed():
    validate_generation_request(valid_payload())
    bad = valid_payload() | {"automation_tool_campaign_id": "", "material_link": None}
    bad["lead_data"] = [{"external_prospect_id": "l1"}]
    with pytest.raises(LinkMsgValidationError) as info:
        validate_generation_request(bad)
    assert info.value.field == "automation_tool_campaign_id"
    assert info.value.fields == [
        "automation_tool_campaign_id",
        "material_link",
        "lead_data[0].first_name",
        "lead_data[0].lead_company",
        "lead_data[0].linkedin",
    ]
    with pytest.raises(LinkMsgValidationError, match="must be a JSON object"):
        validate_generation_request(["not", "a", "dict"])


def test_announced_types_are_accepted_only_when_asked_for():
    payload = valid_payload()
    payload["message_sequence"].append({"step": 3, "messageType": "stage_ambition"})
    with pytest.raises(LinkMsgValidationError, match="stage_ambition"):
        validate_generation_request(payload)
    validate_generation_request(payload, extra_message_types=["stage_ambition"])


@pytest.mark.parametrize("value", [REQUEST_ID, REQUEST_ID.upper(), f" {REQUEST_ID} "])
def test_uuid4_request_ids_are_accepted(value):
    assert validate_secure_request_id(value) == value.strip()


# ---- leads -------------------------------------------------------------------------------------------------
LEADS = [
    {"external_prospect_id": "l1", "first_name": "Ada", "lead_company": "Acme", "linkedin": "https://x/in/a"},
    {
        "external_prospect_id": "l2",
        "first_name": "Bo",
        "lead_company": "Globex",
        "linkedin": "https://x/in/b",
    },
]


def test_leads_come_from_lists_json_text_and_rendered_xcom():
    assert load_leads(LEADS) == LEADS
    assert load_leads(json.dumps(LEADS)) == LEADS
    assert load_leads(repr(LEADS)) == LEADS  # an XCom list rendered by a non-native Jinja template
    assert load_leads({"lead_data": LEADS}) == LEADS


def test_leads_come_from_json_jsonl_and_csv_files(tmp_path):
    (tmp_path / "leads.json").write_text(json.dumps({"leads": LEADS}))
    (tmp_path / "leads.jsonl").write_text("\n".join(json.dumps(lead) for lead in LEADS) + "\n")
    (tmp_path / "leads.csv").write_text(
        "\ufeffexternal_prospect_id,first_name,lead_company,linkedin,lead_specified_url\n"
        "l1,Ada,Acme,https://x/in/a,\nl2,Bo,Globex,https://x/in/b,\n"
    )
    for name in ("leads.json", "leads.jsonl", "leads.csv"):
        assert load_leads(str(tmp_path / name)) == LEADS, name


def test_missing_or_wrong_leads_name_the_field(tmp_path):
    with pytest.raises(LinkMsgValidationError, match="does not exist") as info:
        load_leads(str(tmp_path / "nope.csv"))
    assert info.value.field == "lead_data"
    with pytest.raises(LinkMsgValidationError, match="list of lead objects"):
        load_leads(42)


def test_the_repository_leads_fixture_is_a_valid_campaign():
    from pathlib import Path

    leads = load_leads(str(Path(__file__).parents[2] / "example_dags" / "data" / "koneksi_leads.json"))
    validate_generation_request(valid_payload() | {"lead_data": leads})
    assert len(leads) >= 3


# ---- webhook verification --------------------------------------------------------------------------------
SECRET = "kon-whsec-0123456789"


def delivery(**fields) -> bytes:
    payload = {
        "secure_request_id": REQUEST_ID,
        "status": "complete",
        "completed_at": "2026-03-01T10:00:00.000000Z",
        "requested_messages_count": 10,
        "generated_messages_count": 9,
        "webhook_triggered_at": "2026-03-01T10:00:01.000000Z",
        **fields,
    }
    return json.dumps(payload).encode()


def test_a_correctly_signed_delivery_is_accepted_once():
    body, seen = delivery(), MemorySeenStore()
    payload = verify_koneksi_webhook(
        body, sign_koneksi_payload(body, SECRET), SECRET, seen_store=seen, max_age=None
    )
    assert payload["secure_request_id"] == REQUEST_ID
    with pytest.raises(WebhookVerificationError) as info:
        verify_koneksi_webhook(
            body, sign_koneksi_payload(body, SECRET), SECRET, seen_store=seen, max_age=None
        )
    assert info.value.reason == "replay" and isinstance(info.value, LinkMsgAuthError)
    # a different delivery of the same generation is not a replay
    other = delivery(webhook_triggered_at="2026-03-01T10:05:00.000000Z")
    verify_koneksi_webhook(
        other, "sha256=" + sign_koneksi_payload(other, SECRET), SECRET, seen_store=seen, max_age=None
    )


@pytest.mark.parametrize(
    ("signature", "reason"),
    [
        (None, "missing_signature"),
        ("", "missing_signature"),
        (sign_koneksi_payload(delivery(), "another-secret-000"), "bad_signature"),
        (sign_koneksi_payload(delivery(status="failed"), SECRET), "bad_signature"),  # the body was changed
        ("zz", "bad_signature"),
    ],
)
def test_wrong_or_missing_signatures_are_refused(signature, reason):
    seen = MemorySeenStore()
    with pytest.raises(WebhookVerificationError) as info:
        verify_koneksi_webhook(delivery(), signature, SECRET, seen_store=seen)
    assert info.value.reason == reason
    assert len(seen) == 0  # nothing is remembered from an unsigned delivery
    assert SECRET not in str(info.value)


def test_old_future_and_malformed_deliveries_are_refused():
    sent = calendar.timegm(time.strptime("2026-03-01T10:00:01", "%Y-%m-%dT%H:%M:%S"))
    body = delivery()
    signature = sign_koneksi_payload(body, SECRET)
    assert verify_koneksi_webhook(body, signature, SECRET, max_age=60, now=sent + 30)
    for now in (sent + 61, sent - 3600):
        with pytest.raises(WebhookVerificationError) as info:
            verify_koneksi_webhook(body, signature, SECRET, max_age=60, now=now)
        assert info.value.reason == "too_old"
    junk = b"not json"
    with pytest.raises(WebhookVerificationError) as info:
        verify_koneksi_webhook(junk, sign_koneksi_payload(junk, SECRET), SECRET)
    assert info.value.reason == "malformed"
    with pytest.raises(WebhookVerificationError, match="no webhook secret"):
        verify_koneksi_webhook(body, signature, "")


def test_the_seen_store_forgets_after_its_ttl_and_stays_bounded():
    seen = MemorySeenStore(ttl=0.05, max_entries=2)
    assert seen.add("a") and not seen.add("a")
    time.sleep(0.06)
    assert seen.add("a")
    seen.add("b")
    seen.add("c")
    assert len(seen) == 2


# ---- trigger and sensor events -----------------------------------------------------------------------------
def test_the_trigger_serializes_to_plain_json_and_back():
    trigger = KoneksiGenerationTrigger(
        secure_request_id=REQUEST_ID,
        deadline=1_800_000_000.5,
        koneksi_conn_id="k",
        poll_interval=30,
        started_at=1.0,
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_linkmsg.triggers.koneksi.KoneksiGenerationTrigger"
    assert (
        kwargs
        == json.loads(json.dumps(kwargs))
        == {
            "secure_request_id": REQUEST_ID,
            "deadline": 1_800_000_000.5,
            "koneksi_conn_id": "k",
            "poll_interval": 30.0,
            "started_at": 1.0,
        }
    )
    assert KoneksiGenerationTrigger(**kwargs).serialize() == (classpath, kwargs)


SUMMARY = {
    "secure_request_id": REQUEST_ID,
    "generation_status": "in_progress",
    "requested": 10,
    "generated": 4,
    "failed": None,
    "failed_share": 0.0,
}


def sensor(**kwargs) -> KoneksiGenerationSensor:
    return KoneksiGenerationSensor(task_id="wait", secure_request_id=REQUEST_ID, deferrable=True, **kwargs)


def test_execute_complete_checks_the_event():
    done = {**SUMMARY, "generation_status": "complete", "generated": 9, "failed": 1, "failed_share": 0.1}
    assert sensor().execute_complete({}, {"status": "success", "summary": done}) == {**done, "partial": False}
    message = f"Koneksi generation {REQUEST_ID} still in_progress after 61.0 minutes, generated 4 of 10"
    with pytest.raises(AirflowSensorTimeout, match="generated 4 of 10"):
        sensor().execute_complete({}, {"status": "timeout", "message": message, "summary": SUMMARY})
    partial = sensor(accept_partial_on_timeout=True).execute_complete(
        {}, {"status": "timeout", "message": message, "summary": SUMMARY}
    )
    assert partial == {**SUMMARY, "partial": True}
    with pytest.raises(AirflowFailException, match="Not found"):
        sensor().execute_complete(
            {}, {"status": "error", "message": "koneksi GET ... -> HTTP 404: Not found"}
        )
    for event in (None, {"status": "cancelled"}, {"status": "success"}):
        with pytest.raises(AirflowException, match="unexpected trigger event"):
            sensor().execute_complete({}, event)


def test_operators_keep_templated_arguments_as_given_and_do_no_io_at_construction():
    leads = "{{ ti.xcom_pull('load_leads') }}"
    request = KoneksiRequestMessageGenerationOperator(
        task_id="request", campaign="{{ params.campaign }}", leads=leads, max_messages="{{ params.max }}"
    )
    assert (request.campaign, request.leads, request.max_messages) == (
        "{{ params.campaign }}",
        leads,
        "{{ params.max }}",
    )
    assert set(request.template_fields) >= {"campaign", "leads", "max_messages", "koneksi_conn_id"}
    retrieve = KoneksiRetrieveMessagesOperator(
        task_id="retrieve", secure_request_id="{{ ti.xcom_pull('request') }}"
    )
    assert "secure_request_id" in retrieve.template_fields
    wait = KoneksiGenerationSensor(task_id="wait", secure_request_id="{{ ti.xcom_pull('request') }}")
    assert "secure_request_id" in wait.template_fields and wait.secure_request_id.startswith("{{")
    default = inspect.signature(KoneksiGenerationSensor.__init__).parameters["deferrable"].default
    assert default is conf.getboolean("operators", "default_deferrable", fallback=False)
