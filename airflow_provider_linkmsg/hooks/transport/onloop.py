"""What the async transport keeps per event loop, kept on the loop object itself (no registry of ours)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def on_loop(name: str, make: Callable[[asyncio.AbstractEventLoop], T]) -> T:
    """
    The running loop's object under attribute ``name``, made with ``make(loop)`` on first use: it goes with
    its loop. A loop that takes no attributes (uvloop's) gives each caller a new one: nothing is shared
    there, and nothing is wrong either.
    """
    loop = asyncio.get_running_loop()
    kept = getattr(loop, name, None)
    if kept is None:
        kept = make(loop)
        with contextlib.suppress(AttributeError):
            setattr(loop, name, kept)
    return kept
