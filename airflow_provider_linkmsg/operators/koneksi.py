"""
Koneksi / Upscale Outreach operators: request a generation of AI-written messages, then retrieve them.

The flow is request → :class:`~airflow_provider_linkmsg.sensors.koneksi.KoneksiGenerationSensor` →
retrieve. The request is a paid call, so it is validated and budgeted before anything is sent, and a task
retry reuses the generation an earlier try started instead of paying for a second one.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_linkmsg.exceptions import (
    LinkMsgBudgetExceededError,
    LinkMsgNotFoundError,
    LinkMsgValidationError,
)
from airflow_provider_linkmsg.operators.labels import MapLabel
from airflow_provider_linkmsg.operators.lineage import LineageMixin
from airflow_provider_linkmsg.utils import task_run_id

# The hook, staging, task state and checks are imported where they are used: DAG files import this module.
if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_linkmsg.hooks.koneksi import KoneksiHook

#: the key under which a task keeps its generation's id across tries (never rename: in-flight retries read it)
REQUEST_ID_KEY = "koneksi_secure_request_id"


def load_leads(value: Any, conn_id: str | None = None) -> list[dict[str, Any]]:
    """
    Leads from what a task was given: a list of dicts (e.g. an upstream XCom), JSON text, or the path of a
    ``.json`` (a list, or an object with ``lead_data``/``leads``), ``.jsonl`` or ``.csv`` file on any store.

    Empty CSV cells are dropped, so a blank required column is reported as missing.

    :param value: the leads or where they are.
    :param conn_id: connection of the store when ``value`` is a remote path.
    """
    from airflow_provider_linkmsg.validation import parse_literal

    if isinstance(value, str):
        text = value.strip()
        if text.startswith(("[", "{")):
            value = parse_literal(text, field="lead_data", vendor="koneksi")  # JSON, or an XCom's repr
        elif text:
            value = _read_leads_file(text, conn_id)
    if isinstance(value, Mapping):
        value = value.get("lead_data", value.get("leads"))
    if not isinstance(value, list | tuple):
        raise LinkMsgValidationError(
            f"leads must be a list of lead objects, JSON text, or a .json/.jsonl/.csv path; got {type(value).__name__}",
            field="lead_data",
            vendor="koneksi",
        )
    return [dict(lead) if isinstance(lead, Mapping) else lead for lead in value]


def _read_leads_file(path: str, conn_id: str | None) -> Any:
    from airflow_provider_linkmsg.io.staging import open_for_read, to_path

    target = to_path(path, conn_id)
    try:
        with open_for_read(target, "rb") as f:
            text = f.read().decode("utf-8-sig")
    except FileNotFoundError:
        raise LinkMsgValidationError(
            f"leads file {path} does not exist", field="lead_data", vendor="koneksi"
        ) from None
    name = target.name.lower()
    if name.endswith(".csv"):
        return [
            {k: v for k, v in row.items() if k and v not in (None, "")}
            for row in csv.DictReader(io.StringIO(text))
        ]
    if name.endswith((".jsonl", ".ndjson")):
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return json.loads(text)


class KoneksiRequestMessageGenerationOperator(MapLabel, LineageMixin, BaseOperator):
    """
    Request a generation of personalised messages for a campaign's leads; returns its ``secure_request_id``.

    The request is validated locally (the vendor's rules: required fields, http/https URLs, steps from 1,
    allowed types, ``material_link``/``hiring_location`` when their steps need them) and checked against
    ``max_messages`` before anything is sent. The id is persisted the moment the vendor returns it; a retry
    of the task finds it, checks it with a (free) retrieval and returns it instead of paying again. If the
    answer itself was lost, the retry sends the identical request, which Koneksi de-duplicates.

    :param campaign: the request's campaign fields: ``automation_tool_customer_id``,
        ``automation_tool_campaign_id``, ``automation_tool_campaign_name``, ``proposition_company_name``,
        ``proposition_company_url``, ``message_sequence`` and, when needed, ``material_link``,
        ``hiring_location``, ``signoff_name``, ``completion_notification_url``. (templated)
    :param leads: the leads (``lead_data``): a list of dicts such as an upstream XCom, or the path of a
        JSON, JSON Lines or CSV file. Each needs ``external_prospect_id``, ``first_name``, ``lead_company``
        and ``linkedin``. (templated)
    :param completion_notification_url: where Koneksi POSTs the completion webhook; overrides the
        campaign's. When neither gives one: the connection extra ``completion_notification_url``, else
        the provider's webhook plugin under ``[linkmsg] webhook_base_url`` (see ``docs/events.md``). (templated)
    :param max_messages: refuse, before calling, a generation of more than this many messages
        (leads x steps); ``None`` for no limit. (templated)
    :param extra_message_types: ``messageType`` values to accept beyond the documented ones.
    :param staging_path: root of the file that keeps the id across tries when Airflow's task state store
        is unavailable (the ``[linkmsg] staging_path`` default). (templated)
    :param staging_conn_id: connection of ``staging_path`` and of a remote leads file.
    :param koneksi_conn_id: Airflow connection of type ``koneksi``. (templated)
    :return: the generation's ``secure_request_id`` (XCom).
    """

    template_fields: Sequence[str] = (
        "koneksi_conn_id",
        "campaign",
        "leads",
        "completion_notification_url",
        "max_messages",
        "staging_path",
    )
    template_fields_renderers = {"campaign": "json", "leads": "json"}
    ui_color = "#e8f0ff"

    def __init__(
        self,
        *,
        campaign: dict[str, Any] | str,
        leads: list[dict[str, Any]] | str,
        completion_notification_url: str | None = None,
        max_messages: int | str | None = None,
        extra_message_types: Sequence[str] = (),
        staging_path: str | None = None,
        staging_conn_id: str | None = None,
        koneksi_conn_id: str = "koneksi_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**self.with_template(kwargs))
        self.campaign = campaign
        self.leads = leads
        self.completion_notification_url = completion_notification_url
        self.max_messages = max_messages
        self.extra_message_types = extra_message_types
        self.staging_path = staging_path
        self.staging_conn_id = staging_conn_id
        self.koneksi_conn_id = koneksi_conn_id

    def default_map_label(self) -> str:
        """The campaign (its name, else its id) and the number of leads, of a task mapped over campaigns."""
        campaign = self.campaign if isinstance(self.campaign, Mapping) else {}
        name = (
            campaign.get("automation_tool_campaign_name") or campaign.get("automation_tool_campaign_id") or ""
        )
        leads = f" ({len(self.leads)} leads)" if isinstance(self.leads, list) else ""
        return f"{name}{leads}" if name else ""

    @cached_property
    def hook(self) -> KoneksiHook:
        from airflow_provider_linkmsg.hooks.koneksi import KoneksiHook

        return KoneksiHook(self.koneksi_conn_id, extra_message_types=self.extra_message_types)

    def build_payload(self) -> dict[str, Any]:
        """The request body from the (rendered) campaign, leads and notification URL."""
        from airflow_provider_linkmsg.events import koneksi_completion_url
        from airflow_provider_linkmsg.validation import parse_literal

        campaign = parse_literal(self.campaign, field="campaign", vendor="koneksi")
        if not isinstance(campaign, Mapping):
            raise LinkMsgValidationError(
                "campaign must be a dict of the request's campaign fields", field="campaign", vendor="koneksi"
            )
        payload = {k: v for k, v in campaign.items() if k != "lead_data"}
        if self.completion_notification_url:
            payload["completion_notification_url"] = self.completion_notification_url
        if not payload.get("completion_notification_url"):  # the connection's, or the webhook plugin's
            url = koneksi_completion_url(self.koneksi_conn_id, self.hook.extra("completion_notification_url"))
            payload.update({"completion_notification_url": url} if url else {})
        payload["lead_data"] = load_leads(self.leads, self.staging_conn_id)
        return payload

    def check_budget(self, payload: Mapping[str, Any]) -> int:
        """Raise :class:`LinkMsgBudgetExceededError` if the generation exceeds ``max_messages``."""
        from airflow_provider_linkmsg.hooks.koneksi import count_messages

        messages = count_messages(payload)
        if self.max_messages in (None, ""):
            return messages
        try:
            limit = int(self.max_messages)
        except (TypeError, ValueError):
            raise LinkMsgValidationError(
                f"max_messages must be a whole number of messages (or None for no limit), got "
                f"{self.max_messages!r}",
                field="max_messages",
                vendor="koneksi",
            ) from None
        if messages > limit:
            raise LinkMsgBudgetExceededError(
                f"the generation would create {messages} messages ({len(payload['lead_data'])} leads x "
                f"{len(payload['message_sequence'])} steps), more than max_messages={int(self.max_messages)}; "
                "nothing was sent. Split the leads or raise max_messages.",
                vendor="koneksi",
            )
        return messages

    def execute(self, context: Context) -> str:
        from airflow_provider_linkmsg.io.staging import staging_root
        from airflow_provider_linkmsg.io.task_state import TaskStateStore
        from airflow_provider_linkmsg.validation import check_generation_request, strip_ids_and_urls

        payload = self.build_payload()
        strip_ids_and_urls(payload)  # what is checked is what is sent
        self.hook.validate_generation_request(payload)
        self.max_messages = check_generation_request(payload, self.max_messages)
        messages = self.check_budget(payload)
        fingerprint = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
        store = TaskStateStore(
            context,
            staging_root(self.staging_path, self.staging_conn_id),
            folder="koneksi/requests",
            conn_id=self.staging_conn_id,
        )
        saved = store.get(REQUEST_ID_KEY)
        saved = saved if isinstance(saved, dict) and saved.get("secure_request_id") else None
        if saved and saved.get("fingerprint") == fingerprint:
            request_id = saved["secure_request_id"]
            try:
                result = self.hook.retrieve_messages(request_id)
            except LinkMsgNotFoundError:
                self.log.warning(
                    "Koneksi does not know generation %s of an earlier try; requesting anew", request_id
                )
            else:
                self.log.info(
                    "Reusing generation %s from an earlier try (%s, %s); nothing new was requested",
                    request_id,
                    result.generation_status,
                    result.progress(),
                )
                return self._requested(request_id)
        elif saved:
            self.log.warning(
                "The campaign or leads changed since generation %s of an earlier try; requesting a new one",
                saved["secure_request_id"],
            )
        request_id = self.hook.request_message_generation(payload)
        store.set(
            REQUEST_ID_KEY,
            {"secure_request_id": request_id, "fingerprint": fingerprint, "messages": messages},
        )
        result = self.hook.retrieve_messages(request_id)
        self.log.info("Koneksi generation %s accepted: %s", request_id, result.progress())
        return self._requested(request_id)

    def _requested(self, request_id: str) -> str:
        """``request_id``, with the lineage of the request: the leads file (if any) to the generation."""
        from airflow_provider_linkmsg.io.staging import to_path

        leads = [("path", to_path(self.leads, self.staging_conn_id))] if isinstance(self.leads, str) else []
        generation = ("vendor", "koneksi", self.hook.conn_params.base_url, f"generations/{request_id}")
        self.record_lineage(leads, [generation])
        return request_id


class KoneksiRetrieveMessagesOperator(LineageMixin, BaseOperator):
    """
    Retrieve a generation's messages and stage them as ``GeneratedMessage`` records with a manifest.

    One record per lead and message type, with status ``generated``, ``failed`` (with the lead's notice or
    the vendor's failure reason) or ``pending``. A generation still in progress (202) fails the task
    unless ``allow_partial`` is set, so partial results are never staged as if complete.

    :param secure_request_id: the generation's id, e.g. the request task's XCom. (templated)
    :param staging_path: root of staged data (the ``[linkmsg] staging_path`` default). (templated)
    :param staging_conn_id: connection of ``staging_path``.
    :param include_raw: keep each lead's vendor JSON in the records.
    :param allow_partial: stage a 202's partial results (``pending`` records) instead of failing.
    :param koneksi_conn_id: Airflow connection of type ``koneksi``. (templated)
    :return: the manifest's summary (XCom): ``manifest`` path, ``records``, ``files`` ... plus
        ``secure_request_id``, ``generation_status`` and the ``generated``/``failed``/``pending`` counts.
    """

    template_fields: Sequence[str] = ("koneksi_conn_id", "secure_request_id", "staging_path")
    ui_color = "#e8f0ff"

    def __init__(
        self,
        *,
        secure_request_id: str,
        staging_path: str | None = None,
        staging_conn_id: str | None = None,
        include_raw: bool = False,
        allow_partial: bool = False,
        koneksi_conn_id: str = "koneksi_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.secure_request_id = secure_request_id
        self.staging_path = staging_path
        self.staging_conn_id = staging_conn_id
        self.include_raw = include_raw
        self.allow_partial = allow_partial
        self.koneksi_conn_id = koneksi_conn_id

    @cached_property
    def hook(self) -> KoneksiHook:
        from airflow_provider_linkmsg.hooks.koneksi import KoneksiHook

        return KoneksiHook(self.koneksi_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_linkmsg.hooks.koneksi import KoneksiGenerationInProgressError
        from airflow_provider_linkmsg.io.staging import StagingWriter, staging_root
        from airflow_provider_linkmsg.validation import check_bools

        check_bools(self, "include_raw", "allow_partial", vendor="koneksi")
        root = staging_root(self.staging_path, self.staging_conn_id)
        result = self.hook.retrieve_messages(self.secure_request_id)
        if not result.complete and not self.allow_partial:
            raise KoneksiGenerationInProgressError(
                f"generation {result.secure_request_id} is still in progress ({result.progress()}): wait for it "
                "with KoneksiGenerationSensor, or set allow_partial=True to stage the partial results",
                vendor="koneksi",
                status=result.http_status,
            )
        counts: Counter[str] = Counter()
        writer = StagingWriter(
            root,
            vendor="koneksi",
            record_type="generated_message",
            run_id=task_run_id(context),
            conn_id=self.staging_conn_id,
            include_raw=self.include_raw,
        )
        with writer:
            for record in result.messages(include_raw=self.include_raw):
                writer.write(record)
                counts[record.status] += 1
            writer.add_stats(
                api_calls=self.hook.api_calls,
                secure_request_id=result.secure_request_id,
                generation_status=result.generation_status,
                **{status: counts[status] for status in ("generated", "failed", "pending")},
            )
        manifest = writer.close()
        self.log.info(
            "Staged %d messages of generation %s at %s (%s)",
            manifest.record_count,
            result.secure_request_id,
            manifest.path,
            dict(counts),
        )
        self.record_lineage(
            [
                (
                    "vendor",
                    "koneksi",
                    self.hook.conn_params.base_url,
                    f"generations/{result.secure_request_id}",
                )
            ],
            [("path", manifest.directory)],
        )
        return {
            **manifest.summary(),
            "secure_request_id": result.secure_request_id,
            "generation_status": "complete" if result.complete else "in_progress",
            **{status: counts[status] for status in ("generated", "failed", "pending")},
        }
