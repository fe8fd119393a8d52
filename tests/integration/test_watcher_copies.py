"""
Copies of one watcher in separate processes (Airflow may run duplicates of a trigger at once; an asset
watcher runs on every triggerer of an HA pair), over real HTTP against the sandbox, sharing one staging root.

Issue 17: a watcher "never fires twice for the same activity", and a LinkupAPI watcher "spends credits only
within a daily budget it is given", whichever triggerer process runs it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

# no Airflow 3 marker: the watcher classes (common.compat BaseEventTrigger) run the same on 2.11

CHILD = textwrap.dedent(
    """
    import asyncio, json, os, sys, time

    vendor, account, staging, ready, stop = sys.argv[1:6]
    kwargs = json.loads(sys.argv[6])
    if vendor == "connectsafely":
        from airflow_provider_linkmsg.triggers.watchers.connectsafely import (
            ConnectSafelyInboxActivityTrigger as Trigger,
        )
    else:
        from airflow_provider_linkmsg.triggers.watchers.linkup import LinkupInboxActivityTrigger as Trigger

    class Watched(Trigger):
        async def observe(self, hook, state, store):
            found = await super().observe(hook, state, store)
            open(ready, "a").close()  # this copy has looked
            return found

    trigger = Watched(account_id=account, staging_path=staging, **kwargs)

    from airflow_provider_linkmsg.io import state as state_module

    load = state_module.JsonState.load

    def slow_load(self):  # a slow store: widens any gap between reading the spend and writing it
        data = load(self)
        if "credits-" in str(self.path):
            time.sleep(0.005)
        return data

    state_module.JsonState.load = slow_load

    async def triggerer():
        async def run():
            async for event in trigger.run():
                print("EVENT", json.dumps(event.payload), flush=True)

        task = asyncio.create_task(run())
        deadline = time.monotonic() + 240
        while not os.path.exists(stop) and time.monotonic() < deadline and not task.done():
            await asyncio.sleep(0.05)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    asyncio.run(triggerer())
    """
)


def start_copies(vendor: str, account: str, tmp_path: Path, kwargs: dict, copies: int = 2, own_keys=False):
    """Start ``copies`` processes each running the watcher (``own_keys``: each its own ``state_key``)."""

    staging = str(tmp_path / "staging")
    children = []
    for i in range(copies):
        if own_keys:
            kwargs = {**kwargs, "state_key": f"w{i}"}
        argv = [
            vendor,
            account,
            staging,
            str(tmp_path / f"ready-{i}"),
            str(tmp_path / "stop"),
            json.dumps(kwargs),
        ]
        children.append(
            subprocess.Popen(
                [sys.executable, "-c", CHILD, *argv],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    return children


def wait_for(check, timeout: float = 150.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def stop_copies(children, tmp_path: Path) -> list[list[dict]]:
    (tmp_path / "stop").touch()
    out = []
    for child in children:
        stdout, stderr = child.communicate(timeout=300)
        assert child.returncode == 0, stderr[-3000:]
        out.append([json.loads(line[6:]) for line in stdout.splitlines() if line.startswith("EVENT ")])
    return out


def calls(sandbox, prefix: str) -> float:
    return sum(v for k, v in sandbox.stats().get("calls", {}).items() if k.startswith(prefix))


def test_two_copies_of_a_watcher_fire_once_for_one_activity(inbox_sandbox, tmp_path):
    sandbox = inbox_sandbox("connectsafely", conversations=5)
    account = sandbox.truth("connectsafely")["accounts"][0]["id"]
    kwargs = {"poll_interval": 0.05, "fire_on_start": False, "state_key": "copies"}
    children = start_copies("connectsafely", account, tmp_path, kwargs)
    wait_for(lambda: all((tmp_path / f"ready-{i}").exists() for i in range(2)))  # both copies look

    for _ in range(3):  # three activities, each seen by both copies
        looks = calls(sandbox, "connectsafely")
        sandbox.advance(seconds=60, conversations=1, messages=1)
        wait_for(lambda looks=looks: calls(sandbox, "connectsafely") > looks + 30)  # many looks of each copy
    fired = stop_copies(children, tmp_path)
    events = [e for copy in fired for e in copy]
    assert len(events) == 3, fired  # once per activity, whichever copy fired it
    assert [e["changed"] for e in events] == [1, 1, 1] and not any(e.get("redelivered") for e in events)


def test_linkup_watchers_in_several_triggerers_stay_within_the_daily_budget(inbox_sandbox, tmp_path):
    budget = 60  # credits a day, 1 a look; three triggerer processes race for every one of them
    sandbox = inbox_sandbox("linkup", conversations=5, extra={"requests_per_second": 0})
    account = sandbox.truth("linkup")["accounts"][0]["id"]
    kwargs = {"poll_interval": 0.002, "page_size": 10, "daily_credit_budget": budget}
    children = start_copies("linkup", account, tmp_path, kwargs, copies=3, own_keys=True)
    wait_for(lambda: all((tmp_path / f"ready-{i}").exists() for i in range(3)))  # all looking
    wait_for(lambda: calls(sandbox, "linkup") >= budget - 1)
    time.sleep(2.0)  # all keep trying: an overrun would show
    stop_copies(children, tmp_path)
    charged = sandbox.stats()["credits_by_action"]["list_inbox"]
    assert budget - 3 <= charged <= budget, charged  # the budget spent, never overrun
    ledger = next((tmp_path / "staging").rglob("credits-*.json"))
    assert json.loads(ledger.read_text())["spent"] == charged
