"""The guarded cursor paginator, the credit budget and the shared input checks (no server)."""

from __future__ import annotations

import threading

import pytest

from airflow_provider_linkmsg.exceptions import (
    LinkMsgBudgetExceededError,
    LinkMsgResponseError,
    LinkMsgValidationError,
)
from airflow_provider_linkmsg.hooks.pagination import (
    PROGRESS_WINDOW,
    CreditBudget,
    Page,
    check_conversation_urn,
    check_count,
    check_profile_url,
    paginate,
    per_ten,
    total_slack,
)


class PageSource:
    """Serves canned pages by cursor and records which cursors were asked for."""

    def __init__(self, pages: dict[str | None, Page]) -> None:
        self.pages = pages
        self.asked: list[str | None] = []

    def __call__(self, cursor: str | None) -> Page:
        self.asked.append(cursor)
        page = self.pages[cursor]
        return Page(list(page.items), page.cursor, page.has_more)


def items(source: PageSource, **kwargs) -> list:
    return [item for page in paginate(source, **kwargs) for item in page.items]


def test_last_page_without_a_cursor_ends_the_list():
    source = PageSource({None: Page([1, 2], "c1"), "c1": Page([3], None)})
    pages = list(paginate(source))
    assert [p.items for p in pages] == [[1, 2], [3]]
    assert [p.stop_reason for p in pages] == [None, "no_cursor"] and pages[-1].last
    assert source.asked == [None, "c1"]


@pytest.mark.parametrize("empty", [None, ""])
def test_a_null_or_empty_cursor_is_no_cursor(empty):
    source = PageSource({None: Page([1], "c1"), "c1": Page([2], empty)})
    assert items(source) == [1, 2] and source.asked == [None, "c1"]


def test_last_page_with_a_cursor_but_has_more_false_ends_the_list():
    source = PageSource({None: Page([1], "c1", True), "c1": Page([2], "c2", False)})
    pages = list(paginate(source))
    assert [i for p in pages for i in p.items] == [1, 2] and pages[-1].stop_reason == "has_more_false"
    assert source.asked == [None, "c1"]


def test_an_empty_page_with_a_cursor_ends_the_list():
    source = PageSource({None: Page([1], "c1", True), "c1": Page([], "c2", True), "c2": Page([9], None)})
    pages = list(paginate(source))
    assert pages[-1].stop_reason == "empty_page" and [i for p in pages for i in p.items] == [1]
    assert source.asked == [None, "c1"]


def test_a_repeated_cursor_is_a_typed_error_not_the_end_of_the_list():
    source = PageSource({None: Page([1], "c1"), "c1": Page([2], "c2"), "c2": Page([3], "c1")})
    got = []
    with pytest.raises(LinkMsgResponseError, match="cursor 'c1' a second time") as err:
        for page in paginate(source, what="messages of x", vendor="linkup"):
            got.extend(page.items)
    assert got == [1, 2] and source.asked == [None, "c1", "c2"] and err.value.vendor == "linkup"


def test_one_id_twice_in_a_page_is_a_typed_error():
    source = PageSource({None: Page([{"id": 1}, {"id": 1}], None)})
    with pytest.raises(LinkMsgResponseError, match="id 1 appears twice in one page"):
        list(paginate(source, item_key=lambda item: item["id"]))


def test_an_immutable_item_that_changes_across_pages_is_a_typed_error():
    pages = {
        None: Page([{"id": 1, "text": "a"}], "c1"),
        "c1": Page([{"id": 1, "text": "b"}, {"id": 2}], None),
    }
    with pytest.raises(LinkMsgResponseError, match="id 1 came back on a later page with different content"):
        list(paginate(PageSource(pages), item_key=lambda item: item["id"], immutable=True))
    # conversations change (new activity): a listing does not pass immutable
    assert len(list(paginate(PageSource(pages), item_key=lambda item: item["id"]))) == 2


