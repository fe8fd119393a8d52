"""Linked API hook and operators against the sandbox over real HTTP: both APIs, both result modes."""

from __future__ import annotations

import json

import pytest

from airflow_provider_linkmsg.exceptions import (
    LinkMsgAuthError,
    LinkMsgValidationError,
    LinkMsgVendorError,
)
from airflow_provider_linkmsg.hooks.linkedapi import LinkedApiHook, Person, parse_persons
from airflow_provider_linkmsg.io.staging import iter_records
from airflow_provider_linkmsg.operators.linkedapi import (
    LinkedApiRetrieveMessagesOperator,
    LinkedApiSyncConversationsOperator,
)

#: (api, result_handling): the seed's two modes and the current API (which has none)
MODES = [("seed", "reslink"), ("seed", "long"), ("current", None)]


def staged(xcom: dict) -> set[tuple]:
    return {
        (m.conversation_id, m.message_id, m.sent_at, m.direction, m.text)
        for m in iter_records(xcom["manifest"])
    }


def sync_op(world, tmp_path, **kwargs):
    kwargs.setdefault("persons", world.persons())
    return LinkedApiSyncConversationsOperator(
        task_id="sync", staging_path=str(tmp_path), poll_interval=0.05, timeout=30, deferrable=False, **kwargs
    )


def retrieve_op(world, tmp_path, **kwargs):
    kwargs.setdefault("persons", world.persons())
    return LinkedApiRetrieveMessagesOperator(task_id="retrieve", staging_path=str(tmp_path), **kwargs)


@pytest.mark.parametrize(("api", "mode"), MODES)
def test_sync_50_then_retrieve_equals_truth(linkedapi_world, tmp_path, linkedapi_context, api, mode):
    world = linkedapi_world(api, persons=47, not_found=3)
    ghosts = world.truth["not_found"]

    synced = sync_op(world, tmp_path, result_handling=mode).execute(linkedapi_context("sync"))

    assert sorted(synced["not_found"]) == sorted(ghosts)
    assert len(synced["synced"]) == 47 and synced["failed"] == [] and synced["already_synced"] == []
    assert world.counter("jobs_started") == 1

    world.sandbox.reset_stats()
    got = retrieve_op(world, tmp_path, result_handling=mode).execute(linkedapi_context("retrieve"))

    assert staged(got) == world.expected()
    assert got["records"] == len(world.truth["messages"])
    assert sorted(got["not_found"]) == sorted(ghosts)
    assert got["not_synced"] == [] and got["read"] == 47
    assert world.counter("get_or_poll") == 1  # 47 persons, one batch, one call


@pytest.mark.parametrize("api", ["seed", "current"])
@pytest.mark.parametrize("inclusive", [True, False])
def test_second_run_stages_exactly_the_new_messages(
    linkedapi_world, tmp_path, linkedapi_context, api, inclusive
):
    world = linkedapi_world(api, persons=47, not_found=3, since_inclusive=inclusive)
    sync_op(world, tmp_path).execute(linkedapi_context("sync"))
    first = retrieve_op(world, tmp_path, page_size=20).execute(linkedapi_context("retrieve", run_id="run-1"))
    assert first["records"] == len(world.truth["messages"])

    added = world.sandbox.advance(seconds=120, linkedapi={"persons": 4, "messages": 2})["linkedapi"]["added"]
    assert len(added) == 4
    world.sandbox.reset_stats()
    second = retrieve_op(world, tmp_path, page_size=20).execute(linkedapi_context("retrieve", run_id="run-2"))

    new_ids = {mid for a in added for mid in a["ids"]}
    assert {key[1] for key in staged(second)} == new_ids
    assert second["records"] == 8
    assert world.counter("get_or_poll") == 3  # 47 persons in batches of 20: one call per batch

    third = retrieve_op(world, tmp_path, page_size=20).execute(linkedapi_context("retrieve", run_id="run-3"))
    assert third["records"] == 0


