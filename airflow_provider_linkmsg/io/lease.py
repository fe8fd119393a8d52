"""
A lease next to a consumer's state: one run at a time reads and advances it.

``{state dir}/{account}.lease`` holds who has the state (dag, run, try, host, pid) and until when. On the
local disk it is created with an exclusive create (``open(path, "x")``), so of two runs that try at once
exactly one gets it. Object stores have no exclusive create through fsspec: there the lease is written,
then read back to check that it is ours; two runs that start within the same second can both believe
they hold it, so give concurrent tasks distinct ``state_key`` values, or keep ``max_active_runs=1``,
when the staging root is an object store.

A lease expires (``expiry_seconds`` after it was last renewed): a run that died without releasing it
(SIGKILL, a lost worker) holds the state at most that long. While held, a timer renews it every quarter
of ``expiry_seconds`` (so a long read, between any two of the run's own heartbeats, keeps it); each
renewal first checks that the lease is still ours, and a run whose lease was taken over (it was stalled
past the expiry) gets :class:`LinkMsgLeaseLostError` at its next heartbeat or :meth:`Lease.check`, before
it commits anything. A retry of the same task run takes the lease over only when the earlier try's lease
expired or, on the same host, its process is gone: Airflow may start a retry while a zombie try runs on.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

from airflow_provider_linkmsg.exceptions import LinkMsgError
from airflow_provider_linkmsg.io.staging import (
    atomic_write,
    exists,
    filesystem,
    is_local,
    open_for_read,
    remove,
)

if TYPE_CHECKING:
    from types import TracebackType

    from airflow.providers.common.compat.sdk import ObjectStoragePath


class LinkMsgLeaseHeldError(LinkMsgError):
    """Another run holds the state's lease."""


