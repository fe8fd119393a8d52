"""
Regression tests of issue 12 over real HTTP against the sandbox: late messages, the listing shortcut,
empty conversations, watermarks owned by one consumer, and two runs on the same state at once.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime

import pytest

from airflow_provider_linkmsg.engine.clock import CLOCK_SLACK
from airflow_provider_linkmsg.io.lease import LinkMsgLeaseHeldError
from airflow_provider_linkmsg.io.state import WatermarkStore
from airflow_provider_linkmsg.operators.connectsafely import ConnectSafelyRetrieveMessagesOperator
from airflow_provider_linkmsg.operators.linkedapi import (
    LinkedApiRetrieveMessagesOperator,
    LinkedApiSyncConversationsOperator,
)
from airflow_provider_linkmsg.operators.linkup import LinkupRetrieveMessagesOperator
from airflow_provider_linkmsg.records import to_utc_iso
from tests.compat import execute, task_log_text
from tests.fixtures.inbox import assert_exactly, reads, staged_messages, truth_messages

OPERATORS = {"connectsafely": ConnectSafelyRetrieveMessagesOperator, "linkup": LinkupRetrieveMessagesOperator}
VENDORS = list(OPERATORS)
HOUR_MS = 3_600_000


def retrieve(vendor: str, tmp_path, context, run_id: str, task_id: str = "retrieve", **kwargs) -> dict:
    operator = OPERATORS[vendor](task_id=task_id, staging_path=str(tmp_path), **kwargs)
    return execute(operator, context(run_id, task_id=task_id))  # also from a thread (tests.compat)


def lists(sandbox) -> float:
    return sum(sandbox.stats().get("lists", {}).values())


def conversations_by_age(sandbox, vendor: str) -> list[str]:
    """Conversation ids, most recently active first."""
    rows = sorted(sandbox.truth(vendor)["conversations"], key=lambda c: -c["last_activity_ms"])
    return [c["conversation_id"] for c in rows]


# ---- late messages ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize(
    ("at", "older_by_ms"),
    [("equal", 0), ("older", 60_000), ("older", 6 * HOUR_MS)],
    ids=["equal", "older-within-overlap", "older-by-6h"],
)
def test_a_late_message_is_staged_exactly_once(
    inbox_sandbox, tmp_path, inbox_context, vendor, at, older_by_ms
):
    sandbox = inbox_sandbox(vendor, conversations=30, messages=6)
    first_truth = truth_messages(sandbox, vendor)
    first = retrieve(vendor, tmp_path, inbox_context, "run-1")
    assert_exactly(staged_messages(first["manifest"]), first_truth)

    # late deliveries into old and recent conversations; the listing shows them (activity moves)
    targets = conversations_by_age(sandbox, vendor)
    targets = [targets[0], targets[len(targets) // 2], targets[-1]]
    sandbox.advance(
        seconds=3600,
        **{vendor: {"conversation_ids": targets, "messages": 2, "at": at, "older_by_ms": older_by_ms}},
    )
    late = truth_messages(sandbox, vendor) - first_truth
    assert len(late) == 6
    second = retrieve(vendor, tmp_path, inbox_context, "run-2")
    assert_exactly(staged_messages(second["manifest"]), late)
    assert second["conversations_read"] == 3
    if second["read_mode"] == "full":  # ConnectSafely: a changed conversation is read in full anyway
        assert second["conversations_deepened"] == 0
    elif older_by_ms > second["overlap_seconds"] * 1000:  # beyond the overlap: found by a deepened read
        assert second["conversations_deepened"] == 3

    sandbox.reset_stats()
    third = retrieve(vendor, tmp_path, inbox_context, "run-3")
    assert third["records"] == 0 and reads(sandbox) == {}  # settled: nothing read again


def test_a_late_message_among_newer_ones_is_found_through_the_vendors_count(
    inbox_sandbox, tmp_path, inbox_context
):
    sandbox = inbox_sandbox("linkup", conversations=10, messages=6)
    first_truth = truth_messages(sandbox, "linkup")
    retrieve("linkup", tmp_path, inbox_context, "run-1")
    target = conversations_by_age(sandbox, "linkup")[4]
    # a late message the listing does not show, then a newer one that moves the listing
    sandbox.advance(
        seconds=60,
        linkup={
            "conversation_ids": [target],
            "at": "older",
            "older_by_ms": 6 * HOUR_MS,
            "move_activity": False,
        },
    )
    sandbox.advance(seconds=60, linkup={"conversation_ids": [target], "at": "newer"})
    second = retrieve("linkup", tmp_path, inbox_context, "run-2")
    assert_exactly(staged_messages(second["manifest"]), truth_messages(sandbox, "linkup") - first_truth)
    assert second["conversations_deepened"] == 1


def test_a_late_message_beside_a_newer_one_is_staged_by_default_and_window_mode_says_its_bound(
    inbox_sandbox, tmp_path, inbox_context
):
    """ConnectSafely gives no count: a changed conversation is read in full by default (review B)."""
    sandbox = inbox_sandbox("connectsafely", conversations=6, messages=4)
    first_truth = truth_messages(sandbox, "connectsafely")
    retrieve("connectsafely", tmp_path, inbox_context, "run-1")
    retrieve("connectsafely", tmp_path / "window", inbox_context, "run-1", read_mode="window")
    target = conversations_by_age(sandbox, "connectsafely")[2]
    # a message an hour older than the newest (beyond the overlap), then a newer one: both move the listing
    sandbox.advance(
        seconds=60, connectsafely={"conversation_ids": [target], "at": "older", "older_by_ms": HOUR_MS}
    )
    sandbox.advance(seconds=60, connectsafely={"conversation_ids": [target], "at": "newer"})
    late = truth_messages(sandbox, "connectsafely") - first_truth
    assert len(late) == 2
    second = retrieve("connectsafely", tmp_path, inbox_context, "run-2")
    assert_exactly(staged_messages(second["manifest"]), late)
    assert second["read_mode"] == "full" and second["read_mode_bound"] is None
    sandbox.reset_stats()
    third = retrieve("connectsafely", tmp_path, inbox_context, "run-3")
    assert third["records"] == 0 and reads(sandbox) == {}  # settled

    windowed = retrieve("connectsafely", tmp_path / "window", inbox_context, "run-2", read_mode="window")
    assert windowed["records"] == 1  # the opt-in shortcut misses the late one, and says so
    assert "overlap_seconds (300 s)" in windowed["read_mode_bound"]


@pytest.fixture
def cut_pages_proxy():
    """
    A loopback proxy that serves ConnectSafely's backward message pages exactly as the contract reads
    (``cursor`` = the oldest ``sentAt`` returned, ``cursor=X`` returns ``sentAt < X``), cutting a page
    inside a millisecond when messages share it (the bundled sandbox never does); ``since`` answers pass.
    """
    import urllib.error
    import urllib.parse
    import urllib.request
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    servers = []

    def start(upstream: str) -> str:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                cut = url.path.endswith("/messages") and "since" not in query
                count, cursor = int(query.pop("count", 50)), query.pop("cursor", None)
                if cut:
                    query["since"] = "0"
                path = f"{url.path}?{urllib.parse.urlencode(query)}" if cut else self.path
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                try:
                    with urllib.request.urlopen(
                        urllib.request.Request(upstream + path, headers=headers)
                    ) as r:
                        status, body = r.status, r.read()
                except urllib.error.HTTPError as error:
                    status, body = error.code, error.read()
                if cut and status == 200:
                    document = json.loads(body)
                    found = sorted(document["messages"], key=lambda m: -m["sentAt"])
                    found = [m for m in found if cursor is None or m["sentAt"] < int(cursor)]
                    page = found[:count]
                    document["messages"] = sorted(page, key=lambda m: m["sentAt"])
                    document["hasMore"] = len(found) > count
                    document["cursor"] = str(page[-1]["sentAt"]) if page else None
                    body = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server in servers:
        server.shutdown()


def test_messages_sharing_the_millisecond_a_page_is_cut_in_are_staged(
    inbox_sandbox, tmp_path, inbox_context, cut_pages_proxy, monkeypatch
):
    """A full ConnectSafely read asks ``since=0``: the cursor route would skip a cut tie (review H)."""
    sandbox = inbox_sandbox("connectsafely", conversations=2, messages=4)
    variable = "AIRFLOW_CONN_CONNECTSAFELY_DEFAULT"
    connection = json.loads(os.environ[variable])
    upstream = sandbox.base_url
    connection["extra"]["base_url"] = connection["extra"]["base_url"].replace(
        upstream, cut_pages_proxy(upstream)
    )
    monkeypatch.setenv(variable, json.dumps(connection))
    target = conversations_by_age(sandbox, "connectsafely")[0]
    # four messages in one millisecond (one newer, three equal to it), then one a millisecond older
    sandbox.advance(seconds=60, connectsafely={"conversation_ids": [target], "at": "newer"})
    sandbox.advance(seconds=0, connectsafely={"conversation_ids": [target], "messages": 3, "at": "equal"})
    sandbox.advance(seconds=0, connectsafely={"conversation_ids": [target], "at": "older", "older_by_ms": 1})
    first = retrieve("connectsafely", tmp_path, inbox_context, "run-1", page_size=3)
    assert_exactly(staged_messages(first["manifest"]), truth_messages(sandbox, "connectsafely"))


# ---- the listing: every page by default, the shortcut opt-in -------------------------------------------------
@pytest.mark.parametrize("vendor", VENDORS)
def test_an_unchanged_rerun_lists_every_page_and_reads_nothing(
    inbox_sandbox, tmp_path, inbox_context, vendor
):
    sandbox = inbox_sandbox(vendor, conversations=120, messages=2)
    retrieve(vendor, tmp_path, inbox_context, "run-1")
    sandbox.reset_stats()
    again = retrieve(vendor, tmp_path, inbox_context, "run-2")
    pages = {"linkup": 3, "connectsafely": 2}[vendor]  # 50 and 100 conversations a page
    assert again["records"] == 0 and reads(sandbox) == {}
    assert lists(sandbox) == pages and again["api_calls"] == pages
    assert not again["listing_stopped_early"] and again["listing_shortcut"] is None


@pytest.mark.parametrize("vendor", VENDORS)
def test_the_listing_shortcut_is_opt_in_and_says_its_bound(
    inbox_sandbox, tmp_path, inbox_context, vendor, capfd, caplog
):
    sandbox = inbox_sandbox(vendor, conversations=120, messages=2)
    retrieve(vendor, tmp_path, inbox_context, "run-1", listing_shortcut=True)
    sandbox.reset_stats()
    task_log_text(capfd, caplog)
    again = retrieve(vendor, tmp_path, inbox_context, "run-2", listing_shortcut=True)
    log = task_log_text(capfd, caplog)  # the task log (Airflow 3's structlog writes to stdout here)
    assert again["listing_stopped_early"] and lists(sandbox) == 1
    assert again["listing_shortcut"] == {"staleness_bound_hours": 24.0, "stopped_early": True}
    assert "listing shortcut on" in log and "at most 24 h later" in log


# ---- empty conversations ----------------------------------------------------------------------------------
def test_empty_conversations_are_not_read_and_keep_the_sweep_marker(inbox_sandbox, tmp_path, inbox_context):
    sandbox = inbox_sandbox("linkup", conversations=8, messages=3)
    account = sandbox.truth("linkup")["accounts"][0]["id"]
    empty = sandbox.advance(seconds=60, linkup={"empty_conversations": 2, "account_id": account})["linkup"][
        "created"
    ]
    first = retrieve("linkup", tmp_path, inbox_context, "run-1", listing_shortcut=True)
    assert_exactly(staged_messages(first["manifest"]), truth_messages(sandbox, "linkup"))
    assert first["conversations_empty"] == 2 and not set(empty) & set(reads(sandbox))
    sandbox.reset_stats()
    second = retrieve("linkup", tmp_path, inbox_context, "run-2", listing_shortcut=True)
    assert second["records"] == 0 and reads(sandbox) == {}
    assert sandbox.stats().get("credits_by_action", {}).get("get_conversation", 0) == 0
    store = WatermarkStore(tmp_path, vendor="linkup", account=account, consumer="inbox_test.retrieve")
    assert store.sweep() is not None  # the marker was kept, not cleared by the empty ones

    # a message in one of them: it is read then
    sandbox.advance(seconds=60, linkup={"conversation_ids": [empty[0]]})
    third = retrieve("linkup", tmp_path, inbox_context, "run-3", listing_shortcut=True)
    assert third["records"] == 1 and set(reads(sandbox)) == {empty[0]}


# ---- watermarks owned by one consumer -------------------------------------------------------------------
@pytest.mark.parametrize("vendor", VENDORS)
def test_two_tasks_on_one_account_keep_their_own_watermarks(inbox_sandbox, tmp_path, inbox_context, vendor):
    sandbox = inbox_sandbox(vendor, conversations=10, messages=3)
    retrieve(vendor, tmp_path, inbox_context, "run-1", task_id="to_files")
    sandbox.advance(seconds=3600, **{vendor: {"conversations": 4, "messages": 2}})
    retrieve(vendor, tmp_path, inbox_context, "run-2", task_id="to_files")  # takes the new messages
    other = retrieve(vendor, tmp_path, inbox_context, "run-2", task_id="to_sql")  # its own first pass
    assert other["state_key"] == "inbox_test.to_sql"
    assert_exactly(staged_messages(other["manifest"]), truth_messages(sandbox, vendor))
    shared = retrieve(
        vendor, tmp_path, inbox_context, "run-3", task_id="also_sql", state_key="inbox_test.to_sql"
    )
    assert shared["records"] == 0 and shared["state_key"] == "inbox_test.to_sql"  # shared on purpose


# ---- two runs on the same state at once ----------------------------------------------------------------------
def test_a_second_run_waits_for_the_first_or_fails_naming_it(inbox_sandbox, tmp_path, inbox_context):
    sandbox = inbox_sandbox("linkup", conversations=20, messages=4)
    sandbox.set_faults([{"vendor": "linkup", "route": "*", "latency_ms": 60}])
    results: dict[str, dict] = {}
    first = threading.Thread(
        target=lambda: results.update(a=retrieve("linkup", tmp_path, inbox_context, "run-a", max_workers=2))
    )
    first.start()
    lease = next(iter(tmp_path.glob("_state/linkup/*/*.lease")), None)
    for _ in range(200):
        if lease is not None:
            break
        time.sleep(0.02)
        lease = next(iter(tmp_path.glob("_state/linkup/*/*.lease")), None)
    assert lease is not None, "the first run took no lease"
    with pytest.raises(LinkMsgLeaseHeldError) as err:
        retrieve("linkup", tmp_path, inbox_context, "run-b", lease_wait_seconds=0.2)
    for name in ("'inbox_test'", "'run-a'", "'retrieve'", "host"):
        assert name in str(err.value)
    # a run that waits long enough goes after the first: nothing is staged or paid twice
    second = retrieve("linkup", tmp_path, inbox_context, "run-c", lease_wait_seconds=120)
    first.join(120)
    assert_exactly(staged_messages(results["a"]["manifest"]), truth_messages(sandbox, "linkup"))
    assert second["records"] == 0
    assert Counter(reads(sandbox)).most_common(1)[0][1] == 1  # each conversation read once in all
    assert not list(tmp_path.glob("_state/linkup/*/*.lease"))  # both released their lease


def test_a_lease_left_by_a_dead_run_expires(inbox_sandbox, tmp_path, inbox_context):
    sandbox = inbox_sandbox("connectsafely", conversations=3, messages=2)
    account = sandbox.truth("connectsafely")["accounts"][0]["id"]
    store = WatermarkStore(tmp_path, vendor="connectsafely", account=account, consumer="inbox_test.retrieve")
    os.makedirs(store.lease_path.parent.path, exist_ok=True)
    dead = {
        "dag_id": "inbox_test",
        "run_id": "gone",
        "task_id": "retrieve",
        "map_index": -1,
        "expires_at": 1.0,
    }
    with open(store.lease_path.path, "w") as f:
        json.dump(dead, f)
    result = retrieve("connectsafely", tmp_path, inbox_context, "run-1", lease_wait_seconds=0)
    assert result["records"] == len(truth_messages(sandbox, "connectsafely"))
    assert not os.path.exists(store.lease_path.path)


def test_a_retry_of_the_same_task_run_takes_its_lease_over(inbox_sandbox, tmp_path, inbox_context):
    sandbox = inbox_sandbox("connectsafely", conversations=3, messages=2)
    account = sandbox.truth("connectsafely")["accounts"][0]["id"]
    store = WatermarkStore(tmp_path, vendor="connectsafely", account=account, consumer="inbox_test.retrieve")
    os.makedirs(store.lease_path.parent.path, exist_ok=True)
    killed = {"dag_id": "inbox_test", "run_id": "run-1", "task_id": "retrieve", "map_index": -1}
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a process of this host that is over: the earlier try was killed
    with open(store.lease_path.path, "w") as f:
        json.dump(
            {
                **killed,
                "try_number": 1,
                "host": socket.gethostname(),
                "pid": gone.pid,
                "expires_at": time.time() + 3600,
            },
            f,
        )
    result = retrieve("connectsafely", tmp_path, inbox_context, "run-1", lease_wait_seconds=0)
    assert result["records"] == len(truth_messages(sandbox, "connectsafely"))


def test_a_retry_does_not_take_the_lease_of_an_earlier_try_still_running(
    inbox_sandbox, tmp_path, inbox_context
):
    """Airflow may start try 2 while a zombie try 1 runs on: it waits for it (review G)."""
    sandbox = inbox_sandbox("connectsafely", conversations=3, messages=2)
    account = sandbox.truth("connectsafely")["accounts"][0]["id"]
    store = WatermarkStore(tmp_path, vendor="connectsafely", account=account, consumer="inbox_test.retrieve")
    os.makedirs(store.lease_path.parent.path, exist_ok=True)
    running = {"dag_id": "inbox_test", "run_id": "run-1", "task_id": "retrieve", "map_index": -1}
    with open(store.lease_path.path, "w") as f:  # try 1, in a process of this host that still runs
        json.dump(
            {
                **running,
                "try_number": 1,
                "host": socket.gethostname(),
                "pid": os.getppid(),
                "expires_at": time.time() + 3600,
            },
            f,
        )
    sandbox.reset_stats()
    with pytest.raises(LinkMsgLeaseHeldError, match="try 1"):
        retrieve("connectsafely", tmp_path, inbox_context, "run-1", lease_wait_seconds=0)
    assert reads(sandbox) == {} and lists(sandbox) == 0  # nothing read or paid twice


def test_a_full_read_the_budget_cannot_pay_is_deferred_without_spending_it(
    inbox_sandbox, tmp_path, inbox_context
):
    """LinkupAPI: a deepened read larger than max_credits is not started, every run (review D)."""
    sandbox = inbox_sandbox("linkup", conversations=3, messages=120)
    retrieve("linkup", tmp_path, inbox_context, "run-1")
    biggest = max(sandbox.truth("linkup")["conversations"], key=lambda c: c["messages"])
    assert biggest["messages"] > 60  # a full read costs more than the budget below
    sandbox.advance(
        seconds=60,
        linkup={"conversation_ids": [biggest["conversation_id"]], "at": "older", "older_by_ms": 6 * HOUR_MS},
    )
    for run in ("run-2", "run-3"):
        result = retrieve("linkup", tmp_path, inbox_context, run, max_credits=5)
        assert result["records"] == 0 and result["budget_exhausted"] and result["conversations_pending"] == 1
        assert result["credits"] <= 2  # the listing and the page that showed the count; no thrown-away pages
    result = retrieve("linkup", tmp_path, inbox_context, "run-4", max_credits=50)
    assert result["records"] == 1 and result["conversations_deepened"] == 1


# ---- vendor times from the future ----------------------------------------------------------------------------
@pytest.fixture
def engine_clock_follows(monkeypatch):
    """Our clock follows the sandbox's clock (its world starts in the past; tests advance it past ours)."""

    def follow(sandbox) -> None:
        monkeypatch.setattr(
            "airflow_provider_linkmsg.engine.clock._utc_now",
            lambda: datetime.fromtimestamp(sandbox.state.now(), UTC),
        )

    return follow


