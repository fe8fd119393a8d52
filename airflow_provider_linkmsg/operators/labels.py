"""
Labels of mapped tasks: the account, persons or campaign of each mapped task instead of ``[0]``.

The operators that are mapped over accounts, persons or campaigns set ``map_index_template`` to
:data:`MAP_INDEX_TEMPLATE` unless the DAG gives its own. It renders :meth:`MapLabel.map_label`: before the
run from the rendered arguments (the early label), after it from what the run resolved (e.g. the
connection's default account). Unmapped tasks get no label.
"""

from __future__ import annotations

from typing import Any

#: the default ``map_index_template`` of the mapped operators
MAP_INDEX_TEMPLATE = "{{ task.map_label(ti.map_index) }}"

#: longest label shown (the UI shows one line per mapped task)
_LONGEST = 120


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("person") or value.get("url") or value.get("id") or value
    return str(value).rstrip("/").rsplit("/", 1)[-1] if str(value).startswith("http") else str(value)


def short_list(values: Any, unit: str) -> str:
    """``"a, b"``, or ``"a, b (+3 more persons)"`` past two; LinkedIn URLs shown by their last part."""
    items = [_shown(v) for v in values] if isinstance(values, list | tuple) else [_shown(values)]
    if len(items) <= 2:
        return ", ".join(items)
    return f"{items[0]}, {items[1]} (+{len(items) - 2} more {unit})"


class MapLabel:
    """Mixin of a mapped operator: ``map_label`` from ``resolved_label`` or ``default_map_label()``."""

    resolved_label: str | None = None

    @staticmethod
    def with_template(kwargs: dict[str, Any]) -> dict[str, Any]:
        """``kwargs`` with the default ``map_index_template`` unless the DAG gave one (``partial`` passes None)."""
        if kwargs.get("map_index_template") is None:
            kwargs["map_index_template"] = MAP_INDEX_TEMPLATE
        return kwargs

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:
        """``BaseOperator.partial`` with the default ``map_index_template`` (a mapped task is made from it)."""
        return super().partial(**cls.with_template(kwargs))  # type: ignore[misc]

    def default_map_label(self) -> str:
        """The label from the (rendered) arguments, before the run."""
        return ""

    def map_label(self, map_index: int | None = None) -> str:
        """The label of a mapped task (``""`` for an unmapped one, whose index is -1)."""
        if map_index is not None and map_index < 0:
            return ""
        try:
            label = self.resolved_label or self.default_map_label()
        except Exception:  # a label never fails a task
            label = ""
        return str(label or "")[:_LONGEST]
