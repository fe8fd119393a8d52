"""
The HTTP exchange of one attempt over ``requests``: redirects checked hop by hop (never followed to another
origin, checked as the URL will be sent), the body read streamed under a size cap and a deadline, and the
environment (proxies, CA bundle) resolved once per session instead of on every request (``.netrc`` is not
used: the vendors' keys are the only credentials sent).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from urllib3.exceptions import DecodeError, LocationParseError, ProtocolError, ReadTimeoutError
from urllib3.util import parse_url

from airflow_provider_linkmsg.exceptions import (
    LinkMsgForeignOriginError,
    LinkMsgResponseTooLargeError,
    LinkMsgVendorError,
)
from airflow_provider_linkmsg.hooks.transport import deadline

#: same-origin redirects followed per attempt, at most
MAX_REDIRECTS = 3
#: bytes read (and at most decompressed) at a time
CHUNK = 64 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: a control or whitespace character (below ``!``, or DEL)
_CONTROL = re.compile(r"[\x00-\x20\x7f]")
#: what :func:`check_origin` may let pass on its prefix alone (no parser reads these two ways)
_ODD = re.compile(r"[\x00-\x20\x7f\\]")


class BodyDeadline(Exception):
    """The body did not arrive within the attempt's deadline (a trickled body)."""


def origin(url: str) -> tuple[str, str, int]:
    """
    ``(scheme, host, port)`` of ``url``, with the scheme's default port filled in, as it will be sent:
    where :mod:`urllib.parse` and urllib3 read it differently, urllib3's reading (what requests uses).
    """
    parsed = _parsed_origin(url)
    sent = sent_origin(url)
    return parsed if sent == parsed else (sent or ("", "", 0))


def _parsed_origin(url: str) -> tuple[str, str, int]:
    try:
        parts = urlsplit(url)
    except ValueError:
        return "", "", 0
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme, 0)


