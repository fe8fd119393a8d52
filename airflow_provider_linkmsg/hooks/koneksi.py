"""Hook for Koneksi / Upscale Outreach: AI-generated outreach messages (seeds 000, 001)."""

from __future__ import annotations

from typing import Any

from airflow_provider_linkmsg.hooks.base import LinkMsgHook


class KoneksiHook(LinkMsgHook):
    """
    Interact with the Koneksi (Upscale Outreach) API.

    :param koneksi_conn_id: Airflow connection of type ``koneksi``.
    """

    conn_type = "koneksi"
    conn_name_attr = "koneksi_conn_id"
    default_conn_name = "koneksi_default"
    hook_name = "Koneksi / Upscale Outreach"
    vendor = "koneksi"

    def __init__(self, koneksi_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(koneksi_conn_id, **kwargs)

    def auth_headers(self) -> dict[str, str]:
        return {"Api-Key": self.conn_params.api_key}

    def check_connection(self) -> str:
        data = self.request("GET", "/account").data or {}
        return f"plan {data.get('plan_name', 'unknown')}"
