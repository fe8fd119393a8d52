"""
The base of the inbox retrieve operators: arguments, checks, storage, and a call to the engine.

The incremental engine itself lives in :mod:`airflow_provider_linkmsg.engine` (no Airflow there), and
each vendor's listing and reading in :mod:`airflow_provider_linkmsg.hooks.inbox`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_linkmsg.engine import (  # noqa: F401 - re-exported for existing imports
    Conversation,
    InboxRetrieval,
    ReadWindow,
    is_current,
    next_watermark,
    read_window,
)
from airflow_provider_linkmsg.exceptions import LinkMsgValidationError
from airflow_provider_linkmsg.io.staging import Manifest, StagingWriter, exists, iter_records, staging_root
from airflow_provider_linkmsg.io.state import WatermarkStore, commit_after
from airflow_provider_linkmsg.utils import task_run_id

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context, ObjectStoragePath

    from airflow_provider_linkmsg.records import Message


def _carried(writer: StagingWriter) -> Iterable[Message]:
    """What an earlier try of this run staged (its manifest is in place), streamed."""
    if exists(writer.manifest_path):
        yield from iter_records(Manifest.load(writer.manifest_path))


def build_retrieval(
    *,
    vendor: str,
    account_id: str,
    root: ObjectStoragePath,
    run_id: str,
    conn_id: str | None,
    include_raw: bool,
    **options: Any,
) -> InboxRetrieval:
    """
    The engine over a staging run and the account's watermarks under ``root``.

    :param options: the engine's other arguments (``full_refresh``, ``overlap_seconds`` ...).
    """
    store = WatermarkStore(root, vendor=vendor, account=account_id, conn_id=conn_id)
    writer = StagingWriter(
        root, vendor=vendor, record_type="message", run_id=run_id, conn_id=conn_id, include_raw=include_raw
    )
    return InboxRetrieval(
        vendor=vendor,
        account_id=account_id,
        store=store,
        writer=writer,
        carry_over=lambda: _carried(writer),
        commit=lambda manifest: commit_after(manifest, store),
        **options,
    )


class BaseInboxRetrieveOperator(BaseOperator):
    """
    Stage the new messages of one account's inbox; vendor operators supply the inbox adapter.

    Map it over accounts with ``.partial(...).expand(account_id=[...])``: each mapped task stages its own
    manifest and keeps its own watermarks.

    :param account_id: the vendor's account id; the connection's ``account_id`` extra when not given.
    :param conversation_ids: only these conversations (the listing still decides which changed).
    :param full_refresh: ignore the watermarks and read every conversation completely.
    :param overlap_seconds: re-read this many seconds before each watermark, for messages that appear late
        with an earlier time; the overlap is de-duplicated by message id.
    :param max_workers: conversations read at once (all under the connection's rate limit).
    :param page_size: messages per call (the vendor operator's default when ``None``).
    :param staging_path: root of staged data and watermarks (``[linkmsg] staging_path`` by default).
    :param staging_conn_id: connection of the staging store (object storage).
    :param include_raw: stage the vendor's JSON with each message.
    :param fail_on_error: fail the task when some conversations could not be read (after staging and
        saving the others); when false, report them in the XCom value only.
    :return: (XCom) ``{"manifest", "records", "conversations_read", "api_calls", "credits", ...}``.
    """

    vendor: ClassVar[str] = ""
    default_page_size: ClassVar[int] = 100

    template_fields: Sequence[str] = ("account_id", "conversation_ids", "staging_path", "staging_conn_id")
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        account_id: str | None = None,
        conversation_ids: list[str] | None = None,
        full_refresh: bool = False,
        overlap_seconds: float = 0,
        max_workers: int = 4,
        page_size: int | None = None,
        staging_path: str | None = None,
        staging_conn_id: str | None = None,
        include_raw: bool = False,
        fail_on_error: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.account_id = account_id
        self.conversation_ids = conversation_ids
        self.full_refresh = full_refresh
        self.overlap_seconds = overlap_seconds
        self.max_workers = max_workers
        self.page_size = page_size
        self.staging_path = staging_path
        self.staging_conn_id = staging_conn_id
        self.include_raw = include_raw
        self.fail_on_error = fail_on_error

    # ---- the vendor's part ----------------------------------------------------------------------------
    def default_account_id(self) -> str | None:
        """The connection's default account."""
        raise NotImplementedError

    def check_account_id(self, account_id: Any) -> str:
        raise NotImplementedError

    def check_conversation_id(self, conversation_id: Any, field: str) -> str:
        raise NotImplementedError

    def check_inputs(self) -> None:
        """Vendor checks of the other arguments, before any call."""

    def inbox(self, account_id: str) -> Any:
        """
        The vendor's inbox adapter: ``list_conversations()``, ``read_conversation(conversation, window)``,
        ``usage()``, and optionally ``memo()`` / ``recall(memo)`` (what a listing that stops early needs).
        """
        raise NotImplementedError

    def usage(self, inbox: Any) -> dict[str, float]:
        """``{"api_calls": n, "credits": x}`` of this task's hook, at the end of the run."""
        return inbox.usage()

    # ---- shared -----------------------------------------------------------------------------------------
    @property
    def effective_page_size(self) -> int:
        return self.page_size if self.page_size is not None else self.default_page_size

    def _check_common(self) -> tuple[str, list[str] | None]:
        for name in ("overlap_seconds", "max_workers"):
            value = getattr(self, name)
            minimum = 0 if name == "overlap_seconds" else 1
            if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
                raise LinkMsgValidationError(
                    f"{name} must be a number of at least {minimum}, got {value!r}",
                    field=name,
                    vendor=self.vendor,
                )
        account = self.account_id if self.account_id not in (None, "") else self.default_account_id()
        if account is None:
            raise LinkMsgValidationError(
                "no account_id: pass account_id to the operator or set the connection's 'account_id' extra",
                field="account_id",
                vendor=self.vendor,
            )
        account = self.check_account_id(account)
        ids = self.conversation_ids
        if isinstance(ids, str):
            ids = [ids]
        if ids is not None:
            if not isinstance(ids, list | tuple):
                raise LinkMsgValidationError(
                    f"conversation_ids must be a list of conversation ids, got {ids!r}",
                    field="conversation_ids",
                    vendor=self.vendor,
                )
            ids = [self.check_conversation_id(c, f"conversation_ids[{i}]") for i, c in enumerate(ids)]
        self.check_inputs()
        return account, ids

    def retrieval(
        self, context: Context, account_id: str, root: ObjectStoragePath | None = None, **options: Any
    ) -> InboxRetrieval:
        """The engine for this task run (``options`` override the operator's arguments)."""
        settings: dict[str, Any] = {
            "full_refresh": self.full_refresh,
            "overlap_seconds": self.overlap_seconds,
            "max_workers": int(self.max_workers),
            "fail_on_error": self.fail_on_error,
            "log": self.log,
            **options,
        }
        return build_retrieval(
            vendor=self.vendor,
            account_id=account_id,
            root=root if root is not None else staging_root(self.staging_path, self.staging_conn_id),
            run_id=task_run_id(context),
            conn_id=self.staging_conn_id,
            include_raw=self.include_raw,
            **settings,
        )

    def execute(self, context: Context) -> dict[str, Any]:
        account_id, conversation_ids = self._check_common()
        retrieval = self.retrieval(context, account_id, conversation_ids=conversation_ids)
        inbox = self.inbox(account_id)
        if hasattr(inbox, "recall"):
            inbox.recall(retrieval.previous_memo)
        return retrieval.run(
            list_conversations=inbox.list_conversations,
            read_conversation=inbox.read_conversation,
            usage=lambda: self.usage(inbox),
            listing_memo=getattr(inbox, "memo", None),
        )