def assert_no_time_from_the_future(store: WatermarkStore, now_s: float) -> None:
    horizon = to_utc_iso(now_s * 1000 + CLOCK_SLACK.total_seconds() * 1000)
    for conversation_id, watermark in store.all().items():
        for name in ("sent_at", "last_activity"):
            assert (watermark.get(name) or "") <= horizon, f"{conversation_id} {name}={watermark[name]}"
    assert ((store.sweep() or {}).get("through") or "") <= horizon


@pytest.mark.parametrize("shortcut", [False, True], ids=["every-page", "shortcut"])
def test_a_listed_activity_from_the_future_enters_no_state_and_hides_nothing(
    inbox_sandbox, tmp_path, inbox_context, engine_clock_follows, shortcut
):
    """Adversarial review F3: ``lastActivityAt`` 20 h ahead (the schema allows a day) on two listings."""
    sandbox = inbox_sandbox("connectsafely", seed=43, conversations=4, messages=2)
    engine_clock_follows(sandbox)
    account = sandbox.truth("connectsafely")["accounts"][0]["id"]
    store = WatermarkStore(tmp_path, vendor="connectsafely", account=account, consumer="inbox_test.retrieve")
    target = conversations_by_age(sandbox, "connectsafely")[0]
    future = int((sandbox.state.now() + 20 * 3600) * 1000)
    sandbox.set_faults(
        [
            {
                "kind": "corrupt",
                "vendor": "connectsafely",
                "route": "GET /conversations",
                "field": "conversations.0.lastActivityAt",
                "value": future,
                "times": 2,
            }
        ]
    )
    first = retrieve("connectsafely", tmp_path, inbox_context, "run-1", listing_shortcut=shortcut)
    assert_exactly(staged_messages(first["manifest"]), truth_messages(sandbox, "connectsafely"))
    assert first["conversations_future_times"] == 1
    assert_no_time_from_the_future(store, sandbox.state.now())
    assert store.all()[target]["listed"] is None  # no staged message accounts for that activity

    # the listing still shows it: the conversation is read again (from its watermark, not in full)
    sandbox.reset_stats()
    second = retrieve("connectsafely", tmp_path, inbox_context, "run-2", listing_shortcut=shortcut)
    assert second["records"] == 0 and set(reads(sandbox)) == {target}
    assert second["conversations_deepened"] == 0
    sandbox.set_faults([])

    sandbox.advance(seconds=3600, connectsafely={"conversations": 4, "messages": 1})
    before = truth_messages(sandbox, "connectsafely")
    third = retrieve("connectsafely", tmp_path, inbox_context, "run-3", listing_shortcut=shortcut)
    assert third["records"] == 4
    sandbox.advance(seconds=21 * 3600)  # the vendor's clock (and ours) pass the bad value
    sandbox.advance(seconds=60, connectsafely={"conversations": 2, "messages": 1})
    fourth = retrieve("connectsafely", tmp_path, inbox_context, "run-4", listing_shortcut=shortcut)
    assert_exactly(staged_messages(fourth["manifest"]), truth_messages(sandbox, "connectsafely") - before)
    assert_no_time_from_the_future(store, sandbox.state.now())
    sandbox.reset_stats()
    fifth = retrieve("connectsafely", tmp_path, inbox_context, "run-5", listing_shortcut=shortcut)
    assert fifth["records"] == 0 and reads(sandbox) == {}  # settled


