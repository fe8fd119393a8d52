"""
Linked API in the sandbox, under ``/linkedapi``: the seed's API and the current one, on one world.

The world: accounts keyed by identification token, each with persons (LinkedIn profile URLs
``https://www.linkedin.com/in/<slug>`` and Sales Navigator URLs ``https://www.linkedin.com/sales/people/<id>``),
one conversation per person on its channel (``st`` standard or ``nv`` Sales Navigator), and a deny-list of
URLs that are not LinkedIn persons. Conversations must be synchronized before they can be read.
The modules: :mod:`.linkedapi_world` (the world, jobs and time), :mod:`.linkedapi_seed` (the seed's API),
:mod:`.linkedapi_current` (the current API); this one assembles them with auth and the routes.

Seed 003 (``api = seed``):

* ``POST /account/conversations.synchronize`` and ``POST /account/conversations.get`` with ``standard`` and
  ``salesNavigator`` lists; per-person results (``personNotFound``, ``notSynchronized``).
* ``result-handling: long`` (the default) holds the request until the job is done (at most
  ``long_poll_max_seconds``, then it answers ``processing`` with a result link); ``reslink`` answers
  ``processing`` at once with a result link, ``GET /account/results/{hash}``, that answers ``complete`` later.

Current API (``api = current``):

* ``POST /workflows`` (``st.syncConversation`` / ``nv.syncConversation``, an object or an array), then
  ``GET /workflows/{id}``: ``pending`` (``pendingReason`` ``queued`` or ``outsideWorkingHours``) →
  ``running`` → ``completed`` with per-action results in ``completion``; ``DELETE /workflows/{id}`` cancels.
* ``POST /conversations/poll``: messages since a time; any unsynced person fails the batch with
  ``conversationsNotSynced`` (400), whose message names the persons.

Options (``Sandbox(sizes={"linkedapi": {...}})``; timing and modes also through ``PUT /_sandbox/config``):
``accounts`` (1), ``persons`` (20 per account), ``not_found`` (2), ``sales_navigator_share`` (0.3),
``min_messages``/``max_messages`` (1/8), ``sync_seconds`` (1.0: synchronization time), ``pending_seconds``
(0.2: a workflow's queue time), ``get_seconds`` (0: a ``reslink`` read's delay), ``long_poll_max_seconds``
(120), ``outside_working_hours`` (false), ``since_inclusive`` (true), ``max_items_per_request`` (100),
``sync_days`` (30), ``sales_navigator`` (true: accounts have Sales Navigator), ``fail_workflows`` (a failure
reason, e.g. ``linkedinAccountSignedOut``), ``account_error`` (``linkedinAccountSignedOut`` or
``subscriptionRequired`` on every call).

``advance({"seconds": s, "linkedapi": {"persons": k, "messages": m, "working_hours": "open"|"closed"}})``
adds ``m`` new messages (default 1) to ``k`` synced conversations of every account, and opens or closes
the accounts' working hours; ``conversations``/``conversation_ids``, ``at``, ``older_by_ms`` and
``empty_conversations`` are the late-delivery modes shared with the other inbox vendors (see
:meth:`LinkedApiApp.advance`). Counters (group ``linkedapi``): ``jobs_started``, ``seed_synchronize``,
``workflows``, ``seed_get``, ``poll``, ``get_or_poll``, ``cancelled``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_linkmsg.sandbox.core import Request, Response, Route, VendorApp, reply
from airflow_provider_linkmsg.sandbox.linkedapi_current import CurrentApi
from airflow_provider_linkmsg.sandbox.linkedapi_seed import SeedApi
from airflow_provider_linkmsg.sandbox.linkedapi_world import DEFAULTS, Account, Job


class LinkedApiApp(SeedApi, CurrentApi, VendorApp):
    name = "linkedapi"
    prefix = "/linkedapi"

    def __init__(self, sandbox) -> None:
        super().__init__(sandbox)
        for key, value in DEFAULTS.items():
            self.options.setdefault(key, value)
        self.api_key = self.options.get("api_key", f"la-sandbox-{sandbox.seed}-token")
        self.identification_token = self.options.get("identification_token", f"la-id-{sandbox.seed}-acc1")
        self.accounts: dict[str, Account] = {}
        for n in range(1, int(self.options["accounts"]) + 1):
            token = self.identification_token if n == 1 else f"la-id-{sandbox.seed}-acc{n}"
            self.accounts[token] = self._make_account(f"acc{n}", token)
        self.jobs: dict[str, Job] = {}
        self._ids = 0

    def configure(self, settings: Mapping[str, Any]) -> None:
        self.options.update(settings)

    # ---- plumbing -------------------------------------------------------------------------------------
    def routes(self) -> list[Route]:
        return [
            Route("GET", "/account", self.get_account),
            Route("POST", "/account/conversations.synchronize", self.seed_synchronize),
            Route("POST", "/account/conversations.get", self.seed_get),
            Route("GET", "/account/results/{hash}", self.seed_result),
            Route("POST", "/workflows", self.create_workflow),
            Route("GET", "/workflows/{id}", self.get_workflow),
            Route("DELETE", "/workflows/{id}", self.cancel_workflow),
            Route("POST", "/conversations/poll", self.poll),
        ]

    def client_key(self, request: Request) -> str | None:
        return request.header("identification-token")

    def connection(self, base_url: str) -> dict[str, Any]:
        return {
            "conn_type": "linkedapi",
            "password": self.api_key,
            "extra": {"base_url": base_url, "identification_token": self.identification_token},
        }

    def rate_limited(self, retry_after: int) -> Response:
        return self._error(429, "tooManyRequests", "Too many requests.", Retry_After=str(retry_after))

    def server_error(self) -> Response:
        return self._error(500, "internalError", "Internal server error.")

    def _auth(self, request: Request, *, seed: bool = False) -> tuple[Account | None, Response | None]:
        fail = self._seed_error if seed else self._error
        token = request.header("linked-api-token")
        ident = request.header("identification-token")
        if not token:
            return None, fail(
                401, "linkedApiTokenRequired", "'linked-api-token' is missing in request headers."
            )
        if token != self.api_key:
            return None, fail(401, "invalidLinkedApiToken", "The 'linked-api-token' is invalid.")
        if not ident:
            msg = "'identification-token' is missing in request headers."
            return None, fail(401, "identificationTokenRequired", msg)
        account = self.accounts.get(ident)
        if account is None:
            return None, fail(401, "invalidIdentificationToken", "The 'identification-token' is invalid.")
        problem = self.options.get("account_error")
        if problem == "linkedinAccountSignedOut":
            return None, fail(403, problem, "The LinkedIn account is signed out; reconnect it in Linked API.")
        if problem:
            return None, fail(402, str(problem), f"The account cannot make requests ({problem}).")
        self._tick()
        return account, None

    def _count(self, *keys: str) -> None:
        for key in keys:
            self.sandbox.count(self.name, key)

    def _too_many(self, n: int) -> str | None:
        limit = int(self.options["max_items_per_request"])
        return f"at most {limit} persons per request, got {n}" if n > limit else None

    # ---- GET /account -------------------------------------------------------------------------------
    def get_account(self, request: Request) -> Response:
        account, denied = self._auth(request)
        if denied:
            return denied
        slug = f"ada-sandbox-{account.id}"
        return reply(
            200,
            {
                "success": True,
                "result": {"name": "Ada Sandbox", "url": f"https://www.linkedin.com/in/{slug}"},
            },
        )
