"""
An activity watcher SIGKILLed at each point of a look that finds activity, then restarted from the same
kwargs (a triggerer restart), over real HTTP against the sandbox.

The promise (``triggers/watchers/base.py``, ``docs/events.md``): the event of a look is written into the
state as pending before it is yielded and cleared once the generator resumes (the triggerer took it), so a
kill anywhere before the triggerer takes it fires it after the restart (never lost by the watcher), and the
one window for a second event is a kill between the triggerer taking it and the clearing write.

The watcher runs in a child process whose consumer plays the triggerer (it prints each event it takes);
the child kills itself with SIGKILL at the point under test, so each point is hit exactly.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests.compat import requires_airflow

pytestmark = requires_airflow(
    "3.0.0", "activity watchers run as asset watchers (BaseEventTrigger, AssetWatcher), from Airflow 3.0"
)

CHILD = textwrap.dedent(
    """
    import asyncio, json, os, signal, sys

    from airflow_provider_linkmsg.triggers.watchers import store as store_module
    from airflow_provider_linkmsg.triggers.watchers.connectsafely import ConnectSafelyInboxActivityTrigger

    account, staging, kill_at, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    save = store_module.WatcherStore.save

    def die():
        print("KILLED", kill_at, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    async def save_then_maybe_die(self, data):
        if kill_at == "before-write" and "seen" in data:
            die()  # the look is done, nothing written
        await save(self, data)
        if kill_at == "after-write" and data.get("pending"):
            die()  # the event written as pending, not yet yielded
        if kill_at == "after-clear" and "seen" in data and not data.get("pending"):
            die()  # the triggerer took the event and the watcher recorded it

    store_module.WatcherStore.save = save_then_maybe_die
    trigger = ConnectSafelyInboxActivityTrigger(
        account_id=account, poll_interval=0.05, staging_path=staging, state_key="kill-test"
    )

    async def triggerer():
        async for event in trigger.run():
            print("EVENT", json.dumps(event.payload), flush=True)  # taken by the triggerer
            if kill_at == "taken":
                die()  # taken, the generator not resumed: the documented duplicate window

    try:
        asyncio.run(asyncio.wait_for(triggerer(), seconds))
    except TimeoutError:
        pass
    """
)


def run_child(account: str, staging: str, kill_at: str, seconds: float) -> tuple[list[dict], bool]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, account, staging, kill_at, str(seconds)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = done.stdout.splitlines()
    events = [json.loads(line[6:]) for line in lines if line.startswith("EVENT ")]
    killed = any(line.startswith("KILLED") for line in lines)
    assert killed == (done.returncode == -9), (done.returncode, done.stderr[-2000:])
    return events, killed


@pytest.mark.parametrize(
    ("kill_at", "before", "after"),
    [
        ("before-write", 0, 1),  # the restart's first look finds it again
        ("after-write", 0, 1),  # pending: fired again after the restart
        ("taken", 1, 1),  # the bound: taken but not recorded as taken -> once more, marked redelivered
        ("after-clear", 1, 0),  # recorded: never again
    ],
)
def test_a_watcher_killed_at_each_point_loses_nothing(inbox_sandbox, tmp_path, kill_at, before, after):
    sandbox = inbox_sandbox("connectsafely", conversations=5)
    account = sandbox.truth("connectsafely")["accounts"][0]["id"]

    first, killed = run_child(account, str(tmp_path), kill_at, 60)
    assert killed and len(first) == before, first
    again, killed = run_child(
        account, str(tmp_path), "never", 8
    )  # the triggerer restarted (8 s: 3.0 looks up slowly)
    assert not killed and len(again) == after, again

    fired = first + again
    assert [e["changed"] for e in fired] == [5] * len(fired)  # the one activity, complete each time
    assert [bool(e.get("redelivered")) for e in again] == [kill_at in ("after-write", "taken")] * after
    state = json.loads(next((tmp_path / "_state").rglob("*.json")).read_text())
    assert not state.get("pending") and len(state["seen"]) == 5

    sandbox.advance(seconds=60, conversations=1, messages=1)  # new activity after all that: once
    later, _ = run_child(account, str(tmp_path), "never", 8)
    assert [e["changed"] for e in later] == [1] and not later[0].get("redelivered")
