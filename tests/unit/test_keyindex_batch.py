"""The index of staged ids written in batches: the same files as one write each, nothing lost or left over."""

from __future__ import annotations

import json
import os
import time

import pytest

from airflow_provider_linkmsg.io import atomic
from airflow_provider_linkmsg.io import keys as keys_module
from airflow_provider_linkmsg.io.keys import KeyIndex
from airflow_provider_linkmsg.io.staging import StagingWriter, to_path
from airflow_provider_linkmsg.records import Message


def _message(conversation: str, i: int) -> Message:
    return Message(
        "linkup", "acc", conversation, f"{conversation}-{i}", f"2026-01-01T00:00:{i:02d}.000000Z", "inbound"
    )


def _manifest(root, groups: list[tuple[str, range]]):
    with StagingWriter(str(root), vendor="linkup", record_type="message", run_id="r") as writer:
        for conversation, numbers in groups:
            for i in numbers:
                writer.write(_message(conversation, i))
    return writer.close()


def _files(directory) -> dict[str, bytes]:
    return {name: (directory / name).read_bytes() for name in sorted(os.listdir(directory))}


def test_a_manifest_indexes_the_same_bytes_as_one_conversation_at_a_time(tmp_path, monkeypatch):
    monkeypatch.setattr(keys_module, "BATCH", 4)  # several batches and a last, partial one
    groups = [(f"urn:li:c{n}/é", range(n % 3 + 1)) for n in range(11)]
    manifest = _manifest(tmp_path / "staging", groups)
    batched = KeyIndex(to_path(str(tmp_path / "batched")))
    batched.add("urn:li:c2/é", ["old"])  # one conversation indexed before: merged, not replaced
    one_by_one = KeyIndex(to_path(str(tmp_path / "one")))
    one_by_one.add("urn:li:c2/é", ["old"])

    batched.add_manifest(manifest)
    for conversation, numbers in groups:
        one_by_one.add(conversation, [f"{conversation}-{i}" for i in numbers])

    assert _files(tmp_path / "batched") == _files(tmp_path / "one")  # no hidden temporary file either
    assert batched.load("urn:li:c2/é") == {"old", "urn:li:c2/é-0", "urn:li:c2/é-1", "urn:li:c2/é-2"}


def _fail_fsync(monkeypatch, at: int, error: OSError) -> None:
    """The ``at``-th fsync of the index's atomic writes from now on raises ``error``; the others sync."""
    real_fsync, calls = os.fsync, []

    def failing_fsync(fd: int) -> None:
        calls.append(fd)
        if len(calls) == at:
            raise error
        real_fsync(fd)

    monkeypatch.setattr(atomic.os, "fsync", failing_fsync)


def _index_in_one_batch(index: KeyIndex, manifest, groups) -> None:
    index.add_manifest(manifest)


def _index_as_a_run(index: KeyIndex, manifest, groups) -> None:
    from airflow_provider_linkmsg.io.keys import IndexUpdate

    update = IndexUpdate(index)
    for conversation, numbers in groups:
        update.stage([_message(conversation, i) for i in numbers])
    update.publish(manifest)


#: the two ways a manifest's ids enter the index: one batched write, or a run's staged files published
WAYS = [
    pytest.param(_index_in_one_batch, id="add_manifest"),
    pytest.param(_index_as_a_run, id="stage-publish"),
]


@pytest.mark.parametrize("index_manifest", WAYS)
def test_a_conversation_met_again_keeps_the_ids_of_both_groups(tmp_path, index_manifest):
    # carried-over records, then the same conversation read again: two groups of one conversation
    groups = [("c1", range(2)), ("c2", range(1)), ("c1", range(2, 4))]
    manifest = _manifest(tmp_path / "staging", groups)
    index = KeyIndex(to_path(str(tmp_path / "keys")))
    index_manifest(index, manifest, groups)
    assert index.load("c1") == {"c1-0", "c1-1", "c1-2", "c1-3"} and index.load("c2") == {"c2-0"}
    assert sorted(os.listdir(tmp_path / "keys")) == ["c1.json", "c2.json"]  # no temporary file left


