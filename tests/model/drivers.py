"""
The model suite's view of each inbox vendor: its sandbox world, its operator, its ground truth, and how new
(late, lagging, empty) messages reach it. Only public operator arguments and the sandbox's admin API are used.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Hashable
from typing import Any, ClassVar

from airflow_provider_linkmsg.records import Message, to_utc_iso
from airflow_provider_linkmsg.sandbox import Sandbox

#: connection extras of the model runs: fast retries (the faults rule caps how many are served)
FAST_RETRIES = {"max_retries": 4, "max_retry_wait": 10, "requests_per_second": 0}


class Driver:
    """One inbox vendor under the model: a sandbox world of one account, and the operator reading it."""

    vendor: ClassVar[str]
    #: the sandbox routes that read messages (where a killed run is slowed down, so the kill lands mid-run)
    read_route: ClassVar[str]
    #: whether the vendor lists conversations (a listing that lags can hide a conversation's news)
    lists: ClassVar[bool] = True
    #: whether the vendor charges credits (the budget invariant)
    credits: ClassVar[bool] = False

    def __init__(self, seed: int, root: str) -> None:
        self.root = root
        self.sandbox = Sandbox(seed=seed, sizes=self.sizes()).start()
        self.conn_env: dict[str, str] = {}
        for key, value in self.sandbox.env().items():
            conn = json.loads(value)
            conn.setdefault("extra", {}).update(FAST_RETRIES)
            self.conn_env[key] = json.dumps(self.tune(key, conn))

    def stop(self) -> None:
        self.sandbox.stop()

    def sizes(self) -> dict[str, dict[str, Any]]:
        raise NotImplementedError

    def tune(self, env_key: str, conn: dict[str, Any]) -> dict[str, Any]:
        return conn

    # ---- the world ------------------------------------------------------------------------------------
    def conversations(self) -> list[str]:
        """Conversation ids of the account, as records name them."""
        raise NotImplementedError

    def message_count(self, conversation_id: str) -> int:
        raise NotImplementedError

    def deliver(
        self,
        conversation_id: str,
        *,
        messages: int,
        at: str,
        older_by_ms: int,
        newer_by_ms: int | None = None,
        move_activity: bool,
        seconds: float,
    ) -> list[str]:
        """New messages in one conversation; returns their message ids."""
        body = {
            "conversation_ids": [conversation_id],
            "messages": messages,
            "at": at,
            "older_by_ms": older_by_ms,
            "move_activity": move_activity,
        }
        if newer_by_ms is not None:  # a late arrival with an old time (the listings order by it)
            body["newer_by_ms"] = newer_by_ms
        return self.sandbox.advance(seconds=seconds, **{self.vendor: body})[self.vendor]["messages"]

    def open_empty(self, count: int) -> list[str]:
        body = {"empty_conversations": count, "account_id": self.account_id}
        return list(self.sandbox.advance(**{self.vendor: body})[self.vendor]["created"])

    @property
    def account_id(self) -> str:
        raise NotImplementedError

    # ---- what must be exported ------------------------------------------------------------------------
    def truth(self) -> dict[str, Hashable]:
        """Every message the vendor shows, by record key: the projection :meth:`project` gives a record."""
        raise NotImplementedError

    def project(self, record: Message) -> Hashable:
        return record

    # ---- the operator ---------------------------------------------------------------------------------
    def operator(self, task_id: str, **kwargs: Any):
        raise NotImplementedError

    # ---- counters -------------------------------------------------------------------------------------
    def counters(self) -> dict[str, Any]:
        """Credits spent and reads per conversation so far (the sandbox's counters)."""
        stats = self.sandbox.stats()
        return {
            "credits": float(stats.get("credits", {}).get(self.vendor, 0)),
            "reads": dict(stats.get("reads", {})),
            "calls": {k: v for k, v in stats.get("calls", {}).items() if k.startswith(f"{self.vendor} ")},
        }

    def listing_cost(self) -> float:
        """The most a complete listing of the account may cost (credits)."""
        return 0

    def read_cost(self, conversation_id: str) -> float:
        """The most a complete read of one conversation may cost (credits)."""
        return 0

    def calls_of(self, counters: dict[str, Any]) -> int:
        return int(sum(counters["calls"].values()))


class _InboxWorldDriver(Driver):
    """ConnectSafely and LinkupAPI: both serve the shared synthetic inbox world."""

    def sizes(self) -> dict[str, dict[str, Any]]:
        return {self.vendor: {"accounts": 1, "conversations": 5, "messages": 4}}

    @property
    def account_id(self) -> str:
        return self.sandbox.truth(self.vendor)["accounts"][0]["id"]

    def conversations(self) -> list[str]:
        return [c["conversation_id"] for c in self.sandbox.truth(self.vendor)["conversations"]]

    def message_count(self, conversation_id: str) -> int:
        for c in self.sandbox.truth(self.vendor)["conversations"]:
            if c["conversation_id"] == conversation_id:
                return int(c["messages"])
        raise KeyError(conversation_id)

    def truth(self) -> dict[str, Hashable]:
        out = {}
        for raw in self.sandbox.truth(self.vendor)["messages"]:
            message = Message.from_dict(raw)
            out[message.key] = message
        return out


class ConnectSafelyDriver(_InboxWorldDriver):
    vendor = "connectsafely"
    read_route = "GET /conversations/*/messages"

    def operator(self, task_id: str, **kwargs: Any):
        from airflow_provider_linkmsg.operators.connectsafely import ConnectSafelyRetrieveMessagesOperator

        # pages of 3 messages: a conversation's history takes several pages, and ties meet page ends
        return ConnectSafelyRetrieveMessagesOperator(
            task_id=task_id, staging_path=self.root, page_size=3, max_workers=2, **kwargs
        )


class LinkupDriver(_InboxWorldDriver):
    vendor = "linkup"
    read_route = "POST /messages"
    credits = True

    def operator(self, task_id: str, **kwargs: Any):
        from airflow_provider_linkmsg.operators.linkup import LinkupRetrieveMessagesOperator

        return LinkupRetrieveMessagesOperator(
            task_id=task_id, staging_path=self.root, max_workers=2, **kwargs
        )

    def listing_cost(self) -> float:
        # pages of 50 conversations (a multiple of ten), a credit per ten listed: exactly ceil(n / 10) in all;
        # no slack (a credit more here once hid a deepened read that paid its newest page twice)
        return math.ceil(len(self.conversations()) / 10)

    def read_cost(self, conversation_id: str) -> float:
        """
        A complete read's pages of 10 (the operator's default), newest first, a credit per ten messages
        of each page and at least one: the sandbox never ends a page inside a millisecond (the cursor is
        a time), so a page grows over a tie at its end and can cost two.
        """
        times = sorted(
            (
                m["sent_at"]
                for m in self.sandbox.truth(self.vendor)["messages"]
                if m["conversation_id"] == conversation_id
            ),
            reverse=True,
        )
        cost, start = 0, 0
        while True:
            end = min(start + 10, len(times))
            while 0 < end < len(times) and times[end] == times[end - 1]:
                end += 1
            cost += max(1, math.ceil((end - start) / 10))
            if end >= len(times):
                return cost
            start = end


class LinkedApiDriver(Driver):
    vendor = "linkedapi"
    read_route = "POST /account/conversations.get"
    lists = False  # persons are given: there is no listing to lag

    ACCOUNT = "acc1"

    def sizes(self) -> dict[str, dict[str, Any]]:
        timings = {"sync_seconds": 0.0, "pending_seconds": 0.0, "get_seconds": 0.0}
        return {"linkedapi": {"persons": 5, "not_found": 0, **timings}}

    @property
    def account_id(self) -> str:
        return self.ACCOUNT

    def _account(self) -> dict[str, Any]:
        return self.sandbox.truth(self.vendor)["accounts"][self.ACCOUNT]

    @staticmethod
    def _record_id(person: str, kind: str) -> str:
        return person if kind == "st" else f"{person}#sales_navigator"

    def conversations(self) -> list[str]:
        return [self._record_id(p["person"], p["type"]) for p in self._account()["persons"]]

    def persons(self) -> list[dict[str, str]]:
        return [{"person": p["person"], "channel": p["channel"]} for p in self._account()["persons"]]

    def message_count(self, conversation_id: str) -> int:
        messages = self._account()["messages"]
        return sum(1 for m in messages if self._record_id(m["person"], m["type"]) == conversation_id)

    def truth(self) -> dict[str, Hashable]:
        out = {}
        for m in self._account()["messages"]:
            direction = "outbound" if m["sender"] == "us" else "inbound"
            conversation = self._record_id(m["person"], m["type"])
            key = f"linkedapi:{self.ACCOUNT}:{m['id']}"
            out[key] = (conversation, m["id"], to_utc_iso(m["time"]), direction, m["text"])
        return out

    def project(self, record: Message) -> Hashable:
        return (record.conversation_id, record.message_id, record.sent_at, record.direction, record.text)

    def operator(self, task_id: str, **kwargs: Any):
        from airflow_provider_linkmsg.operators.linkedapi import LinkedApiRetrieveMessagesOperator

        return LinkedApiRetrieveMessagesOperator(
            task_id=task_id,
            staging_path=self.root,
            persons=self.persons(),
            account_id=self.ACCOUNT,
            sync_missing=True,
            poll_interval=0.05,
            sync_timeout=60,
            page_size=3,
            max_workers=2,
            **kwargs,
        )


DRIVERS: dict[str, type[Driver]] = {d.vendor: d for d in (ConnectSafelyDriver, LinkupDriver, LinkedApiDriver)}


def set_env(values: dict[str, str]) -> dict[str, str | None]:
    """Set environment variables; returns the old values for :func:`restore_env`."""
    old = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    return old


def restore_env(old: dict[str, str | None]) -> None:
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
