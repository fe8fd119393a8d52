"""State: JSON documents and watermarks that never move past data that was not written."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
import uuid
from pathlib import Path

import fsspec
import pytest
from fsspec.implementations.memory import MemoryFileSystem

from airflow_provider_linkmsg.io.staging import Manifest, StagingWriter, iter_records
from airflow_provider_linkmsg.io.state import JsonState, StagedRun, WatermarkStore, commit_after
from airflow_provider_linkmsg.records import Message

FORK = multiprocessing.get_context("fork")  # a real process, killed for real, without re-importing Airflow


def message(i: int, conversation: str = "c1") -> Message:
    return Message(
        vendor="linkup",
        account_id="acct",
        conversation_id=conversation,
        message_id=f"m{i}",
        sent_at=f"2024-05-01T00:00:{i:02d}.000000Z",
        direction="inbound",
        text=f"text {i}",
    )


class ManifestRefusingFileSystem(MemoryFileSystem):
    """An in-memory store that fails to move ``manifest.json`` into place, like a store that filled up."""

    protocol = "flakymem"
    store = {}
    pseudo_dirs = [""]

    def mv(self, path1, path2, **kwargs):
        if str(path2).endswith("manifest.json"):
            raise OSError("No space left on device")
        return super().mv(path1, path2, **kwargs)


@pytest.fixture
def flaky_root():
    fsspec.register_implementation("flakymem", ManifestRefusingFileSystem, clobber=True)
    yield f"flakymem://b-{uuid.uuid4().hex[:8]}/root"
    ManifestRefusingFileSystem.store.clear()


@pytest.mark.parametrize("store", ["local", "memory"])
def test_json_state_round_trip(tmp_path, store):
    path = tmp_path / "s" / "ids.json" if store == "local" else f"memory://state-{uuid.uuid4().hex}/ids.json"
    state = JsonState(path)
    assert state.load() == {}
    state.save({"synced": ["a", "b"], "n": 1, "name": "Zoë"})
    assert JsonState(path).load() == {"synced": ["a", "b"], "n": 1, "name": "Zoë"}
    state.save({"synced": []})
    assert JsonState(path).load() == {"synced": []}
    if store == "local":
        assert [p.name for p in (tmp_path / "s").iterdir()] == ["ids.json"]


def test_watermark_store_stages_in_memory_and_commits_atomically(tmp_path):
    store = WatermarkStore(tmp_path, vendor="linkup", account="urn:li:account/42")
    assert store.get("c1") is None
    assert store.all() == {}

    store.stage("c1", {"sent_at": "2024-05-01T00:00:00.000000Z", "ids_at_sent_at": ["m1"]})
    assert store.get("c1") is None, "a staged value is not a watermark yet"
    assert not store.path.exists()

    assert store.commit() == 1
    assert Path(store.path.path).parent == tmp_path / "_state" / "linkup"
    assert store.path.name.startswith("urn_li_account_42-")
    again = WatermarkStore(str(tmp_path), vendor="linkup", account="urn:li:account/42")
    assert again.get("c1") == {"sent_at": "2024-05-01T00:00:00.000000Z", "ids_at_sent_at": ["m1"]}
    assert WatermarkStore(tmp_path, vendor="linkup", account="urn:li:account/43").all() == {}

    # A second writer of the same account merges per conversation and keeps what it did not touch.
    again.stage("c2", {"sent_at": "2024-05-02T00:00:00.000000Z"})
    store.stage("c1", {"sent_at": "2024-05-03T00:00:00.000000Z"})
    again.commit()
    store.commit()
    assert WatermarkStore(tmp_path, vendor="linkup", account="urn:li:account/42").all() == {
        "c1": {"sent_at": "2024-05-03T00:00:00.000000Z"},
        "c2": {"sent_at": "2024-05-02T00:00:00.000000Z"},
    }
    document = json.loads(store.path.read_text())
    assert document["account"] == "urn:li:account/42"
    assert document["vendor"] == "linkup"
    assert store.commit() == 0


def test_watermark_store_on_memory_store():
    root = f"memory://wm-{uuid.uuid4().hex[:8]}"
    store = WatermarkStore(root, vendor="connectsafely", account="a")
    store.stage("c", {"cursor": 5})
    store.discard()
    assert store.commit() == 0
    store.stage("c", {"cursor": 6})
    store.commit()
    assert WatermarkStore(root, vendor="connectsafely", account="a").get("c") == {"cursor": 6}


def _commit_each(root: str, worker: int, count: int) -> None:
    for n in range(count):
        store = WatermarkStore(root, vendor="linkup", account="acct")  # a task of its own each time
        store.stage(f"w{worker}-c{n}", {"n": n})
        store.commit()


def test_concurrent_commits_of_one_account_lose_nothing(tmp_path):
    """Four processes commit 25 conversations each to one account's file, all at once: all 100 stay."""
    workers = [FORK.Process(target=_commit_each, args=(str(tmp_path), w, 25)) for w in range(4)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(timeout=60)
        assert p.exitcode == 0

    watermarks = WatermarkStore(str(tmp_path), vendor="linkup", account="acct").all()
    assert len(watermarks) == 100
    assert sorted(p.name for p in (tmp_path / "_state" / "linkup").iterdir()) == [
        ".acct.json.lock",
        "acct.json",
    ]


def test_staged_run_commits_only_after_the_manifest_is_written(tmp_path):
    store = WatermarkStore(tmp_path, vendor="linkup", account="acct")
    writer = StagingWriter(tmp_path, vendor="linkup", record_type="message", run_id="r1")
    with StagedRun(writer, store) as run:
        for i in range(3):
            run.writer.write(message(i))
            store.stage("c1", {"sent_at": message(i).sent_at})
        assert not writer.manifest_path.exists()
        assert store.get("c1") is None
    assert run.manifest == Manifest.load(writer.manifest_path)
    assert run.manifest.record_count == 3
    assert WatermarkStore(tmp_path, vendor="linkup", account="acct").get("c1") == {
        "sent_at": "2024-05-01T00:00:02.000000Z"
    }


def test_exception_in_the_run_leaves_the_watermark_unchanged(tmp_path):
    store = WatermarkStore(tmp_path, vendor="linkup", account="acct")
    store.stage("c1", {"sent_at": "old"})
    store.commit()
    writer = StagingWriter(tmp_path, vendor="linkup", record_type="message", run_id="r2")
    with pytest.raises(ConnectionError), StagedRun(writer, store):
        writer.write(message(1))
        store.stage("c1", {"sent_at": "new"})
        raise ConnectionError("reset by peer")
    assert store.staged == {}
    assert not writer.manifest_path.exists()
    assert WatermarkStore(tmp_path, vendor="linkup", account="acct").get("c1") == {"sent_at": "old"}


@pytest.mark.filterwarnings("ignore:UPath 'flakymem'")
def test_writer_failing_at_close_leaves_the_watermark_unchanged(flaky_root):
    store = WatermarkStore(flaky_root, vendor="linkup", account="acct")
    store.stage("c1", {"sent_at": "old"})
    store.commit()
    writer = StagingWriter(
        flaky_root, vendor="linkup", record_type="message", run_id="r3", max_records_per_file=2
    )
    with pytest.raises(OSError, match="No space left"), StagedRun(writer, store):
        for i in range(5):
            writer.write(message(i))
        store.stage("c1", {"sent_at": "new"})

    fs = fsspec.filesystem("flakymem")
    assert fs.find(writer.directory.path) == [], "no part file of the failed run is visible"
    assert WatermarkStore(flaky_root, vendor="linkup", account="acct").get("c1") == {"sent_at": "old"}
    assert store.staged == {}


def test_commit_after_refuses_anything_but_a_durable_manifest(tmp_path):
    store = WatermarkStore(tmp_path, vendor="linkup", account="acct")
    store.stage("c1", {"sent_at": "new"})
    writer = StagingWriter(tmp_path, vendor="linkup", record_type="message", run_id="r4")
    with pytest.raises(TypeError, match="Manifest"):
        commit_after(writer, store)  # type: ignore[arg-type]
    manifest = writer.close()
    writer.manifest_path.unlink()
    with pytest.raises(RuntimeError, match="not on storage"):
        commit_after(manifest, store)
    assert not store.path.exists()


def close_then_wait(root: str, closed) -> None:
    """Child process: stage a run, close it, then wait (to be killed) before committing the watermark."""
    store = WatermarkStore(root, vendor="linkup", account="acct")
    with StagingWriter(
        root, vendor="linkup", record_type="message", run_id="r", max_records_per_file=400
    ) as w:
        for i in range(1000):
            w.write(message(i % 60))
        store.stage("c1", {"sent_at": "2024-05-02T00:00:00Z"})
    closed.set()
    time.sleep(120)  # killed here: after the data is durable, before the watermark commit
    commit_after(w.close(), store)


def test_sigkill_between_close_and_commit_keeps_old_watermark_and_complete_data(tmp_path):
    store = WatermarkStore(tmp_path, vendor="linkup", account="acct")
    store.stage("c1", {"sent_at": "2024-05-01T00:00:00Z"})
    store.commit()

    closed = FORK.Event()
    proc = FORK.Process(target=close_then_wait, args=(str(tmp_path), closed))
    proc.start()
    try:
        assert closed.wait(60), "the child never closed its staging run"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.join()
    assert proc.exitcode == -signal.SIGKILL

    manifest = Manifest.load(tmp_path / "linkup" / "r")
    assert manifest.record_count == 1000
    assert [f["records"] for f in manifest.files] == [400, 400, 200]
    assert len(list(iter_records(manifest))) == 1000
    assert WatermarkStore(tmp_path, vendor="linkup", account="acct").get("c1") == {
        "sent_at": "2024-05-01T00:00:00Z"
    }


# ---- consumers, leases and the index of staged ids ------------------------------------------------------
def test_watermarks_of_two_consumers_are_apart(tmp_path):
    files = WatermarkStore(tmp_path, vendor="linkup", account="acc", consumer="dag_a.retrieve")
    sql = WatermarkStore(tmp_path, vendor="linkup", account="acc", consumer="dag_b.retrieve")
    files.stage("c", {"sent_at": "2026-01-01T00:00:00.000000Z"})
    files.commit()
    assert sql.all() == {} and files.path != sql.path
    assert files.path.path.endswith("_state/linkup/dag_a.retrieve/acc.json")


def test_of_two_runs_taking_a_lease_at_once_exactly_one_gets_it(tmp_path):
    from airflow_provider_linkmsg.io.lease import Lease, LinkMsgLeaseHeldError
    from airflow_provider_linkmsg.io.staging import to_path

    path = to_path(str(tmp_path / "acc.lease"))
    holders = [{"dag_id": "d", "run_id": f"run-{i}", "task_id": "t", "map_index": -1} for i in range(2)]
    leases = [Lease(path, h, wait_seconds=0, expiry_seconds=60) for h in holders]
    outcomes: list[str] = []

    def take(lease):
        try:
            lease.acquire()
            outcomes.append("held")
        except LinkMsgLeaseHeldError as error:
            outcomes.append(str(error))

    import threading

    threads = [threading.Thread(target=take, args=(lease,)) for lease in leases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(o == "held" for o in outcomes) == [False, True]
    refused = next(o for o in outcomes if o != "held")
    assert "'d'" in refused and "'t'" in refused and "host" in refused
    winner = next(lease for lease in leases if lease.held)
    winner.release()
    loser = next(lease for lease in leases if not lease.held)
    loser.acquire()  # free again
    assert json.loads(Path(path.path).read_text())["run_id"] == loser.holder["run_id"]
    loser.release()
    assert not Path(path.path).exists()


def test_the_index_keeps_the_staged_ids_of_each_conversation(tmp_path):
    from airflow_provider_linkmsg.io.keys import KeyIndex
    from airflow_provider_linkmsg.io.staging import to_path

    index = KeyIndex(to_path(str(tmp_path / "acc.keys")))
    assert index.load("c1") is None  # never indexed: not known
    records = [
        Message(
            "linkup", "acc", conversation, f"{conversation}-{i}", "2026-01-01T00:00:00.000000Z", "inbound"
        )
        for conversation in ("c1", "c2")
        for i in range(3)
    ]
    assert list(index.add_records(iter(records))) == records  # passed through, indexed on the way
    index.add("c1", ["c1-9"])
    assert index.load("c1") == {"c1-0", "c1-1", "c1-2", "c1-9"} and index.load("c2") == {
        "c2-0",
        "c2-1",
        "c2-2",
    }


@pytest.mark.parametrize("root", ["{tmp}/acc.keys", "{tmp}//./acc.keys/", "file://{tmp}/acc.keys"])
def test_a_local_index_names_its_files_as_its_paths_do(tmp_path, root):
    from airflow_provider_linkmsg.io.keys import KeyIndex
    from airflow_provider_linkmsg.io.staging import to_path

    index = KeyIndex(to_path(root.format(tmp=tmp_path)))
    for conversation_id in ("c1", "urn:li:msg_conversation:(urn:li:fsd_profile:ACo,2-abc==)", "a/../b"):
        assert index.local_path(conversation_id) == index._path(conversation_id).path
        index.add(conversation_id, ["m1"])  # written through ObjectStoragePath, read back by text
        assert index.load(conversation_id) == {"m1"}
        assert index.merged_local(conversation_id, ["m1"]) is None
        assert index.merged_local(conversation_id, ["m2"])[0] == index.local_path(conversation_id)
    with pytest.raises(ValueError, match="not on the local disk"):
        KeyIndex(to_path("memory://keys")).local_path("c1")


def test_a_long_read_keeps_its_lease_and_a_stalled_holder_learns_it_lost_it(tmp_path):
    """Review E: renewal by a timer; a renewal or check after a takeover raises instead of overwriting."""
    import time

    from airflow_provider_linkmsg.io.lease import Lease, LinkMsgLeaseHeldError, LinkMsgLeaseLostError
    from airflow_provider_linkmsg.io.staging import to_path

    path = to_path(str(tmp_path / "acc.lease"))
    first = {"dag_id": "d", "run_id": "r1", "task_id": "t", "map_index": -1, "try_number": 1}
    second = {**first, "run_id": "r2"}
    holder = Lease(path, first, wait_seconds=0, expiry_seconds=1).acquire()
    try:
        time.sleep(2.5)  # a long read: no heartbeat of the run's own for more than twice the expiry
        with pytest.raises(LinkMsgLeaseHeldError):
            Lease(path, second, wait_seconds=0, expiry_seconds=1).acquire()
        holder._timer_stop.set()  # the holder stalls (its process frozen): its lease expires
        time.sleep(1.5)
        taker = Lease(path, second, wait_seconds=0, expiry_seconds=60).acquire()
        with pytest.raises(LinkMsgLeaseLostError, match="r2"):
            holder.renew(force=True)  # main's renew() overwrote the taker's lease
        with pytest.raises(LinkMsgLeaseLostError):
            holder.check()  # before any commit
        assert taker.held and taker._is_ours()
        taker.release()
    finally:
        holder.release()
