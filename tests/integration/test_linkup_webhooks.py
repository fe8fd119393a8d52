"""LinkupAPI webhooks against the sandbox: registration through the hook, signed message_received deliveries."""

from __future__ import annotations

import json

import pytest

from airflow_provider_linkmsg.events import check_linkup_signature
from airflow_provider_linkmsg.exceptions import LinkMsgValidationError
from airflow_provider_linkmsg.hooks.linkup import LinkupHook


def test_registered_webhooks_get_one_signed_delivery_per_received_message(sandbox, webhook_receiver):
    hook = LinkupHook()
    account = sandbox.connections()["linkup_default"]["extra"]["account_id"]
    signed = hook.create_webhook(account, webhook_receiver.url)
    other = hook.create_webhook(account, webhook_receiver.url + "/invites", events=["accepted_invitation"])
    assert signed["secret"] and signed["webhook_id"] != other["webhook_id"]

    out = sandbox.advance(seconds=60, linkup={"conversations": 4, "messages": 2, "account_id": account})[
        "linkup"
    ]
    truth = {m["message_id"]: m for m in sandbox.truth("linkup")["messages"]}
    received = [m for m in out["messages"] if truth[m]["direction"] == "inbound"] if out["messages"] else []
    assert received and out["webhooks"] == len(received)
    deliveries = webhook_receiver.wait(len(received))
    assert len(deliveries) == len(received)
    assert all(d["path"] == "/koneksi/done" for d in deliveries)  # none to the accepted_invitation webhook
    for delivery in deliveries:
        headers = delivery["headers"]
        assert check_linkup_signature(
            delivery["body"], headers["x-linkup-timestamp"], headers["x-linkup-signature"], [signed["secret"]]
        ) == (True, "")
        payload = json.loads(delivery["body"])
        assert (payload["event"], payload["account_id"]) == ("message_received", account)
    assert sorted(json.loads(d["body"])["data"]["entity_urn"] for d in deliveries) == sorted(received)
    listed = sandbox.apps["linkup"].webhooks.listing()
    assert len(listed) == 2 and all("secret" not in w for w in listed)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"events": ["everything"]}, "events"), ({"url": "ftp://x"}, "url")],
)
def test_a_bad_webhook_registration_is_refused(sandbox, kwargs, field):
    account = sandbox.connections()["linkup_default"]["extra"]["account_id"]
    with pytest.raises(LinkMsgValidationError, match=field):
        LinkupHook().create_webhook(account, **{"url": "https://hooks.example.com/x", **kwargs})