MESSAGE_TIME = {
    "connectsafely": {"route": "GET /conversations/{urn}/messages", "field": "messages.0.sentAt"},
    "linkup": {"route": "POST /messages", "action": "get_conversation", "field": "data.messages.0.timestamp"},
}


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_message_time_from_the_future_does_not_hide_the_messages_before_it(
    inbox_sandbox, tmp_path, inbox_context, engine_clock_follows, vendor
):
    sandbox = inbox_sandbox(vendor, conversations=1, messages=3)
    engine_clock_follows(sandbox)
    account = sandbox.truth(vendor)["accounts"][0]["id"]
    store = WatermarkStore(tmp_path, vendor=vendor, account=account, consumer="inbox_test.retrieve")
    future = int((sandbox.state.now() + 20 * 3600) * 1000)
    sandbox.set_faults(
        [{"kind": "corrupt", "vendor": vendor, **MESSAGE_TIME[vendor], "value": future, "times": 1}]
    )
    first = retrieve(vendor, tmp_path, inbox_context, "run-1")
    before = truth_messages(sandbox, vendor)
    assert {m.key for m in staged_messages(first["manifest"])} == {m.key for m in before}
    assert first["conversations_future_times"] == 1
    assert_no_time_from_the_future(store, sandbox.state.now())
    sandbox.set_faults([])

    # one message arrives before the vendor's clock reaches the bad time, one after; then a run
    sandbox.advance(seconds=19 * 3600, **{vendor: {"conversations": 1, "messages": 1}})
    sandbox.advance(seconds=2 * 3600, **{vendor: {"conversations": 1, "messages": 1}})
    second = retrieve(vendor, tmp_path, inbox_context, "run-2")
    assert_exactly(staged_messages(second["manifest"]), truth_messages(sandbox, vendor) - before)
    assert second["conversations_deepened"] == 0  # no full read (LinkupAPI: no credit) to find them


