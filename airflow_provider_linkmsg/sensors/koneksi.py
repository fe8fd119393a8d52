"""Sensor that waits for a Koneksi generation: poke, reschedule or deferrable, with one meaning of timeout."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)

from airflow_provider_linkmsg.exceptions import (
    LinkMsgError,
    LinkMsgRateLimitedError,
    LinkMsgValidationError,
    LinkMsgVendorError,
)

# The hook, the trigger and the checks are imported where they are used: DAG files import this module.
if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_linkmsg.hooks.koneksi import KoneksiHook


class KoneksiGenerationFailedError(LinkMsgError, AirflowFailException):
    """The generation completed, but more of its messages failed than the task accepts."""


class KoneksiGenerationSensor(BaseSensorOperator):
    """
    Wait until a Koneksi generation is complete (the retrieve API answers 200 ``complete``).

    ``timeout``, ``soft_fail`` and ``poke_interval`` mean the same in every mode: the wait ends
    ``timeout`` seconds after the first check (in ``reschedule`` mode, the first try) with
    "still in_progress after N minutes, generated x of y"; ``soft_fail`` turns that timeout, or a failure,
    into a skip; the vendor is asked every ``poke_interval`` seconds (by the trigger when deferred).
    Transient vendor errors are waited through in every mode.

    :param secure_request_id: the generation's id, e.g. the request task's XCom. (templated)
    :param koneksi_conn_id: Airflow connection of type ``koneksi``. (templated)
    :param deferrable: wait in the triggerer instead of a worker slot; defaults to Airflow's
        ``[operators] default_deferrable``.
    :param accept_partial_on_timeout: at the deadline, succeed with the partial results instead of failing.
    :param max_failed_share: fail (or skip, with ``soft_fail``) when the completed generation's failed
        messages exceed this share of the requested ones (0.0-1.0); ``None`` accepts any.
    :return: (XCom) ``secure_request_id``, ``generation_status``, ``requested``, ``generated``,
        ``failed``, ``failed_share`` and ``partial`` (true when accepted at the deadline).
    """

    template_fields: Sequence[str] = ("koneksi_conn_id", "secure_request_id")
    ui_color = "#e8f0ff"

    def __init__(
        self,
        *,
        secure_request_id: str,
        koneksi_conn_id: str = "koneksi_default",
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        accept_partial_on_timeout: bool = False,
        max_failed_share: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.secure_request_id = secure_request_id
        self.koneksi_conn_id = koneksi_conn_id
        self.deferrable = deferrable
        self.accept_partial_on_timeout = accept_partial_on_timeout
        self.max_failed_share = max_failed_share
        self._started_at: float | None = None
        self._first_reschedule_as_text = False

    @cached_property
    def hook(self) -> KoneksiHook:
        from airflow_provider_linkmsg.hooks.koneksi import KoneksiHook

        return KoneksiHook(self.koneksi_conn_id)

    # ---- modes ------------------------------------------------------------------------------------------
    def execute(self, context: Context) -> Any:
        from airflow_provider_linkmsg.triggers.koneksi import KoneksiGenerationTrigger
        from airflow_provider_linkmsg.utils import try_number
        from airflow_provider_linkmsg.validation import check_bools

        check_bools(self, "deferrable", "accept_partial_on_timeout", vendor="koneksi")
        share = self.max_failed_share
        if share is not None and not (isinstance(share, int | float) and 0 <= share <= 1):
            raise LinkMsgValidationError(
                f"max_failed_share must be a share from 0 to 1 (0.3 for 30%), got {share!r}",
                field="max_failed_share",
                vendor="koneksi",
            )
        self._started_at = self._wait_started(context)
        if not self.deferrable:
            if self._first_reschedule_as_text:
                # Airflow 3.0's own sensor loop subtracts that text from a datetime and fails; from this try's
                # start it only paces the pokes: the timeout is ours, counted in poke() from _started_at
                context = {**context, "task_reschedule_count": 0}
            return super().execute(context)
        try:
            done = self.poke(context)
        except (AirflowSensorTimeout, AirflowFailException) as exc:
            if self.soft_fail:
                raise AirflowSkipException(f"Skipping due to soft_fail: {exc}") from exc
            raise
        if done:
            return done.xcom_value
        deadline = self._started_at + self.timeout
        self.log.info(
            "Koneksi generation %s: deferring to the triggerer (a check every %s s, at most %.0f s more)",
            self.secure_request_id,
            self.poke_interval,
            max(0.0, deadline - time.time()),
        )
        self.defer(
            trigger=KoneksiGenerationTrigger(
                secure_request_id=self.secure_request_id,
                deadline=deadline,
                koneksi_conn_id=self.koneksi_conn_id,
                poll_interval=self.poke_interval,
                started_at=self._started_at,
            ),
            method_name="execute_complete",
            kwargs={"deferred_try": try_number(context)},
            # a backstop only: the trigger itself fires a timeout event at the deadline
            timeout=timedelta(seconds=max(0.0, deadline - time.time()) + max(60.0, 2 * self.poke_interval)),
        )

    def _wait_started(self, context: Context) -> float:
        """When the wait began: the first try of a rescheduled sensor, else now."""
        if self.reschedule and not self.deferrable:
            first = _first_reschedule_date(context, self.retries or 0)
            self._first_reschedule_as_text = isinstance(first, str)
            if isinstance(first, str):  # Airflow 3.0's task SDK answers with the ISO text
                first = datetime.fromisoformat(first)
            if first is not None:
                return first.timestamp()
        return time.time()

    def poke(self, context: Context) -> PokeReturnValue | bool:
        from airflow_provider_linkmsg.triggers.koneksi import still_in_progress

        try:
            result = self.hook.retrieve_messages(self.secure_request_id)
        except (LinkMsgRateLimitedError, LinkMsgVendorError) as exc:
            self.log.warning("Koneksi generation %s: %s; will look again", self.secure_request_id, exc)
            result = None
        except LinkMsgError as exc:
            if isinstance(exc, AirflowFailException):
                raise
            raise AirflowFailException(str(exc)) from exc
        if result is not None and result.complete:
            return PokeReturnValue(True, self._on_complete(result.summary()))
        elapsed = time.time() - (self._started_at or time.time())
        summary = result.summary() if result is not None else None
        if elapsed >= self.timeout:
            return PokeReturnValue(
                True, self._on_timeout(summary, still_in_progress(self.secure_request_id, elapsed, summary))
            )
        if result is not None:
            self.log.info("Koneksi generation %s: %s", self.secure_request_id, result.progress())
        return False

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, deferred_try: int | None = None
    ) -> dict[str, Any]:
        """Resume after the trigger fired: check the event and apply the same rules as a poke."""
        from airflow_provider_linkmsg.utils import resumed_with_an_earlier_try_event

        if resumed_with_an_earlier_try_event(context, deferred_try):
            self.log.info("Resumed with the trigger event of try %s: this retry waits afresh", deferred_try)
            return self.execute(context)
        status = event.get("status") if isinstance(event, dict) else None
        if status == "success" and isinstance(event.get("summary"), dict):
            return self._on_complete(event["summary"])
        if status == "timeout":
            return self._on_timeout(event.get("summary"), str(event.get("message")))
        if status == "error":
            raise AirflowFailException(str(event.get("message")))
        raise AirflowException(
            f"KoneksiGenerationSensor {self.task_id} got an unexpected trigger event {event!r} "
            "(a lost payload or a triggerer/worker version skew); clear the task to wait again"
        )

    # ---- outcomes ---------------------------------------------------------------------------------------
    def _on_complete(self, summary: dict[str, Any]) -> dict[str, Any]:
        share = float(summary.get("failed_share") or 0.0)
        if self.max_failed_share is not None and share > float(self.max_failed_share):
            raise KoneksiGenerationFailedError(
                f"generation {summary.get('secure_request_id')} completed with {summary.get('failed')} of "
                f"{summary.get('requested')} messages failed ({share:.0%}), more than max_failed_share="
                f"{float(self.max_failed_share):.0%}. Check the leads' data (the vendor found too little "
                "about them) or raise max_failed_share.",
                vendor="koneksi",
            )
        self.log.info(
            "Koneksi generation %s complete: %s generated, %s failed",
            summary.get("secure_request_id"),
            summary.get("generated"),
            summary.get("failed"),
        )
        return {**summary, "partial": False}

    def _on_timeout(self, summary: dict[str, Any] | None, message: str) -> dict[str, Any]:
        if not self.accept_partial_on_timeout:
            raise AirflowSensorTimeout(message)
        self.log.warning("%s; accepting the partial results", message)
        base = summary or {"secure_request_id": self.secure_request_id, "generation_status": "in_progress"}
        return {**base, "partial": True}


def _first_reschedule_date(context: Context, retries: int) -> Any:
    """
    When the first try of a rescheduled sensor started: the task SDK's ``get_first_reschedule_date``
    (Airflow 3), else the first ``TaskReschedule`` row of the first try, as Airflow 2's own sensors read it.
    """
    ti = context["ti"]
    if hasattr(ti, "get_first_reschedule_date"):
        return ti.get_first_reschedule_date(context)
    from airflow.models.taskreschedule import TaskReschedule
    from airflow.utils.session import create_session
    from sqlalchemy import select

    first_try = (ti.max_tries or 0) - retries + 1
    with create_session() as session:
        return session.scalar(
            select(TaskReschedule.start_date)
            .where(
                TaskReschedule.dag_id == ti.dag_id,
                TaskReschedule.task_id == ti.task_id,
                TaskReschedule.run_id == ti.run_id,
                TaskReschedule.map_index == ti.map_index,
                TaskReschedule.try_number >= first_try,
            )
            .order_by(TaskReschedule.id.asc())
            .limit(1)
        )
