"""Trigger that waits for a Koneksi generation to complete, in the triggerer instead of a worker slot."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator
from typing import Any

import httpcore  # noqa: F401 - loaded with the trigger class, not on the event loop at the first poll (~0.3 s)
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_linkmsg.exceptions import LinkMsgError, LinkMsgRateLimitedError, LinkMsgVendorError
from airflow_provider_linkmsg.hooks.koneksi import KoneksiHook
from airflow_provider_linkmsg.triggers.logs import ClassLogMixin
from airflow_provider_linkmsg.triggers.pacing import first_delay


def still_in_progress(secure_request_id: str, elapsed: float, summary: dict[str, Any] | None) -> str:
    """The timeout message: ``... still in_progress after N minutes, generated x of y``."""
    progress = f"generated {summary['generated']} of {summary['requested']}" if summary else "no answer yet"
    return f"Koneksi generation {secure_request_id} still in_progress after {elapsed / 60:.1f} minutes, {progress}"


class KoneksiGenerationTrigger(ClassLogMixin, BaseTrigger):
    """
    Poll a Koneksi generation until it is complete or the deadline passes; fire one event.

    A plain async loop over :meth:`KoneksiHook.aretrieve_messages` (httpx, the transport's retries and
    rate limit on the event loop): no threads. The first poll comes a random part of one interval after
    the start (:func:`~airflow_provider_linkmsg.triggers.pacing.first_delay`). Transient failures (429, 5xx, resets past the transport's retries) are logged and
    polled through; anything else ends the wait. The event is a small JSON dict with ``status``:

    * ``success``: complete; ``summary`` holds the id and counts.
    * ``timeout``: ``deadline`` passed while still in progress; ``message`` says
      "still in_progress after N minutes, generated x of y", ``summary`` the last counts seen.
    * ``error``: the id is unknown, the key refused ...; ``message`` says what.

    :param secure_request_id: the generation's id.
    :param koneksi_conn_id: Airflow connection of type ``koneksi``.
    :param poll_interval: seconds between retrievals.
    :param deadline: wall-clock epoch seconds after which the wait ends (absolute, so a trigger that moves
        to another triggerer keeps it).
    :param started_at: wall-clock epoch seconds the wait began (for the timeout message).
    """

    def __init__(
        self,
        *,
        secure_request_id: str,
        deadline: float,
        koneksi_conn_id: str = KoneksiHook.default_conn_name,
        poll_interval: float = 60.0,
        started_at: float | None = None,
    ) -> None:
        super().__init__()
        self.secure_request_id = secure_request_id
        self.deadline = float(deadline)
        self.koneksi_conn_id = koneksi_conn_id
        self.poll_interval = float(poll_interval)
        self.started_at = float(started_at) if started_at is not None else time.time()

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "secure_request_id": self.secure_request_id,
                "deadline": self.deadline,
                "koneksi_conn_id": self.koneksi_conn_id,
                "poll_interval": self.poll_interval,
                "started_at": self.started_at,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # one coroutine per waiting trigger (no inner one): what 10,000 waiting triggers keep is what counts
        summary: dict[str, Any] | None = None
        event: dict[str, Any] | None = None
        hook = KoneksiHook(self.koneksi_conn_id)
        try:
            # triggers that start together spread their first looks over one interval; the connection is
            # looked up meanwhile and the first look's turn booked when the spread ends: one sleep
            await hook.astart(first_delay(self.poll_interval, self.deadline))
            while True:
                final = time.time() >= self.deadline
                try:
                    value = (await hook.aretrieve_messages(self.secure_request_id)).summary()
                except (LinkMsgRateLimitedError, LinkMsgVendorError) as exc:
                    self.log.warning(
                        "Koneksi generation %s: %s; will look again", self.secure_request_id, exc
                    )
                except LinkMsgError as exc:
                    event = {
                        "status": "error",
                        "secure_request_id": self.secure_request_id,
                        "message": str(exc),
                    }
                    break
                else:
                    if value["generation_status"] == "complete":
                        event = {"status": "success", "summary": value}
                        break
                    if value != summary:
                        summary = value
                        self.log.info(
                            "Koneksi generation %s: generated %s of %s",
                            self.secure_request_id,
                            value["generated"],
                            value["requested"],
                        )
                    value = None  # a waiting trigger holds the last summary only
                left = self.deadline - time.time()
                if final or left <= 0:
                    message = still_in_progress(
                        self.secure_request_id, time.time() - self.started_at, summary
                    )
                    event = {"status": "timeout", "message": message, "summary": summary}
                    break
                wait = min(self.poll_interval * random.uniform(0.9, 1.1), left)
                await hook.asleep_until_turn(wait)  # the poll interval and the connection's turn in one sleep
        finally:
            await hook.aclose()
        yield TriggerEvent(event)
