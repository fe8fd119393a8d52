"""
What a waiting trigger keeps between looks (10,000 of them wait in one triggerer): one logger per trigger
class, and an idle watcher's look that changed nothing leaves the state it held in place.
"""

from __future__ import annotations

import time
from typing import Any

from airflow_provider_linkmsg.triggers.koneksi import KoneksiGenerationTrigger
from airflow_provider_linkmsg.triggers.linkedapi import LinkedApiJobTrigger
from airflow_provider_linkmsg.triggers.watchers.base import InboxActivityTrigger, Observation
from airflow_provider_linkmsg.triggers.watchers.connectsafely import ConnectSafelyInboxActivityTrigger
from airflow_provider_linkmsg.triggers.watchers.store import WatcherStore


def test_triggers_of_a_class_share_one_logger_of_airflows_name():
    a, b = (KoneksiGenerationTrigger(secure_request_id="x", deadline=time.time()) for _ in range(2))
    assert a.log is b.log
    c = LinkedApiJobTrigger(linkedapi_conn_id="l", handle={}, end_time=0)
    d = ConnectSafelyInboxActivityTrigger(account_id="a" * 24)
    assert c.log is not a.log and d.log is not a.log
    for trigger in (a, c, d):
        trigger.log.info("logged through the shared logger")  # a working logger, not a placeholder


class _SameEveryTime(InboxActivityTrigger):
    """A watcher whose every look sees the same (a vendor-free stand-in for an idle inbox)."""

    vendor = "connectsafely"

    def vendor_kwargs(self) -> dict[str, Any]:
        return {}

    def account(self, hook: Any) -> str:
        return "acct"

    async def observe(self, hook: Any, state: dict[str, Any], store: WatcherStore) -> Observation:
        seen = {"c1": ("m1", "2026-01-01T00:00:00Z")}
        return Observation(
            changed=[] if state.get("seen") else ["c1"], newest=None, state={**state, "seen": seen}
        )


async def test_an_idle_look_keeps_the_state_it_held(tmp_path):
    watcher = _SameEveryTime(fire_on_start=False, staging_path=str(tmp_path))
    store = WatcherStore(str(tmp_path), None, vendor="connectsafely", key="k")
    state, payload, _ = await watcher._look(None, "k", {}, store)
    assert payload is None and state["initialized"] and (await store.load())["initialized"]
    again, payload, _ = await watcher._look(None, "k", state, store)
    # the same object, not an equal copy made by the look: the copy dies young instead of being kept
    assert payload is None and again is state
