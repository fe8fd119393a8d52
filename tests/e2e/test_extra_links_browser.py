"""
The extra links in a real Airflow UI: a real ``airflow api-server``, headless Debian Chromium, and the
task instance's Details tab of an inbox retrieve showing its "LinkedIn thread" button with LinkedIn's URL.
"""

from __future__ import annotations

from urllib.parse import quote

import pendulum
import pytest

from airflow_provider_linkmsg.operators.links import thread_id
from airflow_provider_linkmsg.operators.linkup import LinkupRetrieveMessagesOperator
from tests.compat import requires_airflow

pytestmark = [
    pytest.mark.browser,
    requires_airflow("3.0", "`airflow api-server` and its React UI are Airflow 3"),
    pytest.mark.usefixtures("chromium_available"),
]
WAIT = 60.0


def test_the_task_page_shows_the_linkedin_thread_link(
    sandbox_factory, inbox_run_dag, tmp_path, airflow_api_server, chromium
):
    from airflow.providers.common.compat.sdk import DAG
    from selenium.webdriver.support.ui import WebDriverWait

    sandbox = sandbox_factory(seed=3, sizes={"linkup": {"accounts": 1, "conversations": 3, "messages": 2}})
    truth = sandbox.truth("linkup")
    newest = max(truth["messages"], key=lambda m: m["sent_at"])
    expected = f"https://www.linkedin.com/messaging/thread/{thread_id(newest['conversation_id'])}/"
    with DAG("links_ui", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
        LinkupRetrieveMessagesOperator(task_id="lk", staging_path=str(tmp_path), max_credits=100)
    run = inbox_run_dag(dag)
    assert run.state == "success"
    url = f"{airflow_api_server.url}/dags/links_ui/runs/{quote(run.run_id, safe='')}/tasks/lk/details"
    chromium.get(url)

    def links(driver) -> dict[str, str]:
        """Every link of the page, read in one script (React re-renders: no element goes stale meanwhile)."""
        pairs = driver.execute_script(
            "return Array.from(document.querySelectorAll('a')).map(a => [a.textContent.trim(), a.href]);"
        )
        return dict(pairs)

    try:
        WebDriverWait(chromium, WAIT).until(lambda d: "LinkedIn thread" in links(d))
    except Exception:
        pytest.fail(
            f"{url} shows no 'LinkedIn thread' link:\n{chromium.find_element('tag name', 'body').text[:2000]}"
        )
    shown = links(chromium)
    assert shown["LinkedIn thread"] == expected
    assert "Vendor dashboard" not in shown  # the task called the sandbox, not LinkupAPI: no dashboard
