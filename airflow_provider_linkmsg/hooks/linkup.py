"""Hook for LinkupAPI (v2): LinkedIn inboxes, credits charged per call (seed 004)."""

from __future__ import annotations

from typing import Any

from airflow_provider_linkmsg.hooks.base import LinkMsgHook


class LinkupHook(LinkMsgHook):
    """
    Interact with LinkupAPI v2.

    :param linkup_conn_id: Airflow connection of type ``linkup``.
    """

    conn_type = "linkup"
    conn_name_attr = "linkup_conn_id"
    default_conn_name = "linkup_default"
    hook_name = "LinkupAPI"
    vendor = "linkup"
    auth_statuses = frozenset({401, 403})  # INVALID_API_KEY and ACCOUNT_INACTIVE are 403

    def __init__(self, linkup_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(linkup_conn_id, **kwargs)

    def auth_headers(self) -> dict[str, str]:
        return {"x-api-key": self.conn_params.api_key}

    def check_connection(self) -> str:
        data = (self.request("GET", "/accounts", params={"limit": 1}).data or {}).get("data") or {}
        return f"{data.get('total', 0)} account(s)"
