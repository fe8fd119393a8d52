"""
The current generation of Linked API (what the official SDK uses today), behind
:class:`~airflow_provider_linkmsg.hooks.linkedapi.LinkedApiHook`.

``POST /workflows`` of ``st|nv.syncConversation`` actions, ``GET``/``DELETE /workflows/{id}``, and
``POST /conversations/poll`` (checked against
:class:`~airflow_provider_linkmsg.schemas.linkedapi.PollAnswer`). A poll fails a whole batch with
``conversationsNotSynced``: the unsynced persons named in the error are set aside and the rest read again
(the batch is split when none is named).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_linkmsg.exceptions import LinkMsgError, LinkMsgResponseError
from airflow_provider_linkmsg.hooks.base import _short
from airflow_provider_linkmsg.hooks.linkedapi_model import (
    NOT_SYNCED_ERRORS,
    JobStatus,
    Person,
    PersonMessages,
    answered_person,
    outcome,
)
from airflow_provider_linkmsg.schemas import linkedapi as schema

if TYPE_CHECKING:
    from airflow_provider_linkmsg.hooks.linkedapi import LinkedApiHook

POLL = "/conversations/poll"
Since = Mapping[Person, str | None]


def action_outcome(item: Mapping[str, Any]) -> Any:
    """The :class:`SyncOutcome` of one workflow completion item (its label is the person's key)."""
    label = item.get("label")
    if not isinstance(label, str) or ":" not in label:
        raise LinkMsgResponseError(
            f"a workflow completion item has no person label: {_short(str(item))}", vendor="linkedapi"
        )
    return outcome(Person.from_key(label), item.get("success"), item.get("error"))


def named_in(batch: Sequence[Person], exc: LinkMsgError) -> list[Person]:
    """The persons of ``batch`` whose URL a ``conversationsNotSynced`` error names (whole URLs only)."""
    return [p for p in batch if re.search(re.escape(p.url) + r"(?![\w%/,.-])", exc.detail or "")]


class CurrentApi:
    """
    The current API's calls and answers for one hook (its transport, redactor and settings).

    :param hook: the Linked API hook whose connection is on the current API.
    """

    def __init__(self, hook: LinkedApiHook) -> None:
        self.hook = hook

    # ---- workflows ------------------------------------------------------------------------------------
    def start(self, batch: Sequence[Person]) -> str:
        """Start one workflow of ``syncConversation`` actions for ``batch``; return its id."""
        hook = self.hook
        actions = [
            {"actionType": f"{p.channel}.syncConversation", "personUrl": p.url, "label": p.key} for p in batch
        ]
        data = hook.request("POST", "/workflows", json_body=actions, idempotent=False).data or {}
        result = data.get("result") or {}
        if not result.get("workflowId"):
            raise LinkMsgResponseError(
                f"the answer has no workflowId: {_short(hook.redact(str(data)))}",
                vendor=hook.vendor,
                method="POST",
                endpoint="/workflows",
            )
        hook.log.info(
            "Linked API workflow %s started for %d person(s): %s",
            result["workflowId"],
            len(batch),
            result.get("workflowStatus"),
        )
        return result["workflowId"]

    def workflow_status(self, result: Mapping[str, Any]) -> JobStatus:
        """The job state a workflow's ``result`` shows."""
        text = self.hook.vendor_text
        state = result.get("workflowStatus")
        if state in ("pending", "running"):
            return JobStatus(state, text(result.get("pendingReason")), text(result.get("message")))
        if state == "completed":
            items = result.get("completion") or []
            items = items if isinstance(items, list) else [items]
            outcomes = [self.hook.redacted_outcome(action_outcome(item)) for item in items]
            return JobStatus("completed", outcomes=outcomes)
        failure = result.get("failure") or {}
        reason = failure.get("reason")
        final = "cancelled" if reason == "workflowCancelled" else "failed"
        return JobStatus(final, text(reason), text(failure.get("message") or result.get("message")))

    def check(self, workflow_id: str) -> JobStatus:
        """One look at a workflow."""
        return self.workflow_status(
            (self.hook.request("GET", f"/workflows/{workflow_id}").data or {}).get("result") or {}
        )

    async def acheck(self, workflow_id: str) -> JobStatus:
        """The async twin of :meth:`check` (for the trigger)."""
        data = (await self.hook.arequest("GET", f"/workflows/{workflow_id}")).data or {}
        return self.workflow_status(data.get("result") or {})

    def cancel(self, workflow_id: str) -> bool:
        """Cancel a workflow; whether the vendor says it was cancelled."""
        data = self.hook.request("DELETE", f"/workflows/{workflow_id}").data or {}
        return bool((data.get("result") or {}).get("cancelled"))

    async def acancel(self, workflow_id: str) -> bool:
        """The async twin of :meth:`cancel` (for the trigger's ``on_kill``)."""
        data = (await self.hook.arequest("DELETE", f"/workflows/{workflow_id}")).data or {}
        return bool((data.get("result") or {}).get("cancelled"))

    # ---- poll -----------------------------------------------------------------------------------------
    @staticmethod
    def body(batch: Sequence[Person], since: Since) -> list[dict[str, Any]]:
        """``[{"personUrl", "type", "since"?}]`` for ``batch``."""
        return [
            {"personUrl": p.url, "type": p.channel, **({"since": since[p]} if since.get(p) else {})}
            for p in batch
        ]

    def answer(self, data: Any) -> list[dict[str, Any]]:
        """The items of a poll answer, once it fits :class:`PollAnswer`."""
        return self.hook.check(schema.PollAnswer, data, route=f"POST {POLL}").get("result") or []

    @staticmethod
    def messages(batch: Sequence[Person], since: Since, items: list[dict[str, Any]]) -> list[PersonMessages]:
        """One :class:`PersonMessages` per person of ``batch`` from a poll answer's items."""
        answered = {answered_person(i["personUrl"], i.get("type", "st"), endpoint=POLL): i for i in items}
        out = []
        for person in batch:
            item = answered.get(person)
            if item is None:
                out.append(
                    PersonMessages(person, since.get(person), error="missing", message="not in the answer")
                )
            else:
                out.append(PersonMessages(person, since.get(person), list(item.get("messages") or [])))
        return out

    @staticmethod
    def unsynced(
        batch: Sequence[Person], since: Since, exc: LinkMsgError
    ) -> tuple[list[PersonMessages], list[Sequence[Person]]]:
        """
        Sort a batch that failed with ``conversationsNotSynced``: the persons it names (set aside), and the
        batches still to read (the others; both halves when none is named).
        """
        if len(batch) == 1:
            return [PersonMessages(batch[0], since.get(batch[0]), error=exc.code, message=exc.detail)], []
        named = named_in(batch, exc)
        aside = [
            PersonMessages(p, since.get(p), error=exc.code, message="conversation not synced") for p in named
        ]
        if named:
            rest = [p for p in batch if p not in named]
            return aside, [rest] if rest else []
        half = len(batch) // 2
        return [], [batch[:half], batch[half:]]

    def poll(self, batch: Sequence[Person], since: Since) -> Iterator[PersonMessages]:
        """``/conversations/poll`` for ``batch``, unsynced persons set aside."""
        try:
            items = self.answer(self.hook.request("POST", POLL, json_body=self.body(batch, since)).data or {})
        except LinkMsgError as exc:
            if exc.code not in NOT_SYNCED_ERRORS:
                raise
            aside, again = self.unsynced(batch, since, exc)
            yield from aside
            for part in again:
                yield from self.poll(part, since)
            return
        yield from self.messages(batch, since, items)

    async def apoll(self, batch: Sequence[Person], since: Since) -> list[PersonMessages]:
        """The async twin of :meth:`poll`, for a watcher's look."""
        try:
            data = (await self.hook.arequest("POST", POLL, json_body=self.body(batch, since))).data or {}
            items = self.answer(data)
        except LinkMsgError as exc:
            if exc.code not in NOT_SYNCED_ERRORS:
                raise
            aside, again = self.unsynced(batch, since, exc)
            return aside + [m for part in again for m in await self.apoll(part, since)]
        return self.messages(batch, since, items)
