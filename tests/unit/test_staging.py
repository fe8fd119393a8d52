"""Staging: JSON Lines parts and a manifest, written so that nothing is ever half visible."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import multiprocessing
import os
import signal
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import fsspec
import pytest

from airflow_provider_linkmsg.exceptions import LinkMsgError
from airflow_provider_linkmsg.io.staging import (
    STALE_TMP_SECONDS,
    Manifest,
    StagingWriter,
    atomic_write,
    iter_records,
    safe_name,
)
from airflow_provider_linkmsg.io.state import StagedRun, WatermarkStore
from airflow_provider_linkmsg.records import GeneratedMessage, Message

FORK = multiprocessing.get_context("fork")  # a real process, killed for real, without re-importing Airflow


def make_messages(n: int, *, vendor: str = "linkup", raw: bool = False) -> list[Message]:
    return [
        Message(
            vendor=vendor,
            account_id="urn:li:acct:1",
            conversation_id=f"conv-{i % 7}",
            message_id=f"msg-{i}",
            sent_at=f"2024-05-{1 + i % 28:02d}T10:00:{i % 60:02d}.000000Z",
            direction="outbound" if i % 3 == 0 else "inbound",
            sender_id=None if i % 5 == 0 else f"person-{i % 11}",
            sender_name='Zoë \u2028 O\'Brien, "Jr"' if i % 4 == 0 else None,
            text=f"line one\nline two {i} \u00e9\u4e2d" if i % 2 else "",
            has_attachments=i % 6 == 0,
            channel="sales_navigator" if i % 9 == 0 else "standard",
            raw={"id": f"msg-{i}", "nested": {"n": i}} if raw else None,
        )
        for i in range(n)
    ]


def make_generated(n: int) -> list[GeneratedMessage]:
    return [
        GeneratedMessage(
            request_id="req-1",
            lead_id=f"lead-{i // 2}",
            message_type="connection_request" if i % 2 == 0 else "first_follow_up",
            step=1 + i % 2,
            status="generated" if i % 5 else "failed",
            text=f"Hi lead {i}" if i % 5 else None,
            linkedin=f"https://www.linkedin.com/in/lead-{i // 2}",
            notice=None if i % 5 else "char_limit",
            retrieved_at="2024-05-02T00:00:00.000000Z",
        )
        for i in range(n)
    ]


def visible_files(directory: str | os.PathLike) -> list[str]:
    """Non-hidden files under a local directory, relative to it."""
    root = Path(directory)
    if not root.exists():
        return []
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")
    )


@pytest.fixture
def memory_root():
    root = f"memory://linkmsg-test-{uuid.uuid4().hex[:8]}/staging"
    yield root
    fs = fsspec.filesystem("memory")
    if fs.exists(root.removeprefix("memory:/")):
        fs.rm(root.removeprefix("memory:/"), recursive=True)


@pytest.mark.parametrize("store", ["local", "memory"])
@pytest.mark.parametrize("include_raw", [False, True])
def test_round_trip_returns_equal_records(tmp_path, memory_root, store, include_raw):
    root = str(tmp_path) if store == "local" else memory_root
    messages = make_messages(57, raw=True)
    with StagingWriter(
        root, vendor="linkup", record_type="message", run_id="run-1", include_raw=include_raw
    ) as writer:
        for message in messages:
            writer.write(message)

    back = list(iter_records(writer.manifest_path))
    assert back == messages
    assert [m.raw for m in back] == [m.raw if include_raw else None for m in messages]
    assert Manifest.load(writer.manifest_path).include_raw is include_raw


def test_generated_messages_round_trip(tmp_path):
    records = make_generated(20)
    with StagingWriter(tmp_path, vendor="koneksi", record_type="generated_message", run_id="r") as writer:
        for record in records:
            writer.write(record)
    back = list(iter_records(writer.directory))
    assert back == records
    assert [r.retrieved_at for r in back] == [r.retrieved_at for r in records]


def test_rotation_and_manifest_counts(tmp_path):
    messages = make_messages(25)
    writer = StagingWriter(
        str(tmp_path), vendor="linkup", record_type="message", run_id="r1", max_records_per_file=10
    )
    with writer:
        for message in messages:
            writer.write(message)
        writer.add_stats(api_calls=3, credits=2)
        writer.add_stats(api_calls=4, credits=0.5, pages=2, cursor="abc")
        writer.add_stats(pages=5, cursor="def")
        writer.set_watermarks({"conv-1": {"sent_at": "2024-05-02T00:00:00.000000Z"}})
        writer.set_watermarks({"conv-2": {"sent_at": "2024-05-03T00:00:00.000000Z"}})
    manifest = writer.close()

    run_dir = tmp_path / "linkup" / "r1"
    assert visible_files(run_dir) == [
        "manifest.json",
        "part-00000.jsonl",
        "part-00001.jsonl",
        "part-00002.jsonl",
    ]
    assert [f["records"] for f in manifest.files] == [10, 10, 5]
    assert [f["bytes"] for f in manifest.files] == [
        (run_dir / f["name"]).stat().st_size for f in manifest.files
    ]
    lines = (run_dir / "part-00002.jsonl").read_bytes().splitlines()
    assert [json.loads(line)["key"] for line in lines] == [m.key for m in messages[20:]]

    loaded = Manifest.load(run_dir)
    assert loaded == manifest
    assert loaded.record_count == 25
    assert loaded.api_calls == 7
    assert loaded.credits == 2.5
    assert loaded.extra == {"pages": 7, "cursor": "def"}
    assert loaded.watermarks == {
        "conv-1": {"sent_at": "2024-05-02T00:00:00.000000Z"},
        "conv-2": {"sent_at": "2024-05-03T00:00:00.000000Z"},
    }
    assert loaded.created_at.endswith("Z")
    assert loaded.summary() == {
        "manifest": str(run_dir / "manifest.json"),
        "conn_id": None,
        "vendor": "linkup",
        "record_type": "message",
        "run_id": "r1",
        "records": 25,
        "files": 3,
        "api_calls": 7,
        "credits": 2.5,
    }
    assert "path" not in json.loads((run_dir / "manifest.json").read_text())


def test_memory_store_layout_and_summary_path_reloads(memory_root):
    messages = make_messages(12)
    with StagingWriter(
        memory_root, vendor="connectsafely", record_type="message", run_id="a:b/c", max_records_per_file=5
    ) as writer:
        for message in messages:
            writer.write(message)
    fs = fsspec.filesystem("memory")
    run_dir = writer.directory.path
    assert sorted(p.rsplit("/", 1)[1] for p in fs.find(run_dir)) == [
        "manifest.json",
        "part-00000.jsonl",
        "part-00001.jsonl",
        "part-00002.jsonl",
    ]
    summary = writer.close().summary()
    assert summary["manifest"].startswith("memory://")
    assert list(iter_records(summary["manifest"])) == messages


def test_empty_run_writes_a_manifest_without_files(tmp_path):
    with StagingWriter(tmp_path, vendor="linkedapi", record_type="message", run_id="empty") as writer:
        writer.add_stats(api_calls=1)
    manifest = Manifest.load(writer.manifest_path)
    assert manifest.files == []
    assert manifest.record_count == 0
    assert manifest.api_calls == 1
    assert list(iter_records(manifest)) == []
    assert visible_files(tmp_path) == ["linkedapi/empty/manifest.json"]


def test_writer_refuses_other_record_types(tmp_path):
    writer = StagingWriter(tmp_path, vendor="koneksi", record_type="generated_message", run_id="r")
    with pytest.raises(TypeError, match="generated_message"):
        writer.write(make_messages(1)[0])
    with pytest.raises(ValueError, match="record_type"):
        StagingWriter(tmp_path, vendor="x", record_type="email", run_id="r")


@pytest.mark.parametrize("store", ["local", "memory"])
def test_exception_mid_write_leaves_no_manifest_and_no_visible_part(tmp_path, memory_root, store):
    root = str(tmp_path) if store == "local" else memory_root
    writer = StagingWriter(root, vendor="linkup", record_type="message", run_id="r", max_records_per_file=10)
    with pytest.raises(RuntimeError, match="vendor went away"), writer:
        for i, message in enumerate(make_messages(35)):
            if i == 31:
                raise RuntimeError("vendor went away")
            writer.write(message)
    fs = writer.directory.fs if store == "local" else fsspec.filesystem("memory")
    assert not fs.exists(writer.manifest_path.path)
    leftovers = fs.find(writer.directory.path) if fs.exists(writer.directory.path) else []
    assert leftovers == []
    with pytest.raises(FileNotFoundError, match="did not complete"):
        Manifest.load(writer.manifest_path)


def test_rerun_with_same_run_id_replaces_the_previous_run(tmp_path):
    for count in (23, 4):
        with StagingWriter(
            tmp_path, vendor="linkup", record_type="message", run_id="r", max_records_per_file=10
        ) as writer:
            for message in make_messages(count):
                writer.write(message)
    assert list(iter_records(writer.manifest_path)) == make_messages(4)
    assert Manifest.load(writer.manifest_path).record_count == 4
    # the second commit of the run id wrote its own generation of parts, then swept the first away
    assert visible_files(tmp_path) == ["linkup/r/manifest.json", "linkup/r/part-00000.g2.jsonl"]
    assert Manifest.load(writer.manifest_path).generation == 2


def test_failed_rerun_keeps_the_previous_complete_run(tmp_path):
    with StagingWriter(tmp_path, vendor="linkup", record_type="message", run_id="r") as writer:
        for message in make_messages(5):
            writer.write(message)
    retry = StagingWriter(tmp_path, vendor="linkup", record_type="message", run_id="r")
    with pytest.raises(KeyboardInterrupt), retry:
        for message in make_messages(50, vendor="linkup")[::-1]:
            retry.write(message)
        raise KeyboardInterrupt
    assert list(iter_records(writer.manifest_path)) == make_messages(5)


def test_reader_detects_a_part_changed_after_the_run(tmp_path):
    with StagingWriter(tmp_path, vendor="linkup", record_type="message", run_id="r") as writer:
        for message in make_messages(5):
            writer.write(message)
    part = tmp_path / "linkup" / "r" / "part-00000.jsonl"
    part.write_bytes(b"".join(part.read_bytes().splitlines(keepends=True)[:3]))
    with pytest.raises(LinkMsgError, match="holds 3 records but its manifest says 5"):
        list(iter_records(writer.manifest_path))


def test_atomic_write_success_and_failure(tmp_path):
    target = tmp_path / "sub" / "data.bin"
    with atomic_write(str(target)) as f:
        f.write(b"first")
    assert target.read_bytes() == b"first"

    with pytest.raises(ValueError, match="boom"), atomic_write(str(target)) as f:
        f.write(b"second, partial")
        raise ValueError("boom")
    assert target.read_bytes() == b"first"
    assert sorted(p.name for p in target.parent.iterdir()) == ["data.bin"]

    with atomic_write(str(tmp_path / "text.csv"), "w", newline="") as f:
        f.write("a,b\r\n\u00e9,1\r\n")
    assert (tmp_path / "text.csv").read_bytes() == "a,b\r\n\u00e9,1\r\n".encode()


def test_a_complete_write_deletes_temporary_files_a_killed_write_left_an_hour_ago(tmp_path):
    target = tmp_path / "data.jsonl"
    stale, recent, other = (
        tmp_path / n for n in (".data.jsonl.tmp-old", ".data.jsonl.tmp-new", ".x.tmp-old")
    )
    for leftover in (stale, recent, other):
        leftover.write_bytes(b"half")
    an_hour_ago = time.time() - STALE_TMP_SECONDS - 60
    os.utime(stale, (an_hour_ago, an_hour_ago))
    os.utime(other, (an_hour_ago, an_hour_ago))
    with atomic_write(str(target)) as f:
        f.write(b"complete")
    # the stale one of this name goes; a recent one (maybe a write in progress) and other names stay
    assert sorted(p.name for p in tmp_path.iterdir()) == [".data.jsonl.tmp-new", ".x.tmp-old", "data.jsonl"]


def test_atomic_write_on_memory_store(memory_root):
    target = f"{memory_root}/x/data.txt"
    fs = fsspec.filesystem("memory")
    with pytest.raises(OSError, match="full"), atomic_write(target, "w") as f:
        f.write("partial")
        raise OSError("disk full")
    assert fs.find(memory_root.removeprefix("memory:/")) == []
    with atomic_write(target, "w") as f:
        f.write("complete")
    assert fs.cat_file(target.removeprefix("memory:/")) == b"complete"
    assert [p.rsplit("/", 1)[1] for p in fs.find(memory_root.removeprefix("memory:/"))] == ["data.txt"]


def test_safe_name_is_deterministic_and_safe():
    assert safe_name("run-1.ok_A") == "run-1.ok_A"
    a = safe_name("manual__2024-05-01T00:00:00+00:00")
    b = safe_name("manual__2024-05-01T00_00_00_00_00")
    assert a != b
    assert a == safe_name("manual__2024-05-01T00:00:00+00:00")
    assert a.startswith("manual__2024-05-01T00_00_00_00_00-")
    for value in ("../../etc", "a/b", "urn:li:fs_miniProfile:AbC", ".hidden", "", "\u00e9\u00e9", "x" * 300):
        name = safe_name(value)
        assert name
        assert all((c.isalnum() and c.isascii()) or c in "._-" for c in name), name
        assert not name.startswith(".")
        assert len(name) <= 100
    assert safe_name("a/b") != safe_name("a:b")


def write_until_killed(root: str) -> None:
    """Child process: stage one ever-growing part file (and its watermark) until it is killed."""
    store = WatermarkStore(root, vendor="linkup", account="acct")
    writer = StagingWriter(root, vendor="linkup", record_type="message", run_id="big")
    with StagedRun(writer, store) as run:
        i = 0
        while True:
            message = make_messages(1)[0]
            run.writer.write(dataclasses.replace(message, message_id=str(i), text="x" * 4000))
            store.stage("c", {"sent_at": message.sent_at, "i": i})
            i += 1


def test_sigkill_in_the_middle_of_a_large_file_leaves_nothing_visible(tmp_path):
    store = WatermarkStore(tmp_path, vendor="linkup", account="acct")
    store.stage("c", {"sent_at": "2024-01-01T00:00:00Z"})
    store.commit()
    before = store.path.read_bytes()

    run_dir = tmp_path / "linkup" / "big"
    proc = FORK.Process(target=write_until_killed, args=(str(tmp_path),))
    proc.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            temps = list(run_dir.glob(".part-00000.jsonl.tmp-*")) if run_dir.exists() else []
            if temps and temps[0].stat().st_size > 5_000_000:
                break
            assert proc.is_alive(), "the writer process ended on its own"
            time.sleep(0.01)
        else:
            pytest.fail("the writer never produced a large temporary part")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.join()
    assert proc.exitcode == -signal.SIGKILL

    assert not (run_dir / "part-00000.jsonl").exists()
    assert visible_files(tmp_path) == ["_state/linkup/acct.json"]
    with pytest.raises(FileNotFoundError):
        Manifest.load(run_dir)
    assert store.path.read_bytes() == before
    assert WatermarkStore(tmp_path, vendor="linkup", account="acct").get("c") == {
        "sent_at": "2024-01-01T00:00:00Z"
    }

    # The next attempt of the run completes it and sweeps the killed attempt's hidden file away.
    with StagingWriter(tmp_path, vendor="linkup", record_type="message", run_id="big") as retry:
        retry.write(make_messages(1)[0])
    assert sorted(p.name for p in run_dir.iterdir()) == ["manifest.json", "part-00000.jsonl"]


def test_a_failed_manifest_write_keeps_the_previous_run_whole(tmp_path, monkeypatch):
    """ENOSPC while the retry writes its manifest: the earlier manifest and its parts stay as they were."""
    with StagingWriter(tmp_path, vendor="linkup", record_type="message", run_id="r") as first:
        for message in make_messages(5):
            first.write(message)
    import airflow_provider_linkmsg.io.writer as writer_module

    real_atomic_write = writer_module.atomic_write

    @contextlib.contextmanager
    def full_disk(path, *args, **kwargs):
        with real_atomic_write(path, *args, **kwargs) as f:
            if path.name == "manifest.json":
                f.write('{"vendor"')  # part of it written, then the disk is full
                raise OSError(28, "No space left on device")
            yield f

    monkeypatch.setattr(writer_module, "atomic_write", full_disk)
    retry = StagingWriter(tmp_path, vendor="linkup", record_type="message", run_id="r")
    with pytest.raises(OSError, match="No space left"), retry:
        for message in make_messages(9):
            retry.write(message)
    assert list(iter_records(first.manifest_path)) == make_messages(5)
    assert visible_files(tmp_path) == ["linkup/r/manifest.json", "linkup/r/part-00000.jsonl"]


def test_conn_id_of_reads_both_object_storage_paths():
    from airflow_provider_linkmsg.io.staging import conn_id_of, to_path

    assert conn_id_of(to_path("s3://bucket/key", "aws_linkmsg")) == "aws_linkmsg"
    assert conn_id_of(to_path("/local/dir")) is None
    # Airflow 2.11's airflow.io.path.ObjectStoragePath: no attribute, the connection in storage_options
    assert conn_id_of(SimpleNamespace(storage_options={"conn_id": "aws_linkmsg"})) == "aws_linkmsg"
    assert conn_id_of(SimpleNamespace(storage_options={})) is None
