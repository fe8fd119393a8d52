"""
Chaos: every vendor's retrieval under injected faults, over ten seeds, ends with exactly the ground truth.

Each run meets one fault for sure (its kind chosen by the seed: a 429 with ``Retry-After: 1``, a 5xx, a
connection reset or a truncated body) on the route that reads messages, and background faults of every
kind plus latency spikes on all of the vendor's routes. The staged set, the rows exported to SQLite and
the records exported to JSON Lines files must each equal the sandbox's ground truth: every message once,
every field right. Faults go in after the set-up calls that start paid work (a Koneksi generation, a
Linked API synchronization), which the transport rightly does not retry after a doubtful failure.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import pytest

from airflow_provider_linkmsg.exceptions import LinkMsgError
from airflow_provider_linkmsg.io.staging import iter_records
from airflow_provider_linkmsg.io.state import WatermarkStore
from airflow_provider_linkmsg.operators.connectsafely import ConnectSafelyRetrieveMessagesOperator
from airflow_provider_linkmsg.operators.export import (
    LinkMsgExportToFilesOperator,
    LinkMsgExportToSqlOperator,
)
from airflow_provider_linkmsg.operators.koneksi import (
    KoneksiRequestMessageGenerationOperator,
    KoneksiRetrieveMessagesOperator,
)
from airflow_provider_linkmsg.operators.linkedapi import (
    LinkedApiRetrieveMessagesOperator,
    LinkedApiSyncConversationsOperator,
)
from airflow_provider_linkmsg.operators.linkup import LinkupRetrieveMessagesOperator
from airflow_provider_linkmsg.records import GeneratedMessage, Message
from airflow_provider_linkmsg.sensors.koneksi import KoneksiGenerationSensor
from tests.compat import outlet_event_accessors
from tests.fixtures.inbox import truth_messages
from tests.fixtures.koneksi import KONEKSI_SIZES, RETRIEVE, make_campaign, set_koneksi_conn
from tests.fixtures.koneksi import truth_messages as koneksi_truth
from tests.fixtures.suites import assert_same_set, faults_served, jsonl_records, sqlite_records

SEEDS = range(10)
CASES = ["koneksi", "connectsafely", "linkedapi-seed", "linkedapi-current", "linkup"]
#: the fault each run meets for sure, by seed
SURE_FAULTS = [
    {"p_429": 1, "retry_after": "1"},
    {"p_5xx": 1, "status_5xx": 502},
    {"p_reset": 1},
    {"p_truncate": 1},
]

#: the consumer of the inbox tasks run here (dag ``inbox_test``, task ``retrieve``)
STATE_KEY = "inbox_test.retrieve"


def background_faults(vendor: str, seed: int) -> dict[str, Any]:
    """Every kind of fault on every route of ``vendor``, about one request in five, and latency spikes."""
    return {
        "vendor": vendor,
        "p_5xx": 0.06,
        "status_5xx": (500, 502, 503, 504)[seed % 4],
        "p_429": 0.05,
        "retry_after": "0",
        "p_reset": 0.04,
        "p_truncate": 0.04,
        "latency_ms": 250,
        "p_latency": 0.1,
    }


@dataclass
class Scenario:
    """A vendor's retrieval, ready to run under faults, and the ground truth it must stage."""

    sandbox: Any
    vendor: str
    read_route: str  # the route that reads messages: it gets the sure fault
    retrieve: Callable[[], dict[str, Any]]  # the retrieval; returns its XCom value
    expected: set[Hashable]
    project: Callable[[Any], Hashable]  # a record as compared with ``expected``
    record_type: type = Message
    account: str | None = None  # whose watermarks the retrieval advances (inbox vendors)
    wait: Callable[[], Any] | None = None  # what must succeed before the retrieval (the Koneksi sensor)


def same(record: Any) -> Any:
    return record


def linkedapi_key(m: Message) -> tuple:
    """The fields the Linked API ground truth holds (the projection of ``LinkedApiWorld.expected``)."""
    return (m.conversation_id, m.message_id, m.sent_at, m.direction, m.text)


