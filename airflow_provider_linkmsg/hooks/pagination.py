"""
Guarded cursor pagination, a credit budget, and the input checks shared by the inbox hooks.

:func:`paginate` follows a vendor's cursors one page at a time and stops when the vendor says the list is
over: no cursor, ``hasMore`` false, or an empty page. It never takes a short page for the last one: vendors
that merge upstream calls return fewer items than asked in the middle of a list. A vendor that misbehaves is
a :class:`LinkMsgResponseError` (the caller stages nothing of that list; the next run reads it again):

- a cursor it has already followed (a loop: ending there would silently drop the rest of the list);
- one id twice in one page, or (for lists of messages, ``immutable``) an id that comes back on a later page
  with different content;
- :data:`MAX_STALLED_PAGES` pages in a row that bring no id it has not seen, or, over the last
  :data:`PROGRESS_WINDOW` pages, less than :data:`MIN_NEW_SHARE` of the items new (a vendor that hands out a
  fresh cursor with the same items, or the same items plus one: each page may be paid);
- more distinct ids than the vendor's own total (``Page.meta["total"]``) plus :func:`total_slack`;
- more than ``max_pages`` pages.

:class:`CreditBudget` lets a hook refuse, before sending it, a call whose cost could take the spend past
a limit.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any, Generic, TypeVar

from airflow_provider_linkmsg.exceptions import (
    LinkMsgBudgetExceededError,
    LinkMsgResponseError,
    LinkMsgValidationError,
)

T = TypeVar("T")
log = logging.getLogger(__name__)

#: pages followed before :func:`paginate` suspects a loop and raises
DEFAULT_MAX_PAGES = 10_000
#: pages in a row that bring nothing new (every item already seen) before :func:`paginate` raises
MAX_STALLED_PAGES = 3
#: pages over which :func:`paginate` measures the share of new ids
PROGRESS_WINDOW = 5
#: the least share of new ids over :data:`PROGRESS_WINDOW` pages (a loop that adds one id a page is below it)
MIN_NEW_SHARE = 0.75


def total_slack(total: int) -> int:
    """Ids allowed past a vendor's reported total (messages that arrive during the read): 10 % and at least 10."""
    return max(10, total // 10)


#: one encoder for every fingerprint (``json.dumps`` with options builds one per call)
_CANONICAL = json.JSONEncoder(sort_keys=True, default=str, separators=(",", ":"))
#: the C encoder ``_CANONICAL.encode`` builds on every call, built once (``None`` marks: a vendor's parsed
#: JSON holds no cycle; the same text)
_C_CANONICAL = (
    c_make_encoder(None, str, encode_basestring_ascii, None, ":", ",", True, False, True)
    if c_make_encoder is not None
    else None
)


def _fingerprint(item: Any) -> str:
    """A 12-byte digest of ``item``'s canonical JSON (sorted keys): equal for equal content, whatever the order."""
    if _C_CANONICAL is not None and type(item) is dict:
        text = "".join(_C_CANONICAL(item, 0))
    else:
        text = _CANONICAL.encode(item)
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


@dataclass
class Page(Generic[T]):
    """
    One page of a list.

    :param items: the page's items, in the vendor's order.
    :param cursor: what to send to get the next page (``None`` or ``""``: none).
    :param has_more: the vendor's own "more pages" flag, ``None`` when it sends none.
    :param meta: anything else of the response a caller may want (credits, totals ...).
    :param stop_reason: set by :func:`paginate` on the last page it yields: ``no_cursor``, ``has_more_false``
        or ``empty_page``.
    """

    items: list[T]
    cursor: str | None = None
    has_more: bool | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    stop_reason: str | None = None

    @property
    def last(self) -> bool:
        return self.stop_reason is not None


def paginate(
    fetch: Callable[[str | None], Page[T]],
    *,
    cursor: str | None = None,
    max_pages: int | None = DEFAULT_MAX_PAGES,
    what: str = "list",
    vendor: str | None = None,
    item_key: Callable[[T], Any] | None = None,
    max_stalled_pages: int = MAX_STALLED_PAGES,
    immutable: bool = False,
) -> Iterator[Page[T]]:
    """
    Yield pages from ``fetch(cursor)`` until the list ends; lazily, so a caller that stops early saves calls.

    The end is: a page without a cursor, ``has_more`` false, or an empty page (even one with a cursor).
    A cursor that was already followed is a :class:`LinkMsgResponseError`, not an end. The end is never
    inferred from a page shorter than asked.

    :param fetch: gets the page at a cursor (``None``: the first page).
    :param cursor: where to start.
    :param max_pages: raise :class:`LinkMsgResponseError` rather than fetch more pages than this (``None``:
        no limit); a guard against a vendor that hands out endless new cursors.
    :param what: names the list in messages, e.g. ``"messages of urn:li:..."``.
    :param vendor: names the vendor in errors.
    :param item_key: an item's id; with it, duplicate ids, changed content, pages without progress and a
        count past ``meta["total"]`` raise :class:`LinkMsgResponseError` (see the module docstring; an id and a
        12-byte digest of its item are kept, not items, but for the last page's until the next one comes).
    :param max_stalled_pages: see ``item_key``.
    :param immutable: the items do not change (messages): an id seen again with other content is an error.
        Conversations do change (new activity), so a listing leaves it off. A page's digests are taken when
        the next page comes (a list of one page takes none), so its items must not be changed in place
        before then.
    """
    seen = {cursor} if cursor else set()
    fetched = stalled = 0
    digests: dict[Any, str] = {}
    # (id, item) of the last page whose digests are not taken yet: a digest only matters once a later page
    # comes (a duplicate within a page is caught by its id), so a list of one page (most reads) takes none
    held: list[tuple[Any, Any]] = []
    window: list[tuple[int, int]] = []  # (items, new ids) of the last pages

    def fail(problem: str) -> LinkMsgResponseError:
        return LinkMsgResponseError(
            f"{what}: {problem}; stopped after {fetched} page(s). Nothing of this list was staged; the next "
            "run reads it again.",
            vendor=vendor,
        )

    while True:
        if max_pages is not None and fetched >= max_pages:
            raise LinkMsgResponseError(
                f"{what}: still not at the end after {max_pages} pages; the vendor may be looping on cursors. "
                "Raise max_pages if the list really is this long.",
                vendor=vendor,
            )
        page = fetch(cursor)
        fetched += 1
        following = page.cursor or None
        if item_key is not None and page.items:
            if held:
                for key, item in held:
                    digests[key] = _fingerprint(item)
                held = []
            new = _check_items(page, item_key, digests, fail, held if immutable else None)
            stalled = 0 if new else stalled + 1
            if stalled >= max_stalled_pages:
                raise fail(
                    f"{stalled} pages in a row brought nothing new (every item already seen) while the vendor "
                    "kept handing out new cursors"
                )
            window = [*window[-(PROGRESS_WINDOW - 1) :], (len(page.items), new)]
            shown, fresh = sum(n for n, _ in window), sum(k for _, k in window)
            if len(window) == PROGRESS_WINDOW and fresh < MIN_NEW_SHARE * shown:
                raise fail(
                    f"the last {PROGRESS_WINDOW} pages brought {fresh} new id(s) among {shown} items (less than "
                    f"{MIN_NEW_SHARE:.0%}) while the vendor kept handing out new cursors"
                )
            total = page.meta.get("total")
            known = isinstance(total, int) and not isinstance(total, bool)
            if known and len(digests) > total + total_slack(total):
                raise fail(
                    f"{len(digests)} distinct ids read where the vendor reports {total} in all (allowed: "
                    f"{total_slack(total)} more, for items that arrive during the read)"
                )
        if not page.items:
            page.stop_reason = "empty_page"
        elif page.has_more is False:
            page.stop_reason = "has_more_false"
        elif following is None:
            page.stop_reason = "no_cursor"
        elif following in seen:
            raise fail(
                f"the vendor returned cursor {following!r} a second time (a loop); ending the list there could "
                "drop the rest of it"
            )
        yield page
        if page.stop_reason:
            return
        seen.add(following)
        cursor = following


def _check_items(
    page: Page[Any],
    item_key: Callable[[Any], Any],
    digests: dict[Any, str],
    fail: Callable[[str], LinkMsgResponseError],
    held: list[tuple[Any, Any]] | None,
) -> int:
    """
    Record the page's ids in ``digests``; the number of new ones. Raises on a duplicate or changed item.

    :param held: for immutable items, where the page's new ``(id, item)`` go: their digests are taken
        when a later page comes (:func:`paginate`); an id seen on an earlier page is compared at once.
        ``None``: content is not compared.
    """
    in_page: set[Any] = set()
    new = 0
    for item in page.items:
        key = item_key(item)
        if key in in_page:
            raise fail(f"id {key!r} appears twice in one page")
        in_page.add(key)
        if key not in digests:
            digests[key] = ""
            new += 1
            if held is not None:
                held.append((key, item))
        elif held is not None and digests[key] != _fingerprint(item):
            raise fail(f"id {key!r} came back on a later page with different content")
    return new


def paginate_messages(
    fetch: Callable[[str | None], Page[dict[str, Any]]],
    *,
    conversation: str,
    id_field: str,
    cursor: str | None = None,
    max_pages: int | None = DEFAULT_MAX_PAGES,
    vendor: str | None = None,
) -> Iterator[Page[dict[str, Any]]]:
    """
    :func:`paginate` for one conversation's messages: items keyed by their ``id_field``, and ``immutable``
    (a message seen again with other content is an error).

    :param conversation: names the conversation in messages (``"messages of <conversation>"``).
    :param id_field: the vendor's field holding a message's id.
    """
    return paginate(
        fetch,
        cursor=cursor,
        max_pages=max_pages,
        what=f"messages of {conversation}",
        vendor=vendor,
        item_key=lambda item: item.get(id_field),
        immutable=True,
    )


def page_items(pages: Iterable[Page[T]]) -> Iterator[T]:
    """The items of ``pages``, one at a time."""
    for page in pages:
        yield from page.items


class CreditBudget:
    """
    A thread-safe spending limit: reserve the most a call can cost before sending it, settle the real cost.

    :param limit: the most that may be spent (``None``: no limit, only counting).
    :param vendor: names the vendor in errors.
    """

    def __init__(self, limit: float | None = None, *, vendor: str | None = None) -> None:
        if limit is not None and (isinstance(limit, bool) or not math.isfinite(limit) or limit < 0):
            raise LinkMsgValidationError(
                f"max_credits must be a finite number, 0 or more, got {limit}",
                field="max_credits",
                vendor=vendor,
            )
        self.limit = limit
        self.vendor = vendor
        self.spent: float = 0
        self._reserved: float = 0
        self._lock = threading.Lock()

    @property
    def remaining(self) -> float | None:
        with self._lock:
            return None if self.limit is None else self.limit - self.spent - self._reserved

    def reserve(self, estimate: float, what: str = "call") -> None:
        """
        Hold ``estimate`` credits for a call, or raise :class:`LinkMsgBudgetExceededError` without sending it.

        :param estimate: the most the call can cost.
        :param what: names the call in the error.
        """
        with self._lock:
            if self.limit is not None and self.spent + self._reserved + estimate > self.limit:
                raise LinkMsgBudgetExceededError(
                    f"{what} could cost up to {estimate:g} credits and {self.spent:g} of max_credits="
                    f"{self.limit:g} are spent ({self._reserved:g} held by calls in flight); not sent",
                    vendor=self.vendor,
                )
            self._reserved += estimate

    def charge_lost(self, estimate: float, what: str = "call") -> None:
        """
        A call's answer was lost after the vendor may have charged it: count its estimate as spent, and
        refuse (raise :class:`LinkMsgBudgetExceededError`) when a retry, still reserved, no longer fits.
        """
        with self._lock:
            self.spent += estimate
            if self.limit is not None and self.spent + self._reserved > self.limit:
                raise LinkMsgBudgetExceededError(
                    f"the answer to {what} was lost after the vendor may have charged up to {estimate:g} "
                    f"credits; trying again could pass max_credits={self.limit:g} ({self.spent:g} counted as "
                    "spent); not retried",
                    vendor=self.vendor,
                )

    def settle(self, estimate: float, actual: float) -> None:
        """Release a reservation and record what the call really cost (0 when it failed)."""
        with self._lock:
            self._reserved -= estimate
            self.spent += actual


def per_ten(n: int, minimum: int = 0) -> int:
    """Credits of ``n`` results at one credit per ten, rounded up."""
    return max(minimum, math.ceil(n / 10))


# --------------------------------------------------------------------------------------------------------
# Input checks shared by the inbox hooks: they run before any call and name the field and the fix.
# --------------------------------------------------------------------------------------------------------
_CONVERSATION_URN = re.compile(r"urn:li:msg_conversation:\(urn:li:fsd_profile:[^,()\s]+,[^()\s]+\)")
_SALES_NAV_URN = re.compile(r"urn:li:salesNav_thread:[^\s/()]+")
_PROFILE_URL = re.compile(
    r"https?://([a-z]{2,3}\.)?(www\.)?linkedin\.com/(in|sales/people|sales/lead)/[^/?#\s]+/?(\?[^#\s]*)?",
    re.IGNORECASE,
)


def require(raw: Any, *fields: str, what: str, vendor: str | None = None) -> None:
    """Raise :class:`LinkMsgResponseError` when the vendor's object ``raw`` lacks one of ``fields``."""
    missing = [f for f in fields if not isinstance(raw, dict) or raw.get(f) in (None, "")]
    if missing:
        raise LinkMsgResponseError(f"{what} without {', '.join(missing)}: {str(raw)[:200]}", vendor=vendor)


def check_count(value: Any, *, field: str = "count", maximum: int = 100, vendor: str | None = None) -> int:
    """``value`` as a page size between 1 and ``maximum``, or a validation error."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise LinkMsgValidationError(
            f"{field} must be a whole number from 1 to {maximum}, got {value!r}", field=field, vendor=vendor
        )
    return value


def check_conversation_urn(
    value: Any, *, field: str = "conversation_id", sales_nav: bool = True, vendor: str | None = None
) -> str:
    """
    ``value`` if it is a LinkedIn conversation URN, else a validation error.

    Accepted: ``urn:li:msg_conversation:(urn:li:fsd_profile:<owner>,<thread>)`` and, when ``sales_nav``,
    ``urn:li:salesNav_thread:<id>``.
    """
    text = value if isinstance(value, str) else ""
    if _CONVERSATION_URN.fullmatch(text) or (sales_nav and _SALES_NAV_URN.fullmatch(text)):
        return text
    forms = "urn:li:msg_conversation:(urn:li:fsd_profile:<owner>,<thread>)"
    if sales_nav:
        forms += " or urn:li:salesNav_thread:<id>"
    raise LinkMsgValidationError(
        f"{field} {value!r} is not a conversation URN; expected {forms} (take it from the conversation list)",
        field=field,
        vendor=vendor,
    )


def check_profile_url(value: Any, *, field: str = "profile_url", vendor: str | None = None) -> str:
    """``value`` if it is a LinkedIn profile URL (``https://www.linkedin.com/in/<slug>``), else an error."""
    if isinstance(value, str) and _PROFILE_URL.fullmatch(value.strip()):
        return value.strip()
    raise LinkMsgValidationError(
        f"{field} {value!r} is not a LinkedIn profile URL; expected https://www.linkedin.com/in/<slug>",
        field=field,
        vendor=vendor,
    )
