"""
Where a watcher keeps what it has seen: one small JSON document per watcher under the staging root
(``{staging_path}/_state/watchers/{vendor}/{state_key}.json``), read and replaced atomically off the event
loop. Trigger kwargs cannot carry progress (an asset watcher is re-created from them), so this does.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_linkmsg.io.state import JsonState


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

    __slots__ = ("conn_id", "key", "root", "vendor")

    def __init__(self, root: str | None, conn_id: str | None, *, vendor: str, key: str) -> None:
        if not root:
            from airflow_provider_linkmsg.utils import default_staging_root

            root = default_staging_root()
        from airflow_provider_linkmsg.io.paths import to_path

        self.root, self.conn_id, self.vendor, self.key = str(root), conn_id, vendor, key
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
        """The stored state, or ``{}`` for a watcher that never looked."""
        return await asyncio.to_thread(lambda: self.state.load())

    async def save(self, data: dict[str, Any]) -> None:
        """Replace the stored state (readers see the old or the new document, never a mix)."""
        await asyncio.to_thread(lambda: self.state.save(data))
