"""
Where a watcher keeps what it has seen: one small JSON document per watcher under the staging root
(``{staging_path}/_state/watchers/{vendor}/{state_key}.json``), read and replaced atomically off the event
loop. Trigger kwargs cannot carry progress (an asset watcher is re-created from them), so this does.

Two copies of one watcher may run at once (Airflow: duplicates of a trigger may run simultaneously; an asset
watcher runs on every triggerer of an HA pair). So a write is a compare-and-swap: the document carries a
``revision``, and :meth:`WatcherStore.save` replaces it only if it is still the revision this store read or
wrote last; else it raises :class:`WatcherStateConflict` with the stored document, which the losing copy
adopts (it does not fire). On the local disk the read-compare-write holds an exclusive lock
(``fcntl.flock`` on a hidden ``.{name}.lock`` beside the document, :meth:`JsonState.update`), across
processes and threads. Object stores (``s3://`` ...) have no such lock: there the check narrows the race
to the moment between the read and the write, it does not close it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_linkmsg.io.state import JsonState

#: the document's key for its revision (kept out of the state a watcher sees)
REVISION = "revision"


class WatcherStateConflict(Exception):
    """
    Another copy of the watcher wrote the state since this one read it: nothing was written.

    :param stored: the stored document (without its revision), for the losing copy to adopt.
    :param revision: the stored revision.
    """

    def __init__(self, stored: dict[str, Any], revision: int | None) -> None:
        super().__init__("the watcher's state was written by another copy of the watcher")
        self.stored, self.revision = stored, revision


class WatcherStore:
    """
    The persisted state of one watcher.

    It keeps only its location's strings between looks, and builds the path objects inside the worker
    thread that reads or writes: an idle watcher holds no path objects for each full garbage collection to
    walk (a thousand watchers in one triggerer hold thousands fewer).

    :param root: staging root (``None``: ``[linkmsg] staging_path``, else ``$AIRFLOW_HOME/linkmsg``).
    :param conn_id: connection of the staging store when ``root`` is a URL that needs one.
    :param vendor: the vendor's name (a folder).
    :param key: the watcher's state key (the file's name).
    """

    __slots__ = ("conn_id", "key", "revision", "root", "vendor")

    def __init__(self, root: str | None, conn_id: str | None, *, vendor: str, key: str) -> None:
        if not root:
            from airflow_provider_linkmsg.utils import default_staging_root

            root = default_staging_root()
        from airflow_provider_linkmsg.io.paths import to_path

        self.root, self.conn_id, self.vendor, self.key = str(root), conn_id, vendor, key
        self.revision: int | None = None  # of the document last read or written here
        to_path(self.root, self.conn_id)  # a root no store can take fails here, before any look

    @property
    def state(self) -> JsonState:
        """The document (made on each use)."""
        from airflow_provider_linkmsg.io.paths import safe_name, to_path
        from airflow_provider_linkmsg.io.state import JsonState

        path = to_path(self.root, self.conn_id) / "_state" / "watchers" / safe_name(self.vendor)
        return JsonState(path / f"{safe_name(self.key, max_length=120)}.json")

    @property
    def path(self) -> Any:
        return self.state.path

    async def load(self) -> dict[str, Any]:
        """The stored state (its revision remembered), or ``{}`` for a watcher that never looked."""
        data = await asyncio.to_thread(lambda: self.state.load())
        self.revision = data.pop(REVISION, None)
        return data

    async def save(self, data: dict[str, Any]) -> None:
        """
        Replace the stored state if no other copy wrote it since this store read or wrote it (readers see
        the old or the new document, never a mix); else raise :class:`WatcherStateConflict` (this store
        then holds the stored revision, so a write based on the adopted state can succeed).
        """
        expected = self.revision

        def swap(stored: dict[str, Any]) -> None:
            if stored.get(REVISION) != expected:
                kept = {k: v for k, v in stored.items() if k != REVISION}
                raise WatcherStateConflict(kept, stored.get(REVISION))
            stored.clear()
            stored.update(data)
            stored[REVISION] = (expected or 0) + 1

        try:
            written = await asyncio.to_thread(lambda: self.state.update(swap))
        except WatcherStateConflict as lost:
            self.revision = lost.revision
            raise
        self.revision = written[REVISION]

    async def update(self, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """
        Read, change in place and replace the stored document as one step (under the lock on the local
        disk: every process's update waits its turn); returns the document written. For documents every
        copy changes, such as a LinkupAPI account's daily credit spend.
        """

        def locked(stored: dict[str, Any]) -> None:
            revision = stored.pop(REVISION, None)
            change(stored)
            stored[REVISION] = (revision or 0) + 1

        written = await asyncio.to_thread(lambda: self.state.update(locked))
        self.revision = written[REVISION]
        return {k: v for k, v in written.items() if k != REVISION}
