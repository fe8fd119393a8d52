"""When the triggers poll: shared by the Koneksi and Linked API triggers and the activity watchers."""

from __future__ import annotations

import random
import time


def first_delay(poll_interval: float, deadline: float) -> float:
    """
    The wait before the first poll: a random part of one interval (never past ``deadline``). The sensor
    looked just before deferring, and triggers that start together (a triggerer restarting with thousands)
    spread their polls over the interval instead of queueing them all at once. The triggers sleep it with their
    hook's ``astart``: the connection is looked up meanwhile (one lookup for the triggers started together,
    awaited by none of them) and the first look's turn is booked when the sleep ends.
    """
    return random.uniform(0, max(0.0, min(poll_interval, deadline - time.time())))
