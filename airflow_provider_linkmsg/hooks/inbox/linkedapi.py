"""Linked API's inbox for the engine: each person's conversation, read in batched get/poll calls."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from airflow_provider_linkmsg.engine.windows import Conversation, ReadWindow
from airflow_provider_linkmsg.hooks.linkedapi import RECORD_CHANNELS, Person, PersonMessages

if TYPE_CHECKING:
    from airflow_provider_linkmsg.hooks.linkedapi import LinkedApiHook
    from airflow_provider_linkmsg.records import Message


class NotRead(Exception):
    """A person whose messages could not be read (not synchronized, not found ...): reported, not fatal."""

    def __init__(self, result: PersonMessages) -> None:
        super().__init__(f"{result.error}: {result.message or ''}".rstrip(": "))
        self.result = result


class LinkedApiInbox:
    """
    Serve the inbox engine's one-conversation-at-a-time reads from batched calls.

    The first read of a batch fetches the whole batch with one ``conversations.get`` or
    ``/conversations/poll`` call (under a lock, so concurrent readers of the same batch wait for it);
    each read then takes its own person's share. Persons that could not be read are sorted into
    ``not_synced``, ``not_found`` and ``failed``.

    :param hook: the vendor hook.
    :param persons: the persons to read, in the order the engine reads them.
    :param account: the records' account id.
    :param batch_size: persons per call.
    :param result_handling: seed API only: ``long`` or ``reslink``.
    :param include_raw: keep the vendor's JSON with each message.
    """

    def __init__(
        self,
        hook: LinkedApiHook,
        persons: list[Person],
        account: str,
        *,
        batch_size: int = 100,
        result_handling: str | None = None,
        include_raw: bool = False,
    ) -> None:
        self.hook = hook
        self.persons = persons
        self.account = account
        self.result_handling = result_handling
        self.include_raw = include_raw
        size = batch_size
        self.batches = [persons[i : i + size] for i in range(0, len(persons), size)]
        self.batch_of = {p.conversation_id: i // size for i, p in enumerate(persons)}
        self.person_of = {p.conversation_id: p for p in persons}
        self.locks = [threading.Lock() for _ in self.batches]
        self.fetched: dict[int, BaseException | None] = {}
        self.results: dict[str, PersonMessages] = {}
        #: the ``since`` of a conversation id (from its watermark), set once the engine exists
        self.since: Callable[[str], str | None] = lambda conversation_id: None
        self.not_synced: list[Person] = []
        self.not_found: list[Person] = []
        self.failed: list[Person] = []
        self.read: list[Person] = []

    def list_conversations(self) -> list[Conversation]:
        return [
            Conversation(p.conversation_id, channel=RECORD_CHANNELS[p.channel], info={"person": p.key})
            for p in self.persons
        ]

    def _fetch(self, index: int) -> None:
        pairs = [(p, self.since(p.conversation_id)) for p in self.batches[index]]
        for result in self.hook.get_messages(
            pairs, batch_size=len(pairs), result_handling=self.result_handling
        ):
            self.results[result.person.conversation_id] = result

    def read_conversation(self, conversation: Conversation, window: ReadWindow) -> list[Message]:
        index = self.batch_of[conversation.id]
        with self.locks[index]:
            if index not in self.fetched:
                try:
                    self._fetch(index)
                    self.fetched[index] = None
                except BaseException as exc:  # every reader of this batch gets the same error, no refetch
                    self.fetched[index] = exc
            if self.fetched[index] is not None:  # the batch's call failed past its retries
                self.failed.append(self.person_of[conversation.id])
                raise self.fetched[index]
            result = self.results.pop(conversation.id)
        if result.error is not None:
            group = self.not_synced if result.not_synced else self.failed
            group = self.not_found if result.error == "personNotFound" else group
            group.append(result.person)
            raise NotRead(result)
        try:
            messages = [
                self.hook.to_message(
                    raw, person=result.person, account_id=self.account, include_raw=self.include_raw
                )
                for raw in result.messages
            ]
        except Exception:
            self.failed.append(result.person)  # a malformed answer fails the task; none of it is staged
            raise
        self.read.append(result.person)
        return messages

    def usage(self) -> dict[str, float]:
        return {"api_calls": self.hook.api_calls, "credits": 0}
