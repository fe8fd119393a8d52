"""
Extra links of the inbox retrieves in a ``dag.test()`` run on the metadata database: the LinkedIn thread of
the newest conversation read, and no vendor dashboard for a task that called the sandbox.
"""

from __future__ import annotations

import pendulum

from airflow_provider_linkmsg.operators.connectsafely import ConnectSafelyRetrieveMessagesOperator
from airflow_provider_linkmsg.operators.links import (
    INBOX_LINKS,
    LINKS_XCOM_KEY,
    LinkedInThreadLink,
    VendorDashboardLink,
    thread_id,
)
from airflow_provider_linkmsg.operators.linkup import LinkupRetrieveMessagesOperator
from tests.compat import AIRFLOW_V_3_0_PLUS, xcom_value


def newest_thread_in_truth(truth: dict) -> str:
    """The thread id of the conversation holding the newest message of the sandbox's ground truth."""
    messages = [m for m in truth["messages"] if thread_id(m["conversation_id"])]
    return thread_id(max(messages, key=lambda m: m["sent_at"])["conversation_id"])


def link_url(dag, dag_run, task_id: str, link) -> str:
    """
    The link as the UI gets it: on Airflow 3 the worker runs ``get_link`` when the task ends and the UI
    reads the XCom it stored; on Airflow 2 the webserver runs ``get_link``, which reads our XCom.
    """
    if AIRFLOW_V_3_0_PLUS:
        return xcom_value(dag_run, task_id, key=link.xcom_key)
    ti = dag_run.get_task_instance(task_id)
    return link.get_link(dag.get_task(task_id), ti_key=ti.key)


def test_a_retrieve_links_to_the_linkedin_thread_of_its_newest_conversation(
    sandbox_factory, inbox_run_dag, tmp_path
):
    from airflow.providers.common.compat.sdk import DAG

    sizes = {"accounts": 1, "conversations": 4, "messages": 3}
    sandbox = sandbox_factory(seed=6, sizes={"linkup": sizes, "connectsafely": sizes})
    with DAG("links", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
        LinkupRetrieveMessagesOperator(task_id="lk", staging_path=str(tmp_path), max_credits=100)
        ConnectSafelyRetrieveMessagesOperator(task_id="cs", staging_path=str(tmp_path))
    assert [link.name for link in dag.get_task("lk").operator_extra_links] == [
        link.name for link in INBOX_LINKS
    ]
    run = inbox_run_dag(dag)
    assert run.state == "success"

    expected = newest_thread_in_truth(sandbox.truth("linkup"))
    value = xcom_value(run, "lk", key=LINKS_XCOM_KEY)
    assert value == {"vendor": "linkup", "thread_id": expected, "dashboard": False}
    thread = link_url(dag, run, "lk", LinkedInThreadLink())
    assert thread == f"https://www.linkedin.com/messaging/thread/{expected}/"
    # the sandbox is not the vendor: no dashboard of the vendor for this task
    assert not link_url(dag, run, "lk", VendorDashboardLink())

    # ConnectSafely: the newest message is in a Sales Navigator thread (no LinkedIn messaging page), so the
    # link goes to the newest standard conversation
    cs_truth = sandbox.truth("connectsafely")
    assert max(cs_truth["messages"], key=lambda m: m["sent_at"])["channel"] == "sales_navigator"
    cs_expected = newest_thread_in_truth(cs_truth)
    assert link_url(dag, run, "cs", LinkedInThreadLink()) == (
        f"https://www.linkedin.com/messaging/thread/{cs_expected}/"
    )
