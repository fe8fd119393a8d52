"""
A synthetic LinkedIn inbox shared by the inbox vendors of the sandbox.

:class:`InboxWorld` holds accounts → conversations → messages, generated deterministically from the
vendor app's seeded ``rng`` and its size options, and makes new messages arrive when time passes. It knows
nothing of any vendor's JSON: each vendor app subclasses it to name things its own way
(:meth:`InboxWorld.account_id`, :meth:`InboxWorld.conversation_id`, :meth:`InboxWorld.message_id`) and
renders the objects in its own shapes.

Size options (``Sandbox(sizes={vendor: {...}})``):

* ``accounts`` (2): LinkedIn accounts.
* ``conversations`` (12): conversations per account.
* ``messages`` (8): average messages per conversation (each has between half and 1.5 times that, >= 1).
* ``sales_nav`` (0.25): share of the Sales Navigator threads of an account that has Sales Navigator
  (the first account has it when the vendor supports it).
* ``attachments`` (0.1): share of messages with an attachment.

Timestamps are epoch milliseconds, unique within a conversation, all before the sandbox clock's start
until time passes. Time passing (:meth:`InboxWorld.add_messages`) can break both on purpose: a message can
arrive late, with the same time as the newest one or an older one, and the listing can keep showing a
conversation's old activity (a lagging vendor listing); :meth:`InboxWorld.add_empty` opens conversations
with no message yet.
"""

from __future__ import annotations

import base64
import bisect
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_linkmsg.records import to_utc_iso
from airflow_provider_linkmsg.sandbox.core import EPOCH_START, VendorApp

DAY_MS = 86_400_000
_FIRST = ["Ada", "Bob", "Chen", "Dana", "Emeka", "Fatima", "Gustav", "Hana", "Ivan", "Jade", "Kofi", "Lea"]
_LAST = ["Lovelace", "Prospect", "Wei", "Okafor", "Novak", "Haddad", "Berg", "Sato", "Petrov", "Moreau"]
_TITLES = ["CTO", "Head of Sales", "Founder", "VP Marketing", "Recruiter", "Data Engineer", "COO"]
_PHRASES = [
    "Hi {name}, thanks for connecting.",
    "Would you be open to a quick call next week?",
    "Sounds good, talk soon!",
    "Here is the deck we discussed.",
    "Thursday works for me.",
    "Could you share more about your pipeline?",
    "Happy to help: what does your team use today?",
    "Great meeting you at the conference, {name}.",
]


@dataclass
class Person:
    """A LinkedIn member: the owner of an account or the other side of a conversation."""

    slug: str
    first_name: str
    last_name: str
    headline: str
    profile_token: str  # the ``ACoAA...`` part of ``urn:li:fsd_profile:...``

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    @property
    def profile_url(self) -> str:
        return f"https://www.linkedin.com/in/{self.slug}/"


@dataclass
class WorldMessage:
    """One message; ``outbound`` when the account owner sent it."""

    id: str
    sent_ms: int
    outbound: bool
    text: str
    kind: str = "TEXT"
    attachments: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class WorldConversation:
    """
    One conversation of an account with one other member; messages are sorted oldest first.

    What the vendor's listing shows (:attr:`listed_ms`, :attr:`listed_message`) follows the newest message
    unless ``activity_ms`` / ``shown`` say otherwise: a late message whose arrival moved the activity past
    its own time, a listing that lags behind the messages, or an empty conversation.
    """

    id: str
    account: WorldAccount
    person: Person
    sales_nav: bool
    token: str
    labels: list[str] = field(default_factory=list)
    unread: int = 0
    messages: list[WorldMessage] = field(default_factory=list)
    activity_ms: int | None = None  # the listed activity when it is not the newest message's time
    shown: WorldMessage | None = None  # the listed latest message when it is not the newest one

    @property
    def last_ms(self) -> int:
        return self.messages[-1].sent_ms if self.messages else 0

    @property
    def listed_ms(self) -> int:
        """The activity time the vendor's listing shows (and orders by)."""
        return self.activity_ms if self.activity_ms is not None else self.last_ms

    @property
    def listed_message(self) -> WorldMessage | None:
        """The latest message the vendor's listing shows (``None`` for an empty conversation)."""
        if self.shown is not None:
            return self.shown
        return self.messages[-1] if self.messages else None

    def sender(self, message: WorldMessage) -> Person:
        return self.account.owner if message.outbound else self.person


