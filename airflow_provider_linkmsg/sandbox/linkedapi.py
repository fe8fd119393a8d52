"""Linked API in the sandbox, under ``/linkedapi`` (seed 003 and the current workflow API)."""

from __future__ import annotations

from typing import Any

from airflow_provider_linkmsg.sandbox.core import Request, Response, Route, VendorApp, reply


class LinkedApiApp(VendorApp):
    name = "linkedapi"
    prefix = "/linkedapi"

    def __init__(self, sandbox) -> None:
        super().__init__(sandbox)
        self.api_key = self.options.get("api_key", f"la-sandbox-{sandbox.seed}-token")
        self.identification_token = self.options.get("identification_token", f"la-id-{sandbox.seed}-acc1")

    def routes(self) -> list[Route]:
        return [Route("GET", "/account", self.account)]

    def client_key(self, request: Request) -> str | None:
        return request.header("identification-token")

    def _auth(self, request: Request) -> Response | None:
        token = request.header("linked-api-token")
        if not token:
            return self._error(
                401, "linkedApiTokenRequired", "'linked-api-token' is missing in request headers."
            )
        if token != self.api_key:
            return self._error(401, "invalidLinkedApiToken", "The 'linked-api-token' is invalid.")
        ident = request.header("identification-token")
        if not ident:
            return self._error(
                401, "identificationTokenRequired", "'identification-token' is missing in request headers."
            )
        if ident != self.identification_token:
            return self._error(401, "invalidIdentificationToken", "The 'identification-token' is invalid.")
        return None

    @staticmethod
    def _error(status: int, kind: str, message: str) -> Response:
        return reply(status, {"success": False, "error": {"type": kind, "message": message}})

    def account(self, request: Request) -> Response:
        if denied := self._auth(request):
            return denied
        return reply(
            200,
            {
                "success": True,
                "result": {"name": "Ada Sandbox", "url": "https://www.linkedin.com/in/ada-sandbox"},
            },
        )

    def rate_limited(self, retry_after: int) -> Response:
        return reply(
            429,
            {"success": False, "error": {"type": "tooManyRequests", "message": "Too many requests"}},
            Retry_After=str(retry_after),
        )

    def connection(self, base_url: str) -> dict[str, Any]:
        return {
            "conn_type": "linkedapi",
            "password": self.api_key,
            "extra": {"base_url": base_url, "identification_token": self.identification_token},
        }
