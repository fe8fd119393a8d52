"""LinkupAPI hook and operator without a server: normalization, error codes, input checks."""

from __future__ import annotations

import pytest

from airflow_provider_linkmsg.exceptions import (
    LinkMsgAuthError,
    LinkMsgBudgetExceededError,
    LinkMsgNotFoundError,
    LinkMsgRateLimitedError,
    LinkMsgValidationError,
    LinkMsgVendorError,
)
from airflow_provider_linkmsg.hooks.linkup import LinkupHook
from airflow_provider_linkmsg.operators.linkup import LinkupRetrieveMessagesOperator

ACCOUNT = "acc_abc123"
CONVERSATION = "urn:li:msg_conversation:(urn:li:fsd_profile:ACoAAemu,2-m3)"
JANE = "https://www.linkedin.com/in/jane-doe-42/"
JOHN = "https://www.linkedin.com/in/john-smith-99/"
# the two messages of the seed's example (seed 004)
SEED = [
    {
        "text": "Sounds good, talk soon!",
        "timestamp": 1777147641366,
        "sender": "Jane Doe",
        "sender_info": {"first_name": "Jane", "last_name": "Doe", "profile_url": JANE},
        "message_type": "TEXT",
        "entity_urn": "urn:li:msg_message:(urn:li:fsd_profile:ACoAA1,2-MTc3NzE0a)",
    },
    {
        "text": "Hey, are you available for a call tomorrow?",
        "timestamp": 1777146492678,
        "sender": "John Smith",
        "sender_info": {"first_name": "John", "last_name": "Smith", "profile_url": JOHN},
        "message_type": "TEXT",
        "entity_urn": "urn:li:msg_message:(urn:li:fsd_profile:ACoAA1,2-MTc3NzE0b)",
    },
]


def normalize(raw, **kwargs):
    return LinkupHook("unused").to_message(raw, account_id=ACCOUNT, conversation_id=CONVERSATION, **kwargs)


def test_messages_are_normalized_from_the_seed_example():
    jane, john = (normalize(m, owner_urls={"https://linkedin.com/in/john-smith-99"}) for m in SEED)
    assert jane.to_dict() == {
        "key": f"linkup:{ACCOUNT}:{SEED[0]['entity_urn']}",
        "vendor": "linkup",
        "account_id": ACCOUNT,
        "conversation_id": CONVERSATION,
        "message_id": SEED[0]["entity_urn"],
        "sent_at": "2026-04-25T20:07:21.366000Z",
        "direction": "inbound",
        "sender_id": JANE,
        "sender_name": "Jane Doe",
        "text": "Sounds good, talk soon!",
        "message_type": "TEXT",
        "has_attachments": False,
        "channel": "standard",
    }
    # the owner's URL matches whatever the http/www/trailing-slash form
    assert john.direction == "outbound" and john.sender_id == JOHN


def test_direction_falls_back_to_the_participant_when_the_owner_is_unknown():
    assert normalize(SEED[0], participant_url=JANE).direction == "inbound"
    assert normalize(SEED[1], participant_url=JANE).direction == "outbound"
    assert normalize(SEED[1]).direction == "inbound"  # nothing known: not claimed as ours


def test_owner_urls_come_from_is_me_senders_of_the_inbox():
    items = [
        {"last_message": {"sender": {"profile_url": JOHN, "is_me": True}}},
        {"last_message": {"sender": {"profile_url": JANE, "is_me": False}}},
        {"last_message": None},
    ]
    assert LinkupHook.owner_urls(items) == {"linkedin.com/in/john-smith-99"}


def test_attachments_and_channel():
    assert normalize(
        {**SEED[0], "attachments": [{"name": "a.pdf"}]}, channel="sales_navigator"
    ).has_attachments
    assert LinkupHook.channel_of({"type": "normal"}) == "standard"
    assert LinkupHook.channel_of({"type": "SALES_NAVIGATOR"}) == "sales_navigator"


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        ("INVALID_API_KEY", 403, LinkMsgAuthError),
        ("ACCOUNT_INACTIVE", 403, LinkMsgAuthError),
        ("INVALID_ACCOUNT", 404, LinkMsgNotFoundError),
        ("INVALID_ACTION", 400, LinkMsgValidationError),
        ("INVALID_PARAMS", 400, LinkMsgValidationError),
        ("RATE_LIMITED", 429, LinkMsgRateLimitedError),
        ("INSUFFICIENT_CREDITS", 402, LinkMsgBudgetExceededError),
        ("INTERNAL_ERROR", 500, LinkMsgVendorError),
        ("INVALID_PARAMS", 404, LinkMsgValidationError),  # the code wins over the status
        (None, 404, LinkMsgNotFoundError),
    ],
)
def test_errors_are_typed_by_the_vendor_code(code, status, error):
    assert LinkupHook("unused").error_class(status, code) is error


@pytest.mark.parametrize("value", ["abc123", "acc_", "acc abc", "696ce9e780e0483585e4e553", None])
def test_account_ids_must_look_like_acc(value):
    with pytest.raises(LinkMsgValidationError, match="acc_abc123"):
        LinkupHook.check_account_id(value)


def test_conversation_reads_check_their_inputs_before_any_call():
    hook = LinkupHook("no_such_connection")
    with pytest.raises(LinkMsgValidationError, match="not a LinkedIn profile URL"):
        hook.iter_conversation_pages(ACCOUNT, profile_url="https://twitter.com/jane")
    with pytest.raises(LinkMsgValidationError, match="exactly one"):
        hook.iter_conversation_pages(ACCOUNT)
    with pytest.raises(LinkMsgValidationError, match="from 1 to 100"):
        hook.iter_conversation_pages(ACCOUNT, conversation_id=CONVERSATION, count=500)
    with pytest.raises(LinkMsgValidationError, match="not a conversation URN"):
        hook.iter_conversation_pages(ACCOUNT, conversation_id="urn:li:salesNav_thread:1")
    with pytest.raises(LinkMsgValidationError, match="from 1 to 100"):
        hook.iter_inbox_pages(ACCOUNT, count=0)


def test_operator_templates_max_credits_and_does_no_io_in_init():
    op = LinkupRetrieveMessagesOperator(
        task_id="t", linkup_conn_id="no_such_connection", max_credits="{{ x }}"
    )
    assert "max_credits" in op.template_fields and "linkup_conn_id" in op.template_fields
    assert op.max_credits == "{{ x }}"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"account_id": "696ce9e780e0483585e4e553"}, "account_id"),
        ({"account_id": ACCOUNT, "max_credits": -1}, "max_credits"),
        ({"account_id": ACCOUNT, "max_credits": "lots"}, "max_credits"),
        ({"account_id": ACCOUNT, "page_size": 1000}, "page_size"),
        ({"account_id": ACCOUNT, "conversation_ids": "urn:li:salesNav_thread:1"}, "conversation_ids[0]"),
        ({"account_id": ACCOUNT, "overlap_seconds": -1}, "overlap_seconds"),
    ],
)
def test_bad_inputs_fail_before_the_connection_is_even_read(kwargs, field, inbox_context):
    op = LinkupRetrieveMessagesOperator(task_id="t", linkup_conn_id="no_such_connection", **kwargs)
    with pytest.raises(LinkMsgValidationError) as err:
        op.execute(inbox_context())
    assert err.value.field == field
