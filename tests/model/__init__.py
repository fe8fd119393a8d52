"""
The model-based suite (issue 12, item 7): a Hypothesis state machine per inbox vendor over the sandbox.

Select it with ``pytest tests/model``, deselect it with ``--ignore=tests/model``. The Hypothesis profile
comes from ``LINKMSG_MODEL_PROFILE``: ``ci`` (the default: a fixed, derandomized budget of examples per
vendor, no shrinking, so a failure costs no more than the budget), ``shrink`` (the same examples, shrunk
to a minimal reproduction) and ``soak`` (``make soak``: at least 100 random examples per vendor, shrunk).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

PROFILE_ENV = "LINKMSG_MODEL_PROFILE"

_COMMON = {
    "deadline": None,
    "database": None,
    "print_blob": True,
    "suppress_health_check": list(HealthCheck),
}
settings.register_profile(
    "model-ci",
    max_examples=15,
    stateful_step_count=10,
    derandomize=True,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    **_COMMON,
)
settings.register_profile(
    "model-shrink", max_examples=15, stateful_step_count=10, derandomize=True, **_COMMON
)
settings.register_profile(
    "model-soak",
    max_examples=int(os.environ.get("LINKMSG_MODEL_EXAMPLES", 100)),
    stateful_step_count=10,
    **_COMMON,
)


def profile() -> settings:
    """The settings chosen by ``LINKMSG_MODEL_PROFILE`` (``ci``, ``shrink`` or ``soak``)."""
    name = os.environ.get(PROFILE_ENV, "ci")
    return settings.get_profile(f"model-{name}")
