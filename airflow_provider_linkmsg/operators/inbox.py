"""
The base of the inbox retrieve operators: arguments, checks, storage, and a call to the engine.

The incremental engine itself lives in :mod:`airflow_provider_linkmsg.engine` (no Airflow there), and
each vendor's listing and reading in :mod:`airflow_provider_linkmsg.hooks.inbox`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_linkmsg.engine.progress import DEFAULT_INTERVAL, check_interval
from airflow_provider_linkmsg.engine.windows import DEFAULT_OVERLAP_SECONDS
from airflow_provider_linkmsg.exceptions import LinkMsgValidationError
from airflow_provider_linkmsg.operators.labels import MapLabel
from airflow_provider_linkmsg.operators.lineage import LineageMixin, inbox_name
from airflow_provider_linkmsg.operators.links import INBOX_LINKS, push_inbox_links
from airflow_provider_linkmsg.utils import task_run_id

# The engine, staging and state are imported where they are used: DAG files import this module.
if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context, ObjectStoragePath

    from airflow_provider_linkmsg.engine import InboxRetrieval
    from airflow_provider_linkmsg.io.keys import IndexUpdate, KeyIndex
    from airflow_provider_linkmsg.io.lease import Lease
    from airflow_provider_linkmsg.io.staging import Manifest, StagingWriter
    from airflow_provider_linkmsg.records import Message

#: the engine's names, still importable from here (loaded on first use)
_ENGINE_NAMES = frozenset(
    {"Conversation", "InboxRetrieval", "ReadWindow", "is_current", "next_watermark", "read_window"}
)


def __getattr__(name: str) -> Any:
    if name in _ENGINE_NAMES:
        from airflow_provider_linkmsg import engine

        return getattr(engine, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _EarlierTry:
    """What an earlier try of this task run staged (its manifest is in place): records and watermarks."""

    def __init__(self, writer: StagingWriter, index: KeyIndex) -> None:
        from airflow_provider_linkmsg.io.staging import Manifest, exists

        self.manifest = Manifest.load(writer.manifest_path) if exists(writer.manifest_path) else None
        self.index = index

    def records(self) -> Iterable[Message]:
        """The earlier try's records, streamed, indexed as staged as they pass (its manifest is durable)."""
        from airflow_provider_linkmsg.io.staging import iter_records

        if self.manifest is None:
            return iter(())
        return self.index.add_records(iter_records(self.manifest))

    def watermarks(self) -> dict[str, dict]:
        return dict(self.manifest.watermarks) if self.manifest is not None else {}


class _IndexingWriter:
    """The run's staging writer; each conversation it stages is prepared in the index update."""

    def __init__(self, writer: StagingWriter, update: IndexUpdate) -> None:
        self._writer = writer
        self._update = update

    def write_many(self, messages: Sequence[Message]) -> None:
        self._writer.write_many(messages)
        self._update.stage(messages)

    def close(self) -> Manifest:
        """The staging commit, once the index files prepared in the background are on disk (one order of steps)."""
        self._update.settle()
        return self._writer.close()

    def abort(self) -> None:
        try:
            self._writer.abort()
        finally:
            self._update.discard()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._writer, name)


