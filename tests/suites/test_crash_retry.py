"""
Crash and retry: a task process killed with SIGKILL at a random point, then retried, ends right.

The task runs in a forked process (a real process, killed for real) against the sandbox over HTTP; the
test watches the sandbox's counters or the destination and kills the process at a seeded random point:
after the k-th vendor call, once n rows are exported, once the vendor started the paid work. The retry is
the same task run again (same run id, as Airflow's task retry). Afterwards the output must equal the
ground truth with nothing twice, the watermarks must be exactly the newest staged message of each
conversation, and paid work (a Koneksi generation, a Linked API job) must not have been started twice.
"""

from __future__ import annotations

import errno
import json
import os
import random
import re
import shutil
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_linkmsg.exceptions import LinkMsgError, LinkMsgVendorError
from airflow_provider_linkmsg.io.staging import Manifest, StagingWriter, iter_records, safe_name, to_path
from airflow_provider_linkmsg.io.state import JsonState, WatermarkStore
from airflow_provider_linkmsg.operators.connectsafely import ConnectSafelyRetrieveMessagesOperator
from airflow_provider_linkmsg.operators.export import LinkMsgExportToSqlOperator
from airflow_provider_linkmsg.operators.koneksi import (
    KoneksiRequestMessageGenerationOperator,
    KoneksiRetrieveMessagesOperator,
)
from airflow_provider_linkmsg.operators.linkedapi import (
    HANDLE_KEY,
    LinkedApiRetrieveMessagesOperator,
    LinkedApiSyncConversationsOperator,
)
from airflow_provider_linkmsg.operators.linkup import LinkupRetrieveMessagesOperator
from airflow_provider_linkmsg.records import Message
from airflow_provider_linkmsg.sandbox import Sandbox
from airflow_provider_linkmsg.utils import task_run_id
from tests.compat import outlet_event_accessors
from tests.fixtures.inbox import assert_exactly, staged_messages, truth_messages
from tests.fixtures.koneksi import (
    GENERATE,
    KONEKSI_SIZES,
    RETRIEVE,
    koneksi_counter,
    make_campaign,
    record_tuples,
)
from tests.fixtures.koneksi import truth_messages as koneksi_truth
from tests.fixtures.suites import FORK, kill_when, sqlite_count, sqlite_records, vendor_calls

OPERATORS = {"connectsafely": ConnectSafelyRetrieveMessagesOperator, "linkup": LinkupRetrieveMessagesOperator}
READ_ROUTES = {"connectsafely": "GET /conversations/{urn}/messages", "linkup": "POST /messages"}


def route_of(name: str) -> str:
    """``"GET /path"`` of a ``"<vendor> GET /path"`` counter name."""
    return name.split(" ", 1)[1]


def newest_by_conversation(messages) -> dict[str, str]:
    newest: dict[str, str] = {}
    for m in messages:
        newest[m.conversation_id] = max(newest.get(m.conversation_id, ""), m.sent_at)
    return newest


def assert_watermarks_match(
    root: str, vendor: str, account: str, truth, consumer: str = "inbox_test.retrieve"
) -> None:
    """Each conversation's watermark is its newest message: never ahead of the data, never behind it."""
    marks = WatermarkStore(root, vendor=vendor, account=account, consumer=consumer).all()
    assert {cid: mark["sent_at"] for cid, mark in marks.items()} == newest_by_conversation(truth)


# ---- inbox retrieval ------------------------------------------------------------------------------------
def retrieve(vendor: str, staging: str, context: dict[str, Any]) -> dict[str, Any]:
    op = OPERATORS[vendor](task_id="retrieve", staging_path=staging, page_size=2, max_workers=2)
    return op.execute(context)