def test_pages_that_add_one_new_id_each_stop_within_the_progress_window():
    class OneNew:
        calls = 0

        def __call__(self, cursor):
            self.calls += 1
            return Page([0, 1, 2, 3, -self.calls], f"c{self.calls}")

    source = OneNew()
    with pytest.raises(LinkMsgResponseError, match="new id"):
        list(paginate(source, item_key=lambda item: item))
    assert source.calls == PROGRESS_WINDOW


def test_more_ids_than_the_vendor_reports_stop_the_read():
    class Fresh:
        calls = 0

        def __call__(self, cursor):
            self.calls += 1
            return Page([self.calls], f"c{self.calls}", meta={"total": 3})

    source = Fresh()
    with pytest.raises(LinkMsgResponseError, match="reports 3 in all"):
        list(paginate(source, item_key=lambda item: item))
    assert source.calls == 3 + total_slack(3) + 1


def test_the_starting_cursor_counts_as_followed():
    source = PageSource({"c1": Page([2], "c1")})
    with pytest.raises(LinkMsgResponseError, match="a second time"):
        items(source, cursor="c1")
    assert source.asked == ["c1"]


def test_a_short_page_is_not_taken_for_the_last_one():
    # asked for 10 a page; the vendor merges upstream calls and sends 3, then 1, then the rest
    source = PageSource({None: Page([1, 2, 3], "a"), "a": Page([4], "b"), "b": Page([5, 6], None)})
    assert items(source) == [1, 2, 3, 4, 5, 6] and len(source.asked) == 3


def test_pages_are_fetched_lazily_so_stopping_early_saves_calls():
    source = PageSource({None: Page([1, 2], "c1"), "c1": Page([3, 4], "c2"), "c2": Page([5], None)})
    for item in (i for p in paginate(source) for i in p.items):
        if item == 2:
            break
    assert source.asked == [None]


def test_max_pages_raises_rather_than_follow_endless_new_cursors():
    class Endless:
        calls = 0

        def __call__(self, cursor):
            self.calls += 1
            return Page([self.calls], f"c{self.calls}")

    endless = Endless()
    with pytest.raises(LinkMsgResponseError, match="after 5 pages") as err:
        list(paginate(endless, max_pages=5, what="inbox", vendor="linkup"))
    assert endless.calls == 5 and err.value.vendor == "linkup" and "max_pages" in str(err.value)


def test_budget_refuses_a_call_that_could_exceed_it_before_it_is_sent():
    budget = CreditBudget(10, vendor="linkup")
    budget.reserve(5)
    budget.settle(5, 3)
    budget.reserve(7)
    with pytest.raises(LinkMsgBudgetExceededError, match="could cost up to 1 credits") as err:
        budget.reserve(1, "get_conversation")
    assert err.value.status is None  # ours, not the vendor's 402
    budget.settle(7, 7)
    assert budget.spent == 10 and budget.remaining == 0


def test_budget_without_limit_only_counts():
    budget = CreditBudget(None)
    for _ in range(3):
        budget.reserve(100)
        budget.settle(100, 2)
    assert budget.spent == 6 and budget.remaining is None


def test_budget_holds_across_threads():
    budget = CreditBudget(50)
    refused = []

    def worker():
        for _ in range(20):
            try:
                budget.reserve(2)
            except LinkMsgBudgetExceededError:
                refused.append(1)
                return
            budget.settle(2, 2)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert budget.spent == 50 and refused


def test_negative_budget_is_a_validation_error():
    with pytest.raises(LinkMsgValidationError) as err:
        CreditBudget(-1)
    assert err.value.field == "max_credits"


def test_per_ten():
    assert [per_ten(n) for n in (0, 1, 10, 11, 100)] == [0, 1, 1, 2, 10]
    assert per_ten(0, minimum=1) == 1


@pytest.mark.parametrize("value", [0, 101, -3, 2.5, "10", True, None])
def test_count_out_of_range_names_the_field(value):
    with pytest.raises(LinkMsgValidationError, match="from 1 to 100") as err:
        check_count(value, field="page_size")
    assert err.value.field == "page_size"


@pytest.mark.parametrize(
    "urn",
    [
        "urn:li:msg_conversation:(urn:li:fsd_profile:ACoAAEmu01,2-bXNnMDAx)",
        "urn:li:salesNav_thread:1234567890",
    ],
)
def test_conversation_urns_accepted(urn):
    assert check_conversation_urn(urn) == urn