def test_a_linkedapi_message_time_from_the_future_does_not_become_its_since(
    linkedapi_world, tmp_path, linkedapi_context, engine_clock_follows
):
    world = linkedapi_world("current", persons=1, not_found=0)
    engine_clock_follows(world.sandbox)
    LinkedApiSyncConversationsOperator(
        task_id="sync", staging_path=str(tmp_path), persons=world.persons(), poll_interval=0.05, timeout=30
    ).execute(linkedapi_context("sync"))
    future = datetime.fromtimestamp(world.sandbox.state.now() + 20 * 3600, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    world.sandbox.set_faults(
        [
            {
                "kind": "corrupt",
                "vendor": "linkedapi",
                "route": "POST /conversations/poll",
                "field": "result.0.messages.0.time",
                "value": future,
                "times": 1,
            }
        ]
    )

    def retrieve_linkedapi(run_id: str) -> dict:
        operator = LinkedApiRetrieveMessagesOperator(
            task_id="retrieve", staging_path=str(tmp_path), persons=world.persons()
        )
        return operator.execute(linkedapi_context("retrieve", run_id=run_id))

    first = retrieve_linkedapi("run-1")
    assert first["records"] == len(world.truth["messages"]) and first["conversations_future_times"] == 1
    world.sandbox.set_faults([])
    late = world.sandbox.advance(seconds=19 * 3600, linkedapi={"persons": 1, "messages": 1})["linkedapi"]
    later = world.sandbox.advance(seconds=2 * 3600, linkedapi={"persons": 1, "messages": 1})["linkedapi"]
    second = retrieve_linkedapi("run-2")
    new_ids = {i for added in (late, later) for a in added["added"] for i in a["ids"]}
    assert len(new_ids) == 2
    assert {m.message_id for m in staged_messages(second["manifest"])} == new_ids
