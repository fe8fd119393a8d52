"""
Cheap async looks at an inbox, for the activity watchers: one listing page (ConnectSafely, LinkupAPI) or one
``since`` read of given persons (Linked API), over the hooks' async transport (``arequest``: the connection's
shared client, retries and rate limiter in the running event loop).

Each look returns :class:`Sighting` values: a conversation (or a message, for Linked API) and an opaque
marker of what was seen, so a watcher can tell a change of the set seen from a repeat of it. A marker is
made of normalized times (ISO-8601 UTC, whatever spelling the vendor used) and the message's text only:
presentation (a sender's display name or profile URL, which a sender may change) is left out, so the same
activity spelled another way is not taken for new.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_linkmsg.engine.windows import listing_marker
from airflow_provider_linkmsg.exceptions import LinkMsgError, LinkMsgResponseError
from airflow_provider_linkmsg.hooks.pagination import CreditBudget, check_count, per_ten
from airflow_provider_linkmsg.records import to_utc_iso

if TYPE_CHECKING:
    from airflow_provider_linkmsg.hooks.connectsafely import ConnectSafelyHook
    from airflow_provider_linkmsg.hooks.linkedapi import LinkedApiHook, Person, PersonMessages
    from airflow_provider_linkmsg.hooks.linkup import LinkupHook


@dataclass(frozen=True)
class Sighting:
    """
    One thing a look saw.

    :param conversation: the record's conversation id.
    :param key: what is tracked (the conversation id; ``conversation|message id`` for Linked API).
    :param marker: what the look showed of it (a listing marker; a message's time).
    :param at: its activity time (ISO-8601 UTC), when known.
    """

    conversation: str
    key: str
    marker: str
    at: str | None


def _iso(value: Any) -> str | None:
    return to_utc_iso(value) if value not in (None, "") else None


# ---- ConnectSafely ----------------------------------------------------------------------------------------
async def connectsafely_first_page(hook: ConnectSafelyHook, account_id: str, count: int) -> list[Sighting]:
    """
    The first page of ``GET /conversations`` (most recent activity first, as the listing is served).

    :param hook: the vendor hook (its async transport).
    :param account_id: 24-hex account id.
    :param count: conversations on the page, 1 to 100.
    """
    from airflow_provider_linkmsg.hooks.connectsafely import MAX_COUNT
    from airflow_provider_linkmsg.schemas import connectsafely as schema

    hook.check_account_id(account_id)
    check_count(count, maximum=MAX_COUNT, vendor=hook.vendor)
    response = await hook.arequest("GET", "/conversations", params={"accountId": account_id, "count": count})
    data = response.data
    hook.check(schema.ConversationsPage, data, route="GET /conversations")
    out = []
    for item in data.get("conversations") or []:
        latest = item.get("latestMessage") or {}
        activity = item.get("lastActivityAt") or latest.get("sentAt")
        marker = listing_marker(_iso(activity), _iso(latest.get("sentAt")), latest.get("text"))
        urn = item["conversationUrn"]
        out.append(Sighting(urn, urn, marker, _iso(activity)))
    return out


# ---- LinkupAPI ----------------------------------------------------------------------------------------------
async def linkup_first_page(
    hook: LinkupHook, account_id: str, count: int, budget: CreditBudget
) -> list[Sighting]:
    """
    The first page of ``list_inbox``: ceil(count / 10) credits, reserved in ``budget`` before it is sent
    (a call that does not fit raises :class:`~airflow_provider_linkmsg.exceptions.LinkMsgBudgetExceededError`
    unsent); what the vendor reports, or the estimate when the answer is lost, is settled in it.

    :param hook: the vendor hook (its async transport).
    :param account_id: ``acc_...``.
    :param count: conversations on the page, 1 to 100.
    :param budget: the credits this call may take.
    """
    from airflow_provider_linkmsg.hooks.linkup import MAX_COUNT
    from airflow_provider_linkmsg.schemas import linkup as schema

    hook.check_account_id(account_id)
    check_count(count, maximum=MAX_COUNT, vendor=hook.vendor)
    estimate, what, route = per_ten(count), f"list_inbox on {account_id}", "POST /messages list_inbox"
    body = {"account_id": account_id, "action": "list_inbox", "params": {"count": count}}
    budget.reserve(estimate, what)
    credits: float = 0
    try:
        response = await hook.arequest(
            "POST", "/messages", json_body=body, on_lost_answer=lambda: budget.charge_lost(estimate, what)
        )
        data, credits = hook.open_envelope(response, "list_inbox", estimate=estimate)
        try:
            hook.check(schema.InboxData, data, route=route, prefix="data")
        except LinkMsgResponseError:
            credits = estimate  # the vendor may have charged: count the most it could
            raise
    except LinkMsgError as exc:
        credits = getattr(exc, "credits", credits)
        raise
    finally:
        budget.settle(estimate, credits)
    out = []
    for item in data.get("conversations") or []:
        last = item.get("last_message") or {}
        time = last.get("time")
        marker = listing_marker(_iso(time), last.get("text")) if last else "empty"
        conversation = item["conversation_id"]
        out.append(Sighting(conversation, conversation, marker, _iso(time)))
    return out


# ---- Linked API ---------------------------------------------------------------------------------------------
async def linkedapi_since(
    hook: LinkedApiHook, persons: Sequence[tuple[Person, str | None]]
) -> list[PersonMessages]:
    """
    Messages of synchronized conversations since a time each (free calls): one ``/conversations/poll``
    (current API) or ``conversations.get`` in ``long`` result handling (seed API) for all ``persons``,
    through the hook's API adapters (:meth:`CurrentApi.apoll`, :meth:`SeedApi.aget`). On the current API,
    persons named in a ``conversationsNotSynced`` error are set aside and the rest read again.

    Every answer is checked before it is read: the envelope (``PollAnswer`` / ``SeedAnswer``) and each
    message (``Message``), so a malformed answer is a :class:`LinkMsgResponseError`, never a ``KeyError``.

    :param hook: the vendor hook (its async transport).
    :param persons: ``(person, since)`` pairs, ``since`` ISO-8601 or ``None`` (the whole history).
    """
    from airflow_provider_linkmsg.hooks.linkedapi_model import since_param
    from airflow_provider_linkmsg.schemas import linkedapi as schema

    pairs = [(p, since_param(s)) for p, s in persons]
    await hook.aconnect()
    if hook.api == "seed":
        results = await hook.seed.aget(pairs)
    else:
        results = await hook.current.apoll([p for p, _ in pairs], dict(pairs))
    route = "POST /account/conversations.get" if hook.api == "seed" else "POST /conversations/poll"
    for result in results:
        for message in result.messages:
            hook.check(schema.Message, message, route=route, prefix="messages[]")
    return results
