"""
The model-based suite: a Hypothesis rule-based state machine per inbox vendor, over the sandbox.

Rules make messages arrive (newer than, equal to or older than the newest of their conversation; into old,
recent and empty conversations; with the listed activity moving or not) and make the real operator run:
normally, with ``full_refresh``, killed with SIGKILL at a random call then retried, two at once, and under
injected 429 / 5xx / connection resets. After every run and export, whatever happened:

* the exported files and SQL rows equal what the vendor shows: no key twice, nothing the vendor does not
  show, every field equal, and every message that is *due* (all but those a lagging listing still hides:
  a correct engine cannot see them before the conversation's listed activity moves or a full refresh);
* no watermark is ahead of durable data (its time and recent ids are those of staged messages);
* LinkupAPI credits stay within the budget of what changed (a listing per run, each changed conversation
  read once, nothing paid twice by concurrent runs), and unchanged conversations are not read again.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import uuid
from types import SimpleNamespace
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from airflow_provider_linkmsg.exceptions import LinkMsgError
from tests.fixtures.suites import kill_when
from tests.model import invariants
from tests.model.drivers import Driver, restore_env, set_env

WAREHOUSE = "linkmsg_model_warehouse"


class InboxModel(RuleBasedStateMachine):
    """The model of one vendor's inbox and of what its exports must hold; subclasses set ``driver_class``."""

    driver_class: ClassVar[type[Driver]]
    #: also export to this PostgreSQL connection (a table of its own per example), when set
    postgres_conn_id: ClassVar[str | None] = None

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.mkdtemp(prefix=f"linkmsg-model-{self.driver_class.vendor}-")
        self.root = os.path.join(self.tmp, "staging")
        self.destination = os.path.join(self.tmp, "export")
        self.database = os.path.join(self.tmp, "warehouse.db")
        self.driver: Driver | None = None
        self.old_env: dict[str, str | None] = {}
        self.runs = 0
        self.first_done = False  # a run completed: later runs are incremental
        self.changed: set[str] = set()  # conversations with news since the last completed run
        self.recent: set[str] = set()  # conversations that got messages in this example
        self.created: set[str] = set()  # conversations opened empty in this example
        self.listed: set[str] = set()  # conversations a completed run has listed
        self.hidden: dict[str, set[str]] = {}  # per conversation: keys a lagging listing still hides
        self.pg_table = f"model_{uuid.uuid4().hex[:10]}"

    # ---- set-up and tear-down ---------------------------------------------------------------------------
    @initialize(seed=st.integers(0, 3))
    def start(self, seed: int) -> None:
        self.driver = self.driver_class(seed, self.root)
        conn = {"conn_type": "sqlite", "host": self.database}
        env = {**self.driver.conn_env, f"AIRFLOW_CONN_{WAREHOUSE.upper()}": json.dumps(conn)}
        self.old_env = set_env(env)

    def teardown(self) -> None:
        if self.postgres_conn_id:
            invariants.drop_postgres_table(self.postgres_conn_id, self.pg_table)
        restore_env(self.old_env)
        if self.driver is not None:
            self.driver.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ---- the world changes ------------------------------------------------------------------------------
    def _pool(self, into: str) -> list[str]:
        everything = self.driver.conversations()
        pools = {
            "old": [c for c in everything if c not in self.recent and c not in self.created],
            "recent": [c for c in everything if c in self.recent],
            "empty": [c for c in everything if c in self.created and c not in self.recent],
        }
        return pools[into] or everything

    #: one arrival: where, how many, when against the newest, and whether the listing shows it
    DELIVERY = st.fixed_dictionaries(
        {
            "into": st.sampled_from(["old", "recent", "empty"]),
            "pick": st.integers(0, 1000),
            "messages": st.integers(1, 3),
            "at": st.sampled_from(["newer", "equal", "older"]),
            "older_by_ms": st.sampled_from([1, 999, 60_000, 3_600_000, 172_800_000]),
            "newer_by_ms": st.sampled_from([None, 1, 3_600_000, 172_800_000]),
            "move_activity": st.booleans(),
            "seconds": st.sampled_from([0, 1, 60, 3600]),
        }
    )

    @rule(arrivals=st.lists(DELIVERY, min_size=1, max_size=4))
    def deliver(self, arrivals: list[dict[str, Any]]) -> None:
        """Messages arrive, one conversation at a time (the sandbox clock moving ``seconds`` before each)."""
        for arrival in arrivals:
            self._deliver(**arrival)

    def _deliver(
        self,
        into: str,
        pick: int,
        messages: int,
        at: str,
        older_by_ms: int,
        newer_by_ms: int | None,
        move_activity: bool,
        seconds: int,
    ) -> None:
        pool = self._pool(into)
        conversation = pool[pick % len(pool)]
        ids = self.driver.deliver(
            conversation,
            messages=messages,
            at=at,
            older_by_ms=older_by_ms,
            newer_by_ms=newer_by_ms,
            move_activity=move_activity,
            seconds=seconds,
        )
        keys = {f"{self.driver.vendor}:{self.driver.account_id}:{i}" for i in ids}
        self.changed.add(conversation)
        self.recent.add(conversation)
        if not self.driver.lists or move_activity:
            self.hidden.pop(conversation, None)  # the listing shows the news: all of it is due
        elif conversation in self.listed:  # listed before and not moved: hidden until it moves
            self.hidden.setdefault(conversation, set()).update(keys)

    @rule(count=st.integers(1, 2))
    def open_empty(self, count: int) -> None:
        created = self.driver.open_empty(count)
        self.created.update(created)
        self.changed.update(created)

    # ---- runs -------------------------------------------------------------------------------------------
    def _context(self, run_id: str) -> dict[str, Any]:
        ti = SimpleNamespace(
            dag_id=self.dag_id, task_id="retrieve", run_id=run_id, map_index=-1, try_number=1
        )
        return {"ti": ti, "run_id": run_id}

    @property
    def dag_id(self) -> str:
        return f"model_{self.driver.vendor}"

    def _execute(self, run_id: str, **kwargs: Any) -> dict[str, Any]:
        from airflow.providers.common.compat.sdk import DAG

        from tests.compat import execute

        with DAG(dag_id=self.dag_id, schedule=None):
            operator = self.driver.operator("retrieve", **kwargs)
        return execute(operator, self._context(run_id))  # also from run_two_at_once's threads

    def _next_run_id(self, kind: str = "scheduled") -> str:
        self.runs += 1
        return f"{kind}__{self.runs:03d}"

    @rule()
    def run_normal(self) -> None:
        before = self.driver.counters()
        result = self._execute(self._next_run_id())
        self._completed([result], before, attempts=1)

    @rule()
    def run_full_refresh(self) -> None:
        before = self.driver.counters()
        result = self._execute(self._next_run_id("manual"), full_refresh=True)
        self._completed([result], before, attempts=1, full_refresh=True)

    @rule(calls=st.integers(1, 12), twice=st.booleans())
    def run_killed_then_retried(self, calls: int, twice: bool) -> None:
        """SIGKILL the run (a forked process) at its ``calls``-th vendor call, maybe twice; then retry it."""
        before = self.driver.counters()
        run_id = self._next_run_id()
        self.driver.sandbox.set_faults(
            [{"vendor": self.driver.vendor, "route": self.driver.read_route, "latency_ms": 5}]
        )
        try:
            for _ in range(2 if twice else 1):
                start = self.driver.calls_of(self.driver.counters())
                kill_when(
                    self._execute,
                    run_id,
                    when=lambda s=start: self.driver.calls_of(self.driver.counters()) >= s + calls,
                    timeout=30,
                )
                # whatever the kill interrupted: nothing it committed may claim more than is durable
                invariants.check_watermarks(self.root, self.driver.vendor, expect_some=False)
        finally:
            self.driver.sandbox.set_faults([])
        result = self._execute(run_id)
        self._completed([result], before, attempts=3 if twice else 2)

    @rule()
    def run_two_at_once(self) -> None:
        """A scheduled run and a manual one on the same account and consumer, at the same time."""
        before = self.driver.counters()
        run_ids = [self._next_run_id("scheduled"), self._next_run_id("manual")]
        results: dict[str, Any] = {}
        barrier = threading.Barrier(2)

        def run(run_id: str) -> None:
            barrier.wait(timeout=10)
            try:
                results[run_id] = self._execute(run_id)
            except LinkMsgError as exc:  # e.g. "another run holds the lease": allowed for one of the two
                results[run_id] = exc

        threads = [threading.Thread(target=run, args=(r,)) for r in run_ids]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in threads), "a concurrent run did not end in 120 s"
        failed = [r for r in run_ids if isinstance(results.get(r), BaseException)]
        assert len(failed) < 2, f"both concurrent runs failed: {[str(results[r]) for r in failed]}"
        attempts = 2
        for run_id in failed:  # Airflow retries it once the other is done: now it must pass
            results[run_id] = self._execute(run_id)
            attempts += 1
        invariants.check_staged_once([results[r] for r in run_ids])
        self._completed(list(results.values()), before, attempts=attempts, concurrent=True)

    @rule(
        p_429=st.sampled_from([0.0, 0.2]),
        p_5xx=st.sampled_from([0.0, 0.2]),
        p_reset=st.sampled_from([0.0, 0.2]),
        seed=st.integers(0, 99),
    )
    def run_under_faults(self, p_429: float, p_5xx: float, p_reset: float, seed: int) -> None:
        """Faults on every route of the vendor (at most 4 served); a run that still fails is retried."""
        before = self.driver.counters()
        run_id = self._next_run_id()
        rule = {
            "vendor": self.driver.vendor,
            "p_429": p_429,
            "retry_after": "0",
            "p_5xx": p_5xx,
            "p_reset": p_reset,
            "times": 4,
        }
        self.driver.sandbox.set_faults([rule], seed=seed)
        attempts, result = 0, None
        try:
            for _ in range(3):
                attempts += 1
                try:
                    result = self._execute(run_id)
                    break
                except LinkMsgError:
                    continue  # the faults outlasted the retries: the task's retry runs again
        finally:
            self.driver.sandbox.set_faults([])
        if result is None:  # faults are off now: the retry must succeed
            attempts += 1
            result = self._execute(run_id)
        self._completed([result], before, attempts=attempts)

    # ---- after every run --------------------------------------------------------------------------------
    def _export(self, results: list[dict[str, Any]]) -> None:
        from airflow_provider_linkmsg.operators.export import (
            LinkMsgExportToFilesOperator,
            LinkMsgExportToSqlOperator,
        )
        from tests.compat import outlet_event_accessors

        for result in results:
            if not result.get("records"):
                continue  # nothing staged: the export would skip
            context = {"outlet_events": outlet_event_accessors()}
            LinkMsgExportToFilesOperator(
                task_id="to_files", manifests=result, destination=self.destination
            ).execute(context)
            LinkMsgExportToSqlOperator(task_id="to_sql", manifests=result, conn_id=WAREHOUSE).execute(context)
            if self.postgres_conn_id:
                LinkMsgExportToSqlOperator(
                    task_id="to_postgres",
                    manifests=result,
                    conn_id=self.postgres_conn_id,
                    messages_table=self.pg_table,
                ).execute(context)

    def _completed(
        self,
        results: list[dict[str, Any]],
        before: dict[str, Any],
        *,
        attempts: int,
        full_refresh: bool = False,
        concurrent: bool = False,
    ) -> None:
        """Export the runs' staged sets, then check every invariant; the model moves on."""
        self._export(results)
        after = self.driver.counters()
        truth = self.driver.truth()
        hidden = set().union(*self.hidden.values()) if self.hidden and not full_refresh else set()
        due = set(truth) - hidden
        project = self.driver.project
        files = invariants.exported_files(self.destination)
        invariants.check_exported("files", files, truth, due, project)
        invariants.check_exported("SQL", invariants.exported_rows(self.database), truth, due, project)
        if self.postgres_conn_id:
            rows = invariants.postgres_rows(self.postgres_conn_id, self.pg_table)
            invariants.check_exported("PostgreSQL", rows, truth, due, project)
        invariants.check_watermarks(self.root, self.driver.vendor, expect_some=bool(files))
        self._check_reads(before, after, full_refresh=full_refresh)
        self._check_budget(before, after, attempts, full_refresh=full_refresh, concurrent=concurrent)
        self.first_done = True
        self.changed.clear()
        self.listed.update(self.driver.conversations())
        if full_refresh:
            self.hidden.clear()

    def _changed(self, full_refresh: bool) -> list[str]:
        if full_refresh or not self.first_done:
            return self.driver.conversations()
        return sorted(self.changed)

    def _check_reads(self, before: dict[str, Any], after: dict[str, Any], *, full_refresh: bool) -> None:
        """An incremental run reads only conversations with news (the listing shows the rest unchanged)."""
        if not self.driver.lists or full_refresh or not self.first_done:
            return
        read = {c for c, n in after["reads"].items() if n > before["reads"].get(c, 0)}
        unchanged = sorted(read - self.changed)
        assert not unchanged, (
            f"{self.driver.vendor}: an incremental run read {len(unchanged)} conversation(s) with no news "
            f"since the last run, e.g. {unchanged[:3]}"
        )

    def _check_budget(
        self,
        before: dict[str, Any],
        after: dict[str, Any],
        attempts: int,
        *,
        full_refresh: bool,
        concurrent: bool,
    ) -> None:
        """Credits: a listing per attempt, and each changed conversation read in full at most once per attempt
        (once in all for concurrent runs: nothing is paid twice)."""
        if not self.driver.credits:
            return
        reads = sum(self.driver.read_cost(c) for c in self._changed(full_refresh))
        per_read = 1 if concurrent else attempts
        budget = attempts * self.driver.listing_cost() + per_read * reads
        spent = after["credits"] - before["credits"]
        assert spent <= budget, (
            f"{self.driver.vendor}: {spent:g} credit(s) spent by {attempts} attempt(s), over the budget of "
            f"{budget:g} ({len(self._changed(full_refresh))} changed conversation(s), "
            f"{'concurrent' if concurrent else 'sequential'})"
        )


def machine(driver_class: type[Driver], postgres_conn_id: str | None = None) -> type[InboxModel]:
    """The state machine over ``driver_class`` (exporting to PostgreSQL too when a connection is given)."""
    name = f"{driver_class.__name__.removesuffix('Driver')}Model"
    return type(name, (InboxModel,), {"driver_class": driver_class, "postgres_conn_id": postgres_conn_id})
