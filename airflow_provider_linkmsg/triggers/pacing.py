"""When the triggers poll: shared by the Koneksi and Linked API triggers and the activity watchers."""

from __future__ import annotations

import random
import time


def first_delay(poll_interval: float, deadline: float) -> float:
    """
    The wait before the first poll: a random part of one interval (never past ``deadline``). The sensor
    looked just before deferring, and triggers that start together (a triggerer restarting with thousands)
    spread their polls over the interval instead of queueing them all at once. The triggers sleep it before
    they connect (so that they also connect spread, mostly from the loop's cached lookup, instead of all
    waking together when one lookup ends), then book their first look's turn with their hook's
    ``asleep_until_turn(0)``.
    """
    return random.uniform(0, max(0.0, min(poll_interval, deadline - time.time())))