class LinkMsgLeaseLostError(LinkMsgError):
    """This run's lease expired and another run took it over: nothing more may be committed."""


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Lease:
    """
    Hold ``path`` for one run.

    :param path: the lease file.
    :param holder: who asks (``dag_id``, ``run_id``, ``task_id``, ``map_index``, ``try_number``).
    :param wait_seconds: how long to wait for another holder before failing.
    :param expiry_seconds: how long a lease lasts without renewal.
    :param vendor: for the error message.
    """

    def __init__(
        self,
        path: ObjectStoragePath,
        holder: dict[str, Any],
        *,
        wait_seconds: float = 300,
        expiry_seconds: float = 1800,
        vendor: str | None = None,
    ) -> None:
        self.path = path
        self.holder = {**holder, "host": socket.gethostname(), "pid": os.getpid(), "token": uuid.uuid4().hex}
        self.wait_seconds = wait_seconds
        self.expiry_seconds = expiry_seconds
        self.vendor = vendor
        self._renewed = 0.0
        self.held = False
        self._lock = threading.Lock()
        self._lost: LinkMsgLeaseLostError | None = None
        self._timer_stop = threading.Event()
        self._timer: threading.Thread | None = None

    # ---- the lease file ------------------------------------------------------------------------------
    def _document(self) -> str:
        now = time.time()
        return json.dumps({**self.holder, "acquired_at": now, "expires_at": now + self.expiry_seconds})

    def _read(self) -> dict[str, Any] | None:
        try:
            with open_for_read(self.path, "r") as f:
                return json.load(f)
        except (FileNotFoundError, ValueError):
            return None  # gone, or half written by a holder that died while writing it

    def _create(self) -> bool:
        """Create the lease if nobody has it; ``True`` when it is ours."""
        if is_local(self.path):
            # written whole under a temporary name, then linked onto the lease's name: the link is the
            # exclusive create, and nobody ever sees the lease half written
            os.makedirs(self.path.parent.path, exist_ok=True)
            temporary = f"{self.path.path}.{self.holder['token']}.tmp"
            with open(temporary, "x", encoding="utf-8") as f:
                f.write(self._document())
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(temporary, self.path.path)
                return True
            except FileExistsError:
                return False
            finally:
                os.remove(temporary)
        if exists(self.path):
            return False
        self._replace()
        return self._is_ours()

    def _replace(self) -> None:
        filesystem(self.path).makedirs(self.path.parent.path, exist_ok=True)
        with atomic_write(self.path, "w") as f:
            f.write(self._document())

    def _is_ours(self) -> bool:
        return (self._read() or {}).get("token") == self.holder["token"]

    def _stale(self) -> bool:
        """Whether an unreadable lease file is older than a few seconds (its writer died while writing)."""
        try:
            modified = filesystem(self.path).modified(self.path.path).timestamp()
        except Exception:
            return True  # gone, or the store cannot say: take it as free
        return time.time() - modified > 10

    def _same_task_run(self, other: dict[str, Any]) -> bool:
        keys = ("dag_id", "run_id", "task_id", "map_index")
        return all(other.get(k) == self.holder.get(k) for k in keys)

    def _earlier_try_gone(self, other: dict[str, Any]) -> bool:
        """
        An earlier try of this task run whose process is known to be gone: on this host, its pid is not
        alive, or is this very process (which runs one try at a time).
        """
        return (
            self._same_task_run(other)
            and other.get("host") == self.holder["host"]
            and (other.get("pid") == self.holder["pid"] or not _pid_alive(other.get("pid")))
        )

    # ---- the protocol -------------------------------------------------------------------------------
    def acquire(self) -> Lease:
        """Take the lease, waiting up to ``wait_seconds`` for another holder; raise naming the holder."""
        deadline = time.monotonic() + self.wait_seconds
        while True:
            if self._create():
                break
            current = self._read()
            if current is None and (not exists(self.path) or not self._stale()):
                time.sleep(0.05)  # released meanwhile, or being written by its holder: try again
                continue
            if (
                current is None
                or current.get("expires_at", 0) < time.time()
                or self._earlier_try_gone(current)
            ):
                # a holder that died (expired or half written), or an earlier try of this task run whose
                # process is gone (a zombie try still running keeps it until it expires)
                self._replace()
                time.sleep(0.05)  # let a concurrent taker's write land, then see who won
                if self._is_ours():
                    break
                continue
            if time.monotonic() >= deadline:
                raise LinkMsgLeaseHeldError(
                    f"the watermarks at {self.path.parent} are in use by another run: dag "
                    f"{current.get('dag_id')!r}, run {current.get('run_id')!r}, task {current.get('task_id')!r} "
                    f"(map index {current.get('map_index')}), try {current.get('try_number')}, on host "
                    f"{current.get('host')!r} (pid {current.get('pid')}), until "
                    f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(current.get('expires_at', 0)))}. "
                    f"Waited {self.wait_seconds:.0f} s. Keep max_active_runs=1 for this DAG, give the other "
                    "consumer its own state_key, or delete the lease file if that run is gone.",
                    vendor=self.vendor,
                )
            time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))
        self.held = True
        self._lost = None
        self._renewed = time.monotonic()
        self._timer_stop.clear()
        self._timer = threading.Thread(target=self._keep, name="linkmsg-lease", daemon=True)
        self._timer.start()
        return self

    def _keep(self) -> None:
        """The timer: renew every quarter of the expiry until released or lost."""
        while not self._timer_stop.wait(self.expiry_seconds / 4):
            try:
                self.renew(force=True)
            except LinkMsgLeaseLostError:
                return
            except Exception:  # a store hiccup: the next tick (or the run's own heartbeat) tries again
                continue

    def check(self) -> None:
        """Raise :class:`LinkMsgLeaseLostError` unless the lease is still ours (call before committing)."""
        with self._lock:
            if self._lost is not None:
                raise self._lost
            if self.held and not self._is_ours():
                self._lose()

    def _lose(self) -> None:
        current = self._read() or {}
        self.held = False
        self._timer_stop.set()
        self._lost = LinkMsgLeaseLostError(
            f"this run's lease on the watermarks at {self.path.parent} expired (not renewed within "
            f"{self.expiry_seconds:.0f} s) and was taken over by dag {current.get('dag_id')!r}, run "
            f"{current.get('run_id')!r}, task {current.get('task_id')!r}, try {current.get('try_number')} "
            f"(host {current.get('host')!r}, pid {current.get('pid')}): nothing of this run is committed. "
            "Raise lease_expiry_seconds if a run can stall this long.",
            vendor=self.vendor,
        )
        raise self._lost

    def renew(self, *, force: bool = False) -> None:
        """
        Push the expiry back (at most every tenth of ``expiry_seconds`` unless ``force``; cheap to call
        often), after checking that the lease is still ours.

        :raises LinkMsgLeaseLostError: another run took it over.
        """
        with self._lock:
            if self._lost is not None:
                raise self._lost
            if not self.held:
                return
            if force or time.monotonic() - self._renewed > self.expiry_seconds / 10:
                if not self._is_ours():
                    self._lose()
                self._replace()
                self._renewed = time.monotonic()

    def release(self) -> None:
        """Give the lease back (only if it is still ours)."""
        self._timer_stop.set()
        with self._lock:
            if self.held:
                with contextlib.suppress(Exception):
                    if self._is_ours():
                        remove(self.path)
                self.held = False

    def __enter__(self) -> Lease:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