def kill_retrieval(
    sandbox, vendor: str, staging: str, context: dict[str, Any], rng: random.Random, kmax: int
):
    """Start the retrieval, kill it after a random number (1 to ``kmax``) of vendor calls; ``rng`` seeded."""
    sandbox.reset_stats()
    k, delay = rng.randint(1, kmax), rng.uniform(0, 0.02)
    killed = kill_when(
        retrieve, vendor, staging, context, when=lambda: vendor_calls(sandbox, vendor) >= k, delay=delay
    )
    assert killed, f"the retrieval ended before its call {k} (+{delay * 1000:.0f} ms)"


@pytest.mark.parametrize("seed", range(4))
def test_a_first_retrieval_killed_mid_run_then_retried_stages_the_truth_once(
    inbox_sandbox, inbox_context, tmp_path, seed
):
    vendor, staging, rng = "connectsafely", str(tmp_path / "staging"), random.Random(seed)
    sandbox = inbox_sandbox(vendor, seed=seed, conversations=10, messages=6)
    sandbox.set_faults([{"vendor": vendor, "route": READ_ROUTES[vendor], "latency_ms": 10}])
    context = inbox_context("run-1")
    # the listing, then one `since=0` read per conversation (a first read is whole, not paged); the last 6 calls
    # take more than the delay
    calls = 1 + len(sandbox.truth(vendor)["conversations"])
    for _ in range(1 + seed % 2):  # odd seeds: killed twice before the retry that completes
        kill_retrieval(sandbox, vendor, staging, context, rng, kmax=calls - 6)

    result = retrieve(vendor, staging, context)

    truth = truth_messages(sandbox, vendor)
    assert_exactly(staged_messages(result["manifest"]), truth)
    assert_watermarks_match(staging, vendor, result["account_id"], truth)


@pytest.mark.parametrize("seed", range(4))
def test_an_incremental_retrieval_killed_mid_run_then_retried_adds_exactly_the_new_messages(
    inbox_sandbox, inbox_context, tmp_path, seed
):
    vendor, staging, rng = "linkup", str(tmp_path / "staging"), random.Random(seed)
    sandbox = inbox_sandbox(vendor, seed=seed, conversations=10, messages=4)
    first = retrieve(vendor, staging, inbox_context("run-1"))
    sandbox.advance(seconds=3600, linkup={"conversations": 4, "messages": 5})
    sandbox.set_faults([{"vendor": vendor, "route": READ_ROUTES[vendor], "latency_ms": 15}])
    context = inbox_context("run-2")
    for _ in range(1 + seed % 2):  # 4 conversations changed: 17 calls; the last 7 take more than the delay
        kill_retrieval(sandbox, vendor, staging, context, rng, kmax=10)

    second = retrieve(vendor, staging, context)

    truth = truth_messages(sandbox, vendor)
    assert_exactly(staged_messages(first["manifest"]) + staged_messages(second["manifest"]), truth)
    assert_watermarks_match(staging, vendor, second["account_id"], truth)


# ---- export -----------------------------------------------------------------------------------------------
def export_to_sql(manifest: dict[str, Any], conn_id: str, batch_size: int) -> dict[str, Any]:
    op = LinkMsgExportToSqlOperator(
        task_id="to_sql", manifests=manifest, conn_id=conn_id, batch_size=batch_size
    )
    return op.execute({"outlet_events": outlet_event_accessors()})


