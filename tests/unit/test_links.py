"""The extra links' parts: thread ids from conversation URNs, LinkedIn's thread URL, vendor dashboards."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_linkmsg.get_provider_info import get_provider_info
from airflow_provider_linkmsg.operators.links import (
    DASHBOARDS,
    INBOX_LINKS,
    LinkedInThreadLink,
    VendorDashboardLink,
    dashboard_url,
    link_value,
    newest_thread,
    push_links,
    thread_id,
    thread_url,
)

OWNER = "urn:li:fsd_profile:ACoAAEmu01"


@pytest.mark.parametrize(
    ("conversation", "thread"),
    [
        (f"urn:li:msg_conversation:({OWNER},2-bXNnVGhyZWFk)", "2-bXNnVGhyZWFk"),
        (f"urn:li:msg_conversation:({OWNER},2-NWMxYTUzZmM0YWI3XzEwMA==)", "2-NWMxYTUzZmM0YWI3XzEwMA=="),
        ("urn:li:salesNav_thread:D1P_f5ac51WerKal", None),  # Sales Navigator: no messaging page
        ("https://www.linkedin.com/in/bob-prospect", None),  # Linked API's conversation id: a person
        (f"urn:li:msg_conversation:({OWNER},2-a) trailing", None),
        ("urn:li:msg_conversation:(2-abc)", None),
        (None, None),
        (42, None),
    ],
)
def test_thread_id_of_a_conversation_urn(conversation, thread):
    assert thread_id(conversation) == thread


@given(st.text(alphabet=st.characters(codec="ascii", categories=["L", "N", "P", "S"]), min_size=1))
def test_a_thread_url_stays_one_path_segment_of_linkedin_messaging(thread):
    url = thread_url(thread)
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc) == ("https", "www.linkedin.com")
    assert not parts.query and not parts.fragment
    prefix = "/messaging/thread/"
    assert parts.path.startswith(prefix) and parts.path.endswith("/")
    segment = parts.path[len(prefix) : -1]
    assert "/" not in segment and unquote(segment) == thread


def test_a_dashboard_only_for_the_vendors_documented_api_host():
    assert dashboard_url("connectsafely", "https://api.connectsafely.ai/linkedin") == (
        "https://connectsafely.ai/dashboard"
    )
    assert dashboard_url("linkedapi", "https://api.linkedapi.io") == "https://app.linkedapi.io"
    assert dashboard_url("linkup", "https://API.linkupapi.com/v2") == "https://app.linkupapi.com"
    for vendor, base_url in [
        ("linkup", "http://127.0.0.1:8123/linkup/v2"),  # the sandbox
        ("linkup", "http://api.linkupapi.com/v2"),  # not https
        ("linkup", "https://api.linkupapi.com.example.org/v2"),  # a look-alike host
        ("connectsafely", "https://api.linkedapi.io"),  # another vendor's host
        ("koneksi", "https://app.upscaleoutreach.com/api/v2"),  # no documented dashboard
        ("linkup", None),
    ]:
        assert dashboard_url(vendor, base_url) is None, (vendor, base_url)
    assert set(DASHBOARDS) == {"connectsafely", "linkedapi", "linkup"}


def urn(thread: str) -> str:
    return f"urn:li:msg_conversation:({OWNER},{thread})"


def test_newest_thread_is_the_conversation_with_the_newest_message():
    watermarks = {
        urn("2-old"): {"sent_at": "2026-01-01T09:00:00.000000Z"},
        urn("2-new"): {"sent_at": "2026-01-02T09:00:00.000000Z"},
        "urn:li:salesNav_thread:NEWEST": {"sent_at": "2026-01-03T09:00:00.000000Z"},
        urn("2-never"): {"sent_at": None},
    }
    assert newest_thread(watermarks) == "2-new"
    assert newest_thread({}) is None
    assert newest_thread({"urn:li:salesNav_thread:X": {"sent_at": "2026-01-01T00:00:00.000000Z"}}) is None


@given(
    st.dictionaries(
        st.from_regex(r"2-[A-Za-z0-9]{1,12}", fullmatch=True),
        st.datetimes().map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%fZ")),
        min_size=1,
        max_size=20,
    )
)
def test_newest_thread_matches_the_latest_time(times):
    watermarks = {urn(t): {"sent_at": at} for t, at in times.items()}
    newest = newest_thread(watermarks)
    assert times[newest] == max(times.values())


def test_link_value_holds_ids_only():
    value = link_value(
        "linkup", "https://api.linkupapi.com/v2", {urn("2-x"): {"sent_at": "2026-01-01T00:00:00Z"}}
    )
    assert value == {"vendor": "linkup", "thread_id": "2-x", "dashboard": True}


def test_push_links_without_a_task_instance_pushes_nothing():
    push_links({}, {"vendor": "linkup"})  # an operator run by hand: no error, no link
    pushed = []

    class TI:
        def xcom_push(self, key, value):
            pushed.append((key, value))

    push_links({"ti": TI()}, {"vendor": "linkup"})
    assert pushed == [("linkmsg_links", {"vendor": "linkup"})]


def test_the_links_are_declared_in_provider_info():
    declared = get_provider_info()["extra-links"]
    assert declared == [
        "airflow_provider_linkmsg.operators.links.LinkedInThreadLink",
        "airflow_provider_linkmsg.operators.links.VendorDashboardLink",
    ]
    assert {type(link) for link in INBOX_LINKS} == {LinkedInThreadLink, VendorDashboardLink}
    assert {link.name for link in INBOX_LINKS} == {"LinkedIn thread", "Vendor dashboard"}
