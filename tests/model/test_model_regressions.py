"""
Sequences the model-based suite found, replayed as plain tests (the same rules and invariants, a fixed order),
so that each stays checked whatever examples a profile draws.
"""

from __future__ import annotations

from tests.model.drivers import LinkupDriver
from tests.model.machine import machine


def _arrival(into: str, pick: int, at: str = "older", older_by_ms: int = 1) -> dict:
    return {
        "into": into,
        "pick": pick,
        "messages": 1,
        "at": at,
        "older_by_ms": older_by_ms,
        "newer_by_ms": None,
        "move_activity": True,
        "seconds": 60,
    }


def test_linkup_deepened_reads_pay_no_page_twice():
    """
    ``make soak`` (LinkupAPI): "6 credit(s) spent by 1 attempt(s), over the budget of 5 (3 changed
    conversation(s), sequential)". Late messages older than the overlap in two conversations deepen both
    reads; a deepened read started over from the newest page, paying again the page the windowed read had
    just bought (2 credits for a conversation whose whole history is one page). The budget: one complete
    read per changed conversation, so 1 listing credit + 3 = 4 here (the rule allows 5).
    """
    state = machine(LinkupDriver)()
    try:
        state.start(seed=0)
        state.run_normal()  # the first full read
        late = [_arrival("old", 0, older_by_ms=3_600_000), _arrival("old", 1, older_by_ms=172_800_000)]
        state.deliver([*late, _arrival("old", 2, at="newer")])
        state.run_normal()  # three changed conversations, two of them deepened
        state.deliver([_arrival("recent", 0, older_by_ms=999), _arrival("recent", 1, older_by_ms=3_600_000)])
        state.run_normal()
    finally:
        state.teardown()
