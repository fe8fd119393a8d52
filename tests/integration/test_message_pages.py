"""
A conversation's message pages, for both hooks that read them through one helper
(``hooks/pagination.paginate_messages``), over real HTTP against the sandbox: a message that comes back on a
later page with other content is a typed error naming the conversation (messages do not change).
"""

from __future__ import annotations

import collections

import pytest

from airflow_provider_linkmsg.exceptions import LinkMsgResponseError
from airflow_provider_linkmsg.hooks.connectsafely import ConnectSafelyHook
from airflow_provider_linkmsg.hooks.linkup import LinkupHook

#: vendor: (the sandbox route, its action, the first message's id field in a page)
PAGES = {
    "connectsafely": ("GET /conversations/{urn}/messages", None, "messages.0.messageUrn"),
    "linkup": ("POST /messages", "get_conversation", "data.messages.0.entity_urn"),
}


def _pages(vendor: str, account: str, conversation: str):
    if vendor == "connectsafely":
        return ConnectSafelyHook().iter_message_pages(conversation, account_id=account, count=2)
    return LinkupHook().iter_conversation_pages(account, conversation_id=conversation, count=2)


@pytest.mark.parametrize("vendor", PAGES)
def test_a_message_met_again_on_a_later_page_with_other_content_is_a_typed_error(inbox_sandbox, vendor):
    sandbox = inbox_sandbox(vendor, conversations=4, messages=8)
    truth = sandbox.truth(vendor)
    sizes = collections.Counter(m["conversation_id"] for m in truth["messages"])
    conversation, size = max(sorted(sizes.items()), key=lambda kv: (kv[0].startswith("urn:li:msg_"), kv[1]))
    assert size >= 4, sizes  # pages of 2: the first message of every page is the same id
    route, action, field = PAGES[vendor]
    rule = {"kind": "corrupt", "vendor": vendor, "route": route, "field": field, "value": "urn:li:msg:same"}
    sandbox.set_faults([rule | ({"action": action} if action else {})])
    with pytest.raises(LinkMsgResponseError, match="came back on a later page with different content") as err:
        list(_pages(vendor, truth["accounts"][0]["id"], conversation))
    assert f"messages of {conversation}" in str(err.value) and err.value.vendor == vendor
    assert sandbox.stats()["faults"][f"{vendor} corrupt"] >= 2