def test_a_late_message_older_than_the_overlap_is_staged_by_default(
    linkedapi_world, tmp_path, linkedapi_context
):
    """Linked API lists nothing and counts nothing: each person is read in full by default (review C)."""
    world = linkedapi_world("current", persons=6, not_found=0)
    sync_op(world, tmp_path).execute(linkedapi_context("sync"))
    first = retrieve_op(world, tmp_path).execute(linkedapi_context("retrieve", run_id="run-1"))
    assert first["records"] == len(world.truth["messages"])
    windowed = retrieve_op(world, tmp_path / "w", read_mode="window")
    assert windowed.execute(linkedapi_context("retrieve", run_id="run-1"))["records"] == first["records"]

    added = world.sandbox.advance(
        seconds=60, linkedapi={"conversations": 1, "at": "older", "older_by_ms": 3_600_000}
    )["linkedapi"]["added"]
    late = {mid for a in added for mid in a["ids"]}
    assert len(late) == 1
    second = retrieve_op(world, tmp_path).execute(linkedapi_context("retrieve", run_id="run-2"))
    assert {key[1] for key in staged(second)} == late
    assert second["read_mode"] == "full"
    third = retrieve_op(world, tmp_path).execute(linkedapi_context("retrieve", run_id="run-3"))
    assert third["records"] == 0  # read in full again, nothing staged twice

    windowed = retrieve_op(world, tmp_path / "w", read_mode="window")
    result = windowed.execute(linkedapi_context("retrieve", run_id="run-2"))
    assert result["records"] == 0 and "full_refresh" in result["read_mode_bound"]  # the opt-in's bound


def test_sync_skips_persons_already_synced_or_not_found(linkedapi_world, tmp_path, linkedapi_context):
    world = linkedapi_world("current")
    sync_op(world, tmp_path).execute(linkedapi_context("sync"))
    assert world.counter("workflows") == 1

    again = sync_op(world, tmp_path).execute(linkedapi_context("sync", run_id="run-2"))

    found = [{"person": p["person"], "channel": p["channel"]} for p in world.truth["persons"]]
    assert sorted(again["already_synced"], key=str) == sorted(found, key=str)
    assert sorted(again["not_found"]) == sorted(world.truth["not_found"])  # as recorded, not paid for again
    assert world.counter("workflows") == 1  # nothing left to synchronize: no second job

    resync = sync_op(world, tmp_path, resync=True).execute(linkedapi_context("sync", run_id="run-3"))
    assert world.counter("workflows") == 2 and len(resync["synced"]) == len(found)


@pytest.mark.parametrize("api", ["seed", "current"])
def test_unsynced_persons_are_reported_and_skipped(linkedapi_world, tmp_path, linkedapi_context, api):
    world = linkedapi_world(api)
    persons = world.persons()[:12]
    LinkedApiSyncConversationsOperator(
        task_id="sync", persons=persons[:9], staging_path=str(tmp_path), poll_interval=0.05, deferrable=False
    ).execute(linkedapi_context("sync"))

    got = retrieve_op(world, tmp_path, persons=persons).execute(linkedapi_context("retrieve"))

    unsynced = {p["person"] for p in persons[9:]}
    assert set(got["not_synced"]) == unsynced
    assert got["read"] == 9
    synced_keys = {(p["person"], p["type"]) for p in world.truth["persons"][:9]}
    assert staged(got) == world.expected(synced_keys)


@pytest.mark.parametrize("api", ["seed", "current"])
def test_sync_missing_synchronizes_first(linkedapi_world, tmp_path, linkedapi_context, api):
    world = linkedapi_world(api)

    got = retrieve_op(world, tmp_path, sync_missing=True, poll_interval=0.05).execute(linkedapi_context())

    assert got["not_synced"] == []
    assert sorted(got["not_found"]) == sorted(world.truth["not_found"])
    assert staged(got) == world.expected()
    assert world.counter("jobs_started") == 1


