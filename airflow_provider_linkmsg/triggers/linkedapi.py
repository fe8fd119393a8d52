"""Trigger that waits for a Linked API synchronization job without holding a worker slot."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator
from typing import Any

import httpcore  # noqa: F401 - loaded with the trigger class, not on the event loop at the first poll (~0.3 s)
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_linkmsg.exceptions import LinkMsgError
from airflow_provider_linkmsg.hooks.linkedapi import LinkedApiHook
from airflow_provider_linkmsg.triggers.logs import ClassLogMixin
from airflow_provider_linkmsg.triggers.pacing import first_delay


class LinkedApiJobTrigger(ClassLogMixin, BaseTrigger):
    """
    Poll a Linked API job (seed result links or current-API workflows) until it is done or time runs out.

    A plain async loop over :meth:`LinkedApiHook.acheck_job` (httpx, the transport's retries and rate
    limit on the event loop): no threads. The first check comes a random part of one interval after the
    start (:func:`~airflow_provider_linkmsg.triggers.pacing.first_delay`). Fires one event, a small JSON dict with ``status``:

    * ``success``: the job completed; ``job`` holds the per-person outcomes.
    * ``failed`` / ``cancelled``: the vendor failed or cancelled it; ``job`` says why.
    * ``outside_working_hours``: the job is held until the account's working hours open and
      ``outside_working_hours`` is ``"fail"`` (with ``"wait"`` it is logged and waited for).
    * ``timeout``: ``end_time`` passed; ``job`` holds the last state seen (e.g. still
      ``pending (outsideWorkingHours)``).
    * ``error``: a call failed past the transport's retries; ``message`` says how.

    :param linkedapi_conn_id: Airflow connection of type ``linkedapi``.
    :param handle: the job handle from :meth:`LinkedApiHook.synchronize`.
    :param end_time: wall-clock deadline (epoch seconds), absolute so a trigger that moves between
        triggerers keeps it.
    :param poll_interval: seconds between checks.
    :param outside_working_hours: ``"wait"`` (log it and keep waiting) or ``"fail"`` (fire at once).
    """

    def __init__(
        self,
        *,
        linkedapi_conn_id: str,
        handle: dict[str, Any],
        end_time: float,
        poll_interval: float = 5.0,
        outside_working_hours: str = "wait",
    ) -> None:
        super().__init__()
        self.linkedapi_conn_id = linkedapi_conn_id
        self.handle = handle
        self.end_time = end_time
        self.poll_interval = poll_interval
        self.outside_working_hours = outside_working_hours

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "linkedapi_conn_id": self.linkedapi_conn_id,
                "handle": self.handle,
                "end_time": self.end_time,
                "poll_interval": self.poll_interval,
                "outside_working_hours": self.outside_working_hours,
            },
        )

    def _event(self, status: str, **payload: Any) -> TriggerEvent:
        return TriggerEvent({"status": status, "handle": self.handle, **payload})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # one coroutine per waiting trigger (no inner one): what a thousand waiting triggers keep is what counts
        hook = LinkedApiHook(self.linkedapi_conn_id)
        last = None
        try:
            # spread over one interval, looked up meanwhile, the first turn booked: as the Koneksi trigger
            await hook.astart(first_delay(self.poll_interval, self.end_time))
            while True:
                final = time.time() >= self.end_time
                try:
                    status = await hook.acheck_job(self.handle)
                except LinkMsgError as exc:
                    event = self._event("error", message=str(exc))
                    break
                if status.done:
                    outcome = {"completed": "success"}.get(status.state, status.state)
                    event = self._event(outcome, job=status.to_dict())
                    break
                if status.outside_working_hours and self.outside_working_hours == "fail":
                    event = self._event("outside_working_hours", job=status.to_dict(), message=status.message)
                    break
                left = self.end_time - time.time()
                if final or left <= 0:
                    event = self._event("timeout", job=status.to_dict())  # still not done at the deadline
                    break
                if status != last:
                    last = status
                    if status.outside_working_hours:
                        self.log.warning(
                            "Linked API job is held outside the account's working hours: %s",
                            status.describe(),
                        )
                    else:
                        self.log.info("Linked API job is %s", status.describe())
                status = None  # a waiting trigger holds the last status only
                wait = min(self.poll_interval * random.uniform(0.9, 1.1), left)
                await hook.asleep_until_turn(wait)  # the poll interval and the connection's turn in one sleep
        finally:
            await hook.aclose()
        yield event

    async def on_kill(self) -> None:
        """The deferred task was marked or cleared by a user: cancel the job's unfinished workflows."""
        hook = LinkedApiHook(self.linkedapi_conn_id)
        try:
            await hook.acancel_job(self.handle)
        except Exception as exc:  # best effort: the task is going away anyway
            self.log.warning("Could not cancel the Linked API job: %s", exc)
        finally:
            await hook.aclose()
