"""
OpenLineage of the operators that move data, with one dataset naming per kind of data (README, "Assets").

* a staged run or exported files: their path URL (namespace ``file`` and the absolute path, or
  ``{protocol}://{bucket}`` and the key), as the exports already announce them;
* a vendor's data: namespace = the connection's API base URL, name = ``{vendor}/{what}``:
  ``{vendor}/accounts/{account_id}/conversations`` (an inbox) or ``koneksi/generations/{secure_request_id}``.

OpenLineage is imported inside the methods only: DAG files that import an operator do not pay for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import ObjectStoragePath
    from airflow.providers.openlineage.extractors import OperatorLineage


def path_dataset(path: ObjectStoragePath) -> Any:
    """The dataset of a staged run directory or of exported files."""
    from airflow.providers.common.compat.openlineage.facet import Dataset

    from airflow_provider_linkmsg.io.staging import is_local

    if is_local(path):
        return Dataset(namespace="file", name=path.path)
    return Dataset(namespace=f"{path.protocol}://{path.bucket}", name=path.key)


def vendor_dataset(vendor: str, base_url: str, name: str) -> Any:
    """A vendor's data: namespace = the API base URL, name = ``{vendor}/{name}``."""
    from airflow.providers.common.compat.openlineage.facet import Dataset

    return Dataset(namespace=base_url.rstrip("/"), name=f"{vendor}/{name}")


def inbox_name(account_id: str) -> str:
    """The name (under the vendor) of an account's inbox."""
    return f"accounts/{account_id}/conversations"


class LineageMixin:
    """
    Operators that record what they read and wrote while running: ``lineage_inputs`` / ``lineage_outputs``
    hold ``("path", ObjectStoragePath)`` or ``("vendor", vendor, base_url, name)`` entries.
    """

    lineage_inputs: list[tuple[Any, ...]]
    lineage_outputs: list[tuple[Any, ...]]

    def record_lineage(self, inputs: list[tuple[Any, ...]], outputs: list[tuple[Any, ...]]) -> None:
        self.lineage_inputs, self.lineage_outputs = inputs, outputs

    @staticmethod
    def _dataset(entry: tuple[Any, ...]) -> Any:
        return path_dataset(entry[1]) if entry[0] == "path" else vendor_dataset(*entry[1:])

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        """Inputs and outputs of the run (empty when the run recorded none)."""
        from airflow.providers.openlineage.extractors import OperatorLineage

        return OperatorLineage(
            inputs=[self._dataset(e) for e in getattr(self, "lineage_inputs", [])],
            outputs=[self._dataset(e) for e in getattr(self, "lineage_outputs", [])],
        )