def test_poll_sets_aside_unsynced_persons_with_few_calls(linkedapi_world):
    world = linkedapi_world("current", persons=20)
    hook = LinkedApiHook()
    people = parse_persons(world.persons()[:20])
    hook.wait_for_job(hook.synchronize(people[:17]), poll_interval=0.05, timeout=10)
    world.sandbox.reset_stats()

    results = {r.person: r for r in hook.get_messages(people)}

    assert {p for p, r in results.items() if r.not_synced} == set(people[17:])
    assert all(r.error is None for p, r in results.items() if p in people[:17])
    assert world.counter("poll") == 2  # the failing batch names the 3, then the other 17 are read


def test_workflow_held_outside_working_hours_is_reported(linkedapi_world):
    world = linkedapi_world("current", outside_working_hours=True)
    hook = LinkedApiHook()
    handle = hook.synchronize(world.persons()[:3])

    status = hook.check_job(handle)
    assert status.state == "pending" and status.outside_working_hours
    assert "working hours" in status.message
    with pytest.raises(LinkMsgVendorError, match="outside the account's working hours"):
        hook.wait_for_job(handle, poll_interval=0.05, timeout=5, fail_outside_working_hours=True)
    with pytest.raises(LinkMsgVendorError, match=r"pending \(outsideWorkingHours\)"):
        hook.wait_for_job(handle, poll_interval=0.05, timeout=0.2)

    world.sandbox.advance(linkedapi={"working_hours": "open"})
    assert hook.wait_for_job(handle, poll_interval=0.05, timeout=10).state == "completed"


def test_cancel_a_workflow(linkedapi_world):
    world = linkedapi_world("current", sync_seconds=30)
    hook = LinkedApiHook()
    handle = hook.synchronize(world.persons()[:2])

    assert hook.cancel_job(handle) is True
    assert hook.check_job(handle).state == "cancelled"
    assert world.counter("cancelled") == 1
    assert hook.cancel_job(handle) is False


def test_failed_workflow_fails_the_task_with_the_reason(linkedapi_world, tmp_path, linkedapi_context):
    world = linkedapi_world("current", fail_workflows="linkedinAccountSignedOut")
    with pytest.raises(LinkMsgAuthError, match="linkedinAccountSignedOut"):
        sync_op(world, tmp_path).execute(linkedapi_context("sync"))


@pytest.mark.parametrize(
    ("persons", "field"),
    [
        (["https://example.com/in/ada"], "persons[0]"),
        (["https://www.linkedin.com/company/acme"], "persons[0]"),
        ([{"person": "https://www.linkedin.com/in/ada", "channel": "recruiter"}], "persons[0].channel"),
        ([], "persons"),
        ("https://www.linkedin.com/in/ada", "persons"),
    ],
)
@pytest.mark.parametrize("operator", [LinkedApiSyncConversationsOperator, LinkedApiRetrieveMessagesOperator])
def test_bad_persons_are_rejected_before_any_call(
    linkedapi_shared_world, tmp_path, linkedapi_context, persons, field, operator
):
    world = linkedapi_shared_world()
    op = operator(task_id="t", persons=persons, staging_path=str(tmp_path))
    with pytest.raises(LinkMsgValidationError) as err:
        op.execute(linkedapi_context())
    assert err.value.field == field
    assert world.calls() == 0


