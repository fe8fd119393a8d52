"""LinkupAPI (v2 messages) in the sandbox, under ``/linkup/v2`` (seed 004)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow_provider_linkmsg.sandbox.core import Request, Response, Route, VendorApp, reply


class LinkupApp(VendorApp):
    name = "linkup"
    prefix = "/linkup/v2"

    def __init__(self, sandbox) -> None:
        super().__init__(sandbox)
        self.api_key = self.options.get("api_key", f"lk-sandbox-{sandbox.seed}-key")

    def routes(self) -> list[Route]:
        return [Route("GET", "/accounts", self.accounts)]

    def client_key(self, request: Request) -> str | None:
        return request.header("x-api-key")

    def error(self, status: int, code: str, message: str, action: str | None = None) -> Response:
        metadata = {"action": action, "credits_consumed": 0, "timestamp": self._timestamp()}
        return reply(
            status, {"success": False, "error": {"code": code, "message": message}, "metadata": metadata}
        )

    def _timestamp(self) -> str:
        return datetime.fromtimestamp(self.sandbox.now(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def _auth(self, request: Request) -> Response | None:
        if request.header("x-api-key") != self.api_key:
            return self.error(403, "INVALID_API_KEY", "The provided API key is invalid or missing")
        return None

    def accounts(self, request: Request) -> Response:
        if denied := self._auth(request):
            return denied
        data = {"items": [], "total": 0, "limit": 50, "offset": 0}
        metadata = {"action": "list_accounts", "credits_consumed": 0, "timestamp": self._timestamp()}
        return reply(200, {"success": True, "data": data, "metadata": metadata})

    def rate_limited(self, retry_after: int) -> Response:
        response = self.error(429, "RATE_LIMITED", "Too many requests")
        response.headers["Retry-After"] = str(retry_after)
        return response

    def server_error(self) -> Response:
        return self.error(500, "INTERNAL_ERROR", "Internal server error")

    def connection(self, base_url: str) -> dict[str, Any]:
        return {"conn_type": "linkup", "password": self.api_key, "extra": {"base_url": base_url}}
