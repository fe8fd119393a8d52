"""Linked API without a server: person lists, settings, job statuses, error mapping, normalization."""

from __future__ import annotations

import json

import pytest

from airflow_provider_linkmsg.exceptions import (
    LinkMsgAuthError,
    LinkMsgBudgetExceededError,
    LinkMsgNotFoundError,
    LinkMsgValidationError,
    LinkMsgVendorError,
)
from airflow_provider_linkmsg.hooks.linkedapi import (
    JobStatus,
    LinkedApiHook,
    Person,
    SyncOutcome,
    normalize_person_url,
    parse_persons,
)
from airflow_provider_linkmsg.operators.linkedapi import (
    LinkedApiRetrieveMessagesOperator,
    LinkedApiSyncConversationsOperator,
    person_list,
)

#: a connection whose host nobody listens on: any HTTP call would fail loudly
DEAD = "http://127.0.0.1:9"


@pytest.fixture
def conn(monkeypatch):
    def set_conn(**extra):
        value = {
            "conn_type": "linkedapi",
            "password": "la-token-123456",
            "extra": {"base_url": DEAD, "identification_token": "id-token-123456", "max_retries": 0, **extra},
        }
        monkeypatch.setenv("AIRFLOW_CONN_LINKEDAPI_DEFAULT", json.dumps(value))

    set_conn()
    return set_conn


@pytest.mark.parametrize(
    ("url", "normalized"),
    [
        ("https://www.linkedin.com/in/ada", "https://www.linkedin.com/in/ada"),
        ("http://linkedin.com/in/ada/", "https://www.linkedin.com/in/ada"),
        ("www.linkedin.com/in/ada?trk=abc#x", "https://www.linkedin.com/in/ada"),
        ("https://uk.linkedin.com/in/ada", "https://www.linkedin.com/in/ada"),
        ("https://www.linkedin.com/sales/people/ACwAA1", "https://www.linkedin.com/sales/people/ACwAA1"),
        (
            "https://www.linkedin.com/sales/lead/ACwAA1,NAME_SEARCH,x",
            "https://www.linkedin.com/sales/lead/ACwAA1,NAME_SEARCH,x",
        ),
    ],
)
def test_person_urls_normalize(url, normalized):
    assert normalize_person_url(url) == normalized


@pytest.mark.parametrize(
    "url",
    [
        "",
        None,
        42,
        "https://www.linkedin.com/company/acme",
        "https://www.linkedin.com/in/",
        "https://www.linkedin.com/in/ada/details",
        "https://www.linkedin.com/sales/people/",
        "https://notlinkedin.com/in/ada",
        "https://linkedin.com.evil.io/in/ada",
        "ftp://www.linkedin.com/in/ada",
    ],
)
def test_not_a_person_url_names_the_field(url):
    with pytest.raises(LinkMsgValidationError, match="is not a LinkedIn profile URL") as err:
        normalize_person_url(url, field="persons[3]")
    assert err.value.field == "persons[3]"


def test_parse_persons_channels_and_duplicates():
    people = parse_persons(
        [
            "https://www.linkedin.com/in/ada",
            {"person": "https://www.linkedin.com/in/ada", "channel": "standard"},  # a duplicate
            {"personUrl": "https://www.linkedin.com/in/ada", "type": "nv"},  # the same person, other channel
            {"url": "https://www.linkedin.com/in/bob", "channel": "sales_navigator"},
            "https://www.linkedin.com/sales/people/X1",
            Person("https://www.linkedin.com/in/cy", "nv"),
        ]
    )
    assert [p.key for p in people] == [
        "st:https://www.linkedin.com/in/ada",
        "nv:https://www.linkedin.com/in/ada",
        "nv:https://www.linkedin.com/in/bob",
        "nv:https://www.linkedin.com/sales/people/X1",
        "nv:https://www.linkedin.com/in/cy",
    ]
    assert people[1].spec() == {"person": "https://www.linkedin.com/in/ada", "channel": "salesNavigator"}
    assert parse_persons([people[1].spec()]) == [people[1]]


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ([], "persons"),
        ({"person": "x"}, "persons"),
        ("https://www.linkedin.com/in/a", "persons"),
        (None, "persons"),
    ],
)
def test_parse_persons_rejects_non_lists_and_empty_lists(value, field):
    with pytest.raises(LinkMsgValidationError) as err:
        parse_persons(value)
    assert err.value.field == field


def test_person_list_reads_a_rendered_template():
    assert person_list("['https://www.linkedin.com/in/a']") == ["https://www.linkedin.com/in/a"]
    assert person_list('[{"person": "https://www.linkedin.com/in/a"}]') == [
        {"person": "https://www.linkedin.com/in/a"}
    ]
    assert person_list(["x"]) == ["x"]


def test_job_status_round_trips():
    status = JobStatus(
        "completed",
        outcomes=[SyncOutcome("https://www.linkedin.com/in/a", "st", "not_found", "personNotFound", "no")],
    )
    assert JobStatus.from_dict(json.loads(json.dumps(status.to_dict()))) == status
    held = JobStatus("pending", "outsideWorkingHours", "opens at 09:00")
    assert held.outside_working_hours and not held.done
    assert held.describe() == "pending (outsideWorkingHours): opens at 09:00"


