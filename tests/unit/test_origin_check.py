"""The origin check's shortcut (a URL that starts with the origin itself) agrees with the full check."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_linkmsg.exceptions import LinkMsgForeignOriginError
from airflow_provider_linkmsg.hooks.transport import http
from airflow_provider_linkmsg.hooks.transport.http import check_origin, origin

_WHERE = {"vendor": "connectsafely", "method": "GET", "endpoint": "/x"}
_BASES = ["http://127.0.0.1:8080", "https://api.example.com", "http://api.example.com:80", "https://h.io:443"]
# every character class that matters to a URL parser, and some that do not
_CHARS = st.sampled_from(list("/?#@:\\[]%.-_~ aZ09\t\n\x00\x7f\u00e9\uff0f\u3002=&+;,!$'()*"))


def _full_check(url: str, expected: tuple[str, str, int]) -> bool:
    """The check without its shortcut (no URL starts with an empty tuple of prefixes)."""
    original = http._origin_prefixes
    http._origin_prefixes = lambda expected: ()
    try:
        check_origin(url, expected, _WHERE, "the request")
        return True
    except LinkMsgForeignOriginError:
        return False
    finally:
        http._origin_prefixes = original


def _check(url: str, expected: tuple[str, str, int]) -> bool:
    try:
        check_origin(url, expected, _WHERE, "the request")
        return True
    except LinkMsgForeignOriginError:
        return False


@given(st.sampled_from(_BASES), st.text(_CHARS, max_size=30), st.sampled_from(["", "/", "//", "/a/b?c=d"]))
def test_shortcut_agrees_with_the_full_check(base: str, tail: str, lead: str) -> None:
    expected = origin(base)
    for url in (f"{base}{lead}{tail}", f"{base}/{tail}", f"{base}{tail}"):
        assert _check(url, expected) == _full_check(url, expected), url


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/a\\@evil.com/",
        "http://127.0.0.1:8080/a b",
        "http://127.0.0.1:8080@evil.com/",
        "http://127.0.0.1:80800/",
        "http://127.0.0.1:8080.evil.com/",
        "HTTP://127.0.0.1:8081/",
    ],
)
def test_odd_urls_on_the_origin_prefix_are_still_refused(url: str) -> None:
    with pytest.raises(LinkMsgForeignOriginError):
        check_origin(url, origin("http://127.0.0.1:8080"), _WHERE, "the request")


def test_plain_urls_pass() -> None:
    expected = origin("https://api.example.com")
    check_origin(
        "https://api.example.com/conversations/urn%3Ali%3Ax/messages?cursor=a", expected, _WHERE, "x"
    )
    check_origin("https://api.example.com:443/x", expected, _WHERE, "x")
