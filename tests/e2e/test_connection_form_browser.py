"""
The connection forms in a real Airflow UI (issue 7): a real ``airflow api-server`` with the provider
installed, headless Debian Chromium, and for each of the four connection types the vendor's own fields
(``conn-fields``) shown and the hidden standard ones (``ui-field-behaviour``) gone.

A screenshot of the Linked API form is kept as ``test-artifacts/connection-form-linkedapi.png``.
"""

from __future__ import annotations

import contextlib
import os
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_linkmsg.get_provider_info import get_provider_info
from tests.compat import requires_airflow
from tests.fixtures.browser import ApiServer

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement
    from selenium.webdriver.support.ui import WebDriverWait

# Chromium (or the reason it is missing) is checked before the API server is started for nothing.
pytestmark = [
    pytest.mark.browser,
    requires_airflow(
        "3.0",
        "`airflow api-server` and its React connection form are Airflow 3; the 2.x form's fields are "
        "checked through ProvidersManager in tests/unit/test_connection_forms.py",
    ),
    pytest.mark.usefixtures("chromium_available"),
]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SCREENSHOT_OF = "linkedapi"
WAIT = 30.0  # seconds; each step normally takes well under one
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

CONNECTION_TYPES: dict[str, dict[str, Any]] = {
    t["connection-type"]: t for t in get_provider_info()["connection-types"]
}
# What issue 7 names, written out so the test does not only compare the provider info with itself.
# "Standard Fields" holds the relabeled password; "Extra Fields" the conn-fields ("Base URL" and the vendor's).
STANDARD_LABELS = {"API key"}
VENDOR_LABELS = {
    "koneksi": {"Auth style", "Webhook secret", "Get-messages API key (legacy)"},
    "connectsafely": {"Default account id"},
    "linkedapi": {"Identification token", "API generation"},
    "linkup": {"Default account id"},
}
# Hidden by ui-field-behaviour ("schema" is the form's "Schema"); "Password" is relabeled "API key".
HIDDEN_LABELS = {"Host", "Login", "Port", "Schema", "Password"}

# One round trip, so a React re-render cannot leave a stale element between finding a label and reading it.
_VISIBLE_LABELS_JS = """
return Array.from(arguments[0].querySelectorAll('label'))
    .filter(l => l.checkVisibility({opacityProperty: true, visibilityProperty: true}))
    .map(l => l.innerText);
"""
# The form's own transitions (the accordion's), not the page's endless progress bar.
_FORM_SETTLED_JS = """
return document.getAnimations().every(a =>
    a.playState !== 'running'
    || !(a.effect && arguments[0].contains(a.effect.target))
    || a.effect.getComputedTiming().iterations === Infinity);
"""


def visible_labels(driver: WebDriver, dialog: WebElement) -> set[str]:
    """The dialog's labels that are shown, without the required-field asterisk."""
    return {
        " ".join(text.replace("*", " ").split()) for text in driver.execute_script(_VISIBLE_LABELS_JS, dialog)
    }


def _wait(driver: WebDriver) -> WebDriverWait[WebDriver]:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # React re-renders the form when the type changes: an element found a moment ago may be replaced.
    return WebDriverWait(driver, WAIT, ignored_exceptions=(StaleElementReferenceException,))


def _section_trigger(title: str) -> tuple[str, str]:
    return (
        "xpath",
        f"//*[@role='dialog']//button[@data-part='item-trigger'][normalize-space()='{title}']",
    )


def open_connection_form(driver: WebDriver, server: ApiServer, type_label: str) -> WebElement:
    """Connections page, "Add Connection", pick ``type_label``; returns the dialog, "Standard Fields" open."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    assert "'" not in type_label
    wait = _wait(driver)
    driver.get(f"{server.url}/connections")
    wait.until(
        ec.element_to_be_clickable((By.XPATH, "//button[normalize-space()='Add Connection']")),
        "no 'Add Connection' button on the connections page",
    ).click()
    dialog = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "[role=dialog]")))
    type_selector = wait.until(
        ec.element_to_be_clickable((By.CSS_SELECTOR, "[role=dialog] input[role=combobox]")),
        "the connection type selector never became usable",
    )
    type_selector.click()
    type_selector.send_keys(type_label)
    wait.until(
        ec.element_to_be_clickable((By.XPATH, f"//*[@role='option'][normalize-space()='{type_label}']")),
        f"connection type {type_label!r} is not offered in the type selector",
    ).click()
    wait.until(
        ec.element_attribute_to_include(_section_trigger("Standard Fields"), "aria-expanded"),
        f"no 'Standard Fields' section after picking {type_label!r}",
    )
    return dialog


def expand_section(driver: WebDriver, title: str) -> None:
    """Open one section of the form's accordion (which keeps one section open at a time)."""
    from selenium.webdriver.support import expected_conditions as ec

    wait = _wait(driver)
    trigger = _section_trigger(title)
    wait.until(ec.element_to_be_clickable(trigger), f"no {title!r} section in the form").click()
    wait.until(
        ec.text_to_be_present_in_element_attribute(trigger, "aria-expanded", "true"), f"{title!r} stays shut"
    )


