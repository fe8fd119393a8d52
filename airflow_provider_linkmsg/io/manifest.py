"""The manifest of a staged run: what its part files hold; its presence means the run is complete."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_linkmsg.io.paths import conn_id_of, open_for_read, to_path
from airflow_provider_linkmsg.records import to_utc_iso

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import ObjectStoragePath

MANIFEST_NAME = "manifest.json"


def _now_iso() -> str:
    return to_utc_iso(datetime.now(UTC))


@dataclass
class Manifest:
    """
    The description of one staged run; its presence on storage means the run is complete.

    :param vendor: vendor of the records.
    :param record_type: ``message`` or ``generated_message``.
    :param run_id: the run id given to the writer (unsanitized).
    :param files: one ``{"name", "records", "bytes"}`` per part file, names relative to the manifest.
    :param record_count: records in all parts.
    :param watermarks: the watermarks that the data covers, as the operator set them.
    :param api_calls: vendor calls made to produce the data.
    :param credits: vendor credits spent.
    :param created_at: UTC ISO-8601 time the run was closed.
    :param extra: further counters or facts from the operator.
    :param include_raw: whether records carry the vendor's raw JSON.
    :param generation: how many times the run id was committed: each commit writes its parts under names
        of its own generation, so the manifest it replaces stays valid until the new one is in place
        (manifests written before generations existed count as 1).
    :param path: where the manifest lives (not serialized).
    """

    vendor: str
    record_type: str
    run_id: str
    files: list[dict[str, Any]] = field(default_factory=list)
    record_count: int = 0
    watermarks: dict[str, Any] = field(default_factory=dict)
    api_calls: int = 0
    credits: int | float = 0
    created_at: str = field(default_factory=_now_iso)
    extra: dict[str, Any] = field(default_factory=dict)
    include_raw: bool = False
    generation: int = 1
    path: ObjectStoragePath | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written to ``manifest.json`` (without ``path``); its values are not copied."""
        return {"version": 1, **{f.name: getattr(self, f.name) for f in _FIELDS if f.name != "path"}}

    @classmethod
    def load(cls, path: str | ObjectStoragePath, conn_id: str | None = None) -> Manifest:
        """
        Read a manifest.

        :param path: the ``manifest.json`` file or the run directory that holds it.
        :param conn_id: connection of the store when ``path`` is a string.
        """
        target = to_path(path, conn_id)
        if not target.name.endswith(".json"):
            target = target / MANIFEST_NAME
        try:
            with open_for_read(target) as f:
                data = json.load(f)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"No staging manifest at {target}: the staging run did not complete (or the path is wrong)."
            ) from None
        names = {f.name for f in dataclasses.fields(cls)} - {"path"}
        return cls(**{k: v for k, v in data.items() if k in names}, path=target)

    @property
    def directory(self) -> ObjectStoragePath:
        """The run directory (where the part files are)."""
        if self.path is None:
            raise ValueError("this manifest has no path: it was not written or loaded")
        return self.path.parent

    def part_paths(self) -> list[ObjectStoragePath]:
        """Paths of the part files, in order."""
        return [self.directory / f["name"] for f in self.files]

    def summary(self) -> dict[str, Any]:
        """A small JSON value for XCom: where the manifest is and what it counts, never the records."""
        return {
            "manifest": str(self.path),
            "conn_id": conn_id_of(self.path) if self.path is not None else None,
            "vendor": self.vendor,
            "record_type": self.record_type,
            "run_id": self.run_id,
            "records": self.record_count,
            "files": len(self.files),
            "api_calls": self.api_calls,
            "credits": self.credits,
        }


_FIELDS = dataclasses.fields(Manifest)
