"""
The provider's webhook plugin inside a real ``airflow api-server`` (loaded through its entry point), fed by
the sandbox's own signed deliveries: Koneksi completions and LinkupAPI ``message_received``.

Each accepted delivery must become exactly one asset event, and the DAG scheduled on the asset must get a
queued, asset-triggered run from the scheduler's own code; forged, stale and oversized deliveries get a 4xx
and record nothing; a duplicate gets a 2xx and records nothing new.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_linkmsg.events import (
    koneksi_completion_asset,
    koneksi_completion_uri,
    linkup_message_asset,
    linkup_message_uri,
    webhook_path,
)
from airflow_provider_linkmsg.hooks.koneksi import KoneksiHook
from airflow_provider_linkmsg.hooks.linkup import LinkupHook
from airflow_provider_linkmsg.operators.koneksi import KoneksiRequestMessageGenerationOperator
from airflow_provider_linkmsg.plugins import receiver
from airflow_provider_linkmsg.plugins.receiver import MAX_BODY
from tests.compat import dag_bag, requires_airflow, sync_bundles, sync_dag_to_db
from tests.fixtures.koneksi import KONEKSI_SIZES, make_campaign

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.timeout(600),
    requires_airflow(
        "3.0",
        "the webhook plugin is a FastAPI app on Airflow 3's API server and records asset events through it; "
        "Airflow 2 has neither",
    ),
]

KONEKSI_CONN = "koneksi_default"  # the example DAG's connection
LINKUP_CONN = "linkup_webhooks"
EXAMPLE = Path(__file__).resolve().parents[2] / "example_dags" / "example_koneksi_webhook_export.py"


# ---- helpers ----------------------------------------------------------------------------------------------
def post(
    url: str, body: bytes, headers: dict[str, str], *, chunked: bool = False
) -> tuple[int, dict[str, Any]]:
    """POST ``body``; the answer even when the server refused it before reading it all (a broken pipe)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        try:
            if chunked:  # no Content-Length: the plugin must count the stream
                chunks = (body[i : i + 8192] for i in range(0, len(body), 8192))
                conn.request("POST", parts.path, body=chunks, headers=headers, encode_chunked=True)
            else:
                conn.request("POST", parts.path, body=body, headers=headers)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered (413) and closed before the whole body went out
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


@pytest.fixture(autouse=True)
def _drop_connections():
    """The connections a test wrote into the session's shared metadata DB go away after it."""
    yield
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    dropped = [KONEKSI_CONN, LINKUP_CONN, "linkmsg_test_db"]  # the last: the refusal test's Postgres one
    with create_session() as session:
        session.query(Connection).filter(Connection.conn_id.in_(dropped)).delete()