@pytest.mark.parametrize(
    ("conn_extra", "kwargs", "field"),
    [
        ({"api": "v3"}, {}, "api"),
        ({}, {"result_handling": "webhook"}, "result_handling"),
        ({}, {"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_settings_are_rejected_before_any_call(
    linkedapi_shared_world, tmp_path, linkedapi_context, conn_extra, kwargs, field
):
    world = linkedapi_shared_world(conn_extra=conn_extra)
    op = sync_op(world, tmp_path, **kwargs)
    with pytest.raises(LinkMsgValidationError, match=field) as err:
        op.execute(linkedapi_context())
    assert err.value.field == field
    assert world.calls() == 0


@pytest.mark.parametrize("api", ["seed", "current"])
@pytest.mark.parametrize(
    ("conn_extra", "password", "code"),
    [
        ({}, "wrong-token", "invalidLinkedApiToken"),
        ({"identification_token": "nobody"}, None, "invalidIdentificationToken"),
    ],
)
def test_401_fails_at_once(
    linkedapi_shared_world, tmp_path, linkedapi_context, monkeypatch, api, conn_extra, password, code
):
    world = linkedapi_shared_world(api, conn_extra=conn_extra)
    if password:
        monkeypatch.setenv("AIRFLOW_CONN_LINKEDAPI_DEFAULT", json.dumps({**world.conn, "password": password}))
    with pytest.raises(LinkMsgAuthError, match=code) as err:
        sync_op(world, tmp_path).execute(linkedapi_context())
    assert err.value.status == 401
    assert world.calls() == 1  # never retried
    secret = password or conn_extra["identification_token"]
    assert secret not in str(err.value)


def test_persons_normalize_and_infer_the_channel():
    people = parse_persons(
        [
            "linkedin.com/in/ada-lovelace/",
            "https://www.linkedin.com/in/ada-lovelace?trk=x",
            "https://www.linkedin.com/sales/people/ACwAA123,NAME_SEARCH",
            {"url": "https://www.linkedin.com/in/bob", "type": "salesNavigator"},
        ]
    )
    assert people == [
        Person("https://www.linkedin.com/in/ada-lovelace", "st"),
        Person("https://www.linkedin.com/sales/people/ACwAA123,NAME_SEARCH", "nv"),
        Person("https://www.linkedin.com/in/bob", "nv"),
    ]
    assert people[2].conversation_id == "https://www.linkedin.com/in/bob#sales_navigator"


def test_retry_without_task_state_store_reconnects_through_the_state_file(
    linkedapi_world, tmp_path, linkedapi_context
):
    """Outside a task runner there is no task_state_store: the handle lives in a state file instead."""
    world = linkedapi_world("current", conn_extra={"max_retries": 0})
    world.sandbox.set_faults(
        [{"vendor": "linkedapi", "route": "GET /workflows/{id}", "p_5xx": 1.0, "times": 1}]
    )
    context = linkedapi_context("sync")

    with pytest.raises(LinkMsgVendorError, match="HTTP 503"):
        sync_op(world, tmp_path).execute(context)
    assert list((tmp_path / "_state" / "linkedapi-jobs").iterdir())  # the handle was saved
    retried = sync_op(world, tmp_path).execute(context)

    assert world.counter("workflows") == 1
    assert len(retried["synced"]) == len(world.truth["persons"])
    assert sync_op(world, tmp_path)._load_handle(context) is None  # cleared once done


def test_sync_output_feeds_retrieve_with_channels_kept(linkedapi_world, tmp_path, linkedapi_context):
    world = linkedapi_world("current", sales_navigator_share=0.5)
    synced = sync_op(world, tmp_path).execute(linkedapi_context("sync"))
    assert any(p["channel"] == "salesNavigator" for p in synced["synced"])

    got = retrieve_op(world, tmp_path, persons=synced["synced"]).execute(linkedapi_context("retrieve"))

    assert got["not_synced"] == [] and staged(got) == world.expected()


def test_retrieve_retry_carries_over_what_the_first_try_staged(linkedapi_world, tmp_path, linkedapi_context):
    """A retry of the same task run after the watermarks were committed keeps the first try's records."""
    world = linkedapi_world("seed")
    sync_op(world, tmp_path).execute(linkedapi_context("sync"))
    context = linkedapi_context("retrieve")
    first = retrieve_op(world, tmp_path).execute(context)
    again = retrieve_op(world, tmp_path).execute(context)  # same run id: same staging run

    assert again["records"] == first["records"] == len(world.truth["messages"])
    assert staged(again) == world.expected()


@pytest.mark.parametrize(
    ("method", "path", "body", "code"),
    [
        ("POST", "/account/conversations.synchronize", {"standard": [{"name": "x"}]}, "invalidRequestBody"),
        ("POST", "/account/conversations.get", {"other": []}, "invalidRequestBody"),
        (
            "POST",
            "/account/conversations.get",
            {"standard": [{"person": "u", "since": "yesterday"}]},
            "invalidRequestBody",
        ),
        ("POST", "/workflows", [], "invalidWorkflow"),
        ("POST", "/workflows", {"actionType": "st.fly", "personUrl": "u"}, "invalidWorkflow"),
        ("POST", "/workflows", {"actionType": "st.syncConversation"}, "invalidWorkflow"),
        ("POST", "/conversations/poll", [{"personUrl": "u", "type": "xx"}], "invalidRequestPayload"),
        ("POST", "/conversations/poll", {"personUrl": "u"}, "invalidRequestPayload"),
    ],
)
def test_sandbox_rejects_bad_bodies_with_the_documented_types(
    linkedapi_shared_world, method, path, body, code
):
    linkedapi_shared_world()
    with pytest.raises(LinkMsgValidationError) as err:
        LinkedApiHook().request(method, path, json_body=body)
    assert (err.value.status, err.value.code) == (400, code)


def test_sandbox_unknown_workflow_and_result_are_not_found(linkedapi_shared_world):
    from airflow_provider_linkmsg.exceptions import LinkMsgNotFoundError

    world = linkedapi_shared_world()
    hook = LinkedApiHook()
    with pytest.raises(LinkMsgNotFoundError, match="workflowNotFound"):
        hook.check_job({"kind": "workflows", "jobs": ["wf-nope"]})
    with pytest.raises(LinkMsgNotFoundError, match="resultNotFound"):
        hook.check_job(
            {"kind": "result_links", "jobs": [world.conn["extra"]["base_url"] + "/account/results/nope"]}
        )


def test_seed_long_mode_falls_back_to_a_result_link_past_the_long_poll_limit(linkedapi_world):
    world = linkedapi_world("seed", sync_seconds=0.6, long_poll_max_seconds=0.1)
    hook = LinkedApiHook()
    handle = hook.synchronize(world.persons(), result_handling="long")

    assert handle["kind"] == "result_links"
    assert hook.wait_for_job(handle, poll_interval=0.05, timeout=10).state == "completed"


def test_check_connection(linkedapi_shared_world):
    linkedapi_shared_world("current")
    ok, message = LinkedApiHook().test_connection()
    assert ok and "Ada Sandbox" in message


@pytest.mark.parametrize("api", ["seed", "current"])
def test_a_retry_after_a_start_that_never_reached_the_vendor_starts_the_job_once(
    linkedapi_world, tmp_path, linkedapi_context, api
):
    """The try failed before the vendor acted (a 503): the retry watches briefly, sees no job ran, starts one."""
    world = linkedapi_world(api, conn_extra={"max_retries": 0})
    route = "POST /account/conversations.synchronize" if api == "seed" else "POST /workflows"
    world.sandbox.set_faults([{"vendor": "linkedapi", "route": route, "p_5xx": 1, "times": 1}])
    with pytest.raises(LinkMsgVendorError, match="503"):
        sync_op(world, tmp_path, lost_answer_wait=0.3).execute(linkedapi_context("sync"))
    assert world.counter("jobs_started") == 0

    result = sync_op(world, tmp_path, lost_answer_wait=0.3).execute(linkedapi_context("sync"))

    assert world.counter("jobs_started") == 1
    assert len(result["synced"]) == len(world.truth["persons"]) and result["not_started"] == []
