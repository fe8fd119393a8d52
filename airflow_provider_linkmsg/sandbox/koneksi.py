"""Koneksi / Upscale Outreach in the sandbox, under ``/koneksi/api/v2`` (seeds 000, 001)."""

from __future__ import annotations

from typing import Any

from airflow_provider_linkmsg.sandbox.core import Request, Response, Route, VendorApp, reply


class KoneksiApp(VendorApp):
    name = "koneksi"
    prefix = "/koneksi/api/v2"

    def __init__(self, sandbox) -> None:
        super().__init__(sandbox)
        self.api_key = self.options.get("api_key", f"kon-sandbox-{sandbox.seed}-key")

    def routes(self) -> list[Route]:
        return [Route("GET", "/account", self.account)]

    def client_key(self, request: Request) -> str | None:
        return request.header("Api-Key")

    def _auth(self, request: Request) -> Response | None:
        if request.header("Api-Key") != self.api_key:
            return reply(401, {"error": "Unauthorized: Invalid API key"})
        return None

    def account(self, request: Request) -> Response:
        if denied := self._auth(request):
            return denied
        return reply(200, {"plan_name": "Sandbox", "monthly_credits": 10000, "monthly_allowance": 10000})

    def connection(self, base_url: str) -> dict[str, Any]:
        return {"conn_type": "koneksi", "password": self.api_key, "extra": {"base_url": base_url}}