def build_retrieval(
    *,
    vendor: str,
    account_id: str,
    root: ObjectStoragePath | str,
    run_id: str,
    conn_id: str | None,
    include_raw: bool,
    consumer: str | None = None,
    lease: Lease | None = None,
    **options: Any,
) -> InboxRetrieval:
    """
    The engine over a staging run and the consumer's watermarks (and index of staged ids) under ``root``.

    :param consumer: who owns the watermarks (the operator's ``state_key``).
    :param lease: the run's lease on them, renewed as the run goes.
    :param options: the engine's other arguments (``full_refresh``, ``overlap_seconds`` ...).
    """
    from airflow_provider_linkmsg.engine import InboxRetrieval
    from airflow_provider_linkmsg.io.keys import IndexUpdate, KeyIndex
    from airflow_provider_linkmsg.io.staging import StagingWriter
    from airflow_provider_linkmsg.io.state import WatermarkStore, commit_after

    store = WatermarkStore(root, vendor=vendor, account=account_id, conn_id=conn_id, consumer=consumer)
    index = KeyIndex(store.keys_directory)
    writer = StagingWriter(
        root, vendor=vendor, record_type="message", run_id=run_id, conn_id=conn_id, include_raw=include_raw
    )
    earlier = _EarlierTry(writer, index)
    update = IndexUpdate(index)

    def commit(manifest: Manifest) -> None:
        try:
            if lease is not None:
                lease.check()  # a run whose lease was taken over commits nothing
        except BaseException:
            update.discard()
            raise
        update.publish(manifest)  # the ids are staged: only now do they enter the index
        commit_after(manifest, store)

    return InboxRetrieval(
        vendor=vendor,
        account_id=account_id,
        store=store,
        writer=_IndexingWriter(writer, update),
        carry_over=earlier.records,
        carried_watermarks=earlier.watermarks,
        commit=commit,
        known_ids=index.load,
        heartbeat=lease.renew if lease is not None else lambda: None,
        **options,
    )


