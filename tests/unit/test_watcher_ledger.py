"""The watchers' ledger: fires on a change of the set seen (ties and out-of-order times too), never twice."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_linkmsg.exceptions import LinkMsgValidationError
from airflow_provider_linkmsg.hooks.inbox.firstpage import Sighting
from airflow_provider_linkmsg.triggers.watchers.connectsafely import ConnectSafelyInboxActivityTrigger
from airflow_provider_linkmsg.triggers.watchers.ledger import (
    changed_conversations,
    new_sightings,
    newest,
    remember,
)
from airflow_provider_linkmsg.triggers.watchers.linkup import LinkupInboxActivityTrigger

TIMES = [f"2026-01-01T00:00:0{i}.000000Z" for i in range(4)]  # few times: ties are frequent
sightings = st.builds(
    lambda key, marker, at: Sighting(key, key, marker, at),
    st.sampled_from(["a", "b", "c", "d", "e"]),
    st.sampled_from(["m1", "m2", "m3"]),
    st.sampled_from([*TIMES, None]),
)
looks = st.lists(st.lists(sightings, max_size=6), min_size=1, max_size=8)


@given(looks)
def test_fires_exactly_for_what_it_has_not_seen_in_any_time_order(sequence):
    ledger: dict = {}
    last_marker: dict[str, str] = {}  # the model: the marker last seen per key
    for look in sequence:
        fired = {s.key for s in new_sightings(ledger, look)}
        final = {s.key: s.marker for s in look}  # a key repeated within a look: the last sighting
        expected = {key for key, marker in final.items() if last_marker.get(key) != marker}
        assert fired == expected
        ledger = remember(ledger, look, keep=1000)
        last_marker.update(final)
        assert new_sightings(ledger, look) == []  # the same look again: nothing


def test_a_tie_with_the_newest_time_and_an_older_time_both_fire():
    ledger = remember({}, [Sighting("a", "a", "m1", TIMES[3])], keep=10)
    tie, older = Sighting("b", "b", "m1", TIMES[3]), Sighting("c", "c", "m1", TIMES[0])
    assert new_sightings(ledger, [tie, older]) == [tie, older]
    assert newest([tie, older]) == TIMES[3]
    assert changed_conversations([older, tie]) == ["b", "c"]


def test_the_ledger_keeps_the_most_recently_active():
    seen = [Sighting(k, k, "m", t) for k, t in zip("abcd", TIMES, strict=True)]
    assert sorted(remember({}, seen, keep=2)) == ["c", "d"]


def test_arguments_are_checked_before_any_call(tmp_path):
    async def first(trigger):
        return await anext(trigger.run())

    bad = [
        ConnectSafelyInboxActivityTrigger(account_id="a" * 24, poll_interval=0, staging_path=str(tmp_path)),
        LinkupInboxActivityTrigger(account_id="acc_x", daily_credit_budget=-1, staging_path=str(tmp_path)),
    ]
    for trigger in bad:
        with pytest.raises(LinkMsgValidationError) as info:
            asyncio.run(first(trigger))
        assert info.value.field in ("poll_interval", "daily_credit_budget")


def test_kwargs_round_trip_and_the_state_key():
    trigger = LinkupInboxActivityTrigger(account_id="acc_x", daily_credit_budget=100, poll_interval=60)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_linkmsg.triggers.watchers.linkup.LinkupInboxActivityTrigger"
    again = LinkupInboxActivityTrigger(**kwargs)
    assert again.serialize() == (classpath, kwargs)
    assert again.resolved_state_key() == trigger.resolved_state_key()
    # a new budget or interval keeps the state (tuning); another page size is another watcher
    assert LinkupInboxActivityTrigger(**{**kwargs, "daily_credit_budget": 5}).resolved_state_key() == (
        trigger.resolved_state_key()
    )
    assert LinkupInboxActivityTrigger(**{**kwargs, "poll_interval": 30}).resolved_state_key() == (
        trigger.resolved_state_key()
    )
    assert LinkupInboxActivityTrigger(**{**kwargs, "page_size": 30}).resolved_state_key() != (
        trigger.resolved_state_key()
    )
    assert LinkupInboxActivityTrigger(**{**kwargs, "state_key": "mine"}).resolved_state_key() == "mine"


def test_the_watchers_are_registered_with_the_provider():
    import importlib

    from airflow_provider_linkmsg.get_provider_info import get_provider_info

    modules = [m for entry in get_provider_info()["triggers"] for m in entry["python-modules"]]
    watchers = [m for m in modules if ".watchers." in m]
    assert len(watchers) == 3
    for module in watchers:
        classes = [v for v in vars(importlib.import_module(module)).values() if isinstance(v, type)]
        assert any(c.__name__.endswith("InboxActivityTrigger") and c.__module__ == module for c in classes)