def save_connection(monkeypatch, conn_id: str, conn: dict[str, Any]) -> None:
    """The connection in the metadata DB (what the API server reads) and in this process's environment."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    with create_session() as session:
        session.query(Connection).filter(Connection.conn_id == conn_id).delete()
        session.add(
            Connection(
                conn_id=conn_id,
                conn_type=conn["conn_type"],
                password=conn.get("password"),
                extra=json.dumps(conn.get("extra") or {}),
            )
        )


def events(uri: str) -> list[dict[str, Any]]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(AssetEvent.extra)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetModel.uri == uri)
        )
        return [dict(r) for r in rows]


def deploy(dag=None, *, path: Path | None = None) -> str:
    """Serialize ``dag`` (or the DAG file ``path``) into the metadata DB, as the DAG processor would; unpause it."""
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    sync_bundles()
    if path is not None:
        bag = dag_bag(dag_folder=str(path))
        assert bag.import_errors == {} and len(bag.dags) == 1
        dag = next(iter(bag.dags.values()))
    sync_dag_to_db(dag)
    with create_session() as session:
        session.query(DagModel).filter(DagModel.dag_id == dag.dag_id).update({"is_paused": False})
    return dag.dag_id


def schedule_runs(dag_id: str) -> list[Any]:
    """One pass of the scheduler's own DAG-run creation; the DAG's asset-triggered runs."""
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.sqlalchemy import prohibit_commit

    runner = SchedulerJobRunner(job=Job())
    with create_session() as session, prohibit_commit(session) as guard:
        runner._create_dagruns_for_dags(guard, session)
        guard.commit()
    with create_session() as session:
        runs = session.query(DagRun).filter(DagRun.dag_id == dag_id).all()
        return [
            {
                "state": str(r.state),
                "run_type": str(r.run_type),
                "events": [dict(e.extra) for e in r.consumed_asset_events],
            }
            for r in runs
        ]


def wait_for(predicate, timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def consumer_dag(dag_id: str, asset):
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG

    with DAG(dag_id, schedule=[asset], start_date=datetime(2026, 1, 1)) as dag:
        EmptyOperator(task_id="export")
    return dag


# ---- Koneksi -------------------------------------------------------------------------------------------------
def koneksi_delivery(
    secret: str, request_id: str, *, sent: datetime | None = None, completed_at: str | None = None
) -> tuple[bytes, dict[str, str]]:
    """A delivery signed as Koneksi (and the sandbox) sign it: hex HMAC-SHA256 of the raw body."""
    at = (sent or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    payload = {
        "secure_request_id": request_id,
        "status": "complete",
        "completed_at": at if completed_at is None else completed_at,
        "requested_messages_count": 12,
        "generated_messages_count": 8,
        "webhook_triggered_at": at,
    }
    raw = json.dumps(payload, separators=(",", ":")).encode()
    signature = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return raw, {"Content-Type": "application/json", "koneksi-signature": signature}


def test_a_signed_koneksi_completion_queues_one_run_of_the_export_dag(
    airflow_api_server, sandbox_factory, monkeypatch
):
    sandbox = sandbox_factory(seed=3, sizes={"koneksi": dict(KONEKSI_SIZES)})
    conn = sandbox.connections()["koneksi_default"]
    save_connection(monkeypatch, KONEKSI_CONN, conn)
    secret = conn["extra"]["webhook_secret"]
    dag_id = deploy(path=EXAMPLE)  # the example export DAG, scheduled on the completion asset
    uri = koneksi_completion_uri(KONEKSI_CONN)
    endpoint = airflow_api_server.url + webhook_path("koneksi", KONEKSI_CONN)

    # The request operator points completion_notification_url at the plugin from [linkmsg] webhook_base_url.
    monkeypatch.setenv("AIRFLOW__LINKMSG__WEBHOOK_BASE_URL", airflow_api_server.url + "/")
    campaign = make_campaign(sandbox)
    del campaign["completion_notification_url"]
    operator = KoneksiRequestMessageGenerationOperator(
        task_id="request",
        campaign=campaign,
        leads=sandbox.truth("koneksi")["leads"],
        koneksi_conn_id=KONEKSI_CONN,
    )
    payload = operator.build_payload()
    assert payload["completion_notification_url"] == endpoint
    request_id = KoneksiHook(KONEKSI_CONN).request_message_generation(payload)

    # The sandbox completes the generation and POSTs its signed webhook to the API server.
    wait_for(
        lambda: sandbox.stats().get("webhooks", {}).get("koneksi delivered") == 1,
        what=f"the sandbox's delivery to {endpoint}:\n{airflow_api_server.log_tail()}",
    )
    recorded = events(uri)
    assert len(recorded) == 1
    assert recorded[0]["secure_request_id"] == request_id
    assert recorded[0]["campaign"] == {
        "automation_tool_campaign_id": "campaign_67890",
        "automation_tool_campaign_name": "Campaign 1 - North America",
    }
    assert recorded[0]["generation_status"] == "complete"
    assert recorded[0]["campaign_lookup"] == "ok"

    runs = schedule_runs(dag_id)
    assert [(r["state"], r["run_type"]) for r in runs] == [("queued", "asset_triggered")]
    assert [e["secure_request_id"] for e in runs[0]["events"]] == [request_id]

    # Koneksi may deliver twice: 2xx, nothing new (and no second run).
    status, answer = post(endpoint, *koneksi_delivery(secret, request_id))
    assert (status, answer["recorded"], answer["duplicate"]) == (200, False, True)
    # Forged (wrong secret), stale (signed, a month old) and oversized deliveries: 4xx, nothing recorded.
    other = "0b3e8f7a-3c1d-4d2e-9f6a-1b2c3d4e5f60"
    forged = post(endpoint, *koneksi_delivery("not-the-secret", other))
    unsigned = post(endpoint, koneksi_delivery(secret, other)[0], {"Content-Type": "application/json"})
    stale = post(endpoint, *koneksi_delivery(secret, other, sent=datetime.now(UTC) - timedelta(days=30)))
    huge = post(endpoint, b"{" + b" " * (1024 * 1024) + b"}", {"koneksi-signature": "00"})
    streamed = post(endpoint, b" " * (MAX_BODY + 1), {"koneksi-signature": "00"}, chunked=True)
    assert [forged[0], unsigned[0], stale[0], huge[0], streamed[0]] == [401, 401, 400, 413, 413]
    assert (forged[1]["reason"], unsigned[1]["reason"], stale[1]["reason"]) == (
        "unverified",
        "unverified",
        "too_old",
    )
    assert len(events(uri)) == 1
    assert len(schedule_runs(dag_id)) == 1

    # A genuine new completion (another generation) is recorded: the checks above refused for cause.
    status, answer = post(endpoint, *koneksi_delivery(secret, other))
    assert (status, answer["recorded"]) == (200, True)
    assert [e["secure_request_id"] for e in events(uri)] == [request_id, other]


def test_a_koneksi_duplicate_records_nothing_new_whatever_completed_at_says(
    airflow_api_server, sandbox_factory, monkeypatch
):
    """
    The duplicate check runs on the API server's clock: a ``completed_at`` ahead of it (the vendor's worker
    clock, a naive local time read as UTC) must not hide the first recording from the second delivery.
    """
    sandbox = sandbox_factory(seed=21)
    conn = sandbox.connections()["koneksi_default"]
    save_connection(monkeypatch, KONEKSI_CONN, conn)
    deploy(consumer_dag("koneksi_on_completion_clock", koneksi_completion_asset(KONEKSI_CONN)))
    uri = koneksi_completion_uri(KONEKSI_CONN)
    endpoint = airflow_api_server.url + webhook_path("koneksi", KONEKSI_CONN)
    secret = conn["extra"]["webhook_secret"]
    now = datetime.now(UTC)
    completed = {
        "now": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "10 min ahead": (now + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "naive local time, UTC+2": (now + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S"),
        "a day ahead": (now + timedelta(days=1)).isoformat(),
    }
    for i, (case, at) in enumerate(completed.items()):
        request_id = f"{i:08d}-7c1d-4d2e-9f6a-1b2c3d4e5f6a"
        before = len(events(uri))
        delivery = koneksi_delivery(secret, request_id, completed_at=at)
        answers = [post(endpoint, *delivery) for _ in range(3)]  # the first, then two identical re-deliveries
        assert [(a[0], a[1]["recorded"]) for a in answers] == [(200, True), (200, False), (200, False)], (
            case,
            answers,
        )
        assert len(events(uri)) == before + 1, case
    # Stale stays stale: a webhook_triggered_at past the maximum age is refused, whatever completed_at says.
    stale = koneksi_delivery(
        secret,
        "0b3e8f7a-3c1d-4d2e-9f6a-1b2c3d4e5f62",
        sent=now - timedelta(days=30),
        completed_at=completed["now"],
    )
    before = len(events(uri))
    status, answer = post(endpoint, *stale)
    assert (status, answer["reason"], len(events(uri))) == (400, "too_old", before)


# ---- LinkupAPI -----------------------------------------------------------------------------------------------
def resign(secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-Linkup-Timestamp": str(timestamp),
        "X-Linkup-Signature": f"v1={digest}",
    }


def test_a_signed_linkup_message_received_queues_one_run_for_the_account(
    airflow_api_server, sandbox_factory, monkeypatch
):
    sandbox = sandbox_factory(seed=5)
    conn = sandbox.connections()["linkup_default"]
    save_connection(monkeypatch, LINKUP_CONN, conn)
    account = conn["extra"]["account_id"]
    deploy(consumer_dag("linkup_inbox_on_message", linkup_message_asset(LINKUP_CONN)))
    uri = linkup_message_uri(LINKUP_CONN)
    endpoint = airflow_api_server.url + webhook_path("linkup", LINKUP_CONN)

    # Register the webhook (the secret is shown once) and keep the secret in the connection.
    created = LinkupHook(LINKUP_CONN).create_webhook(account, endpoint)
    assert created["events"] == ["message_received"] and created["secret"]
    conn["extra"]["webhook_secrets"] = {account: created["secret"]}
    save_connection(monkeypatch, LINKUP_CONN, conn)

    delivered = 0
    for _ in range(5):  # new messages in 3 conversations; some may be the owner's own (not "received")
        delivered += sandbox.advance(seconds=60, linkup={"conversations": 3, "account_id": account})[
            "linkup"
        ].get("webhooks", 0)
        if delivered:
            break
    assert delivered >= 1
    wait_for(
        lambda: sandbox.stats().get("webhooks", {}).get("linkup delivered") == delivered,
        what=f"{delivered} LinkupAPI deliveries:\n{airflow_api_server.log_tail()}",
    )
    recorded = events(uri)
    assert len(recorded) == delivered
    assert {e["account_id"] for e in recorded} == {account}
    runs = schedule_runs("linkup_inbox_on_message")
    assert [(r["state"], r["run_type"]) for r in runs] == [("queued", "asset_triggered")]
    assert {e["account_id"] for e in runs[0]["events"]} == {account}

    sent = sandbox.apps["linkup"].webhooks.sent[0]
    body, secret = sent["body"], created["secret"]
    # The same delivery again (as sent, and re-signed now as a retry would be): 2xx, nothing new.
    again = post(endpoint, body, sent["headers"])
    retried = post(endpoint, body, resign(secret, body, int(time.time())))
    assert [again[0], retried[0]] == [200, 200]
    assert again[1]["duplicate"] and retried[1]["duplicate"]
    # Forged, stale (ten minutes old), unsigned and oversized: 4xx, nothing recorded.
    new_event = json.loads(body) | {"event_id": "evt_forged_or_stale"}
    other = json.dumps(new_event).encode()
    forged = post(endpoint, other, resign("whsec_wrong", other, int(time.time())))
    stale = post(endpoint, other, resign(secret, other, int(time.time()) - 600))
    unsigned = post(
        endpoint, other, {"Content-Type": "application/json", "X-Linkup-Timestamp": str(int(time.time()))}
    )
    huge = post(endpoint, b" " * (1024 * 1024), resign(secret, b" " * (1024 * 1024), int(time.time())))
    assert [forged[0], stale[0], unsigned[0], huge[0]] == [401, 400, 401, 413]
    assert len(events(uri)) == delivered
    assert len(schedule_runs("linkup_inbox_on_message")) == 1
    # The same new event signed now is genuine: recorded once.
    assert post(endpoint, other, resign(secret, other, int(time.time())))[1]["recorded"] is True
    assert len(events(uri)) == delivered + 1


def test_before_verification_every_refusal_looks_the_same(airflow_api_server, sandbox_factory, monkeypatch):
    """No oracle: whether a connection exists, its type, whether it has a secret: one answer until verified."""
    sandbox = sandbox_factory(seed=7)
    conn = sandbox.connections()["koneksi_default"]
    save_connection(monkeypatch, KONEKSI_CONN, conn)  # a Koneksi connection with a secret
    without = dict(conn, extra={k: v for k, v in conn["extra"].items() if k != "webhook_secret"})
    save_connection(
        monkeypatch, LINKUP_CONN, {**without, "conn_type": "linkup"}
    )  # a LinkupAPI one, no secret
    save_connection(monkeypatch, "linkmsg_test_db", {"conn_type": "postgres", "password": "pw-not-to-leak"})
    body, headers = koneksi_delivery("not-the-secret", "0b3e8f7a-3c1d-4d2e-9f6a-1b2c3d4e5f61")
    url = airflow_api_server.url
    answers = {
        "forged": post(url + webhook_path("koneksi", KONEKSI_CONN), body, headers),
        "unsigned": post(url + webhook_path("koneksi", KONEKSI_CONN), body, {}),
        "other type": post(url + webhook_path("koneksi", "linkmsg_test_db"), body, headers),
        "missing": post(url + webhook_path("koneksi", "linkmsg_no_such_conn"), body, headers),
        "linkup missing": post(url + webhook_path("linkup", "linkmsg_no_such_conn"), body, headers),
        "linkup no secret": post(url + webhook_path("linkup", LINKUP_CONN), body, headers),
        "linkup other type": post(url + webhook_path("linkup", KONEKSI_CONN), body, headers),
    }
    assert {json.dumps(a, sort_keys=True) for a in answers.values()} == {
        json.dumps(answers["missing"], sort_keys=True)
    }, answers
    assert answers["missing"][0] == 401 and answers["missing"][1]["reason"] == "unverified"
    text = json.dumps(answers)
    assert "postgres" not in text and "linkmsg_test_db" not in text and "pw-not-to-leak" not in text
    log = airflow_api_server.log_tail(400)
    assert "unknown_connection" in log and "pw-not-to-leak" not in log  # the detail: in the server log only


def test_a_linkup_retry_without_event_id_is_a_duplicate(airflow_api_server, sandbox_factory, monkeypatch):
    """The payload schema is not documented: without event_id, the message (or the raw body) identifies it."""
    sandbox = sandbox_factory(seed=8)
    conn = sandbox.connections()["linkup_default"]
    conn["extra"]["webhook_secret"] = secret = "whsec_linkmsg_test_common"
    save_connection(monkeypatch, LINKUP_CONN, conn)
    account = conn["extra"]["account_id"]
    deploy(consumer_dag("linkup_inbox_on_message_retry", linkup_message_asset(LINKUP_CONN)))
    uri, endpoint = (
        linkup_message_uri(LINKUP_CONN),
        airflow_api_server.url + webhook_path("linkup", LINKUP_CONN),
    )
    before = len(events(uri))

    def message(urn: str | None, text: str) -> bytes:
        data = {"conversation_id": "conv-1", "text": text} | ({"entity_urn": urn} if urn else {})
        return json.dumps({"event": "message_received", "account_id": account, "data": data}).encode()

    now = int(time.time())
    sent = [
        (message("urn:li:msg_message:1", "hi"), True),
        (message("urn:li:msg_message:1", "hi"), False),  # the retry, re-signed two seconds later
        (message("urn:li:msg_message:2", "hi"), True),  # another message, same text
        (message(None, "no urn"), True),
        (message(None, "no urn"), False),  # the raw body identifies it
    ]
    answers = [post(endpoint, body, resign(secret, body, now + i)) for i, (body, _) in enumerate(sent)]
    assert [a[0] for a in answers] == [200] * len(sent), answers
    assert [a[1]["recorded"] for a in answers] == [new for _, new in sent], answers
    assert [a[1]["duplicate"] for a in answers] == [not new for _, new in sent]
    assert len(events(uri)) == before + 3


def test_a_deeply_nested_body_is_refused_like_any_other(airflow_api_server, sandbox_factory, monkeypatch):
    """
    Nested brackets under the size cap: unsigned or forged, the one 401 (the signature is checked before
    anything is parsed); signed, 400 ``malformed``. Never the 503 that asks the vendor to retry.
    """
    sandbox = sandbox_factory(seed=9)
    conn = sandbox.connections()["linkup_default"]
    conn["extra"]["webhook_secret"] = secret = "whsec_linkmsg_test_deep"
    save_connection(monkeypatch, LINKUP_CONN, conn)
    deploy(consumer_dag("linkup_inbox_on_message_deep", linkup_message_asset(LINKUP_CONN)))
    uri, endpoint = (
        linkup_message_uri(LINKUP_CONN),
        airflow_api_server.url + webhook_path("linkup", LINKUP_CONN),
    )
    before = len(events(uri))
    now = int(time.time())
    bodies = [b"[" * 40_000, b'{"a":' * 8_000, b'{"account_id": "acc_1", "data": ' + b"[" * 40_000]
    assert all(len(body) < MAX_BODY for body in bodies)
    forged = [post(endpoint, body, resign("whsec_wrong", body, now)) for body in bodies]
    unsigned = [post(endpoint, body, {"X-Linkup-Timestamp": str(now)}) for body in bodies]
    signed = [post(endpoint, body, resign(secret, body, now)) for body in bodies]
    assert [(a[0], a[1]["reason"]) for a in forged + unsigned] == [(401, "unverified")] * 6
    assert [(a[0], a[1]["reason"]) for a in signed] == [(400, "malformed")] * 3
    assert len(events(uri)) == before
    assert "RecursionError" not in airflow_api_server.log_tail(400)


class _HeldKoneksi(ThreadingHTTPServer):
    """A Koneksi whose retrieve endpoint holds every request until :meth:`release` (then: 404, at once)."""

    daemon_threads = True

    def __init__(self) -> None:
        self.released = threading.Event()
        self.asked = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with outer.lock:
                    outer.asked += 1
                outer.released.wait(45)
                body = b'{"error": "not found"}'
                self.send_response(404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    def release(self) -> None:
        self.released.set()
        self.shutdown()
        self.server_close()


def test_a_burst_of_koneksi_completions_does_not_queue_behind_a_silent_koneksi(
    airflow_api_server, sandbox_factory, monkeypatch
):
    """
    The campaign lookups at Koneksi are bounded in number (``CAMPAIGN_LOOKUPS``): a delivery arriving while
    they are all in flight is recorded at once without the campaign (``campaign_lookup: "busy"``), instead
    of holding a request thread behind the others' lookups until Koneksi's 10 s are over and it retries.
    """
    koneksi = _HeldKoneksi()
    try:
        conn = sandbox_factory(seed=22).connections()["koneksi_default"]
        conn["extra"]["base_url"] = koneksi.url
        save_connection(monkeypatch, KONEKSI_CONN, conn)
        deploy(consumer_dag("koneksi_on_completion_burst", koneksi_completion_asset(KONEKSI_CONN)))
        uri = koneksi_completion_uri(KONEKSI_CONN)
        endpoint = airflow_api_server.url + webhook_path("koneksi", KONEKSI_CONN)
        secret = conn["extra"]["webhook_secret"]
        before = len(events(uri))
        ids = [str(uuid.uuid4()) for _ in range(24)]
        with ThreadPoolExecutor(len(ids)) as pool:
            answers = list(pool.map(lambda rid: post(endpoint, *koneksi_delivery(secret, rid)), ids))
        asked_while_held = koneksi.asked
    finally:
        koneksi.release()
    assert [(a[0], a[1]["recorded"]) for a in answers] == [(200, True)] * len(ids), answers
    recorded = events(uri)[before:]
    assert sorted(e["secure_request_id"] for e in recorded) == sorted(ids)
    assert all(e["campaign"] is None for e in recorded)
    lookups = Counter(e.get("campaign_lookup") for e in recorded)
    # At most CAMPAIGN_LOOKUPS deliveries waited for Koneksi (and each at most CAMPAIGN_LOOKUP_TIMEOUT);
    # the others were not queued behind them
    assert lookups == Counter({"timed_out": asked_while_held, "busy": len(ids) - asked_while_held}), lookups
    assert asked_while_held <= receiver.CAMPAIGN_LOOKUPS
