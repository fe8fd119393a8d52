"""
One task-state store: small values a task keeps across its own tries (a job handle, a request id).

Airflow's ``task_state_store`` (3.3+) when the task's context has one; else a JSON document under the
staging root, ``{root}/_state/{folder}/{task run}.json``, one per task run (dag, run, task, map index),
holding the values by key. Both survive a retry of the same task run and nothing else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_linkmsg.io.staging import safe_name, to_path
from airflow_provider_linkmsg.io.state import JsonState
from airflow_provider_linkmsg.utils import task_run_id

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context, ObjectStoragePath


class TaskStateStore:
    """
    Values by key for one task run, across its tries.

    :param context: the task's context (``task_state_store`` is used when present).
    :param root: staging root of the fallback file (a callable is only called when the file is needed).
    :param folder: the fallback file's folder under ``_state`` (``koneksi/requests``, ``linkedapi-jobs``).
    :param conn_id: connection of the staging store when ``root`` is a string.
    """

    def __init__(
        self,
        context: Context | dict[str, Any],
        root: str | ObjectStoragePath,
        *,
        folder: str,
        conn_id: str | None = None,
    ) -> None:
        self.task_state = context.get("task_state_store")
        self.file: JsonState | None = None
        if self.task_state is None:
            name = f"{safe_name(task_run_id(context), max_length=160)}.json"
            path = to_path(root, conn_id) / "_state"
            for part in folder.split("/"):
                path = path / part
            self.file = JsonState(path / name)

    def get(self, key: str) -> Any:
        """The value of ``key``, or ``None``."""
        if self.task_state is not None:
            return self.task_state.get(key)
        return self.file.load().get(key)

    def set(self, key: str, value: Any) -> None:
        """Keep ``value`` (JSON-serializable) under ``key``."""
        if self.task_state is not None:
            self.task_state.set(key, value)
            return
        self.file.update(lambda document: document.__setitem__(key, value))

    def delete(self, key: str) -> None:
        """Forget ``key``."""
        if self.task_state is not None:
            self.task_state.delete(key)
            return
        self.file.update(lambda document: document.pop(key, None))
