"""
The ids of the messages already staged, per conversation: what a deepened read de-duplicates against.

One small JSON document per conversation, ``{state dir}/{account}.keys/{conversation}.json``, read only
while that conversation is being read (so memory holds the conversations in flight, never a whole
inbox), and updated only from a staged run's manifest once it is durable (so an id in the index is
always staged). State written before the index existed has none: the first deepened read of such a
conversation stages it again in full, once (the exports keep one row per key).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import groupby
from operator import itemgetter
from typing import TYPE_CHECKING

from airflow_provider_linkmsg.io.atomic import (
    SYNC_THREADS,
    discard_local,
    prepare_local,
    publish_local,
    write_files,
)
from airflow_provider_linkmsg.io.paths import is_local
from airflow_provider_linkmsg.io.staging import (
    atomic_write,
    exists,
    iter_part_lines,
    open_for_read,
    safe_name,
)

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    from airflow_provider_linkmsg.io.staging import Manifest
    from airflow_provider_linkmsg.records import Message

#: conversations whose index files :meth:`KeyIndex.add_manifest` writes together (their fsyncs shared)
BATCH = 64
_DECODER = json.JSONDecoder()


class KeyIndex:
    """
    Staged message ids by conversation, for one (consumer, vendor, account).

    :param directory: the index's folder (``WatermarkStore.keys_directory``).
    """

    def __init__(self, directory: ObjectStoragePath) -> None:
        self.directory = directory
        #: the folder on the local disk, as text (``None``: an object store); local files are named by text,
        #: not through ``ObjectStoragePath`` (~10 us a path)
        self._local_dir: str | None = directory.path if is_local(directory) else None

    @staticmethod
    def _name(conversation_id: str) -> str:
        return f"{safe_name(conversation_id, max_length=40)}.json"

    def _path(self, conversation_id: str) -> ObjectStoragePath:
        return self.directory / self._name(conversation_id)

    def local_path(self, conversation_id: str) -> str:
        """The index file of a conversation on the local disk (``self._path(...).path``), for a local index."""
        if self._local_dir is None:
            raise ValueError(f"the key index in {self.directory} is not on the local disk")
        return f"{self._local_dir}/{self._name(conversation_id)}"

    def load(self, conversation_id: str) -> set[str] | None:
        """The staged ids of a conversation, or ``None`` when it has no index yet."""
        if self._local_dir is not None:
            return _load_local(self.local_path(conversation_id))
        return self._load(self._path(conversation_id))

    @staticmethod
    def _load(path: ObjectStoragePath) -> set[str] | None:
        if is_local(path):
            return _load_local(path.path)
        if not exists(path):
            return None
        with open_for_read(path) as f:
            return _decoded(f.read())

    def _merged(self, conversation_id: str, ids: Iterable[str]) -> tuple[ObjectStoragePath, bytes] | None:
        """The conversation's index file with ``ids`` added, or ``None`` when it holds them all already."""
        path = self._path(conversation_id)
        content = _merge(conversation_id, self._load(path), ids)
        return None if content is None else (path, content)

    def merged_local(self, conversation_id: str, ids: Iterable[str]) -> tuple[str, bytes] | None:
        """:meth:`_merged` of a local index, the path as text."""
        path = self.local_path(conversation_id)
        content = _merge(conversation_id, _load_local(path), ids)
        return None if content is None else (path, content)

    def add(self, conversation_id: str, ids: Iterable[str]) -> None:
        """Add staged ids to a conversation's index (read, merge, replace atomically)."""
        merged = self._merged(conversation_id, ids)
        if merged is not None:
            with atomic_write(merged[0]) as f:
                f.write(merged[1])

    def add_records(self, records: Iterable[Message]) -> Iterator[Message]:
        """Index ``records`` (staged, grouped by conversation as the engine writes them) as they pass by."""
        for conversation_id, group in groupby(records, key=lambda r: r.conversation_id):
            batch = list(group)
            yield from batch
            self.add(conversation_id, (r.message_id for r in batch))

    def add_manifest(self, manifest: Manifest) -> None:
        """
        Index every record of a durable staged run. Reads the two fields it needs from each JSON line (the
        part files' record counts are checked as by ``iter_records``), without building the records; the
        changed index files are replaced :data:`BATCH` at a time (:func:`write_files`: each complete or
        not at all, their fsyncs shared), so memory holds one batch of conversations.
        """
        batch: dict[str, tuple[ObjectStoragePath, bytes]] = {}
        for conversation_id, group in groupby(_ids(manifest), key=itemgetter(0)):
            ids = [message_id for _, message_id in group]
            if conversation_id in batch or len(batch) >= BATCH:  # a conversation met again reads its new file
                write_files(list(batch.values()))
                batch = {}
            merged = self._merged(conversation_id, ids)
            if merged is not None:
                batch[conversation_id] = merged
        write_files(list(batch.values()))


