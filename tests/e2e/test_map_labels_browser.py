"""
The mapped-task labels (``map_index_template``) in a real Airflow UI: a real ``airflow api-server``,
headless Debian Chromium, and the mapped instances of an inbox retrieve listed by their account.
"""

from __future__ import annotations

from urllib.parse import quote

import pendulum
import pytest

from airflow_provider_linkmsg.operators.connectsafely import ConnectSafelyRetrieveMessagesOperator
from tests.compat import requires_airflow

pytestmark = [
    pytest.mark.browser,
    requires_airflow("3.0", "`airflow api-server` and its React UI are Airflow 3"),
    pytest.mark.usefixtures("chromium_available"),
]
WAIT = 60.0


def test_the_ui_lists_mapped_retrieves_by_their_account(
    sandbox_factory, inbox_run_dag, tmp_path, airflow_api_server, chromium
):
    from airflow.providers.common.compat.sdk import DAG
    from selenium.webdriver.support.ui import WebDriverWait

    sizes = {"accounts": 2, "conversations": 2, "messages": 2}
    sandbox = sandbox_factory(seed=7, sizes={"connectsafely": sizes})
    accounts = [a["id"] for a in sandbox.truth("connectsafely")["accounts"]]
    with DAG("labels_ui", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
        ConnectSafelyRetrieveMessagesOperator.partial(task_id="cs", staging_path=str(tmp_path)).expand(
            account_id=accounts
        )
    run = inbox_run_dag(dag)
    assert run.state == "success"
    url = f"{airflow_api_server.url}/dags/labels_ui/runs/{quote(run.run_id, safe='')}/tasks/cs/mapped"
    chromium.get(url)
    try:
        WebDriverWait(chromium, WAIT).until(
            lambda d: all(a in d.find_element("tag name", "body").text for a in accounts)
        )
    except Exception:
        pytest.fail(
            f"{url} does not show {accounts}:\n{chromium.find_element('tag name', 'body').text[:2000]}"
        )
    text = chromium.find_element("tag name", "body").text
    assert all(a in text for a in accounts)