def describe_location(url: str) -> str:
    """``url`` without its query string or fragment (they may hold tokens)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(unparsable URL)"
    text = f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}{parts.path}"
    return "".join(c if 0x20 < ord(c) < 0x7F or ord(c) > 0x7F else "?" for c in text)


def sent_origin(url: str) -> tuple[str, str, int] | None:
    """
    ``(scheme, host, port)`` of ``url`` as urllib3 (so requests) will send it: its parser ends the
    authority at characters (``\\``) where :mod:`urllib.parse` does not. ``None`` when it cannot parse it.
    """
    try:
        parts = parse_url(url)
    except (LocationParseError, ValueError):
        return None
    scheme = (parts.scheme or "").lower()
    host = (parts.host or "").lower().strip("[]")
    return scheme, host, parts.port or _DEFAULT_PORTS.get(scheme, 0)


def suspicious(url: str) -> str | None:
    """Why ``url`` is not a plain URL (a backslash, a control or space character, user info), or ``None``."""
    if "\\" in url:
        return "a backslash"
    if _CONTROL.search(url):
        return "a control or whitespace character"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "an unparsable authority"
    if "@" in parts.netloc:
        return "user info"
    return None


def _show(where: tuple[str, str, int] | None) -> str:
    if where is None:
        return "(unparsable)"
    scheme, host, port = where
    return "".join(c if 0x20 < ord(c) < 0x7F else "?" for c in f"{scheme}://{host}:{port}")


def check_origin(url: str, expected: tuple[str, str, int], where: Mapping[str, Any], what: str) -> None:
    """
    Raise :class:`LinkMsgForeignOriginError` unless ``url`` is a plain URL on the ``expected`` origin, as
    both :mod:`urllib.parse` and urllib3 (what requests sends with) read it. Shared by the sync and async
    paths: call it on every URL built, every ``Location`` and every link from the vendor.

    A URL that starts with the origin itself (``scheme://host:port/``, lower case, no user info) and has no
    control character or backslash passes without being parsed: both parsers end its authority at that
    ``/``, so both read ``expected`` (the URLs the hooks build; anything else takes the full check).
    """
    if url.startswith(_origin_prefixes(expected)) and _ODD.search(url) is None:
        return
    odd = suspicious(url)
    if odd is not None:
        readings = {_show(_parsed_origin(url)), _show(sent_origin(url))}
        raise LinkMsgForeignOriginError(
            f"{what} holds {odd} (its host reads as {' or '.join(sorted(readings))} depending on the "
            "parser); it was not followed and nothing was sent there",
            location=_show(sent_origin(url)),
            **where,
        )
    if _parsed_origin(url) != expected or sent_origin(url) != expected:
        scheme, host, port = expected
        # the origin only: the path and query of a vendor's URL may hold a key (the redirect echoing it)
        elsewhere = _show(_parsed_origin(url))
        raise LinkMsgForeignOriginError(
            f"{what} points to {elsewhere}, outside the connection's origin "
            f"{scheme}://{host}:{port}; nothing was sent there (the keys stay with the vendor's host). "
            "If the vendor really moved, change the connection's base URL",
            location=elsewhere,
            **where,
        )


def _origin_prefixes(expected: tuple[str, str, int]) -> tuple[str, ...]:
    """``scheme://host:port/`` of ``expected``, and ``scheme://host/`` when the port is the scheme's default."""
    scheme, host, port = expected
    if not scheme or not host or not host.isascii() or any(c in host for c in ":@[]/?#\\%"):
        return ()  # an IPv6 literal or an odd host: the full check only
    prefixes = (f"{scheme}://{host}:{port}/",)
    if _DEFAULT_PORTS.get(scheme) == port:
        prefixes += (f"{scheme}://{host}/",)
    return prefixes


def resolve_environment(session: requests.Session, base_url: str) -> None:
    """
    Resolve what ``requests`` would otherwise look up on every request (proxy variables, ``.netrc``, the CA
    bundle variables) once for ``base_url``, and stop the per-request lookups (``trust_env = False``).
    """
    proxies = requests.utils.get_environ_proxies(base_url)
    if proxies:
        session.proxies.update(proxies)
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    # .netrc is not applied: a session-wide auth would replace the vendor's own auth header (Bearer) and
    # would go with every URL of the session. The vendors authenticate with their keys, never with netrc.
    session.trust_env = False


def next_hop(
    status: int,
    current: str,
    location: str,
    method: str,
    body: Any,
    hop: int,
    expected_origin: tuple[str, str, int],
    where: Mapping[str, Any],
) -> tuple[str, str, Any]:
    """
    The URL, method and body of the request that follows a redirect from ``current`` to ``location``
    (307/308 keep method and body, the others become a bodiless GET); raises when ``location`` is odd
    (checked before it is joined: a join may hide a backslash or user info), the target is off the origin,
    or the hops run out. Shared by the sync and async paths.
    """
    what = f"a {status} redirect"
    if suspicious(location) is not None:
        check_origin(location, expected_origin, where, what)
    target = urljoin(current, location)
    check_origin(target, expected_origin, where, what)
    if hop >= MAX_REDIRECTS:
        raise LinkMsgVendorError(
            f"more than {MAX_REDIRECTS} redirects (last to {_show(_parsed_origin(target))}, path not shown)",
            status=status,
            **where,
        )
    if status in (307, 308):
        return target, method, body
    return target, ("HEAD" if method == "HEAD" else "GET"), None


def check_length(headers: Mapping[str, str], max_bytes: int, where: Mapping[str, Any]) -> None:
    """Refuse a body whose declared (unencoded) length is past ``max_bytes`` before reading any of it."""
    declared = headers.get("Content-Length")
    encoded = headers.get("Content-Encoding", "identity").lower() not in ("", "identity")
    if declared and declared.isdigit() and int(declared) > max_bytes and not encoded:
        raise too_large(f"{int(declared)} bytes declared", max_bytes, where)


def read_body(
    response: requests.Response, max_bytes: int, deadline: float, where: Mapping[str, Any]
) -> bytes:
    """
    The decoded body, read streamed: past ``max_bytes`` (decoded) it stops with
    :class:`LinkMsgResponseTooLargeError`; past ``deadline`` (monotonic) with :class:`BodyDeadline`.
    """
    check_length(response.headers, max_bytes, where)
    raw = response.raw
    parts: list[bytes] = []
    size = 0
    while True:
        if time.monotonic() > deadline:
            raise BodyDeadline()
        try:
            chunk = raw.read1(CHUNK, decode_content=True)
        except ReadTimeoutError as exc:  # what requests' own reading would raise
            raise requests.exceptions.ReadTimeout(exc) from None
        except ProtocolError as exc:
            raise requests.exceptions.ChunkedEncodingError(exc) from None
        except DecodeError as exc:
            raise requests.exceptions.ContentDecodingError(exc) from None
        if not chunk:
            break
        size += len(chunk)
        if size > max_bytes:
            raise too_large("more", max_bytes, where)
        parts.append(chunk)
    return b"".join(parts)


def too_large(what: str, max_bytes: int, where: Mapping[str, Any]) -> LinkMsgResponseTooLargeError:
    return LinkMsgResponseTooLargeError(
        f"the response body is larger than max_response_bytes ({max_bytes} bytes; {what}); it was not read "
        "on. Raise max_response_bytes in the connection's extra if the vendor really sends that much",
        **where,
    )


def exchange(
    session: requests.Session,
    call: Any,
    *,
    expected_origin: tuple[str, str, int],
    connect_timeout: float,
    max_bytes: int,
) -> tuple[int, Mapping[str, str], bytes]:
    """
    Send ``call`` and return ``(status, headers, body)``. Redirects are followed by hand: on the
    connection's origin at most :data:`MAX_REDIRECTS` hops, keeping method and body only for 307/308; one
    to another origin raises :class:`LinkMsgForeignOriginError` and nothing is sent there. Each URL is
    checked as it will be sent (prepared). The attempt has one read budget (``call.read_timeout``) for the
    status line, headers and body of every hop, from the moment the first request is sent.
    """
    with deadline.attempt(deadline.Budget(call.read_timeout)) as budget:
        return _exchange(session, call, budget, expected_origin, connect_timeout, max_bytes)


def _exchange(
    session: requests.Session,
    call: Any,
    budget: deadline.Budget,
    expected_origin: tuple[str, str, int],
    connect_timeout: float,
    max_bytes: int,
) -> tuple[int, Mapping[str, str], bytes]:
    method, url, params, body = call.method, call.url, call.params or None, call.json_body
    headers = dict(call.headers) if call.headers else None
    for hop in range(MAX_REDIRECTS + 1):
        if budget.left() <= 0:
            raise BodyDeadline()
        prepared = session.prepare_request(
            requests.Request(method, url, params=params, json=body, headers=headers)
        )
        check_origin(prepared.url, expected_origin, call.where, "the request")  # as it will be sent
        settings = session.merge_environment_settings(prepared.url, {}, True, None, None)
        response = session.send(
            prepared,
            timeout=(connect_timeout, max(0.001, min(call.read_timeout, budget.left()))),
            allow_redirects=False,
            **settings,
        )
        try:
            location = response.headers.get("Location")
            if response.status_code in (301, 302, 303, 307, 308) and location:
                target, method, body = next_hop(
                    response.status_code,
                    response.url,
                    location,
                    method,
                    body,
                    hop,
                    expected_origin,
                    call.where,
                )
                url, params = target, None
                response.close()
                continue
            # the whole answer within the attempt's budget: a trickle or a chain of hops cannot stretch it
            content = read_body(response, max_bytes, budget.start(), call.where)
        except BaseException:
            response.close()
            raise
        response.raw.release_conn()  # read to the end: the connection goes back to the pool
        return response.status_code, response.headers, content
    raise AssertionError("unreachable")  # pragma: no cover