def test_api_generation_comes_from_the_connection(conn):
    assert LinkedApiHook().api == "seed"
    conn(api="current")
    assert LinkedApiHook().api == "current"
    conn(api="v3")
    with pytest.raises(LinkMsgValidationError, match=r"'seed'.*'current'") as err:
        _ = LinkedApiHook().api
    assert err.value.field == "api"


def test_missing_identification_token_is_an_auth_error(monkeypatch):
    value = {"conn_type": "linkedapi", "password": "la-token-123456", "extra": {"base_url": DEAD}}
    monkeypatch.setenv("AIRFLOW_CONN_LINKEDAPI_DEFAULT", json.dumps(value))
    with pytest.raises(LinkMsgAuthError, match="identification_token"):
        LinkedApiHook().auth_headers()


def test_account_id_is_stable_and_not_the_token(conn):
    account = LinkedApiHook().account_id
    assert account == LinkedApiHook().account_id
    assert account.startswith("la-") and "id-token" not in account


@pytest.mark.parametrize("value", ["webhook", "LONG", 1])
def test_result_handling_is_checked(value):
    with pytest.raises(LinkMsgValidationError) as err:
        LinkedApiHook.result_handling(value, "long")
    assert err.value.field == "result_handling"


def test_a_done_handle_needs_no_call(conn):
    outcome = {"person": "https://www.linkedin.com/in/a", "channel": "st", "status": "synced"}
    handle = {"api": "seed", "kind": "done", "jobs": [], "outcomes": [outcome]}
    hook = LinkedApiHook()
    status = hook.check_job(handle)
    assert status.state == "completed" and status.outcomes == [SyncOutcome(**outcome)]
    assert hook.wait_for_job(handle).state == "completed"
    assert hook.cancel_job(handle) is False
    assert hook.api_calls == 0
    with pytest.raises(LinkMsgValidationError):
        hook.check_job({"kind": "something"})


@pytest.mark.parametrize(
    ("status", "body", "message", "code", "error"),
    [
        (
            401,
            {"success": False, "error": {"type": "invalidLinkedApiToken", "message": "bad"}},
            "bad",
            "invalidLinkedApiToken",
            LinkMsgAuthError,
        ),
        (
            401,
            {"status": "error", "error": {"errorType": "linkedApiTokenRequired", "message": "m"}},
            "m",
            "linkedApiTokenRequired",
            LinkMsgAuthError,
        ),
        (
            403,
            {"success": False, "error": {"type": "linkedinAccountSignedOut", "message": "x"}},
            "x",
            "linkedinAccountSignedOut",
            LinkMsgAuthError,
        ),
        (
            402,
            {"success": False, "error": {"type": "subscriptionRequired", "message": "p"}},
            "p",
            "subscriptionRequired",
            LinkMsgBudgetExceededError,
        ),
        (
            404,
            {"success": False, "error": {"type": "workflowNotFound", "message": "w"}},
            "w",
            "workflowNotFound",
            LinkMsgNotFoundError,
        ),
        (
            400,
            {"status": "error", "error": {"errorType": "invalidRequestBody", "message": "b"}},
            "b",
            "invalidRequestBody",
            LinkMsgValidationError,
        ),
        (500, None, "oops", None, LinkMsgVendorError),
    ],
)
def test_both_error_envelopes_map_to_the_exception_family(status, body, message, code, error):
    hook = LinkedApiHook()
    described = hook.describe_error(status, body, "oops")
    assert described == (message, code)
    assert hook.error_class(status, code) is error


def test_messages_normalize():
    hook = LinkedApiHook()
    nv = Person("https://www.linkedin.com/in/bob", "nv")
    them = hook.to_message(
        {"id": "u-1", "sender": "them", "text": "Hi", "time": "2026-01-02T10:30:00Z", "threadId": "t"},
        person=nv,
        account_id="la-1",
    )
    assert (them.direction, them.sender_id, them.channel) == ("inbound", nv.url, "sales_navigator")
    assert them.conversation_id == "https://www.linkedin.com/in/bob#sales_navigator"
    assert them.sent_at == "2026-01-02T10:30:00.000000Z" and them.raw is None
    assert them.key == "linkedapi:la-1:u-1"
    us = hook.to_message(
        {"id": "u-2", "sender": "us", "text": "Yo", "time": "2026-01-02T10:31:00+00:00"},
        person=Person("https://www.linkedin.com/in/bob"),
        account_id="la-1",
        include_raw=True,
    )
    assert (us.direction, us.sender_id, us.channel, us.conversation_id) == (
        "outbound",
        None,
        "standard",
        "https://www.linkedin.com/in/bob",
    )
    assert us.raw["id"] == "u-2"


@pytest.mark.parametrize("operator", [LinkedApiSyncConversationsOperator, LinkedApiRetrieveMessagesOperator])
def test_operators_do_nothing_at_construction(monkeypatch, operator):
    monkeypatch.delenv("AIRFLOW_CONN_LINKEDAPI_DEFAULT", raising=False)
    persons = "{{ var.value.persons }}"
    op = operator(task_id="t", persons=persons, linkedapi_conn_id="{{ params.conn }}", result_handling="bad")
    assert op.persons is persons and op.linkedapi_conn_id == "{{ params.conn }}"
    assert {"persons", "linkedapi_conn_id", "staging_path", "result_handling"} <= set(op.template_fields)
    assert "hook" not in op.__dict__
