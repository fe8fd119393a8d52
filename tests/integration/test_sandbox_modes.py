"""
The sandbox's late-delivery modes over real HTTP: messages newer than, equal to or older than a conversation's
newest, listed activity that moves or not, empty conversations (``POST /_sandbox/advance``).
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
import requests

from airflow_provider_linkmsg.records import to_utc_iso
from airflow_provider_linkmsg.sandbox import Sandbox

SIZES = {
    "connectsafely": {"accounts": 1, "conversations": 6, "messages": 4},
    "linkup": {"accounts": 1, "conversations": 6, "messages": 4},
    "linkedapi": {"persons": 4, "not_found": 0, "sync_seconds": 0.0, "pending_seconds": 0.0},
}


@pytest.fixture
def box():
    with Sandbox(seed=11, sizes=SIZES) as sandbox:
        yield Client(sandbox)


class Client:
    """Plain HTTP calls to the sandbox: the admin API and the vendors' own routes."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox, self.base = sandbox, sandbox.base_url
        conns = sandbox.connections()
        self.cs_auth = {"Authorization": f"Bearer {conns['connectsafely_default']['password']}"}
        self.lk_auth = {"x-api-key": conns["linkup_default"]["password"]}
        self.la_auth = {
            "linked-api-token": conns["linkedapi_default"]["password"],
            "identification-token": conns["linkedapi_default"]["extra"]["identification_token"],
        }

    def advance(self, **body) -> dict:
        answer = requests.post(f"{self.base}/_sandbox/advance", json=body, timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def truth(self, vendor: str) -> dict:
        return requests.get(f"{self.base}/_sandbox/truth/{vendor}", timeout=10).json()

    # ConnectSafely
    def cs_list(self) -> list[dict]:
        url = f"{self.base}/connectsafely/linkedin/conversations"
        body = requests.get(url, params={"count": 100}, headers=self.cs_auth, timeout=10).json()
        assert body["success"] and not body["hasMore"]
        return body["conversations"]

    def cs_messages(self, urn: str, **params) -> dict:
        url = f"{self.base}/connectsafely/linkedin/conversations/{quote(urn, safe='')}/messages"
        return requests.get(url, params=params, headers=self.cs_auth, timeout=10).json()

    def cs_all_messages(self, urn: str, count: int) -> list[dict]:
        """Every message by paging back ``count`` at a time with the cursor."""
        out, cursor = [], None
        for _ in range(100):
            page = self.cs_messages(urn, count=count, **({"cursor": cursor} if cursor else {}))
            out = page["messages"] + out
            if not page["hasMore"]:
                return out
            cursor = page["cursor"]
        raise AssertionError("paging did not end")

    # LinkupAPI
    def lk(self, action: str, **params) -> dict:
        body = {"action": action, "account_id": self.lk_account, "params": params}
        answer = requests.post(f"{self.base}/linkup/v2/messages", json=body, headers=self.lk_auth, timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()["data"]

    @property
    def lk_account(self) -> str:
        return self.sandbox.truth("linkup")["accounts"][0]["id"]

    def lk_all_messages(self, conversation_id: str, count: int) -> list[dict]:
        out, cursor = [], None
        for _ in range(100):
            page = self.lk("get_conversation", conversation_id=conversation_id, count=count, cursor=cursor)
            out += page["messages"]
            if not page.get("next_cursor"):
                return out
            cursor = page["next_cursor"]
        raise AssertionError("paging did not end")


def _without(listing: list[dict], count: str) -> list[dict]:
    """The listing without its unread counts (counts move with the messages, listed activity need not)."""
    return [{k: v for k, v in item.items() if k != count} for item in listing]


def _newest(truth: dict, conversation_id: str) -> list[dict]:
    return [m for m in truth["messages"] if m["conversation_id"] == conversation_id]


def test_default_advance_keeps_todays_shape(box):
    """Without the new keys: newer messages, the listing follows them, and the answer's keys are unchanged."""
    old = box.cs_list()
    answer = box.advance(seconds=600, connectsafely={"conversation_ids": [old[-1]["conversationUrn"]]})
    assert set(answer["connectsafely"]) == {"changed", "messages"}
    listed = box.cs_list()
    assert listed[0]["conversationUrn"] == old[-1]["conversationUrn"]
    newest = box.cs_messages(old[-1]["conversationUrn"], count=1)["messages"][0]
    assert newest["messageUrn"] == answer["connectsafely"]["messages"][0]
    assert listed[0]["latestMessage"]["sentAt"] == newest["sentAt"] > old[0]["latestMessage"]["sentAt"]


@pytest.mark.parametrize("at", ["equal", "older"])
def test_connectsafely_late_message_listing_does_not_move(box, at):
    before = box.cs_list()
    target = before[2]["conversationUrn"]
    newest_ms = box.cs_messages(target, count=1)["messages"][0]["sentAt"]
    answer = box.advance(
        seconds=60,
        connectsafely={"conversation_ids": [target], "messages": 2, "at": at, "move_activity": False},
    )["connectsafely"]
    assert answer["changed"] == [target] and len(answer["messages"]) == 2
    # the listing is the same but for its counts: same activity, latest message and position
    assert _without(box.cs_list(), "unreadCount") == _without(before, "unreadCount")
    # reads show the new messages by their own time, a `since` before them too, and the truth has them
    expected = newest_ms if at == "equal" else newest_ms - 60_000
    read = box.cs_all_messages(target, count=1)
    times = {m["messageUrn"]: m["sentAt"] for m in read}
    assert all(times[i] == expected for i in answer["messages"])
    assert len(read) == len(times) == len(_newest(box.truth("connectsafely"), target))
    since = box.cs_messages(target, since=expected - 1)["messages"]
    assert set(answer["messages"]) <= {m["messageUrn"] for m in since}
    if at == "equal":  # a `since` at the newest's time is strict: the late ones are not after it
        assert not box.cs_messages(target, since=newest_ms)["messages"]


def test_connectsafely_older_message_moves_activity(box):
    before = box.cs_list()
    target = before[-1]["conversationUrn"]
    newest_ms = box.cs_messages(target, count=1)["messages"][0]["sentAt"]
    answer = box.advance(
        seconds=3600, connectsafely={"conversation_ids": [target], "at": "older", "older_by_ms": 5000}
    )["connectsafely"]
    listed = box.cs_list()
    assert listed[0]["conversationUrn"] == target  # the arrival moves it to the top
    now_ms = int(box.sandbox.state.now() * 1000)
    assert listed[0]["lastActivityAt"] == to_utc_iso(now_ms).replace("000Z", "Z")
    assert listed[0]["latestMessage"]["sentAt"] == newest_ms - 5000  # the new one, at its own time
    # the newest message by time is unchanged, the late one sits below it
    page = box.cs_messages(target, count=2)["messages"]
    assert page[-1]["sentAt"] == newest_ms and page[0]["messageUrn"] == answer["messages"][0]
    truth = {c["conversation_id"]: c for c in box.truth("connectsafely")["conversations"]}
    assert truth[target]["last_activity_ms"] == newest_ms and truth[target]["listed_activity_ms"] == now_ms


def test_newer_by_ms_lists_a_late_message_at_its_own_old_time(box):
    before = box.cs_list()
    target = before[-1]["conversationUrn"]
    newest_ms = box.cs_messages(target, count=1)["messages"][0]["sentAt"]
    box.advance(seconds=3600, connectsafely={"conversation_ids": [target], "newer_by_ms": 1000})
    listed = box.cs_list()
    assert listed[-1]["conversationUrn"] == target  # still last: it is listed by the message's own time
    assert listed[-1]["latestMessage"]["sentAt"] == newest_ms + 1000
    assert listed[-1]["lastActivityAt"] == to_utc_iso(newest_ms + 1000).replace("000Z", "Z")


def test_connectsafely_empty_conversations(box):
    account = box.sandbox.truth("connectsafely")["accounts"][0]["id"]
    created = box.advance(seconds=10, connectsafely={"empty_conversations": 2, "account_id": account})
    ids = created["connectsafely"]["created"]
    assert len(ids) == 2
    listed = {c["conversationUrn"]: c for c in box.cs_list()}
    for urn in ids:
        assert listed[urn]["latestMessage"] is None and listed[urn]["unreadCount"] == 0
        assert box.cs_messages(urn)["messages"] == []
    # a message into an empty conversation counts the time it arrives as its newest
    box.advance(connectsafely={"conversation_ids": ids[:1], "at": "equal"})
    assert box.cs_messages(ids[0])["messages"][0]["sentAt"] == int(box.sandbox.state.now() * 1000)
    truth = box.truth("connectsafely")
    assert {c["conversation_id"] for c in truth["conversations"]} >= set(ids)
    assert len(_newest(truth, ids[0])) == 1 and not _newest(truth, ids[1])


def test_linkup_activity_that_does_not_move_and_counts_that_do(box):
    before = box.lk("list_inbox", count=100)["conversations"]
    target = before[3]["conversation_id"]
    first = box.lk("get_conversation", conversation_id=target, count=1)
    total = first["total_message_count"]
    newest_ms = first["messages"][0]["timestamp"]
    box.advance(
        seconds=60,
        linkup={"conversation_ids": [target], "messages": 3, "at": "equal", "move_activity": False},
    )
    after_listing = box.lk("list_inbox", count=100)["conversations"]
    assert _without(after_listing, "unread") == _without(before, "unread")
    after = box.lk("get_conversation", conversation_id=target, count=1)
    assert after["total_message_count"] == total + 3
    # the page of one grows to the whole millisecond: a cursor at that time would skip the rest
    assert len(after["messages"]) == 4 and {m["timestamp"] for m in after["messages"]} == {newest_ms}
    assert len(box.lk_all_messages(target, count=1)) == total + 3

    box.advance(seconds=60, linkup={"conversation_ids": [target], "at": "older"})
    moved = box.lk("list_inbox", count=100)["conversations"]
    assert moved[0]["conversation_id"] == target
    assert moved[0]["last_message"]["time"] == int(box.sandbox.state.now() * 1000)


def test_linkup_empty_conversations_list_with_null_last_message(box):
    created = box.advance(linkup={"empty_conversations": 3, "account_id": box.lk_account})["linkup"][
        "created"
    ]
    listed = {c["conversation_id"]: c for c in box.lk("list_inbox", count=100)["conversations"]}
    assert set(created) <= set(listed)
    for conversation_id in created:
        assert listed[conversation_id]["last_message"] is None
        read = box.lk("get_conversation", conversation_id=conversation_id)
        assert read["messages"] == [] and read["total_message_count"] == 0
    truth = box.truth("linkup")
    assert {c["conversation_id"]: c["messages"] for c in truth["conversations"]}[created[0]] == 0


def test_linkedapi_late_messages_and_empty_persons(box):
    persons = box.truth("linkedapi")["accounts"]["acc1"]["persons"]
    st = next(p["person"] for p in persons if p["type"] == "st")
    box.advance(linkedapi={"empty_conversations": 1, "account_id": "acc1"})
    empty = box.truth("linkedapi")["accounts"]["acc1"]["persons"][-1]["person"]
    assert empty not in {p["person"] for p in persons}
    sync = [{"actionType": "st.syncConversation", "personUrl": url} for url in (st, empty)]
    assert requests.post(f"{box.base}/linkedapi/workflows", json=sync, headers=box.la_auth, timeout=10).ok

    def poll(since=None):
        body = [
            {"personUrl": url, "type": "st", **({"since": since} if since else {})} for url in (st, empty)
        ]
        answer = requests.post(f"{box.base}/linkedapi/conversations/poll", json=body, headers=box.la_auth)
        assert answer.status_code == 200, answer.text
        return answer.json()["result"]

    before = poll()
    assert before[1]["messages"] == []
    newest = max(m["time"] for m in before[0]["messages"])
    added = box.advance(
        seconds=120,
        linkedapi={"conversation_ids": [st, empty], "at": "older", "older_by_ms": 3_600_000},
    )["linkedapi"]
    assert added["changed"] == [st, empty]
    after = poll(since=newest)  # since the newest seen: the late one is not there
    assert [m["id"] for m in after[0]["messages"]] == [
        m["id"] for m in before[0]["messages"] if m["time"] >= newest
    ]
    full = {m["id"]: m["time"] for m in poll()[0]["messages"]}
    late = added["messages"][0]
    assert late in full and full[late] < newest
    messages = box.truth("linkedapi")["accounts"]["acc1"]["messages"]
    assert {late, added["messages"][1]} <= {m["id"] for m in messages}