def koneksi_key(m: GeneratedMessage) -> tuple:
    return (m.lead_id, m.message_type, m.step, m.status, m.text)


@pytest.fixture
def scenario(inbox_sandbox, linkedapi_world, sandbox_factory, inbox_context, tmp_path, monkeypatch):
    """``scenario(case, seed, **connection_extra)``: a started sandbox and the retrieval of ``case``."""
    staging = str(tmp_path / "staging")
    context = inbox_context("chaos")

    def inbox(vendor: str, operator: type, route: str, seed: int, extra: dict[str, Any]) -> Scenario:
        sandbox = inbox_sandbox(vendor, seed=seed, extra=extra, conversations=8, messages=5)
        op = operator(task_id="retrieve", staging_path=staging, page_size=3, max_workers=4)
        account = sandbox.truth(vendor)["accounts"][0]["id"]
        truth = truth_messages(sandbox, vendor)
        return Scenario(sandbox, vendor, route, lambda: op.execute(context), truth, same, account=account)

    def linkedapi(api: str, seed: int, extra: dict[str, Any]) -> Scenario:
        world = linkedapi_world(api, seed=seed, conn_extra=extra, persons=8, not_found=1)
        LinkedApiSyncConversationsOperator(
            task_id="sync",
            persons=world.persons(),
            staging_path=staging,
            poll_interval=0.05,
            deferrable=False,
        ).execute(inbox_context("chaos", task_id="sync"))
        mode = None if api == "current" else ("reslink", "long")[seed % 2]
        op = LinkedApiRetrieveMessagesOperator(
            task_id="retrieve",
            persons=world.persons(),
            staging_path=staging,
            page_size=3,
            result_handling=mode,
        )
        route = "POST /conversations/poll" if api == "current" else "POST /account/conversations.get"
        retrieve = lambda: op.execute(context)  # noqa: E731
        return Scenario(world.sandbox, "linkedapi", route, retrieve, world.expected(), linkedapi_key)

    def koneksi(seed: int, extra: dict[str, Any]) -> Scenario:
        sandbox = sandbox_factory(seed=seed, sizes={"koneksi": {**KONEKSI_SIZES, "leads": 4}})
        set_koneksi_conn(monkeypatch, sandbox, **extra)
        request_id = KoneksiRequestMessageGenerationOperator(
            task_id="request",
            campaign=make_campaign(sandbox),
            leads=sandbox.truth("koneksi")["leads"],
            staging_path=staging,
        ).execute(inbox_context("chaos", task_id="request"))
        sensor = KoneksiGenerationSensor(
            task_id="wait", secure_request_id=request_id, poke_interval=0.05, timeout=60, deferrable=False
        )
        op = KoneksiRetrieveMessagesOperator(
            task_id="retrieve", secure_request_id=request_id, staging_path=staging
        )
        return Scenario(
            sandbox,
            "koneksi",
            RETRIEVE.split(" ", 1)[1],
            lambda: op.execute(context),
            koneksi_truth(sandbox, request_id),
            koneksi_key,
            GeneratedMessage,
            wait=lambda: sensor.execute(inbox_context("chaos", task_id="wait")),
        )

    def build(case: str, seed: int, **extra: Any) -> Scenario:
        if case == "koneksi":
            return koneksi(seed, extra)
        if case.startswith("linkedapi"):
            return linkedapi(case.split("-")[1], seed, extra)
        if case == "connectsafely":
            return inbox(
                case, ConnectSafelyRetrieveMessagesOperator, "GET /conversations/{urn}/messages", seed, extra
            )
        return inbox(case, LinkupRetrieveMessagesOperator, "POST /messages", seed, extra)

    return build