@pytest.mark.parametrize("seed", range(4))
def test_an_export_to_sqlite_killed_mid_batch_then_retried_holds_the_truth_once(
    inbox_sandbox, inbox_context, tmp_path, warehouse, seed
):
    conn_id, database = warehouse
    vendor, table, batch = "connectsafely", "linkmsg_messages", 4
    sandbox = inbox_sandbox(vendor, seed=seed, conversations=25, messages=40)
    staged = ConnectSafelyRetrieveMessagesOperator(task_id="retrieve", staging_path=str(tmp_path)).execute(
        inbox_context("run-1")
    )
    truth = truth_messages(sandbox, vendor)
    rows = random.Random(seed).randint(2 * batch, len(truth) // 2)

    killed = kill_when(
        export_to_sql, staged, conn_id, batch, when=lambda: sqlite_count(database, table) >= rows
    )

    assert killed, f"the export ended before it wrote {rows} rows"
    left = sqlite_count(database, table)
    assert rows <= left < len(truth) and left % batch == 0, (
        f"{left} rows: a batch is written whole or not at all"
    )
    export_to_sql(staged, conn_id, batch)
    assert_exactly(sqlite_records(database, table, Message), truth)


# ---- paid work is never started twice ----------------------------------------------------------------------
def request_generation(sandbox, staging: str, context: dict[str, Any]) -> str:
    return KoneksiRequestMessageGenerationOperator(
        task_id="request",
        campaign=make_campaign(sandbox),
        leads=sandbox.truth("koneksi")["leads"],
        staging_path=staging,
    ).execute(context)


def assert_one_generation_retrieved_whole(sandbox, request_id: str, staging: str, context: dict[str, Any]):
    assert koneksi_counter(sandbox, "generations") == 1
    assert list(sandbox.truth("koneksi")["requests"]) == [request_id]
    sandbox.set_faults([])
    sandbox.advance(seconds=3600)  # the generation completes
    result = KoneksiRetrieveMessagesOperator(
        task_id="retrieve", secure_request_id=request_id, staging_path=staging
    ).execute(context)
    assert record_tuples(iter_records(result["manifest"])) == koneksi_truth(sandbox, request_id)
    assert result["records"] == 8  # 4 leads x 2 steps, each once


@pytest.mark.parametrize("seed", range(4))
def test_a_koneksi_request_killed_after_the_post_is_paid_once(sandbox_factory, inbox_context, tmp_path, seed):
    sandbox = sandbox_factory(seed=seed, sizes={"koneksi": {**KONEKSI_SIZES, "leads": 4}})
    staging, context = str(tmp_path / "staging"), inbox_context("run-1", task_id="request")
    # the task checks the new generation after the POST: slow that down so the kill lands after the POST
    sandbox.set_faults([{"vendor": "koneksi", "route": route_of(RETRIEVE), "latency_ms": 300}])
    delay = random.Random(seed).uniform(0, 0.03)

    killed = kill_when(
        request_generation,
        sandbox,
        staging,
        context,
        when=lambda: koneksi_counter(sandbox, "generations") >= 1,
        delay=delay,
    )

    assert killed
    request_id = request_generation(sandbox, staging, context)
    assert_one_generation_retrieved_whole(sandbox, request_id, staging, inbox_context("run-1"))


def sync_op(world, staging: str, mode: str | None) -> LinkedApiSyncConversationsOperator:
    return LinkedApiSyncConversationsOperator(
        task_id="sync",
        persons=world.persons(),
        staging_path=staging,
        result_handling=mode,
        poll_interval=0.05,
        timeout=60,
        deferrable=False,
    )


def sync(world, staging: str, mode: str | None, context: dict[str, Any]) -> dict[str, Any]:
    return sync_op(world, staging, mode).execute(context)


def handle_saved(staging: str, context: dict[str, Any]) -> bool:
    """Whether the sync task has kept its job's handle (``_state/linkedapi-jobs/<task run>.json``)."""
    name = f"{safe_name(task_run_id(context), max_length=160)}.json"
    return HANDLE_KEY in JsonState(to_path(staging) / "_state" / "linkedapi-jobs" / name).load()


def assert_synced_once_and_read_whole(world, result: dict[str, Any], staging: str, context: dict[str, Any]):
    assert world.counter("jobs_started") == 1
    synced = {(p["person"], p["channel"]) for p in result["synced"]}
    assert synced == {(p["person"], p["channel"]) for p in world.truth["persons"]}
    retrieved = LinkedApiRetrieveMessagesOperator(
        task_id="retrieve", persons=world.persons(), staging_path=staging
    ).execute(context)
    staged = list(iter_records(retrieved["manifest"]))
    assert len(staged) == len({m.key for m in staged}) == len(world.expected())
    assert {
        (m.conversation_id, m.message_id, m.sent_at, m.direction, m.text) for m in staged
    } == world.expected()


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize(("api", "mode"), [("seed", "reslink"), ("current", None)])
def test_a_linkedapi_sync_killed_after_the_job_started_reconnects_to_it(
    linkedapi_world, inbox_context, tmp_path, api, mode, seed
):
    world = linkedapi_world(api, seed=seed, persons=6, not_found=1, sync_seconds=1.0)
    staging, context = str(tmp_path / "staging"), inbox_context("run-1", task_id="sync")
    delay = random.Random(seed).uniform(0, 0.5)

    killed = kill_when(
        sync, world, staging, mode, context, when=lambda: handle_saved(staging, context), delay=delay
    )

    assert killed and world.counter("jobs_started") == 1
    result = sync(world, staging, mode, context)
    assert_synced_once_and_read_whole(world, result, staging, inbox_context("run-1", task_id="retrieve"))


def test_a_linkedapi_sync_killed_while_the_vendor_holds_the_long_call_starts_no_second_job(
    linkedapi_world, inbox_context, tmp_path
):
    world = linkedapi_world("seed", persons=6, not_found=1, sync_seconds=1.0)
    staging, context = str(tmp_path / "staging"), inbox_context("run-1", task_id="sync")

    killed = kill_when(sync, world, staging, "long", context, when=lambda: world.counter("jobs_started") >= 1)

    assert killed
    result = sync(world, staging, "long", context)
    assert_synced_once_and_read_whole(world, result, staging, inbox_context("run-1", task_id="retrieve"))


@pytest.mark.parametrize(
    "case",
    [
        "koneksi",
        "linkedapi-seed",
        "linkedapi-current",
    ],
)
def test_a_lost_answer_to_the_paid_call_is_paid_once_after_the_retry(
    case, sandbox_factory, linkedapi_world, inbox_context, tmp_path
):
    staging = str(tmp_path / "staging")
    if case == "koneksi":
        sandbox = sandbox_factory(seed=1, sizes={"koneksi": {**KONEKSI_SIZES, "leads": 4}})
        sandbox.set_faults([{"vendor": "koneksi", "route": route_of(GENERATE), "p_truncate": 1, "times": 1}])
        context = inbox_context("run-1", task_id="request")
        with pytest.raises(LinkMsgVendorError, match="cut off"):
            request_generation(sandbox, staging, context)
        assert koneksi_counter(sandbox, "generations") == 1  # the vendor did start it
        request_id = request_generation(sandbox, staging, context)
        assert koneksi_counter(sandbox, "duplicate_requests") == 1
        assert_one_generation_retrieved_whole(sandbox, request_id, staging, inbox_context("run-1"))
        return
    api = case.split("-")[1]
    mode = "reslink" if api == "seed" else None
    world = linkedapi_world(api, persons=6, not_found=1)
    route = "POST /account/conversations.synchronize" if api == "seed" else "POST /workflows"
    world.sandbox.set_faults([{"vendor": "linkedapi", "route": route, "p_truncate": 1, "times": 1}])
    context = inbox_context("run-1", task_id="sync")
    with pytest.raises(LinkMsgVendorError, match="cut off"):
        sync(world, staging, mode, context)
    assert world.counter("jobs_started") == 1  # the vendor did start it
    result = sync(world, staging, mode, context)
    assert_synced_once_and_read_whole(world, result, staging, inbox_context("run-1", task_id="retrieve"))


# ---- the staging commit: a fault at each of its steps, then a retry ------------------------------------------
class CommitSteps:
    """
    In a forked task process: count the file-system steps from ``StagingWriter.close()`` on (the staging
    commit, then the watermark commit) and fail one of them, with SIGKILL or an ``OSError`` (ENOSPC).

    The steps are the calls that change the disk: opening a file to write, ``fsync``, ``replace``/``rename``,
    ``remove``/``unlink`` and opening a directory (to fsync it). Each is counted before it happens.
    """

    def __init__(self, fail_at: int | None = None, how: str = "kill") -> None:
        self.fail_at, self.how, self.trace, self.armed = fail_at, how, [], False

    def step(self, op: str, *paths: Any) -> None:
        if not self.armed:
            return
        if len(self.trace) == self.fail_at:
            if self.how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise OSError(errno.ENOSPC, "No space left on device (injected)", str(paths[0]))
        names = [
            re.sub(
                r"tmp-\w+$",
                "tmp-*",
                os.path.basename(os.readlink(f"/proc/self/fd/{p}") if isinstance(p, int) else os.fsdecode(p)),
            )
            for p in paths
        ]
        self.trace.append(f"{op} {' -> '.join(names)}")

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import builtins

        def wrap(module: Any, name: str, op: str, applies: Callable[..., bool] = lambda *a, **k: True):
            real = getattr(module, name)

            def faulty(*args: Any, **kwargs: Any) -> Any:
                if applies(*args, **kwargs):
                    self.step(op, *args[: 2 if op in ("replace", "rename") else 1])
                return real(*args, **kwargs)

            monkeypatch.setattr(module, name, faulty)

        def writes(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> bool:
            return not isinstance(file, int) and any(c in mode for c in "wax+")

        wrap(builtins, "open", "open", writes)
        wrap(os, "fsync", "fsync")
        wrap(os, "replace", "replace")
        wrap(os, "rename", "rename")
        wrap(os, "remove", "remove")
        wrap(os, "unlink", "unlink")
        wrap(os, "open", "opendir", lambda path, flags, *a, **k: flags == os.O_RDONLY)
        real_close = StagingWriter.close

        def close(writer: StagingWriter) -> Any:
            self.armed = True
            return real_close(writer)

        monkeypatch.setattr(StagingWriter, "close", close)


def retry_with_fault(staging: str, context: dict[str, Any], fail_at: int | None, how: str, out: str) -> None:
    """Child process: the task's retry, failing at commit step ``fail_at``; writes what it saw to ``out``."""
    steps = CommitSteps(fail_at, how)
    with pytest.MonkeyPatch.context() as monkeypatch:
        steps.install(monkeypatch)
        try:
            retrieve("connectsafely", staging, context)
            error = None
        except BaseException as exc:  # the task failed: that is the point for an injected OSError
            error = f"{type(exc).__name__}: {exc}"
    with open(out, "w") as f:
        json.dump({"trace": steps.trace, "error": error}, f)


def assert_no_watermark_ahead_of_staged_data(staging: str, account: str, truth: set[Message]) -> None:
    """One complete manifest of the run is on storage, and it holds everything each watermark says is staged."""
    run_dirs = list(Path(staging, "connectsafely").iterdir())
    assert len(run_dirs) == 1, run_dirs
    staged = staged_messages(str(run_dirs[0] / "manifest.json"))  # loads it and checks every part's count
    assert len(staged) == len({m.key for m in staged}), "a record staged twice"
    for conversation, mark in (
        WatermarkStore(staging, vendor="connectsafely", account=account, consumer="crash.retrieve")
        .all()
        .items()
    ):
        covered = {m for m in truth if m.conversation_id == conversation and m.sent_at <= mark["sent_at"]}
        held = {m for m in staged if m.conversation_id == conversation}
        assert covered <= held, (
            f"{conversation}: watermark {mark['sent_at']} but {len(covered - held)} not staged"
        )


@pytest.fixture(scope="module")
def failed_first_try(tmp_path_factory):
    """
    A ConnectSafely task whose first try staged 11 of 12 conversations (one kept failing) and committed their
    watermarks: the staging directory after it, the sandbox (the failing one now readable) and the truth.
    """
    mp = pytest.MonkeyPatch()
    sandbox = Sandbox(
        seed=3, sizes={"connectsafely": {"accounts": 1, "conversations": 12, "messages": 4}}
    ).start()
    for key, value in sandbox.env().items():
        mp.setenv(key, value)
    staging = str(tmp_path_factory.mktemp("first-try") / "staging")
    broken = sorted(c["conversation_id"] for c in sandbox.truth("connectsafely")["conversations"])[5]
    sandbox.configure({"vendors": {"connectsafely": {"fail_conversations": [broken]}}})
    name = "AIRFLOW_CONN_CONNECTSAFELY_DEFAULT"
    conn = json.loads(os.environ[name])
    conn["extra"]["max_retries"] = 0
    mp.setenv(name, json.dumps(conn))
    context = {"ti": SimpleNamespace(dag_id="crash", task_id="retrieve", run_id="run-1", map_index=-1)}
    with pytest.raises(LinkMsgError, match="could not be read"):
        retrieve("connectsafely", staging, {**context, "run_id": "run-1"})
    sandbox.configure({"vendors": {"connectsafely": {"fail_conversations": []}}})
    account = sandbox.truth("connectsafely")["accounts"][0]["id"]
    truth = truth_messages(sandbox, "connectsafely")
    assert (
        len(WatermarkStore(staging, vendor="connectsafely", account=account, consumer="crash.retrieve").all())
        == 11
    )
    yield SimpleNamespace(
        staging=staging, context={**context, "run_id": "run-1"}, account=account, truth=truth
    )
    threading.Thread(target=sandbox.stop, daemon=True).start()
    mp.undo()


def commit_trace(first, tmp_path: Path) -> list[str]:
    """The steps of the retry's commit, recorded by a retry that fails nowhere."""
    staging, out = str(tmp_path / "record"), str(tmp_path / "record.json")
    shutil.copytree(first.staging, staging)
    proc = FORK.Process(target=retry_with_fault, args=(staging, first.context, None, "kill", out))
    proc.start()
    proc.join(60)
    with open(out) as f:
        seen = json.load(f)
    assert seen["error"] is None, seen["error"]
    return seen["trace"]


def test_the_commit_steps_are_enumerated(failed_first_try, tmp_path):
    trace = commit_trace(failed_first_try, tmp_path)
    account_file = f"{safe_name(failed_first_try.account)}.json"
    # the new generation's part, then the manifest (the commit point), then the watermarks: in that order
    milestones = ["-> part-00000.g2.jsonl", "-> manifest.json", f"-> {account_file}"]
    positions = [next(i for i, step in enumerate(trace) if step.endswith(m)) for m in milestones]
    assert positions == sorted(positions), trace
    assert any(step.startswith("remove part-00000.jsonl") for step in trace), "the first generation is swept"


@pytest.mark.parametrize("how", ["kill", "oserror"])
def test_a_fault_at_each_step_of_the_staging_commit_then_a_retry_loses_nothing(
    failed_first_try, tmp_path, how
):
    first = failed_first_try
    trace = commit_trace(first, tmp_path)
    assert 10 <= len(trace) <= 40, trace
    for k, step in enumerate(trace):
        staging, out = str(tmp_path / f"{how}-{k}"), str(tmp_path / f"{how}-{k}.json")
        shutil.copytree(first.staging, staging)
        proc = FORK.Process(target=retry_with_fault, args=(staging, first.context, k, how, out))
        proc.start()
        proc.join(60)
        if how == "kill":
            assert proc.exitcode == -signal.SIGKILL, f"step {k} ({step}): the process was not killed"
        else:
            assert proc.exitcode == 0 and os.path.exists(out), f"step {k} ({step})"
        # right after the fault: a complete manifest, and every watermark covered by it
        assert_no_watermark_ahead_of_staged_data(staging, first.account, first.truth)

        result = retrieve("connectsafely", staging, first.context)

        where = f"after a {how} at step {k} ({step})"
        staged = staged_messages(result["manifest"])
        assert {m.key for m in staged} == {m.key for m in first.truth}, where
        assert_exactly(staged, first.truth)
        assert_watermarks_match(
            staging, "connectsafely", first.account, first.truth, consumer="crash.retrieve"
        )
        run_dir = Path(result["manifest"]).parent
        listed = {f["name"] for f in Manifest.load(run_dir).files}
        assert {p.name for p in run_dir.iterdir()} == {"manifest.json", *listed}, where
