"""Hook for ConnectSafely: LinkedIn inboxes over a Bearer-authenticated REST API (seed 002)."""

from __future__ import annotations

from typing import Any

from airflow_provider_linkmsg.hooks.base import LinkMsgHook


class ConnectSafelyHook(LinkMsgHook):
    """
    Interact with the ConnectSafely API.

    :param connectsafely_conn_id: Airflow connection of type ``connectsafely``.
    """

    conn_type = "connectsafely"
    conn_name_attr = "connectsafely_conn_id"
    default_conn_name = "connectsafely_default"
    hook_name = "ConnectSafely"
    vendor = "connectsafely"
    auth_statuses = frozenset({401, 403})  # 403: trial expired or no subscription

    def __init__(self, connectsafely_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(connectsafely_conn_id, **kwargs)

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.conn_params.api_key}"}

    def check_connection(self) -> str:
        accounts = self.request("GET", "/accounts").data or []
        return f"{len(accounts)} LinkedIn account(s)"
