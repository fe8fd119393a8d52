"""
The incremental inbox engine: read windows, watermark maths, the listing and the retrieval loop.

No Airflow imports here: the operators give the engine a staging writer, a watermark store and the
vendor's listing and reading (the adapters under :mod:`airflow_provider_linkmsg.hooks.inbox`).
"""

from __future__ import annotations

from airflow_provider_linkmsg.engine.listing import FULL_LISTING_EVERY, LISTING_MARGIN, Listing
from airflow_provider_linkmsg.engine.retrieval import InboxRetrieval
from airflow_provider_linkmsg.engine.windows import (
    Conversation,
    ReadWindow,
    is_current,
    next_watermark,
    read_window,
)

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
