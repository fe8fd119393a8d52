"""ConnectSafely hook and operator without a server: normalization, error shapes, input checks."""

from __future__ import annotations

import pytest

from airflow_provider_linkmsg.exceptions import LinkMsgValidationError
from airflow_provider_linkmsg.hooks.connectsafely import ConnectSafelyHook
from airflow_provider_linkmsg.operators.connectsafely import ConnectSafelyRetrieveMessagesOperator

ACCOUNT = "696ce9e780e0483585e4e553"
URN = "urn:li:msg_conversation:(urn:li:fsd_profile:ACoAAEmu01,2-bXNnMDAx)"
# the example response of the contract (§1.8)
EXAMPLE = {
    "messageUrn": "urn:li:msg_message:(urn:li:fsd_profile:ACoAAEmu01,2-bXNnMDAx)",
    "text": "Hi Ada, thanks for connecting.",
    "sentAt": 1767261600000,
    "senderProfileId": "bob-prospect",
    "senderName": "Bob Prospect",
    "senderPhoto": None,
    "isSentByOwner": False,
    "hasAttachment": False,
    "attachments": [],
}


def test_message_is_normalized_from_the_contract_example():
    message = ConnectSafelyHook("unused").to_message(EXAMPLE, account_id=ACCOUNT, conversation_urn=URN)
    assert message.to_dict() == {
        "key": f"connectsafely:{ACCOUNT}:{EXAMPLE['messageUrn']}",
        "vendor": "connectsafely",
        "account_id": ACCOUNT,
        "conversation_id": URN,
        "message_id": EXAMPLE["messageUrn"],
        "sent_at": "2026-01-01T10:00:00.000000Z",
        "direction": "inbound",
        "sender_id": "bob-prospect",
        "sender_name": "Bob Prospect",
        "text": "Hi Ada, thanks for connecting.",
        "message_type": "TEXT",
        "has_attachments": False,
        "channel": "standard",
    }


def test_owner_messages_attachments_and_sales_navigator_threads():
    raw = {
        **EXAMPLE,
        "isSentByOwner": True,
        "hasAttachment": False,
        "attachments": [{"file": {"name": "a.pdf"}}],
    }
    message = ConnectSafelyHook("unused").to_message(
        raw, account_id=ACCOUNT, conversation_urn="urn:li:salesNav_thread:123", include_raw=True
    )
    assert message.direction == "outbound" and message.has_attachments
    assert message.channel == "sales_navigator" and message.raw == raw
    assert ConnectSafelyHook.channel_of(URN, "sales_navigator") == "sales_navigator"
    assert ConnectSafelyHook.channel_of(URN, "linkedin") == "standard"


@pytest.mark.parametrize(
    ("body", "message", "code"),
    [
        ({"error": "Conversation not found"}, "Conversation not found", None),
        (
            {"success": False, "code": "validation_error", "message": "count too big"},
            "count too big",
            "validation_error",
        ),
        (
            {
                "success": False,
                "error": {
                    "name": "ZodError",
                    "issues": [{"code": "invalid_type", "path": ["since"], "message": "Expected number"}],
                },
            },
            "since: Expected number",
            "ZodError",
        ),
    ],
)
def test_the_three_documented_error_bodies_are_read(body, message, code):
    assert ConnectSafelyHook("unused").describe_error(400, body, "") == (message, code)


def test_a_403_says_it_may_be_the_subscription():
    message, _ = ConnectSafelyHook("unused").describe_error(403, {"success": False, "error": "Forbidden"}, "")
    assert "trial has expired or there is no subscription" in message


@pytest.mark.parametrize("value", ["acc_123", "696CE9E780E0483585E4E553", "696ce9e780e0", "", None, 12])
def test_account_ids_must_be_24_hex(value):
    with pytest.raises(LinkMsgValidationError, match="24 hex digits") as err:
        ConnectSafelyHook.check_account_id(value)
    assert err.value.field == "account_id"


def test_operator_does_no_io_in_init_and_templates_its_arguments():
    op = ConnectSafelyRetrieveMessagesOperator(
        task_id="t", connectsafely_conn_id="no_such_connection", account_id="{{ params.account }}"
    )
    assert op.account_id == "{{ params.account }}"
    assert set(op.template_fields) == {
        "account_id",
        "conversation_ids",
        "staging_path",
        "staging_conn_id",
        "state_key",
        "connectsafely_conn_id",
    }


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"account_id": "acc_123"}, "account_id"),
        ({"account_id": ACCOUNT, "conversation_ids": ["2-bXNnMDAx"]}, "conversation_ids[0]"),
        ({"account_id": ACCOUNT, "conversation_ids": [URN, "urn:li:foo:1"]}, "conversation_ids[1]"),
        ({"account_id": ACCOUNT, "page_size": 0}, "page_size"),
        ({"account_id": ACCOUNT, "page_size": 101}, "page_size"),
        ({"account_id": ACCOUNT, "overlap_seconds": -5}, "overlap_seconds"),
        ({"account_id": ACCOUNT, "max_workers": 0}, "max_workers"),
    ],
)
def test_bad_inputs_fail_before_the_connection_is_even_read(kwargs, field, inbox_context):
    # the connection does not exist: reaching it (or the network) would raise something else
    op = ConnectSafelyRetrieveMessagesOperator(
        task_id="t", connectsafely_conn_id="no_such_connection", **kwargs
    )
    with pytest.raises(LinkMsgValidationError) as err:
        op.execute(inbox_context())
    assert err.value.field == field
