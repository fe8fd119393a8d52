"""
Extra links of the inbox retrieve operators: pages a user can open for what a task read.

- **LinkedIn thread**: LinkedIn's own messaging page of the most recently active conversation the run
  read, ``https://www.linkedin.com/messaging/thread/<thread id>/``. The thread id is the last part of
  the conversation URN that ConnectSafely (``conversationUrn``) and LinkupAPI (``conversation_id``)
  return, ``urn:li:msg_conversation:(urn:li:fsd_profile:<owner>,<thread id>)``. Sales Navigator threads
  (``urn:li:salesNav_thread:...``) have no such page, and Linked API's records are keyed by the person
  URL (its per-message ``threadId`` is not kept in the records), so they get no thread link.
- **Vendor dashboard**: the dashboard the vendor's own documentation sends users to (ConnectSafely
  ``https://connectsafely.ai/dashboard``, Linked API ``https://app.linkedapi.io``, LinkupAPI
  ``https://app.linkupapi.com``), only when the task called the vendor's documented API host (not the
  sandbox or a proxy). Koneksi / Upscale Outreach documents no dashboard or job page: no link.

The operator pushes a small value under :data:`LINKS_XCOM_KEY` (``{"vendor", "thread_id", "dashboard"}``,
ids only, never a URL from a vendor answer); the links build the URL from it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from airflow.providers.common.compat.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.models.taskinstancekey import TaskInstanceKey
    from airflow.providers.common.compat.sdk import BaseOperator, Context

#: the XCom key of the value the links read
LINKS_XCOM_KEY = "linkmsg_links"
#: LinkedIn's own messaging page of a thread
LINKEDIN_THREAD_URL = "https://www.linkedin.com/messaging/thread/{thread}/"
#: vendor: (the API host its documentation gives, the dashboard its documentation names)
DASHBOARDS: dict[str, tuple[str, str]] = {
    "connectsafely": ("api.connectsafely.ai", "https://connectsafely.ai/dashboard"),
    "linkedapi": ("api.linkedapi.io", "https://app.linkedapi.io"),
    "linkup": ("api.linkupapi.com", "https://app.linkupapi.com"),
}
_CONVERSATION_URN = re.compile(
    r"urn:li:msg_conversation:\(urn:li:fsd_profile:[^,()\s]+,(?P<thread>[^,()\s]+)\)"
)


def thread_id(conversation_id: Any) -> str | None:
    """The LinkedIn thread id of a conversation URN (``2-...``); ``None`` for any other id."""
    match = _CONVERSATION_URN.fullmatch(conversation_id) if isinstance(conversation_id, str) else None
    return match["thread"] if match else None


def thread_url(thread: str) -> str:
    """LinkedIn's messaging page of ``thread`` (characters that would leave the path are escaped)."""
    return LINKEDIN_THREAD_URL.format(thread=quote(thread, safe="=-_"))


def dashboard_url(vendor: str, base_url: str | None) -> str | None:
    """The vendor's dashboard, when ``base_url`` is the vendor's documented API host; else ``None``."""
    host, url = DASHBOARDS.get(vendor, (None, None))
    if host is None or not base_url:
        return None
    parts = urlsplit(base_url if "//" in base_url else f"https://{base_url}")
    return url if parts.scheme == "https" and (parts.hostname or "").lower() == host else None


def newest_thread(watermarks: Mapping[str, Any]) -> str | None:
    """
    The thread id of the conversation with the newest message among ``watermarks`` (a staged run's
    ``{conversation id: {"sent_at": ...}}``); conversations without a LinkedIn thread id are left out.
    """
    best: tuple[str, str] | None = None
    for conversation, watermark in watermarks.items():
        thread = thread_id(conversation)
        sent_at = watermark.get("sent_at") if isinstance(watermark, Mapping) else None
        if thread is None or not isinstance(sent_at, str):
            continue
        if best is None or sent_at > best[0]:  # UTC ISO-8601 of one format: text order is time order
            best = (sent_at, thread)
    return best[1] if best else None


def link_value(vendor: str, base_url: str | None, watermarks: Mapping[str, Any]) -> dict[str, Any]:
    """The value pushed under :data:`LINKS_XCOM_KEY`."""
    return {
        "vendor": vendor,
        "thread_id": newest_thread(watermarks),
        "dashboard": dashboard_url(vendor, base_url) is not None,
    }


def push_links(context: Context, value: dict[str, Any]) -> None:
    """Push the links' value for this task instance (an operator run by hand, without one, gets none)."""
    xcom_push = getattr(context.get("ti"), "xcom_push", None)
    if xcom_push is not None:
        xcom_push(key=LINKS_XCOM_KEY, value=value)


def _value(ti_key: TaskInstanceKey) -> Mapping[str, Any]:
    from airflow.providers.common.compat.sdk import XCom  # where the link is computed, not in DAG files

    value = XCom.get_value(key=LINKS_XCOM_KEY, ti_key=ti_key)
    return value if isinstance(value, Mapping) else {}


class LinkedInThreadLink(BaseOperatorLink):
    """LinkedIn's messaging page of the most recently active conversation the task read."""

    name = "LinkedIn thread"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        thread = _value(ti_key).get("thread_id")
        return thread_url(thread) if isinstance(thread, str) and thread else ""


class VendorDashboardLink(BaseOperatorLink):
    """The vendor's dashboard (ConnectSafely, Linked API, LinkupAPI), when the task called the vendor."""

    name = "Vendor dashboard"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        value = _value(ti_key)
        vendor = value.get("vendor")
        if not value.get("dashboard") or vendor not in DASHBOARDS:
            return ""
        return DASHBOARDS[vendor][1]


def push_inbox_links(operator: Any, context: Context, result: Mapping[str, Any]) -> None:
    """
    Push the links' value of an inbox retrieve: its vendor, the thread of the newest conversation in its
    staged run (the manifest's watermarks), and whether it called the vendor's documented API host.
    """
    from airflow_provider_linkmsg.io.staging import Manifest, to_path

    manifest = Manifest.load(to_path(result["manifest"], operator.staging_conn_id))
    base_url = operator.hook.conn_params.base_url
    push_links(context, link_value(operator.vendor, base_url, manifest.watermarks))


#: the links of an inbox retrieve operator
INBOX_LINKS = (LinkedInThreadLink(), VendorDashboardLink())
