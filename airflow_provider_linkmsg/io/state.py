"""
Durable state: small JSON documents written atomically, and watermarks that never run ahead of data.

A watermark says "everything up to here is staged". It must never move past data that is not durable,
or the next incremental read would skip messages. So watermarks are only *staged* in memory while
records are written, and committed after the :class:`~airflow_provider_linkmsg.io.staging.StagingWriter`
has closed successfully. :class:`StagedRun` (or :func:`commit_after`) enforces that order::

    store = WatermarkStore(root, vendor="linkup", account=account_id)
    writer = StagingWriter(root, vendor="linkup", record_type="message", run_id=run_id)
    with StagedRun(writer, store) as run:
        for message in hook.iter_messages(since=store.get(conversation_id)):
            run.writer.write(message)
        store.stage(conversation_id, {"sent_at": message.sent_at})
    return run.manifest.summary()

If anything raises inside the block, or closing the writer fails, nothing is committed. If the process
dies after the manifest is written but before the commit, the next run re-reads from the old watermark
and de-duplicates by key: data is repeated at worst, never lost.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_linkmsg.io.staging import (
    Manifest,
    StagingWriter,
    atomic_write,
    exists,
    is_local,
    open_for_read,
    safe_name,
    to_path,
)
from airflow_provider_linkmsg.records import to_utc_iso

if TYPE_CHECKING:
    from types import TracebackType

    from airflow.providers.common.compat.sdk import ObjectStoragePath


_NOT_STAGED = object()  # no sweep marker staged (None is a marker: "clear it")


class JsonState:
    """
    One JSON document on any store, read whole and replaced atomically.

    :param path: the document's location (``.../something.json``).
    :param conn_id: connection of the store when ``path`` is a string.
    """

    def __init__(self, path: str | ObjectStoragePath, conn_id: str | None = None) -> None:
        self.path = to_path(path, conn_id)

    def load(self) -> dict[str, Any]:
        """The stored document, or ``{}`` when there is none yet."""
        if not exists(self.path):
            return {}
        with open_for_read(self.path) as f:
            return json.load(f)

    def save(self, data: dict[str, Any]) -> None:
        """
        Replace the document atomically: readers see the old one or the new one, never a mix.

        :param data: a JSON-serializable dict.
        """
        text = json.dumps(data, ensure_ascii=False, sort_keys=True)  # no indent: the C encoder
        with atomic_write(self.path, "w") as f:
            f.write(text)

    def update(self, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """
        Read, change and replace the document as one step; returns the new document.

        On the local disk an exclusive lock (a hidden ``.{name}.lock`` beside the file) makes concurrent
        updates from other tasks wait their turn, so none is lost. Object stores have no such lock: there,
        two updates at the very same moment can lose one.

        :param change: changes the loaded document in place.
        """
        with _exclusive(self.path):
            data = self.load()
            change(data)
            self.save(data)
        return data


class WatermarkStore:
    """
    Watermarks of one (consumer, vendor, account): a dict per conversation id.

    The file is ``{root}/_state/{vendor}/{consumer}/{account}.json`` (``{root}/_state/{vendor}/{account}.json``
    without a consumer, as before consumers existed). The inbox operators' consumer is their
    ``state_key``, by default ``{dag_id}.{task_id}``: two DAGs (two destinations) never share watermarks
    unless they are given the same ``state_key`` on purpose. Beside the file: the consumer's lease
    (``{account}.lease``, see :mod:`~airflow_provider_linkmsg.io.lease`) and its index of staged ids
    (``{account}.keys/``, see :mod:`~airflow_provider_linkmsg.io.keys`).

    Values are opaque dicts chosen by the operator (``{"sent_at": ..., "ids_at_sent_at": [...]}``).
    :meth:`stage` buffers new values in memory; :meth:`commit` merges them into the file atomically and
    must only be called once the data they cover is durable (see :class:`StagedRun`). Commits re-read
    the file and replace values per conversation (:meth:`JsonState.update`: under a lock on the local
    disk), so tasks that touch different conversations of one account never lose each other's
    watermarks. Object stores have no such lock: there, two commits at the very same moment can lose
    one; give concurrent tasks of one account disjoint ``account`` keys (e.g. ``f"{account}#shard-{n}"``)
    to rule that out.

    :param root: staging root (usually the same as the StagingWriter's).
    :param vendor: vendor name.
    :param account: the vendor's account id (any characters; made safe for the path).
    :param conn_id: connection of the store when ``root`` is a string.
    :param consumer: who owns these watermarks (the operator's ``state_key``); ``None``: the legacy path.
    """

    def __init__(
        self,
        root: str | ObjectStoragePath,
        *,
        vendor: str,
        account: str,
        conn_id: str | None = None,
        consumer: str | None = None,
    ) -> None:
        self.vendor = vendor
        self.account = account
        self.consumer = consumer
        directory = to_path(root, conn_id) / "_state" / safe_name(vendor)
        if consumer is not None:
            directory = directory / safe_name(consumer)
        self.directory = directory
        self.state = JsonState(directory / f"{safe_name(account)}.json")
        self._document: dict[str, Any] | None = None
        self._staged: dict[str, dict] = {}
        self._staged_sweep: Any = _NOT_STAGED  # a marker dict, None (clear it) or _NOT_STAGED

    @property
    def path(self) -> ObjectStoragePath:
        """The state file."""
        return self.state.path

    @property
    def lease_path(self) -> ObjectStoragePath:
        """The consumer's lease on this state."""
        return self.directory / f"{safe_name(self.account)}.lease"

    @property
    def keys_directory(self) -> ObjectStoragePath:
        """The consumer's index of staged message ids, one file per conversation."""
        return self.directory / f"{safe_name(self.account)}.keys"

    @property
    def staged(self) -> dict[str, dict]:
        """Values staged and not yet committed."""
        return dict(self._staged)

    def _loaded(self) -> dict[str, Any]:
        if self._document is None:
            self._document = self.state.load()
        return self._document

    def all(self) -> dict[str, dict]:
        """Every committed watermark, by conversation id (staged values are not included)."""
        return dict(self._loaded().get("watermarks", {}))

    def sweep(self) -> dict[str, Any] | None:
        """
        What the last complete pass over the account's listing covered (``{"through": ISO}``: every
        conversation last active at or before then was read), or ``None``; see ``InboxRetrieval``.
        """
        return self._loaded().get("sweep")

    def stage_sweep(self, value: dict[str, Any] | None) -> None:
        """Buffer a new sweep marker (``None`` clears it); written by :meth:`commit` with the watermarks."""
        self._staged_sweep = value

    def get(self, conversation_id: str) -> dict | None:
        """
        The committed watermark of a conversation, or ``None`` when it was never read.

        :param conversation_id: the vendor's conversation id.
        """
        return self.all().get(conversation_id)

    def stage(self, conversation_id: str, value: dict[str, Any]) -> None:
        """
        Buffer a new watermark; it is written by :meth:`commit` only.

        :param conversation_id: the vendor's conversation id.
        :param value: the operator's watermark (JSON-serializable).
        """
        self._staged[conversation_id] = dict(value)

    def discard(self) -> None:
        """Forget the staged values (the data they describe was not written)."""
        self._staged.clear()
        self._staged_sweep = _NOT_STAGED

    def commit(self) -> int:
        """Merge the staged values into the file atomically; returns how many were written."""
        if not self._staged and self._staged_sweep is _NOT_STAGED:
            return 0

        def merge(document: dict[str, Any]) -> None:
            document.update(
                vendor=self.vendor, account=self.account, updated_at=to_utc_iso(datetime.now(UTC))
            )
            document.setdefault("watermarks", {}).update(self._staged)
            if self._staged_sweep is not _NOT_STAGED:
                document["sweep"] = self._staged_sweep

        count = len(self._staged)
        self._document = self.state.update(merge)
        self._staged = {}
        self._staged_sweep = _NOT_STAGED
        return count


@contextlib.contextmanager
def _exclusive(path: ObjectStoragePath) -> Iterator[None]:
    """Hold an exclusive lock for ``path`` across processes and threads (local disk only; else nothing)."""
    if not is_local(path):
        yield
        return
    os.makedirs(path.parent.path, exist_ok=True)
    with open(path.parent.path + f"/.{path.name}.lock", "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)  # released when the file is closed
        yield


def commit_after(manifest: Manifest, *stores: WatermarkStore) -> Manifest:
    """
    Commit watermark stores once a staging run is durable; returns ``manifest``.

    Taking the :class:`Manifest` (which only a successful ``StagingWriter.close()`` gives) rather than
    the writer makes the order explicit, and the manifest file is checked to exist before anything moves.

    :param manifest: the manifest returned by ``StagingWriter.close()``.
    :param stores: the stores whose staged watermarks the run covers.
    """
    if not isinstance(manifest, Manifest):
        raise TypeError(f"commit_after needs the Manifest from StagingWriter.close(), not {manifest!r}")
    if manifest.path is None or not exists(manifest.path):
        raise RuntimeError(f"staging manifest {manifest.path} is not on storage: watermarks not committed")
    for store in stores:
        store.commit()
    return manifest


class StagedRun:
    """
    Write a staging run and commit watermarks only after it is durable.

    On a clean exit the writer is closed (parts, then manifest) and only then are the stores committed;
    if the block raises or the close fails, the writer is aborted and staged watermarks are discarded.
    After the block, :attr:`manifest` is the run's manifest.

    :param writer: the run's staging writer.
    :param stores: watermark stores that the run advances.
    """

    def __init__(self, writer: StagingWriter, *stores: WatermarkStore) -> None:
        self.writer = writer
        self.stores = stores
        self.manifest: Manifest | None = None

    def __enter__(self) -> StagedRun:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self.writer.abort()
            self._discard()
            return
        try:
            manifest = self.writer.close()
        except BaseException:
            self._discard()
            raise
        self.manifest = commit_after(manifest, *self.stores)

    def _discard(self) -> None:
        for store in self.stores:
            store.discard()
