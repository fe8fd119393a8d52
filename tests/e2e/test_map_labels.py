"""Mapped tasks are labelled with their account (persons, campaign) instead of ``[0]``: map_index_template."""

from __future__ import annotations

import jinja2
import pendulum
import pytest

from airflow_provider_linkmsg.operators.connectsafely import ConnectSafelyRetrieveMessagesOperator
from airflow_provider_linkmsg.operators.koneksi import KoneksiRequestMessageGenerationOperator
from airflow_provider_linkmsg.operators.labels import MAP_INDEX_TEMPLATE
from airflow_provider_linkmsg.operators.linkedapi import LinkedApiSyncConversationsOperator
from airflow_provider_linkmsg.operators.linkup import LinkupRetrieveMessagesOperator


def rendered_map_indexes(dag_run) -> dict[tuple[str, int], str | None]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    from tests.compat import rendered_map_index

    with create_session() as session:
        rows = session.query(TaskInstance).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id)
        return {(ti.task_id, ti.map_index): rendered_map_index(ti) for ti in rows}


def test_mapped_retrieves_are_labelled_with_their_account_in_a_dag_run(
    sandbox_factory, inbox_run_dag, tmp_path
):
    from airflow.providers.common.compat.sdk import DAG

    sizes = {"accounts": 2, "conversations": 2, "messages": 2}
    sandbox = sandbox_factory(seed=5, sizes={"connectsafely": sizes, "linkup": {**sizes, "accounts": 1}})
    accounts = [a["id"] for a in sandbox.truth("connectsafely")["accounts"]]
    with DAG("labels", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
        ConnectSafelyRetrieveMessagesOperator.partial(task_id="cs", staging_path=str(tmp_path)).expand(
            account_id=accounts
        )
        # mapped over something else: the account comes from the connection, resolved by the run
        LinkupRetrieveMessagesOperator.partial(
            task_id="lk", staging_path=str(tmp_path), max_credits=100
        ).expand(include_raw=[False])
        ConnectSafelyRetrieveMessagesOperator(
            task_id="single", staging_path=str(tmp_path), account_id=accounts[0]
        )
    run = inbox_run_dag(dag)
    assert run.state == "success"
    labels = rendered_map_indexes(run)
    assert labels[("cs", 0)] == accounts[0] and labels[("cs", 1)] == accounts[1]
    assert labels[("lk", 0)] == sandbox.truth("linkup")["accounts"][0]["id"]
    assert not labels[("single", -1)]  # an unmapped task has no label


def render(operator, map_index: int = 0) -> str:
    return (
        jinja2.Environment()
        .from_string(operator.map_index_template)
        .render(task=operator, ti={"map_index": map_index})
    )


def test_the_request_and_sync_operators_are_labelled_with_campaign_and_persons():
    request = KoneksiRequestMessageGenerationOperator(
        task_id="request",
        campaign={"automation_tool_campaign_id": "c-1", "automation_tool_campaign_name": "Spring"},
        leads=[{"external_prospect_id": "1"}, {"external_prospect_id": "2"}],
    )
    assert request.map_index_template == MAP_INDEX_TEMPLATE
    assert render(request) == "Spring (2 leads)"
    assert render(request, -1) == ""
    persons = [f"https://www.linkedin.com/in/person-{i}" for i in range(5)]
    sync = LinkedApiSyncConversationsOperator(task_id="sync", persons=persons)
    assert render(sync) == "person-0, person-1 (+3 more persons)"
    one = LinkedApiSyncConversationsOperator(task_id="one", persons=[{"person": persons[1], "channel": "nv"}])
    assert render(one) == "person-1"


@pytest.mark.parametrize("template", ["{{ task.account_id }}", "{{ 'x' }}"])
def test_a_template_of_the_dag_is_kept(template):
    operator = ConnectSafelyRetrieveMessagesOperator(task_id="t", map_index_template=template)
    assert operator.map_index_template == template
