"""When the triggers poll: shared by the Koneksi and Linked API triggers."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Coroutine
from typing import Any


def first_delay(poll_interval: float, deadline: float) -> float:
    """A random part of one interval (never past ``deadline``): the wait before the first poll (:func:`first_poll`)."""
    return random.uniform(0, max(0.0, min(poll_interval, deadline - time.time())))


def first_poll(poll_interval: float, deadline: float) -> Coroutine[Any, Any, None]:
    """
    Wait a random part of one interval before the first poll (never past ``deadline``): the sensor looked
    just before deferring, and triggers that start together (a triggerer restarting with thousands) spread
    their polls over the interval instead of queueing them all at once.

    Returns ``asyncio.sleep``'s coroutine itself, to await at once (no coroutine of its own around it:
    thousands of triggers sleep here together).
    """
    return asyncio.sleep(first_delay(poll_interval, deadline))
