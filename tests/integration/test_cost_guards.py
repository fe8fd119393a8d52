"""
Cost guards against the sandbox: a vendor that answers the same items with a fresh cursor every time is
stopped within a handful of (paid) calls; ``max_credits`` holds when answers are lost after the vendor
charged (a cut-off body, or a connection dropped after the request was sent); a connection that never
opened is retried and counts nothing; a run without ``max_credits`` logs what it spent.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from airflow_provider_linkmsg.exceptions import (
    LinkMsgBudgetExceededError,
    LinkMsgError,
    LinkMsgResponseError,
    LinkMsgVendorError,
)
from airflow_provider_linkmsg.hooks.linkup import LinkupHook
from airflow_provider_linkmsg.hooks.pagination import Page, paginate
from airflow_provider_linkmsg.operators.linkup import LinkupRetrieveMessagesOperator
from tests.compat import task_log_text
from tests.fixtures.suites import vendor_calls

SIZES = {
    "linkup": {"accounts": 1, "conversations": 2, "messages": 40},
    "connectsafely": {"accounts": 1, "conversations": 2, "messages": 40},
}
#: LinkupAPI's message cursor is epoch ms ("older than"): a far-future one serves the newest page again
FRESH_CURSOR = {
    "kind": "corrupt",
    "vendor": "linkup",
    "route": "POST /messages",
    "action": "get_conversation",
    "field": "data.next_cursor",
    "value": "99999999999990",
    "fresh": True,
}


@pytest.fixture
def world(sandbox_factory):
    return sandbox_factory(seed=3, sizes=SIZES, vendors=["linkup", "connectsafely"])


def credits(sandbox) -> float:
    return sandbox.stats().get("credits", {}).get("linkup", 0)


def test_a_fresh_cursor_with_the_same_messages_stops_within_a_handful_of_calls(world):
    account = world.truth("linkup")["accounts"][0]["id"]
    urn = world.truth("linkup")["conversations"][0]["conversation_id"]
    world.set_faults([FRESH_CURSOR])
    with pytest.raises(LinkMsgResponseError, match="brought nothing new"):
        list(LinkupHook().iter_messages(account, conversation_id=urn, count=10, max_pages=50))
    assert vendor_calls(world, "linkup") <= 5
    assert credits(world) <= 5


def test_the_operator_stops_the_loop_and_stages_nothing_of_it(world, tmp_path):
    world.set_faults([FRESH_CURSOR])
    op = LinkupRetrieveMessagesOperator(task_id="lk", staging_path=str(tmp_path))
    ti = SimpleNamespace(dag_id="cost", task_id="lk", run_id="run-1", map_index=-1)
    with pytest.raises(LinkMsgError, match="brought nothing new"):
        op.execute({"ti": ti, "run_id": "run-1"})
    conversations = len(world.truth("linkup")["conversations"])
    assert vendor_calls(world, "linkup") <= 1 + 4 * conversations  # the listing, then 4 pages each
    assert not [p for p in tmp_path.rglob("part-*.jsonl") if p.stat().st_size]


def test_pages_of_seen_items_stop_any_vendor_list_but_progress_resets_the_count():
    pages = iter([[1, 2], [2, 3], [3], [3, 2], [2], [1, 2, 3], [3]])  # progress, then 3 stalled pages

    def fetch(cursor):
        return Page(next(pages), cursor=f"c{cursor}")

    with pytest.raises(LinkMsgResponseError, match="3 pages in a row"):
        list(paginate(fetch, item_key=lambda item: item, max_pages=50))
    growing = paginate(lambda c: Page([len(c or "")], cursor=(c or "") + "x"), max_pages=20, item_key=str)
    with pytest.raises(LinkMsgResponseError, match="after 20 pages"):  # new items every page: no stall
        list(growing)


@pytest.mark.parametrize("count", [10, 20, 30])
def test_max_credits_holds_when_the_vendor_charges_and_drops_the_answer(world, count):
    account = world.truth("linkup")["accounts"][0]["id"]
    urn = world.truth("linkup")["conversations"][0]["conversation_id"]
    world.set_faults([{"vendor": "linkup", "route": "POST /messages", "p_truncate": 1.0}])
    hook = LinkupHook(max_credits=5)
    with pytest.raises(LinkMsgBudgetExceededError, match="max_credits=5"):
        list(hook.iter_messages(account, conversation_id=urn, count=count))
    assert credits(world) <= 5, f"billed {credits(world)} with max_credits=5"
    assert hook.credits_used >= credits(world), "a charged call was not counted"


def test_a_run_without_max_credits_logs_what_it_spent(world, tmp_path, capfd, caplog):
    op = LinkupRetrieveMessagesOperator(task_id="lk", staging_path=str(tmp_path))
    ti = SimpleNamespace(dag_id="cost", task_id="lk", run_id="run-1", map_index=-1)
    result = op.execute({"ti": ti, "run_id": "run-1"})
    assert result["credits"] == credits(world) > 0
    logged = task_log_text(capfd, caplog)
    assert f"No max_credits set: this task spent {result['credits']} credit(s)" in logged


class ChargeThenDrop(BaseHTTPRequestHandler):
    """A LinkupAPI that bills every POST (5 credits), then closes the connection without an answer."""

    billed = 0
    lock = threading.Lock()

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with ChargeThenDrop.lock:
            ChargeThenDrop.billed += 5
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def log_message(self, *args):
        pass


@pytest.fixture
def linkup_at(monkeypatch):
    """``linkup_at(port)``: the id of a LinkupAPI connection to 127.0.0.1:``port``, no pauses between retries."""

    def make(port: int) -> str:
        conn = {
            "conn_type": "linkup",
            "password": "lk-key-0123456789",
            "extra": {
                "base_url": f"http://127.0.0.1:{port}/linkup/v2",
                "requests_per_second": 0,
                "max_retries": 4,
                "max_retry_wait": 5,
            },
        }
        monkeypatch.setenv("AIRFLOW_CONN_LK_DROP", json.dumps(conn))
        return "lk_drop"

    return make


@pytest.fixture
def charge_then_drop():
    server = ThreadingHTTPServer(("127.0.0.1", 0), ChargeThenDrop)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    ChargeThenDrop.billed = 0
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_max_credits_holds_when_the_vendor_charges_then_drops_the_connection(charge_then_drop, linkup_at):
    hook = LinkupHook(linkup_at(charge_then_drop), max_credits=5)
    with pytest.raises(LinkMsgBudgetExceededError, match="max_credits=5"):
        list(hook.iter_inbox("acc_1", count=50))  # one list_inbox call: at most 5 credits
    assert ChargeThenDrop.billed == 5 and hook.http_requests == 1
    assert hook.credits_used == 5, "the dropped answer was not counted as charged"


def test_a_paid_call_that_is_not_idempotent_is_not_sent_again_after_a_drop(charge_then_drop, linkup_at):
    hook = LinkupHook(linkup_at(charge_then_drop))
    with pytest.raises(LinkMsgVendorError, match="connection dropped after the request was sent") as err:
        hook.action("send_message", {"text": "hi"}, account_id="acc_1", estimate=5, idempotent=False)
    assert err.value.answer_lost and ChargeThenDrop.billed == 5 and hook.http_requests == 1
    assert hook.credits_used == 5


def test_a_connection_that_never_opened_is_retried_and_charges_nothing(linkup_at):
    with socket.socket() as probe:  # a free port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    hook = LinkupHook(linkup_at(port), max_credits=5, max_retries=2)  # back-off waits of 1.5 s at most
    with pytest.raises(LinkMsgVendorError, match=r"gave up after 3 attempt.*connection refused") as err:
        hook.action("send_message", {"text": "hi"}, account_id="acc_1", estimate=5, idempotent=False)
    assert not getattr(err.value, "answer_lost", False)
    assert hook.http_requests == 3 and hook.credits_used == 0


async def test_the_async_path_counts_a_dropped_answer_and_does_not_send_it_again(charge_then_drop, linkup_at):
    hook = LinkupHook(linkup_at(charge_then_drop))
    losses: list[int] = []
    try:
        with pytest.raises(LinkMsgVendorError, match="connection dropped after the request was sent") as err:
            await hook.arequest(
                "POST",
                "/messages",
                json_body={"action": "send_message"},
                idempotent=False,
                on_lost_answer=lambda: losses.append(1),
            )
        assert err.value.answer_lost and losses == [1] and ChargeThenDrop.billed == 5
        assert hook.http_requests == 1

        # an idempotent call is retried, each lost answer counted, until the callback stops it
        def stop_at_two() -> None:
            losses.append(1)
            if len(losses) == 3:
                raise LinkMsgBudgetExceededError("budget", vendor="linkup")

        with pytest.raises(LinkMsgBudgetExceededError):
            await hook.arequest("POST", "/messages", json_body={}, on_lost_answer=stop_at_two)
        assert ChargeThenDrop.billed == 15 and hook.http_requests == 3
    finally:
        await hook.aclose()


async def test_the_async_path_retries_a_connection_that_never_opened(linkup_at):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    hook = LinkupHook(linkup_at(port), max_retries=2)
    losses: list[int] = []
    try:
        with pytest.raises(LinkMsgVendorError, match=r"gave up after 3 attempt.*connection refused") as err:
            await hook.arequest(
                "POST", "/messages", json_body={}, idempotent=False, on_lost_answer=lambda: losses.append(1)
            )
    finally:
        await hook.aclose()
    assert not getattr(err.value, "answer_lost", False) and losses == [] and hook.http_requests == 3
