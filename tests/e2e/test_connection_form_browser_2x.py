"""
The connection forms in a real Airflow 2.x UI: ``airflow webserver`` (FAB) with the provider installed,
headless Debian Chromium, and for each of the four connection types the vendor's fields shown (built by
``hooks/forms.py`` from ``conn-fields``) and the standard fields that ``ui-field-behaviour`` hides gone.

A screenshot of the Koneksi form is kept as ``test-artifacts/connection-form-2x-koneksi.png``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_provider_linkmsg.get_provider_info import get_provider_info
from tests.compat import AIRFLOW_V_3_0_PLUS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        AIRFLOW_V_3_0_PLUS,
        reason="Airflow 3 has no FAB webserver; its React form is tested in test_connection_form_browser.py",
    ),
    pytest.mark.usefixtures("chromium_available"),
]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CONNECTION_TYPES: dict[str, dict[str, Any]] = {
    t["connection-type"]: t for t in get_provider_info()["connection-types"]
}
# Written out, as in the 3.x test, so the check does not only compare the provider info with itself.
VENDOR_LABELS = {
    "koneksi": {"Auth style", "Webhook secret", "Get-messages API key (legacy)"},
    "connectsafely": {"Default account id"},
    "linkedapi": {"Identification token", "API generation"},
    "linkup": {"Default account id"},
}
HIDDEN_LABELS = {"Host", "Login", "Port", "Schema", "Password"}

# FAB's connection form: a select2 type picker; connection_form.js shows the chosen type's extra fields.
_CHOOSE_TYPE_JS = "$('#conn_type').val(arguments[0]).trigger('change');"
_VISIBLE_LABELS_JS = """
return Array.from(document.querySelectorAll('form label'))
    .filter(l => l.offsetParent !== null)
    .map(l => l.innerText.replace(/\\s*\\*$/, '').trim());
"""


def _visible_labels(driver, server, conn_type: str) -> set[str]:
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{server.url}/connection/add")
    WebDriverWait(driver, 30).until(
        lambda d: d.execute_script("return !!(window.$ && $('#conn_type').length)")
    )
    driver.execute_script(_CHOOSE_TYPE_JS, conn_type)
    expected = VENDOR_LABELS[conn_type]
    WebDriverWait(driver, 30).until(lambda d: expected <= set(d.execute_script(_VISIBLE_LABELS_JS)))
    return set(driver.execute_script(_VISIBLE_LABELS_JS))


@pytest.mark.parametrize("conn_type", sorted(CONNECTION_TYPES))
def test_the_2x_form_shows_the_vendor_fields_and_hides_host_login_port_schema(
    chromium, airflow_webserver, conn_type
):
    labels = _visible_labels(chromium, airflow_webserver, conn_type)
    declared = {spec["label"] for spec in CONNECTION_TYPES[conn_type]["conn-fields"].values()}
    assert declared <= labels, f"missing: {declared - labels}"
    assert VENDOR_LABELS[conn_type] <= labels
    assert "API key" in labels  # the relabeled password
    assert not (HIDDEN_LABELS & labels), f"shown although hidden: {HIDDEN_LABELS & labels}"
    if conn_type == "koneksi":
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "connection-form-2x-koneksi.png"
        assert chromium.save_screenshot(str(shot))
        assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_a_type_without_behaviour_keeps_the_standard_fields(chromium, airflow_webserver):
    """The check above can fail: a plain HTTP connection shows Host, Login, Port and Schema."""
    from selenium.webdriver.support.ui import WebDriverWait

    chromium.get(f"{airflow_webserver.url}/connection/add")
    WebDriverWait(chromium, 30).until(
        lambda d: d.execute_script("return !!(window.$ && $('#conn_type').length)")
    )
    chromium.execute_script(_CHOOSE_TYPE_JS, "http")
    WebDriverWait(chromium, 30).until(lambda d: "Host" in d.execute_script(_VISIBLE_LABELS_JS))
    labels = set(chromium.execute_script(_VISIBLE_LABELS_JS))
    assert {"Host", "Login", "Port", "Schema"} <= labels
    assert not (VENDOR_LABELS["koneksi"] & labels)
