"""ConnectSafely in the sandbox, under ``/connectsafely/linkedin`` (seed 002)."""

from __future__ import annotations

from typing import Any

from airflow_provider_linkmsg.sandbox.core import Request, Response, Route, VendorApp, reply


class ConnectSafelyApp(VendorApp):
    name = "connectsafely"
    prefix = "/connectsafely/linkedin"

    def __init__(self, sandbox) -> None:
        super().__init__(sandbox)
        self.api_key = self.options.get("api_key", f"cs-sandbox-{sandbox.seed}-key")

    def routes(self) -> list[Route]:
        return [Route("GET", "/accounts", self.accounts)]

    def client_key(self, request: Request) -> str | None:
        return request.header("Authorization")

    def _auth(self, request: Request) -> Response | None:
        if request.header("Authorization") != f"Bearer {self.api_key}":
            return reply(401, {"success": False, "error": "Unauthorized - Invalid credentials"})
        return None

    def accounts(self, request: Request) -> Response:
        if denied := self._auth(request):
            return denied
        return reply(200, [])

    def rate_limited(self, retry_after: int) -> Response:
        return reply(429, {"success": False, "error": "Rate limit exceeded"}, Retry_After=str(retry_after))

    def connection(self, base_url: str) -> dict[str, Any]:
        return {"conn_type": "connectsafely", "password": self.api_key, "extra": {"base_url": base_url}}