def test_a_failed_batch_leaves_the_old_files_and_no_temporary_file(tmp_path, monkeypatch):
    index = KeyIndex(to_path(str(tmp_path / "keys")))
    index.add("c0", ["before"])
    before = _files(tmp_path / "keys")
    manifest = _manifest(tmp_path / "staging", [(f"c{n}", range(2)) for n in range(5)])
    _fail_fsync(monkeypatch, 3, OSError(5, "Input/output error"))
    with pytest.raises(OSError, match="Input/output error"):
        index.add_manifest(manifest)
    assert _files(tmp_path / "keys") == before
    assert json.loads(before["c0.json"])["ids"] == ["before"]


def _update(tmp_path):
    from airflow_provider_linkmsg.io.keys import IndexUpdate

    index = KeyIndex(to_path(str(tmp_path / "keys")))
    return index, IndexUpdate(index)


def test_a_run_s_ids_enter_the_index_only_when_published(tmp_path):
    index, update = _update(tmp_path)
    index.add("c1", ["old"])
    groups = [("c1", range(2)), ("c2", range(3))]
    manifest = _manifest(tmp_path / "staging", groups)
    for conversation, numbers in groups:
        update.stage([_message(conversation, i) for i in numbers])
    assert index.load("c1") == {"old"} and index.load("c2") is None  # prepared, not in place
    update.publish(manifest)
    assert index.load("c1") == {"old", "c1-0", "c1-1"} and index.load("c2") == {"c2-0", "c2-1", "c2-2"}
    assert sorted(os.listdir(tmp_path / "keys")) == ["c1.json", "c2.json"]  # no temporary file left


def test_a_discarded_run_leaves_the_index_as_it_was(tmp_path):
    index, update = _update(tmp_path)
    index.add("c1", ["old"])
    before = _files(tmp_path / "keys")
    update.stage([_message("c1", 0), _message("c2", 0)])
    update.discard()
    assert _files(tmp_path / "keys") == before


def test_a_failed_preparation_fails_the_publish_and_leaves_nothing(tmp_path, monkeypatch):
    index, update = _update(tmp_path)
    index.add("c0", ["before"])
    before = _files(tmp_path / "keys")
    manifest = _manifest(tmp_path / "staging", [(f"c{n}", range(2)) for n in range(5)])
    _fail_fsync(monkeypatch, 2, OSError(28, "No space left on device"))
    for n in range(5):
        update.stage([_message(f"c{n}", i) for i in range(2)])
    with pytest.raises(OSError, match="No space left"):
        update.publish(manifest)
    assert _files(tmp_path / "keys") == before


def test_a_slow_disk_holds_the_run_not_its_memory(tmp_path, monkeypatch):
    import threading

    from airflow_provider_linkmsg.io import keys

    index, update = _update(tmp_path)
    real, running, most = keys.prepare_local, [0], [0]
    lock = threading.Lock()

    def slow(final: str, content: bytes) -> str:
        with lock:
            running[0] += 1
        time.sleep(0.01)
        try:
            return real(final, content)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(keys, "prepare_local", slow)
    groups = [(f"c{n}", range(2)) for n in range(60)]
    manifest = _manifest(tmp_path / "staging", groups)
    for conversation, numbers in groups:
        update.stage([_message(conversation, i) for i in numbers])
        most[0] = max(most[0], sum(not f.done() for _, f in update._pending.values()))
    assert most[0] <= 2 * keys.SYNC_THREADS + 1  # prepared files waiting (and their content) stay bounded
    update.publish(manifest)
    assert all(index.load(f"c{n}") == {f"c{n}-0", f"c{n}-1"} for n in range(60))