@pytest.mark.parametrize(
    "urn",
    [
        "2-bXNnMDAx",
        "urn:li:fsd_profile:ACoAAEmu01",
        "urn:li:msg_conversation:2-bXNnMDAx",
        "urn:li:msg_message:(urn:li:fsd_profile:ACoAAEmu01,2-bXNnMDAx)",
        "https://www.linkedin.com/messaging/thread/2-bXNnMDAx/",
        "",
        None,
    ],
)
def test_malformed_urns_are_refused_with_the_expected_form(urn):
    with pytest.raises(LinkMsgValidationError, match="urn:li:msg_conversation:") as err:
        check_conversation_urn(urn, field="conversation_ids[0]")
    assert err.value.field == "conversation_ids[0]"


def test_sales_nav_threads_can_be_refused():
    with pytest.raises(LinkMsgValidationError):
        check_conversation_urn("urn:li:salesNav_thread:123", sales_nav=False)


@pytest.mark.parametrize(
    "url",
    [
        "https://www.linkedin.com/in/jane-doe-42/",
        "https://linkedin.com/in/jane-doe-42",
        "http://fr.linkedin.com/in/jane-doe-42/?trk=x",
        "https://www.linkedin.com/sales/people/ABC123",
    ],
)
def test_linkedin_profile_urls_accepted(url):
    assert check_profile_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "https://twitter.com/jane",
        "https://www.linkedin.com.evil.example/in/jane",
        "https://www.linkedin.com/company/acme/",
        "jane-doe-42",
        "",
    ],
)
def test_non_linkedin_profile_urls_are_refused(url):
    with pytest.raises(LinkMsgValidationError, match="not a LinkedIn profile URL"):
        check_profile_url(url)


def test_vendor_objects_missing_their_id_or_time_are_response_errors():
    from airflow_provider_linkmsg.hooks.connectsafely import ConnectSafelyHook
    from airflow_provider_linkmsg.hooks.linkup import LinkupHook

    with pytest.raises(LinkMsgResponseError, match="without sentAt"):
        ConnectSafelyHook("unused").to_message(
            {"messageUrn": "urn:li:msg_message:x"},
            account_id="a" * 24,
            conversation_urn="urn:li:salesNav_thread:1",
        )
    with pytest.raises(LinkMsgResponseError, match="without entity_urn, timestamp"):
        LinkupHook("unused").to_message({"text": "hi"}, account_id="acc_1", conversation_id="c")


def test_an_immutable_item_changed_two_pages_later_is_a_typed_error():
    pages = {
        None: Page([{"id": 1, "text": "a"}, {"id": 2}], "c1"),
        "c1": Page([{"id": 3}, {"id": 4}], "c2"),
        "c2": Page([{"id": 5}, {"id": 1, "text": "b"}], None),
    }
    with pytest.raises(LinkMsgResponseError, match="id 1 came back on a later page with different content"):
        list(paginate(PageSource(pages), item_key=lambda item: item["id"], immutable=True))


def test_an_immutable_item_repeated_unchanged_on_a_later_page_is_not_new():
    pages = {
        None: Page([{"id": 1, "text": "a"}, {"id": 2}], "c1"),
        "c1": Page([{"id": 1, "text": "a"}, {"id": 3}], None),
    }
    got = [
        i["id"]
        for p in paginate(PageSource(pages), item_key=lambda item: item["id"], immutable=True)
        for i in p.items
    ]
    assert got == [1, 2, 1, 3]


def test_a_list_of_one_page_takes_no_digest(monkeypatch):
    import airflow_provider_linkmsg.hooks.pagination as pagination

    taken = []
    monkeypatch.setattr(pagination, "_fingerprint", lambda item: taken.append(item) or "d")
    pages = {None: Page([{"id": 1}, {"id": 2}], None)}
    assert len(list(paginate(PageSource(pages), item_key=lambda item: item["id"], immutable=True))) == 1
    assert taken == []