@dataclass
class WorldAccount:
    """A LinkedIn account connected to the vendor; ``owner`` is the member who owns it."""

    id: str
    owner: Person
    sales_nav: bool
    active: bool = True
    conversations: list[WorldConversation] = field(default_factory=list)


class InboxWorld:
    """
    Accounts, conversations and messages, deterministic from ``rng`` and ``options``.

    :param rng: the vendor app's seeded random generator (the only source of randomness).
    :param options: the vendor's size options (see the module docstring).
    :param sales_nav: whether the vendor serves Sales Navigator threads.
    """

    def __init__(self, rng: random.Random, options: Mapping[str, Any], *, sales_nav: bool = False) -> None:
        self.rng = rng
        self.options = options
        self.supports_sales_nav = sales_nav
        self.accounts: list[WorldAccount] = []
        self.by_id: dict[str, WorldConversation] = {}
        self._serial = 0
        for index in range(int(options.get("accounts", 2))):
            self.accounts.append(self._account(index))

    # ---- naming: vendor apps override these -----------------------------------------------------------
    def account_id(self, token: str) -> str:
        return token[:24]

    def conversation_id(self, account: WorldAccount, token: str, sales_nav: bool) -> str:
        return f"urn:li:msg_conversation:(urn:li:fsd_profile:{account.owner.profile_token},2-{token})"

    def message_id(self, conversation: WorldConversation, token: str) -> str:
        owner = conversation.account.owner.profile_token
        return f"urn:li:msg_message:(urn:li:fsd_profile:{owner},2-{token})"

    # ---- generation -----------------------------------------------------------------------------------
    def token(self, nbytes: int = 12) -> str:
        """A URL-safe base64 token (no ``/``, so it fits in one path segment)."""
        return base64.urlsafe_b64encode(self.rng.randbytes(nbytes)).decode().rstrip("=")

    def hex(self, digits: int) -> str:
        return f"{self.rng.getrandbits(digits * 4):0{digits}x}"

    def _person(self) -> Person:
        self._serial += 1
        first, last = self.rng.choice(_FIRST), self.rng.choice(_LAST)
        return Person(
            slug=f"{first}-{last}-{self._serial}".lower(),
            first_name=first,
            last_name=last,
            headline=self.rng.choice(_TITLES),
            profile_token=f"ACoAA{self.token(9)}",
        )

    def _account(self, index: int) -> WorldAccount:
        owner = self._person()
        account = WorldAccount(
            id=self.account_id(self.hex(24)),
            owner=owner,
            sales_nav=self.supports_sales_nav and index == 0,
        )
        end_ms = int(EPOCH_START * 1000) - self.rng.randrange(DAY_MS)
        for _ in range(int(self.options.get("conversations", 12))):
            account.conversations.append(self._conversation(account, end_ms))
        return account

    def _conversation(self, account: WorldAccount, end_ms: int) -> WorldConversation:
        sales_nav = account.sales_nav and self.rng.random() < float(self.options.get("sales_nav", 0.25))
        token = self.token()
        conversation = WorldConversation(
            id=self.conversation_id(account, token, sales_nav),
            account=account,
            person=self._person(),
            sales_nav=sales_nav,
            token=token,
            labels=["hot-lead"] if self.rng.random() < 0.2 else [],
        )
        average = max(1, int(self.options.get("messages", 8)))
        count = self.rng.randint(max(1, average // 2), max(1, average + average // 2))
        last = end_ms - self.rng.randrange(60 * DAY_MS)
        times = sorted({last - self.rng.randrange(30 * DAY_MS) for _ in range(count - 1)} | {last})
        for sent_ms in times:
            self._add(conversation, sent_ms, first=not conversation.messages)
        conversation.unread = self.rng.randint(0, 2) if not conversation.messages[-1].outbound else 0
        self.by_id[conversation.id] = conversation
        return conversation

    def _add(self, conversation: WorldConversation, sent_ms: int, *, first: bool = False) -> WorldMessage:
        """A new message at ``sent_ms``, in time order (after the messages of the same millisecond)."""
        outbound = self.rng.random() < 0.45
        kind = "TEXT"
        if first and self.rng.random() < 0.3:
            kind = "INVITATION"
        elif self.rng.random() < 0.05:
            kind = "SHARED_POST"
        attachments = []
        if self.rng.random() < float(self.options.get("attachments", 0.1)):
            attachments.append(
                {
                    "name": f"deck-{self.hex(4)}.pdf",
                    "mediaType": "application/pdf",
                    "byteSize": self.rng.randrange(10_000, 2_000_000),
                }
            )
        text = self.rng.choice(_PHRASES).format(name=conversation.person.first_name)
        message = WorldMessage(
            id=self.message_id(conversation, self.token()),
            sent_ms=sent_ms,
            outbound=outbound,
            text=f"{text} [{len(conversation.messages) + 1}]",
            kind=kind,
            attachments=attachments,
        )
        if conversation.messages and sent_ms < conversation.last_ms:
            index = bisect.bisect_right([m.sent_ms for m in conversation.messages], sent_ms)
            conversation.messages.insert(index, message)
        else:
            conversation.messages.append(message)
        return message

    # ---- queries --------------------------------------------------------------------------------------
    def account(self, account_id: str) -> WorldAccount | None:
        return next((a for a in self.accounts if a.id == account_id), None)

    def conversations(self, accounts: Sequence[WorldAccount] | None = None) -> Iterator[WorldConversation]:
        for account in accounts if accounts is not None else self.accounts:
            yield from account.conversations

    def newest_first(self, conversations: Iterator[WorldConversation]) -> list[WorldConversation]:
        """Conversations by listed activity, newest first (ties by id, so the order is total)."""
        return sorted(conversations, key=lambda c: (-c.listed_ms, c.id))

    # ---- time passes ----------------------------------------------------------------------------------
    def add_messages(
        self,
        now_ms: int,
        *,
        conversations: int = 0,
        messages: int = 1,
        conversation_ids: Sequence[str] | None = None,
        account_id: str | None = None,
        at: str = "newer",
        older_by_ms: int = 60_000,
        newer_by_ms: int | None = None,
        move_activity: bool = True,
    ) -> dict[str, Any]:
        """
        New messages arrive: ``messages`` each in ``conversations`` conversations chosen by the rng.

        :param now_ms: the sandbox clock (the time they arrive).
        :param conversation_ids: these conversations instead of a random choice.
        :param account_id: choose only among this account's conversations.
        :param at: the new messages' time against the conversation's newest message before the call:
            ``newer`` (after it and at most ``now_ms``), ``equal`` (the same millisecond) or ``older``
            (``older_by_ms`` before it). An empty conversation counts ``now_ms`` as its newest.
        :param newer_by_ms: with ``newer``, this long after the newest (at most ``now_ms``) instead of about
            ``now_ms``: a message that reaches the vendor long after its time, in an old conversation.
        :param move_activity: whether the listing shows the arrival: the newest message's time when it is
            newer, else the arrival time (``now_ms``); in any case past the activity listed before, with
            the new message as the latest. ``False`` keeps the listed activity, latest message and position
            as they were (a lagging listing); reads, counts and ``since`` show the new messages anyway.
        :return: ``{"changed": [conversation ids], "messages": [new message ids]}``.
        """
        if at not in ("newer", "equal", "older"):
            raise ValueError(f"at must be newer, equal or older, got {at!r}")
        if conversation_ids:
            chosen = [self.by_id[c] for c in conversation_ids]
        else:
            pool = [c for c in self.conversations() if account_id in (None, c.account.id)]
            chosen = self.rng.sample(pool, min(int(conversations), len(pool)))
        added: list[str] = []
        for conversation in chosen:
            listed_ms, listed = conversation.listed_ms, conversation.listed_message
            newest = conversation.last_ms if conversation.messages else now_ms
            message = None
            for i in range(int(messages)):
                if at == "newer" and newer_by_ms is not None:
                    sent_ms = max(newest + 1, min(newest + int(newer_by_ms), now_ms)) + i
                elif at == "newer":
                    sent_ms = max(
                        conversation.last_ms + 1 + self.rng.randrange(5_000), now_ms - (messages - i) * 1000
                    )
                else:
                    sent_ms = newest if at == "equal" else newest - int(older_by_ms)
                message = self._add(conversation, sent_ms)
                if not message.outbound:
                    conversation.unread += 1
                added.append(message.id)
            if message is None:
                continue
            if not move_activity:
                conversation.activity_ms, conversation.shown = listed_ms, listed
                continue
            # the listing moves: never backward, and always past what it showed before
            activity = max(conversation.last_ms if at == "newer" else now_ms, listed_ms + 1)
            conversation.activity_ms = None if activity == conversation.last_ms else activity
            conversation.shown = None if message is conversation.messages[-1] else message
        return {"changed": [c.id for c in chosen], "messages": added}

    def add_empty(self, now_ms: int, count: int, *, account_id: str | None = None) -> dict[str, Any]:
        """
        ``count`` new conversations with no message yet, opened at ``now_ms`` (their listed activity).

        :param account_id: in this account; else each in an account chosen by the rng.
        :return: ``{"created": [conversation ids]}``.
        """
        if account_id is not None and self.account(account_id) is None:
            raise KeyError(f"no account {account_id!r}")
        created = []
        for _ in range(int(count)):
            account = self.account(account_id) if account_id else self.rng.choice(self.accounts)
            sales_nav = account.sales_nav and self.rng.random() < float(self.options.get("sales_nav", 0.25))
            token = self.token()
            conversation = WorldConversation(
                id=self.conversation_id(account, token, sales_nav),
                account=account,
                person=self._person(),
                sales_nav=sales_nav,
                token=token,
                activity_ms=now_ms,
            )
            account.conversations.append(conversation)
            self.by_id[conversation.id] = conversation
            created.append(conversation.id)
        return {"created": created}


def take_page(
    remaining: Sequence[Any],
    count: int,
    quirks: Mapping[str, Any],
    tie: Callable[[Any], Any] | None = None,
) -> tuple[list[Any], bool]:
    """
    The page to serve from ``remaining`` (already past the cursor) and whether more items remain.

    ``quirks["page_cap"]`` serves at most that many items whatever ``count`` asked: short pages that are not
    the last, as vendors do that merge several upstream calls.

    :param tie: the cursor value of an item: a page never ends between two items with the same one (the
        next page starts strictly past the cursor, so it would skip the rest), it grows to take them all.
    """
    size = min(count, int(quirks.get("page_cap") or count))
    page = list(remaining[:size])
    if tie is not None and page:
        last = tie(page[-1])
        while len(page) < len(remaining) and tie(remaining[len(page)]) == last:
            page.append(remaining[len(page)])
    return page, len(remaining) > len(page)


def next_cursor(
    page: Sequence[Any], more: bool, request_cursor: str | None, quirks: Mapping[str, Any], token: Any
) -> tuple[str | None, bool]:
    """
    The cursor to return with ``page`` and the vendor's "has more" flag, with the configured quirks.

    Quirks (``pagination`` option of a vendor app): ``repeat_cursor`` hands back the request's cursor
    (a vendor bug that loops a naive client), ``empty_tail`` claims more after the last page so that the
    next page is empty but still carries a cursor, ``cursor_on_last_page`` keeps a cursor on the last page
    while saying there is no more.

    :param token: makes the cursor of the last item of ``page``.
    """
    if not page:
        return (request_cursor, True) if quirks.get("empty_tail") and request_cursor else (None, False)
    if more:
        if quirks.get("repeat_cursor") and request_cursor:
            return request_cursor, True
        return token(page[-1]), True
    if quirks.get("empty_tail"):
        return token(page[-1]), True
    if quirks.get("cursor_on_last_page"):
        return token(page[-1]), False
    return None, False


class InboxApp(VendorApp):
    """
    A vendor app whose data is an :class:`InboxWorld`: the ground truth and "time passes" are shared.

    Subclasses set ``world`` in ``__init__`` and say how a message looks once normalized
    (:meth:`sender_id`, :meth:`message_type`).
    """

    world: InboxWorld

    def sender_id(self, person: Person) -> str:
        """The ``sender_id`` a client should record for ``person``."""
        return person.slug

    def message_type(self, message: WorldMessage) -> str:
        return message.kind

    def truth(self) -> dict[str, Any]:
        """
        Accounts, conversations and every message, messages in :class:`~airflow_provider_linkmsg.records.Message`
        field form (``Message.from_dict`` takes them as they are).
        """
        accounts, conversations, messages = [], [], []
        for account in self.world.accounts:
            accounts.append({"id": account.id, "sales_nav": account.sales_nav, "owner": account.owner.slug})
        for c in self.world.conversations():
            channel = "sales_navigator" if c.sales_nav else "standard"
            conversations.append(
                {
                    "account_id": c.account.id,
                    "conversation_id": c.id,
                    "last_activity_ms": c.last_ms,
                    **({"listed_activity_ms": c.listed_ms} if c.listed_ms != c.last_ms else {}),
                    "channel": channel,
                    "messages": len(c.messages),
                    "unread": c.unread,
                    "labels": list(c.labels),
                    "participant": self.sender_id(c.person),
                }
            )
            for m in c.messages:
                sender = c.sender(m)
                messages.append(
                    {
                        "vendor": self.name,
                        "account_id": c.account.id,
                        "conversation_id": c.id,
                        "message_id": m.id,
                        "sent_at": to_utc_iso(m.sent_ms),
                        "direction": "outbound" if m.outbound else "inbound",
                        "sender_id": self.sender_id(sender),
                        "sender_name": sender.name,
                        "text": m.text,
                        "message_type": self.message_type(m),
                        "has_attachments": bool(m.attachments),
                        "channel": channel,
                    }
                )
        return {"accounts": accounts, "conversations": conversations, "messages": messages}

    def advance(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """
        New messages arrive: ``{"conversations": k, "messages": m}``, or ``conversation_ids`` instead of k
        random ones, optionally only in ``account_id``; ``at`` (``newer``, ``equal`` or ``older``, with
        ``older_by_ms``) and ``move_activity`` as :meth:`InboxWorld.add_messages` says.
        ``{"empty_conversations": k}`` opens k conversations with no message. Returns the changed
        conversations and new message ids (and ``created``, the new empty conversations, when asked).
        """
        now_ms = int(self.sandbox.now() * 1000)
        out: dict[str, Any] = {"changed": [], "messages": []}
        if body.get("conversations") or body.get("conversation_ids"):
            out = self.world.add_messages(
                now_ms,
                conversations=int(body.get("conversations") or 0),
                messages=int(body.get("messages", 1)),
                conversation_ids=body.get("conversation_ids"),
                account_id=body.get("account_id"),
                at=str(body.get("at") or "newer"),
                older_by_ms=int(body.get("older_by_ms", 60_000)),
                newer_by_ms=body.get("newer_by_ms"),
                move_activity=bool(body.get("move_activity", True)),
            )
        if body.get("empty_conversations"):
            created = self.world.add_empty(
                now_ms, int(body["empty_conversations"]), account_id=body.get("account_id")
            )
            out.update(created)
        return out