def export(manifest: dict[str, Any], warehouse: tuple[str, Any], out: str, seed: int) -> dict[str, Any]:
    """Export one staged run to SQLite and to JSON Lines files (gzip on odd seeds); returns the files'."""
    context = {"outlet_events": outlet_event_accessors()}
    sql = LinkMsgExportToSqlOperator(task_id="to_sql", manifests=manifest, conn_id=warehouse[0], batch_size=7)
    sql.execute(context)
    files = LinkMsgExportToFilesOperator(
        task_id="to_files", manifests=manifest, destination=out, compression="gzip" if seed % 2 else None
    )
    return files.execute(context)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("case", CASES)
def test_retrieval_under_faults_stages_and_exports_the_ground_truth(
    scenario, case, seed, tmp_path, warehouse
):
    run = scenario(case, seed)
    sure = SURE_FAULTS[seed % 4]
    rules = [{"vendor": run.vendor, "route": run.read_route, "times": 1, **sure}]
    run.sandbox.set_faults([*rules, background_faults(run.vendor, seed)], seed=seed)

    started = time.monotonic()
    if run.wait is not None:
        run.wait()
    result = run.retrieve()
    elapsed = time.monotonic() - started

    served = faults_served(run.sandbox, run.vendor)
    kind = next(k for k in ("429", "5xx", "reset", "truncate") if sure.get(f"p_{k}"))
    assert served.get(kind), f"the sure {kind} fault was not served: {served}"
    if kind == "429":
        assert elapsed >= 1.0, "the call answered 429 with Retry-After: 1 was retried sooner"
    staged = list(iter_records(result["manifest"]))
    assert result["records"] == len(run.expected)
    assert_same_set(staged, run.expected, run.project, "staged")

    run.sandbox.set_faults([])
    files = export(result, warehouse, str(tmp_path / "out"), seed)
    table = "linkmsg_generated_messages" if run.record_type is GeneratedMessage else "linkmsg_messages"
    assert_same_set(sqlite_records(warehouse[1], table, run.record_type), run.expected, run.project, "SQLite")
    exported = jsonl_records([f["path"] for f in files["files"]], run.record_type)
    assert_same_set(exported, run.expected, run.project, "files")
    if run.account is not None:  # the watermarks are exactly the newest staged message of each conversation
        newest: dict[str, str] = {}
        for m in staged:
            newest[m.conversation_id] = max(newest.get(m.conversation_id, ""), m.sent_at)
        marks = WatermarkStore(
            str(tmp_path / "staging"), vendor=run.vendor, account=run.account, consumer=STATE_KEY
        ).all()
        assert {cid: mark["sent_at"] for cid, mark in marks.items()} == newest


@pytest.mark.parametrize("case", CASES)
def test_a_vendor_that_stays_down_fails_the_task_and_marks_nothing_read(scenario, case, tmp_path):
    run = scenario(case, 0, max_retries=1)
    run.sandbox.set_faults([{"vendor": run.vendor, "route": run.read_route, "p_5xx": 1}])
    with pytest.raises(LinkMsgError, match="503"):
        run.retrieve()
    assert faults_served(run.sandbox, run.vendor)["5xx"] >= 2  # retried, then given up
    if run.account is not None:
        assert (
            WatermarkStore(
                str(tmp_path / "staging"), vendor=run.vendor, account=run.account, consumer=STATE_KEY
            ).all()
            == {}
        )


def test_the_linkup_budget_holds_when_answers_are_lost(inbox_sandbox, inbox_context, tmp_path):
    sandbox = inbox_sandbox("linkup", seed=1, conversations=8, messages=5)
    sandbox.set_faults([{"vendor": "linkup", "route": "POST /messages", "p_truncate": 0.3}], seed=1)
    result = LinkupRetrieveMessagesOperator(
        task_id="retrieve", staging_path=str(tmp_path), page_size=3, max_credits=12, max_workers=1
    ).execute(inbox_context("chaos"))
    assert result["budget_exhausted"] and faults_served(sandbox, "linkup").get("truncate")
    charged = sandbox.stats()["credits"]["linkup"]
    assert charged <= 12, (
        f"the vendor charged {charged} credits for max_credits=12 ({result['credits']} reported)"
    )
    assert result["credits"] >= charged  # lost answers are counted as charged: never under-reported
