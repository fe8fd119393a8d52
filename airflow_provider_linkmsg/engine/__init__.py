"""
The incremental inbox engine: read windows, watermark maths, the listing and the retrieval loop.

No Airflow imports here: the operators give the engine a staging writer, a watermark store and the
vendor's listing and reading (the adapters under :mod:`airflow_provider_linkmsg.hooks.inbox`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_linkmsg.engine.listing import FULL_LISTING_EVERY, LISTING_MARGIN, Listing
    from airflow_provider_linkmsg.engine.retrieval import InboxRetrieval
    from airflow_provider_linkmsg.engine.windows import (
        Conversation,
        ReadWindow,
        is_current,
        next_watermark,
        read_window,
    )

#: name -> module; loaded on first use, so that importing one engine module (the operators import
#: ``engine.windows`` for a default) does not load the whole engine into every DAG file
_EXPORTS = {
    "FULL_LISTING_EVERY": "listing",
    "LISTING_MARGIN": "listing",
    "Listing": "listing",
    "InboxRetrieval": "retrieval",
    "Conversation": "windows",
    "ReadWindow": "windows",
    "is_current": "windows",
    "next_watermark": "windows",
    "read_window": "windows",
}

__all__ = [
    "FULL_LISTING_EVERY",
    "LISTING_MARGIN",
    "Conversation",
    "InboxRetrieval",
    "Listing",
    "ReadWindow",
    "is_current",
    "next_watermark",
    "read_window",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
