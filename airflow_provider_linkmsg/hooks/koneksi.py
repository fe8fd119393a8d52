"""
Hook for Koneksi / Upscale Outreach: AI-generated outreach messages (seeds 000, 001; contract part 1).

A generation is requested once (a paid call), runs asynchronously for minutes to hours, and is then
retrieved whole: 202 with partial results while it runs, 200 once complete. Inputs are validated here
before any paid call, with the same rules (and texts) as the vendor's 422 answers
(:mod:`airflow_provider_linkmsg.validation_koneksi`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from airflow_provider_linkmsg.exceptions import (
    LinkMsgError,
    LinkMsgResponseError,
    LinkMsgValidationError,
)
from airflow_provider_linkmsg.hooks.base import LinkMsgHook
from airflow_provider_linkmsg.hooks.forms import ConnectionFormMixin
from airflow_provider_linkmsg.records import GeneratedMessage, to_utc_iso
from airflow_provider_linkmsg.schemas import koneksi as schema
from airflow_provider_linkmsg.schemas import parse
from airflow_provider_linkmsg.validation_koneksi import (  # re-exported: the hook's names since the start
    LEAD_REQUIRED_FIELDS,
    MESSAGE_FIELDS,
    MESSAGE_TYPES,
    REQUIRED_FIELDS,
    URL_FIELDS,
    UUID4,
    count_messages,
    generation_problems,
    message_field,
    validate_generation_request,
    validate_secure_request_id,
)
from airflow_provider_linkmsg.webhooks import DEFAULT, SeenStore, process_seen_store, verify_koneksi_webhook

GENERATE_ENDPOINT = "/messages/request_message_generation"
RETRIEVE_ENDPOINT = "/messages/retrieve_messages"
RETRIEVE_PARAM = "request_message_generation_secure_request_id"

#: per-lead notices: ``no_job_posts`` (Upscale), ``delete_notice`` and ``char_limit`` (legacy Koneksi)
LEAD_NOTICES = ("no_job_posts", "delete_notice", "char_limit")
__all__ = [
    "LEAD_NOTICES",
    "LEAD_REQUIRED_FIELDS",
    "MESSAGE_FIELDS",
    "MESSAGE_TYPES",
    "REQUIRED_FIELDS",
    "URL_FIELDS",
    "KoneksiGenerationInProgressError",
    "KoneksiGenerationResult",
    "KoneksiHook",
    "count_messages",
    "generation_problems",
    "message_field",
    "validate_generation_request",
    "validate_secure_request_id",
]


class KoneksiGenerationInProgressError(LinkMsgError):
    """The generation is still running (a 202); a later try may find it complete."""


def _count(metadata: Mapping[str, Any], singular: str, plural: str) -> int | None:
    value = metadata.get(singular, metadata.get(plural))
    return None if value is None else int(value)


@dataclass(frozen=True)
class KoneksiGenerationResult:
    """
    One answer of the retrieve-messages API.

    ``complete`` is true only when the HTTP status is 200 *and* ``generation_status`` is ``complete``: a
    202 (partial results) is never taken for a finished batch, whatever its body says.
    """

    secure_request_id: str
    http_status: int
    generation_status: str
    status_message: str | None
    requested: int
    generated: int
    failed: int | None
    failed_reason: str | None
    customer_id: str | None
    campaign_id: str | None
    campaign_name: str | None
    message_sequence: list[dict[str, Any]] = field(repr=False)
    leads: list[dict[str, Any]] = field(repr=False)
    retrieve_id: str | None = None

    @classmethod
    def from_response(
        cls, request_id: str, status: int, data: Any, redact: Callable[[str], str] | None = None
    ) -> KoneksiGenerationResult:
        """Parse a 200/202 body; both spellings of the count fields are read (``redact``: see ``parse``)."""
        if not isinstance(data, Mapping) or not isinstance(data.get("metadata"), Mapping):
            raise LinkMsgResponseError(
                f"retrieve_messages for {request_id} answered {status} without a metadata object",
                vendor="koneksi",
                endpoint=RETRIEVE_ENDPOINT,
                status=status,
            )
        parse(schema.RetrieveAnswer, data, vendor="koneksi", route=f"GET {RETRIEVE_ENDPOINT}", redact=redact)
        meta = data["metadata"]
        campaign = data.get("campaign") or {}
        return cls(
            secure_request_id=str(
                meta.get("request_message_generation_api_request_secure_request_id") or request_id
            ),
            http_status=status,
            generation_status=str(
                meta.get("generation_status") or ("complete" if status == 200 else "in_progress")
            ),
            status_message=meta.get("status_message"),
            requested=_count(meta, "requested_message_count", "requested_messages_count") or 0,
            generated=_count(meta, "generated_message_count", "generated_messages_count") or 0,
            failed=_count(meta, "failed_messages_count", "failed_message_count"),
            failed_reason=meta.get("failed_messages_reason"),
            customer_id=(data.get("account") or {}).get("automation_tool_customer_id"),
            campaign_id=campaign.get("automation_tool_campaign_id"),
            campaign_name=campaign.get("automation_tool_campaign_name"),
            message_sequence=list(campaign.get("message_sequence") or []),
            leads=list(campaign.get("leads_data") or []),
            retrieve_id=meta.get("retrieve_messages_api_request_secure_request_id"),
        )

    @property
    def complete(self) -> bool:
        return self.http_status == 200 and self.generation_status == "complete"

    @property
    def failed_share(self) -> float:
        """Failed messages over requested ones (0 while in progress or when nothing was requested)."""
        return (self.failed or 0) / self.requested if self.requested else 0.0

    def summary(self) -> dict[str, Any]:
        """A small JSON value: the id, the status and the counts (for XCom and trigger events)."""
        return {
            "secure_request_id": self.secure_request_id,
            "generation_status": "complete" if self.complete else "in_progress",
            "requested": self.requested,
            "generated": self.generated,
            "failed": self.failed,
            "failed_share": round(self.failed_share, 4),
        }

    def progress(self) -> str:
        return f"generated {self.generated} of {self.requested}"

    def messages(
        self, *, include_raw: bool = False, retrieved_at: str | None = None
    ) -> Iterator[GeneratedMessage]:
        """
        One :class:`GeneratedMessage` per lead and message type, in lead then step order.

        A message field holding text is ``generated``; an empty one is ``failed`` once the batch is
        complete and ``pending`` before. Field names follow the sequence's types (``connection_request``
        is ``outreach_message``, others ``<type>_message``); ``*_message`` fields of types the sequence
        does not list are kept too, with step 0, so a type the vendor adds later is never dropped.

        :param include_raw: attach the vendor's lead object.
        :param retrieved_at: the retrieval time to stamp (now by default).
        """
        stamp = retrieved_at or to_utc_iso(datetime.now(UTC))
        sequence = sorted(
            (s for s in self.message_sequence if isinstance(s, Mapping) and s.get("messageType")),
            key=lambda s: s.get("step") or 0,
        )
        for lead in self.leads:
            fields = {}
            for step in sequence:
                name = message_field(step["messageType"])
                if name not in lead and name.replace("-", "_") in lead:
                    name = name.replace("-", "_")
                fields[name] = (step["messageType"], int(step.get("step") or 0))
            for name in lead:
                if name.endswith("_message") and name not in fields:
                    fields[name] = (name[: -len("_message")], 0)
            notice = next(
                (n if lead[n] is True else f"{n}: {lead[n]}" for n in LEAD_NOTICES if lead.get(n)),
                None,
            )
            for name, (message_type, step) in fields.items():
                text = lead.get(name)
                generated = isinstance(text, str) and bool(text.strip())
                status = "generated" if generated else ("failed" if self.complete else "pending")
                yield GeneratedMessage(
                    request_id=self.secure_request_id,
                    lead_id=str(lead.get("external_prospect_id")),
                    message_type=message_type,
                    step=step,
                    status=status,
                    text=text if generated else None,
                    linkedin=lead.get("linkedin"),
                    campaign_id=self.campaign_id,
                    customer_id=self.customer_id,
                    notice=notice or (self.failed_reason if status == "failed" else None),
                    retrieved_at=stamp,
                    raw=dict(lead) if include_raw else None,
                )


class KoneksiHook(ConnectionFormMixin, LinkMsgHook):
    """
    Interact with the Koneksi (Upscale Outreach) API.

    Auth follows the connection extra ``auth_style``: ``api_key`` (default) sends the password as the
    ``Api-Key`` header; ``legacy`` sends it as ``Koneksi-Start-Messages-Api-Key`` on generation requests and
    the extra ``get_messages_api_key`` as ``Koneksi-Get-Messages-Api-Key`` on retrievals.

    :param koneksi_conn_id: Airflow connection of type ``koneksi``.
    :param extra_message_types: ``messageType`` values to accept beyond the documented ones (the vendor
        announces more); their messages come back under ``<type>_message``.
    """

    conn_type = "koneksi"
    conn_name_attr = "koneksi_conn_id"
    default_conn_name = "koneksi_default"
    hook_name = "Koneksi / Upscale Outreach"
    vendor = "koneksi"

    def __init__(
        self,
        koneksi_conn_id: str = default_conn_name,
        *,
        extra_message_types: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(koneksi_conn_id, **kwargs)
        self.extra_message_types = tuple(extra_message_types)

    # ---- auth -------------------------------------------------------------------------------------------
    @cached_property
    def auth_style(self) -> str:
        style = str(self.extra("auth_style", "api_key")).lower()
        if style not in ("api_key", "legacy"):
            raise LinkMsgValidationError(
                f"connection {self.conn_id!r}: auth_style must be 'api_key' or 'legacy', got {style!r}",
                field="auth_style",
                vendor=self.vendor,
            )
        return style

    def auth_headers(self) -> dict[str, str]:
        """``Api-Key`` on the session; in the legacy style the key headers go per call instead."""
        return {} if self.auth_style == "legacy" else {"Api-Key": self.conn_params.api_key}

    def _call_headers(self, purpose: str) -> dict[str, str] | None:
        if self.auth_style != "legacy":
            return None
        if purpose == "start":
            return {"Koneksi-Start-Messages-Api-Key": self.conn_params.api_key}
        key = self.extra("get_messages_api_key")
        if not key:
            raise LinkMsgValidationError(
                f"connection {self.conn_id!r} uses the legacy auth style but has no get_messages_api_key extra",
                field="get_messages_api_key",
                vendor=self.vendor,
            )
        from airflow.providers.common.compat.sdk import mask_secret

        mask_secret(key)
        return {"Koneksi-Get-Messages-Api-Key": key}

    def check_connection(self) -> str:
        if self.auth_style == "legacy":  # a retrieval of an id nobody has: 404 means the key was accepted
            try:
                self.retrieve_messages("00000000-0000-4000-8000-000000000000")
            except LinkMsgError as exc:
                if exc.status != 404:
                    raise
            return "legacy keys accepted"
        data = self.request("GET", "/account").data or {}
        return f"plan {data.get('plan_name', 'unknown')}"

    # ---- generation -------------------------------------------------------------------------------------
    def validate_generation_request(self, payload: Any) -> None:
        """Raise :class:`LinkMsgValidationError` (naming the field) if ``payload`` would be refused."""
        validate_generation_request(payload, extra_message_types=self.extra_message_types)

    def request_message_generation(self, payload: Mapping[str, Any]) -> str:
        """
        Validate ``payload`` locally, then start a (paid) generation; return its ``secure_request_id``.

        Not retried by the transport unless the vendor surely did not act (a 429, a refused connection):
        a retry of the whole task reuses the id instead (see the request operator). Koneksi itself
        de-duplicates an identical request, answering with the same id.

        :param payload: the request body (campaign fields, ``message_sequence``, ``lead_data`` ...).
        """
        self.validate_generation_request(payload)
        response = self.request(
            "POST",
            GENERATE_ENDPOINT,
            json_body=dict(payload),
            headers=self._call_headers("start"),
            idempotent=False,
        )
        request_id = (
            (response.data or {}).get("secure_request_id") if isinstance(response.data, Mapping) else None
        )
        if not isinstance(request_id, str) or not UUID4.match(request_id):
            raise LinkMsgResponseError(
                f"the generation was accepted (HTTP {response.status}) but the answer holds no valid "
                "secure_request_id; check the vendor's dashboard before retrying to avoid a second charge",
                vendor=self.vendor,
                method="POST",
                endpoint=GENERATE_ENDPOINT,
                status=response.status,
            )
        self.log.info("Koneksi generation %s requested: %d messages", request_id, count_messages(payload))
        return request_id

    def retrieve_messages(self, secure_request_id: str) -> KoneksiGenerationResult:
        """
        Retrieve a generation's messages and progress (free; safe to poll).

        :param secure_request_id: the id returned by :meth:`request_message_generation`.
        """
        request_id = validate_secure_request_id(secure_request_id)
        response = self.request(
            "GET", RETRIEVE_ENDPOINT, params={RETRIEVE_PARAM: request_id}, headers=self._call_headers("get")
        )
        return KoneksiGenerationResult.from_response(request_id, response.status, response.data, self.redact)

    async def aretrieve_messages(self, secure_request_id: str) -> KoneksiGenerationResult:
        """
        The async twin of :meth:`retrieve_messages` (for the trigger): one retrieval on the event loop.

        :param secure_request_id: the id returned by :meth:`request_message_generation`.
        """
        request_id = validate_secure_request_id(secure_request_id)
        await self.aconnect()
        response = await self.arequest(
            "GET", RETRIEVE_ENDPOINT, params={RETRIEVE_PARAM: request_id}, headers=self._call_headers("get")
        )
        return KoneksiGenerationResult.from_response(request_id, response.status, response.data, self.redact)

    def iter_generated_messages(
        self, secure_request_id: str, *, include_raw: bool = False, allow_partial: bool = False
    ) -> Iterator[GeneratedMessage]:
        """
        Retrieve a generation and yield its :class:`GeneratedMessage` records.

        :param secure_request_id: the generation's id.
        :param include_raw: attach the vendor's lead objects.
        :param allow_partial: yield a 202's partial results (``pending`` records) instead of raising
            :class:`KoneksiGenerationInProgressError`.
        """
        result = self.retrieve_messages(secure_request_id)
        if not result.complete and not allow_partial:
            raise KoneksiGenerationInProgressError(
                f"generation {result.secure_request_id} is still in progress ({result.progress()}): wait with "
                "KoneksiGenerationSensor first, or pass allow_partial=True to take the partial results",
                vendor=self.vendor,
                endpoint=RETRIEVE_ENDPOINT,
                status=result.http_status,
            )
        yield from result.messages(include_raw=include_raw)

    # ---- webhooks ---------------------------------------------------------------------------------------
    @cached_property
    def webhook_seen_store(self) -> SeenStore:
        """Delivery keys accepted in this process, by any hook (:func:`airflow_provider_linkmsg.webhooks.process_seen_store`)."""
        return process_seen_store()

    def verify_webhook(
        self,
        body: bytes | str,
        signature: str | None,
        *,
        seen_store: SeenStore | None = None,
        max_age: float | None = DEFAULT,
    ) -> dict[str, Any]:
        """
        Verify a completion webhook with the connection's ``webhook_secret``; return its payload.

        See :func:`airflow_provider_linkmsg.webhooks.verify_koneksi_webhook`.

        :param body: the raw request body.
        :param signature: the ``koneksi-signature`` header.
        :param seen_store: replay store; this hook's in-memory store by default.
        :param max_age: refuse deliveries older than this many seconds (``[linkmsg] webhook_max_age_minutes``,
            60 minutes, by default; ``None`` accepts any age).
        """
        secret = self.extra("webhook_secret")
        if secret:
            from airflow.providers.common.compat.sdk import mask_secret

            mask_secret(secret)
        return verify_koneksi_webhook(
            body,
            signature,
            secret or "",
            seen_store=self.webhook_seen_store if seen_store is None else seen_store,
            max_age=max_age,
        )
