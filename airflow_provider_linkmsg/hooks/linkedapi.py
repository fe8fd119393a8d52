"""Hook for Linked API: conversation synchronization and retrieval (seed 003 and the current API)."""

from __future__ import annotations

from typing import Any

from airflow_provider_linkmsg.exceptions import LinkMsgAuthError
from airflow_provider_linkmsg.hooks.base import LinkMsgHook


class LinkedApiHook(LinkMsgHook):
    """
    Interact with Linked API.

    :param linkedapi_conn_id: Airflow connection of type ``linkedapi``.
    """

    conn_type = "linkedapi"
    conn_name_attr = "linkedapi_conn_id"
    default_conn_name = "linkedapi_default"
    hook_name = "Linked API"
    vendor = "linkedapi"

    def __init__(self, linkedapi_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(linkedapi_conn_id, **kwargs)

    def auth_headers(self) -> dict[str, str]:
        token = self.extra("identification_token")
        if not token:
            raise LinkMsgAuthError(
                f"connection {self.conn_id!r} has no identification_token: add the LinkedIn account's "
                "identification token to the connection's extra",
                vendor=self.vendor,
            )
        return {"linked-api-token": self.conn_params.api_key, "identification-token": str(token)}

    def check_connection(self) -> str:
        result = (self.request("GET", "/account").data or {}).get("result") or {}
        return f"account {result.get('name', 'unknown')}"