def wait_for_labels(driver: WebDriver, dialog: WebElement, expected: set[str]) -> set[str]:
    """Wait until ``expected`` labels are shown and the accordion has stopped moving; the labels then shown."""
    from selenium.common.exceptions import TimeoutException

    # On a timeout the caller's assertion on what is shown explains the failure better than the wait could.
    with contextlib.suppress(TimeoutException):
        _wait(driver).until(
            lambda d: expected <= visible_labels(d, dialog) and d.execute_script(_FORM_SETTLED_JS, dialog)
        )
    return visible_labels(driver, dialog)


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk comes first
    assert width >= 800 and height >= 600, f"{path} is only {width}x{height}"
    assert len(data) > 20_000, f"{path} is only {len(data)} bytes: a blank page?"


@pytest.mark.parametrize("conn_type", list(CONNECTION_TYPES))
def test_the_connection_form_shows_the_vendor_fields_and_hides_host_login_port_schema(
    airflow_api_server: ApiServer, chromium: WebDriver, conn_type: str
) -> None:
    info = CONNECTION_TYPES[conn_type]
    conn_field_labels = {field["label"] for field in info["conn-fields"].values()}
    expected_extra = {"Base URL"} | VENDOR_LABELS[conn_type] | conn_field_labels

    dialog = open_connection_form(chromium, airflow_api_server, info["hook-name"])
    standard = wait_for_labels(chromium, dialog, STANDARD_LABELS)
    api_key = dialog.find_element("css selector", "input[name=password]")
    api_key_placeholder = (api_key.get_attribute("type"), api_key.get_attribute("placeholder"))
    expand_section(chromium, "Extra Fields")
    extra = wait_for_labels(chromium, dialog, expected_extra)
    shown = standard | extra

    log = f"\napi-server log:\n{airflow_api_server.log_tail(15)}"
    assert standard >= STANDARD_LABELS, f"{conn_type}: 'Standard Fields' shows only {sorted(standard)}{log}"
    assert api_key_placeholder == ("password", info["ui-field-behaviour"]["placeholders"]["password"])
    assert expected_extra <= extra, (
        f"{conn_type}: 'Extra Fields' lacks {sorted(expected_extra - extra)}; it shows {sorted(extra)}{log}"
    )
    assert not HIDDEN_LABELS & shown, f"{conn_type}: hidden fields shown: {sorted(HIDDEN_LABELS & shown)}"
    other_vendors_only = set().union(*VENDOR_LABELS.values()) - VENDOR_LABELS[conn_type]
    assert not other_vendors_only & shown, f"{conn_type}: other vendors' fields: {other_vendors_only & shown}"

    if conn_type == SCREENSHOT_OF:
        ARTIFACTS.mkdir(exist_ok=True)
        screenshot = ARTIFACTS / f"connection-form-{conn_type}.png"
        # Written aside and renamed: a run in parallel never sees a half-written file, nor ours an old one.
        partial = ARTIFACTS / f".connection-form-{conn_type}-{os.getpid()}.png"
        assert chromium.save_screenshot(str(partial)), "Chromium took no screenshot"
        assert_png(partial)
        partial.replace(screenshot)
        assert_png(screenshot)


def test_the_form_check_sees_standard_fields_when_a_type_does_not_hide_them(
    airflow_api_server: ApiServer, chromium: WebDriver
) -> None:
    """Control: Airflow's own "Generic" type shows Host, Login, Port, Schema and Password to the same check."""
    dialog = open_connection_form(chromium, airflow_api_server, "Generic")
    shown = wait_for_labels(chromium, dialog, HIDDEN_LABELS)
    assert shown >= HIDDEN_LABELS, f"the Generic form shows {sorted(shown)}"
    assert "API key" not in shown