class BaseInboxRetrieveOperator(MapLabel, LineageMixin, BaseOperator):
    """
    Stage the new messages of one account's inbox; vendor operators supply the inbox adapter.

    Map it over accounts with ``.partial(...).expand(account_id=[...])``: each mapped task stages its own
    manifest and keeps its own watermarks, and is labelled with its account in the UI (the default
    ``map_index_template``; see :mod:`airflow_provider_linkmsg.operators.labels`).

    :param account_id: the vendor's account id; the connection's ``account_id`` extra when not given.
    :param conversation_ids: only these conversations (the listing still decides which changed).
    :param full_refresh: ignore the watermarks and read every conversation completely.
    :param overlap_seconds: re-read this many seconds before each watermark, for messages that appear late
        with an earlier time (default 300; see :mod:`airflow_provider_linkmsg.engine.windows`); what is
        already staged is dropped by id. Later messages still are found when the listing shows them.
    :param read_mode: how a conversation whose listing changed is read. ``"full"`` (the default of
        ConnectSafely and Linked API): in full, keeping what the index of staged ids does not hold, so a
        late message of any age is staged once the vendor shows it (cost: the conversation's full page
        count per changed conversation and run). ``"counted"`` (LinkupAPI's default): from
        ``overlap_seconds`` before the watermark, read in full only when the vendor's message count says
        more is there. ``"window"`` (opt-in, saves calls): from ``overlap_seconds`` before the watermark
        only; a message that reaches the vendor later than ``overlap_seconds`` after its own time is
        missed until a ``full_refresh`` run (the log and the XCom value's ``read_mode_bound`` say so).
    :param state_key: who owns the watermarks: ``{dag_id}.{task_id}`` by default, so that two DAGs never
        share them; give two tasks the same key only to share them on purpose. (templated)
    :param listing_shortcut: stop listing at what the last complete pass covered (saves listing calls;
        a conversation whose activity moved to an earlier time may then wait for the daily full listing,
        up to 24 h; the log and the XCom value's ``listing_shortcut`` say so). Off by default.
    :param lease_wait_seconds: how long a run waits for another run holding the same watermarks before
        it fails naming that run.
    :param lease_expiry_seconds: after how long without renewal a run that died is taken to have let go.
    :param max_workers: conversations read at once (all under the connection's rate limit).
    :param page_size: messages per call (the vendor operator's default when ``None``).
    :param staging_path: root of staged data and watermarks (``[linkmsg] staging_path`` by default).
    :param staging_conn_id: connection of the staging store (object storage).
    :param include_raw: stage the vendor's JSON with each message.
    :param progress_seconds: seconds between progress lines while listing and reading (1 to 30, 10 by
        default): conversations done and left, messages, calls and credits so far.
    :param fail_on_error: fail the task when some conversations could not be read (after staging and
        saving the others); when false, report them in the XCom value only.
    :return: (XCom) ``{"manifest", "records", "conversations_read", "conversations_deepened",
        "conversations_empty", "api_calls", "credits", "state_key", "overlap_seconds", "listing_shortcut",
        ...}`` (``listing_shortcut``: ``None``, or ``{"staleness_bound_hours", "stopped_early"}`` when on).
    """

    vendor: ClassVar[str] = ""
    default_page_size: ClassVar[int] = 100
    #: ``read_mode`` when not given (see the class docstring)
    default_read_mode: ClassVar[str] = "full"

    template_fields: Sequence[str] = (
        "account_id",
        "conversation_ids",
        "staging_path",
        "staging_conn_id",
        "state_key",
    )
    ui_color = "#e8f0fe"
    operator_extra_links = INBOX_LINKS

    def __init__(
        self,
        *,
        account_id: str | None = None,
        conversation_ids: list[str] | None = None,
        full_refresh: bool = False,
        overlap_seconds: float = DEFAULT_OVERLAP_SECONDS,
        read_mode: str | None = None,
        state_key: str | None = None,
        listing_shortcut: bool = False,
        lease_wait_seconds: float = 300,
        lease_expiry_seconds: float = 1800,
        max_workers: int = 4,
        page_size: int | None = None,
        staging_path: str | None = None,
        staging_conn_id: str | None = None,
        include_raw: bool = False,
        fail_on_error: bool = True,
        progress_seconds: float = DEFAULT_INTERVAL,
        **kwargs: Any,
    ) -> None:
        super().__init__(**self.with_template(kwargs))
        self.account_id = account_id
        self.conversation_ids = conversation_ids
        self.full_refresh = full_refresh
        self.overlap_seconds = overlap_seconds
        self.read_mode = read_mode
        self.state_key = state_key
        self.listing_shortcut = listing_shortcut
        self.lease_wait_seconds = lease_wait_seconds
        self.lease_expiry_seconds = lease_expiry_seconds
        self.max_workers = max_workers
        self.page_size = page_size
        self.staging_path = staging_path
        self.staging_conn_id = staging_conn_id
        self.include_raw = include_raw
        self.fail_on_error = fail_on_error
        self.progress_seconds = progress_seconds

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

    def default_map_label(self) -> str:
        return self.account_id if isinstance(self.account_id, str) else ""

    # ---- shared -----------------------------------------------------------------------------------------
    @property
    def effective_page_size(self) -> int:
        return self.page_size if self.page_size is not None else self.default_page_size

    @property
    def effective_read_mode(self) -> str:
        return self.read_mode if self.read_mode is not None else self.default_read_mode

    def _check_common(self) -> tuple[str, list[str] | None]:
        from airflow_provider_linkmsg.engine.retrieval import READ_MODES

        for name in ("overlap_seconds", "max_workers", "lease_wait_seconds", "lease_expiry_seconds"):
            value = getattr(self, name)
            minimum = 1 if name in ("max_workers", "lease_expiry_seconds") else 0
            if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
                raise LinkMsgValidationError(
                    f"{name} must be a number of at least {minimum}, got {value!r}",
                    field=name,
                    vendor=self.vendor,
                )
        try:
            check_interval(self.progress_seconds)
        except ValueError as error:
            raise LinkMsgValidationError(str(error), field="progress_seconds", vendor=self.vendor) from None
        if self.read_mode is not None and self.read_mode not in READ_MODES:
            raise LinkMsgValidationError(
                f"read_mode must be one of {', '.join(repr(m) for m in READ_MODES)} (or None for "
                f"{self.default_read_mode!r}), got {self.read_mode!r}",
                field="read_mode",
                vendor=self.vendor,
            )
        if self.state_key is not None and (not isinstance(self.state_key, str) or not self.state_key.strip()):
            raise LinkMsgValidationError(
                f"state_key must be a non-empty string (or None for '<dag_id>.<task_id>'), got {self.state_key!r}",
                field="state_key",
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

    def consumer(self, context: Context) -> str:
        """The ``state_key``, by default ``{dag_id}.{task_id}``."""
        if self.state_key:
            return self.state_key
        ti = context["ti"]
        return f"{ti.dag_id}.{ti.task_id}"

    def lease(self, context: Context, account_id: str, root: ObjectStoragePath) -> Lease:
        """The lease this task run takes on the consumer's watermarks of ``account_id``."""
        from airflow_provider_linkmsg.io.lease import Lease
        from airflow_provider_linkmsg.io.state import WatermarkStore

        ti = context["ti"]
        store = WatermarkStore(
            root,
            vendor=self.vendor,
            account=account_id,
            conn_id=self.staging_conn_id,
            consumer=self.consumer(context),
        )
        holder = {
            "dag_id": ti.dag_id,
            "run_id": context.get("run_id") or getattr(ti, "run_id", None),
            "task_id": ti.task_id,
            "map_index": getattr(ti, "map_index", -1),
            "try_number": getattr(ti, "try_number", None),
        }
        return Lease(
            store.lease_path,
            holder,
            wait_seconds=float(self.lease_wait_seconds),
            expiry_seconds=float(self.lease_expiry_seconds),
            vendor=self.vendor,
        )

    def retrieval(
        self, context: Context, account_id: str, root: ObjectStoragePath, lease: Lease | None, **options: Any
    ) -> InboxRetrieval:
        """The engine for this task run (``options`` override the operator's arguments)."""
        settings: dict[str, Any] = {
            "full_refresh": self.full_refresh,
            "overlap_seconds": self.overlap_seconds,
            "read_mode": self.effective_read_mode,
            "listing_shortcut": bool(self.listing_shortcut),
            "max_workers": int(self.max_workers),
            "fail_on_error": self.fail_on_error,
            "progress_seconds": float(self.progress_seconds),
            "log": self.log,
            **options,
        }
        return build_retrieval(
            vendor=self.vendor,
            account_id=account_id,
            root=root,
            run_id=task_run_id(context),
            conn_id=self.staging_conn_id,
            include_raw=self.include_raw,
            consumer=self.consumer(context),
            lease=lease,
            **settings,
        )

    def record_retrieve_lineage(self, account_id: str, result: dict[str, Any]) -> None:
        """OpenLineage of the run: the vendor's inbox of the account to the staged run."""
        from airflow_provider_linkmsg.io.staging import to_path

        self.record_lineage(
            [("vendor", self.vendor, self.hook.conn_params.base_url, inbox_name(account_id))],
            [("path", to_path(result["manifest"], self.staging_conn_id).parent)],
        )

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_linkmsg.io.staging import staging_root

        account_id, conversation_ids = self._check_common()
        self.resolved_label = account_id
        root = staging_root(self.staging_path, self.staging_conn_id)
        inbox = self.inbox(account_id)
        with self.lease(context, account_id, root) as lease:
            extra = (
                {"full_read_shortfall": inbox.full_read_shortfall}
                if hasattr(inbox, "full_read_shortfall")
                else {}
            )
            retrieval = self.retrieval(
                context, account_id, root, lease, conversation_ids=conversation_ids, **extra
            )
            if hasattr(inbox, "recall"):
                inbox.recall(retrieval.previous_memo)
            result = retrieval.run(
                list_conversations=inbox.list_conversations,
                read_conversation=inbox.read_conversation,
                usage=lambda: self.usage(inbox),
                listing_memo=getattr(inbox, "memo", None),
            )
        self.record_retrieve_lineage(account_id, result)
        push_inbox_links(self, context, result)
        return {**result, "state_key": self.consumer(context)}