class IndexUpdate:
    """
    What one run adds to the index, prepared while the run goes and published with its manifest.

    As the run stages a conversation (:meth:`stage`), its merged index file is written to a hidden
    temporary file and fsynced in the background (local disk); :meth:`publish`, once the manifest is
    durable, only renames them and fsyncs the folder, so an id enters the index only when it is staged,
    as with :meth:`KeyIndex.add_manifest`. :meth:`discard` (a failed run) deletes them. A conversation
    staged twice in one run, or an index on an object store, is indexed from the manifest at publish.

    :param index: the account's index.
    """

    def __init__(self, index: KeyIndex) -> None:
        self.index = index
        self._from_manifest = not is_local(index.directory)
        self._pending: dict[str, tuple[str, Future[str]] | None] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._queued: deque[Future[str]] = deque()

    def stage(self, messages: Sequence[Message]) -> None:
        """Prepare the index files of the conversations of ``messages`` (staged just now)."""
        if self._from_manifest:
            return
        for conversation_id, group in groupby(messages, key=lambda m: m.conversation_id):
            if conversation_id in self._pending:  # staged twice: indexed from the manifest instead
                self._from_manifest = True
                self.discard()
                return
            merged = self.index.merged_local(conversation_id, [m.message_id for m in group])
            if merged is None:
                self._pending[conversation_id] = None  # nothing new
                continue
            if self._pool is None:
                self._pool = ThreadPoolExecutor(SYNC_THREADS, thread_name_prefix="linkmsg-index")
            final = merged[0]
            future = self._pool.submit(prepare_local, final, merged[1])
            self._pending[conversation_id] = (final, future)
            self._queued.append(future)
            while len(self._queued) > 2 * SYNC_THREADS:  # a slow disk holds the run, not its memory
                self._queued.popleft().exception()  # waits; an error is raised by publish

    def publish(self, manifest: Manifest) -> None:
        """Put the prepared files in place (the manifest is durable); on an error none is left over."""
        if self._from_manifest:
            self.discard()
            self.index.add_manifest(manifest)
            return
        prepared = self._wait()
        pairs = [(final, f.result()) for final, f in prepared if not f.exception()]
        failed = next((f.exception() for _, f in prepared if f.exception()), None)
        if failed is not None:
            discard_local(tmp for _, tmp in pairs)
            raise failed
        publish_local(pairs)

    def settle(self) -> None:
        """Wait until every index file prepared so far is written (an error waits for :meth:`publish`)."""
        for item in list(self._pending.values()):
            if item is not None:
                item[1].exception()
        self._queued.clear()

    def discard(self) -> None:
        """Delete the prepared files (the run failed or its staging was aborted)."""
        for _, future in self._wait():
            if not future.exception():
                discard_local([future.result()])

    def _wait(self) -> list[tuple[str, Future[str]]]:
        """The prepared files (final path, temporary path's future), all done; none pending after."""
        pending, self._pending = self._pending, {}
        self._queued.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        return [item for item in pending.values() if item is not None]


def _load_local(path: str) -> set[str] | None:
    """The ids in a local index file, or ``None`` when there is none (one open, no separate look-up)."""
    try:
        with open(path, "rb") as f:
            content = f.read()
    except FileNotFoundError:
        return None
    return _decoded(content)


def _decoded(content: bytes) -> set[str]:
    return set(_DECODER.decode(content.decode("utf-8", "surrogatepass")).get("ids") or [])


def _merge(conversation_id: str, known: set[str] | None, ids: Iterable[str]) -> bytes | None:
    """The index file of ``known`` ids with ``ids`` added, or ``None`` when ``known`` holds them all already."""
    merged = (known or set()) | set(ids)
    if known is not None and merged == known:
        return None  # nothing new: no write
    document = {"conversation_id": conversation_id, "ids": sorted(merged)}
    return json.dumps(document, ensure_ascii=False).encode()


def _ids(manifest: Manifest) -> Iterator[tuple[str, str]]:
    """``(conversation_id, message_id)`` of every staged record, in file order."""
    for index in range(len(manifest.files)):
        for line in iter_part_lines(manifest, index):
            yield _pair(line.decode("utf-8", "surrogatepass"))


_CONVERSATION = '"conversation_id":'
_MESSAGE = ',"message_id":'


def _pair(line: str) -> tuple[str, str]:
    """
    ``(conversation_id, message_id)`` of one staged line, the two values decoded where they stand: the
    staging writer puts them fourth and fifth, after three strings (a ``"`` inside a JSON string is
    escaped, so the first ``"conversation_id":`` is the key). Any other line is decoded whole.
    """
    start = line.find(_CONVERSATION)
    if start > 0:
        try:
            conversation_id, end = _DECODER.raw_decode(line, start + len(_CONVERSATION))
            if line.startswith(_MESSAGE, end):
                message_id, _ = _DECODER.raw_decode(line, end + len(_MESSAGE))
                if type(conversation_id) is str and type(message_id) is str:
                    return conversation_id, message_id
        except ValueError:
            pass
    data = _DECODER.decode(line)
    return data["conversation_id"], data["message_id"]
