"""
Seed 003's generation of Linked API, behind :class:`~airflow_provider_linkmsg.hooks.linkedapi.LinkedApiHook`.

``POST /account/conversations.synchronize`` and ``POST /account/conversations.get`` with
``result-handling: long`` (the server holds the request until the result is ready) or ``reslink`` (it
answers at once with a result link to poll, ``GET`` on the link). A ``complete`` answer is checked against
:class:`~airflow_provider_linkmsg.schemas.linkedapi.SeedAnswer` before anything is read from it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_linkmsg.exceptions import (
    LinkMsgError,
    LinkMsgForeignOriginError,
    LinkMsgResponseError,
    LinkMsgVendorError,
)
from airflow_provider_linkmsg.hooks.base import _short
from airflow_provider_linkmsg.hooks.linkedapi_model import (
    AUTH_CODES,
    PLAN_CODES,
    SEED_LISTS,
    JobStatus,
    Person,
    PersonMessages,
    ResultHandling,
    SyncOutcome,
    answered_person,
    outcome,
)
from airflow_provider_linkmsg.schemas import linkedapi as schema

if TYPE_CHECKING:
    from airflow_provider_linkmsg.hooks.linkedapi import LinkedApiHook

GET = "/account/conversations.get"
SYNCHRONIZE = "/account/conversations.synchronize"
RESULTS = "/account/results"


class SeedApi:
    """
    The seed API's calls and answers for one hook (its transport, redactor and settings).

    :param hook: the Linked API hook whose connection is on the seed API.
    """

    def __init__(self, hook: LinkedApiHook) -> None:
        self.hook = hook

    # ---- bodies and answers ---------------------------------------------------------------------------
    @staticmethod
    def body(batch: Iterable[Person], since: Mapping[Person, str | None] | None = None) -> dict:
        """``{"standard": [{"person", "since"?}], "salesNavigator": [...]}`` for ``batch``."""
        body: dict[str, list[dict[str, Any]]] = {}
        for p in batch:
            item: dict[str, Any] = {"person": p.url}
            if since and since.get(p):
                item["since"] = since[p]
            body.setdefault(SEED_LISTS[p.channel], []).append(item)
        return body

    def items(self, answer: Mapping[str, Any], endpoint: str) -> Iterator[tuple[Person, dict[str, Any]]]:
        """
        ``(person, result)`` of each item of a ``complete`` answer.

        :raises LinkMsgResponseError: when the answer does not have the seed's shape (checked first, whole).
        """
        method = "GET" if endpoint == RESULTS else "POST"
        self.hook.check(schema.SeedAnswer, answer, route=f"{method} {endpoint}")
        completion = answer.get("completion") or {}
        for channel, name in SEED_LISTS.items():
            for item in completion.get(name) or []:
                person = answered_person(
                    item["person"], channel, endpoint=endpoint, method=method, field="person"
                )
                yield person, item.get("result") or {}

    def failure(self, body: Mapping[str, Any], endpoint: str) -> LinkMsgError:
        """The typed error of a ``status: error`` answer (auth and plan codes as the hook maps them)."""
        hook = self.hook
        err = body.get("error") or {}
        code = err.get("errorType") or err.get("type")
        cls = hook.error_class(200, code) if code in AUTH_CODES | PLAN_CODES else LinkMsgVendorError
        code = None if code is None else _short(hook.redact(str(code)))
        message = _short(hook.redact(str(err.get("message") or code)))
        return cls(message, vendor=hook.vendor, endpoint=endpoint, code=code)

    def outcomes(self, body: Mapping[str, Any], endpoint: str) -> list[SyncOutcome]:
        """The per-person outcomes of a ``complete`` synchronization answer (vendor text redacted)."""
        return [
            self.hook.redacted_outcome(outcome(person, result.get("success"), result.get("error")))
            for person, result in self.items(body, endpoint)
        ]

    def messages(
        self,
        batch: Sequence[Person],
        since: Mapping[Person, str | None],
        answer: Mapping[str, Any],
        endpoint: str,
    ) -> Iterator[PersonMessages]:
        """One :class:`PersonMessages` per person of ``batch`` from a ``complete`` ``conversations.get``."""
        text = self.hook.vendor_text
        answered = dict(self.items(answer, endpoint))
        for person in batch:
            result = answered.get(person)
            if result is None:
                yield PersonMessages(person, since.get(person), error="missing", message="not in the answer")
            elif result.get("success"):
                messages = (result.get("data") or {}).get("messages") or []
                yield PersonMessages(person, since.get(person), list(messages))
            else:
                err = result.get("error") or {}
                error = text(err.get("errorType") or err.get("type") or "unknown")
                yield PersonMessages(person, since.get(person), error=error, message=text(err.get("message")))

    # ---- calls ----------------------------------------------------------------------------------------
    def call(self, endpoint: str, body: dict, mode: ResultHandling, *, idempotent: bool) -> dict:
        """One seed call; a ``status: error`` answer raises, ``processing`` comes back with its link."""
        hook = self.hook
        response = hook.request(
            "POST",
            endpoint,
            json_body=body,
            headers={"result-handling": mode},
            idempotent=idempotent,
            timeout=max(hook.conn_params.read_timeout, hook.long_poll_timeout) if mode == "long" else None,
        )
        data = response.data or {}
        if data.get("status") == "error":
            raise self.failure(data, endpoint)
        if data.get("status") not in ("complete", "processing"):
            raise LinkMsgResponseError(
                f"unexpected answer {_short(hook.redact(str(data)))}", vendor=hook.vendor, endpoint=endpoint
            )
        return data

    def start(self, batch: Sequence[Person], mode: ResultHandling) -> tuple[str | None, list[SyncOutcome]]:
        """Start synchronizing ``batch``: its result link, or ``None`` and the outcomes when already done."""
        body = self.call(SYNCHRONIZE, self.body(batch), mode, idempotent=False)
        if body.get("status") == "processing":
            return body["process"]["resultLink"], []  # checked when it is fetched
        return None, self.outcomes(body, SYNCHRONIZE)

    def result_link(self, link: Any) -> str:
        """
        A result link the vendor gave: an absolute URL (then on the connection's origin, which
        :meth:`~LinkedApiHook.request` checks) or a path starting with ``/``; anything else (``@host/x``,
        ``.host/x``) would move the host once glued to the base URL, and is refused before anything is sent.
        """
        if isinstance(link, str) and (
            link.startswith(("http://", "https://")) or (link.startswith("/") and not link.startswith("//"))
        ):
            return link
        hook = self.hook
        raise LinkMsgForeignOriginError(
            f"the result link {_short(hook.redact(repr(link)))} is neither an absolute URL on the connection's "
            "origin nor a path starting with '/'; nothing was sent",
            vendor=hook.vendor,
            endpoint=RESULTS,
            location=_short(hook.redact(str(link))),
        )

    def result_link_status(self, data: Mapping[str, Any]) -> JobStatus:
        """The job state a result link's answer shows."""
        text = self.hook.vendor_text
        status = data.get("status")
        if status == "processing":
            return JobStatus("running", message=text((data.get("process") or {}).get("message")))
        if status == "complete":
            return JobStatus("completed", outcomes=self.outcomes(data, RESULTS))
        err = data.get("error") or {}
        return JobStatus("failed", text(err.get("errorType") or err.get("type")), text(err.get("message")))

    def check(self, link: str) -> JobStatus:
        """One look at a result link."""
        return self.result_link_status(self.hook.request("GET", self.result_link(link)).data or {})

    async def acheck(self, link: str) -> JobStatus:
        """The async twin of :meth:`check` (for the trigger)."""
        return self.result_link_status((await self.hook.arequest("GET", self.result_link(link))).data or {})

    def get(
        self, batch: Sequence[Person], since: Mapping[Person, str | None], mode: ResultHandling
    ) -> Iterator[PersonMessages]:
        """``conversations.get`` for ``batch``, following the result link while it is processing."""
        hook = self.hook
        body = self.call(GET, self.body(batch, since), mode, idempotent=True)
        endpoint = GET
        deadline = time.monotonic() + hook.long_poll_timeout
        while body.get("status") == "processing":
            if time.monotonic() > deadline:
                raise LinkMsgVendorError(
                    f"conversations.get still processing after {hook.long_poll_timeout:.0f} s",
                    vendor=hook.vendor,
                    endpoint=GET,
                )
            time.sleep(0.2)
            body = hook.request("GET", self.result_link(body["process"].get("resultLink"))).data or {}
            endpoint = RESULTS
            if body.get("status") == "error":
                raise self.failure(body, RESULTS)
        yield from self.messages(batch, since, body, endpoint)

    async def aget(self, pairs: Sequence[tuple[Person, str | None]]) -> list[PersonMessages]:
        """
        The async twin of :meth:`get` in ``long`` result handling, for a watcher's look: an answer still
        ``processing`` is a typed error (a look does not wait on a result link; the next look asks again).

        :param pairs: ``(person, since)``, ``since`` as :func:`since_param` wrote it.
        """
        hook = self.hook
        since = dict(pairs)
        response = await hook.arequest(
            "POST",
            GET,
            json_body=self.body(since, since),
            headers={"result-handling": "long"},
            timeout=max(hook.conn_params.read_timeout, hook.long_poll_timeout),
        )
        data = response.data or {}
        if data.get("status") != "complete":
            if data.get("status") == "error":
                raise self.failure(data, GET)
            raise LinkMsgResponseError(
                f"conversations.get answered {str(data.get('status'))[:40]!r}, not complete, in long result "
                "handling",
                vendor=hook.vendor,
                endpoint=GET,
            )
        return list(self.messages(list(since), since, data, GET))
