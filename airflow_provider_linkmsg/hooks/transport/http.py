"""
The HTTP exchange of one attempt over ``requests``: redirects checked hop by hop (never followed to another
origin), the body read streamed under a size cap and a deadline, and the environment (proxies, CA bundle,
netrc) resolved once per session instead of on every request.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError

from airflow_provider_linkmsg.exceptions import (
    LinkMsgForeignOriginError,
    LinkMsgResponseTooLargeError,
    LinkMsgVendorError,
)

#: same-origin redirects followed per attempt, at most
MAX_REDIRECTS = 3
#: bytes read (and at most decompressed) at a time
CHUNK = 64 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}


class BodyDeadline(Exception):
    """The body did not arrive within the attempt's deadline (a trickled body)."""


def origin(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of ``url``, with the scheme's default port filled in."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme, 0)


def describe_location(url: str) -> str:
    """``url`` without its query string or fragment (they may hold tokens)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}{parts.path}"


def check_origin(url: str, expected: tuple[str, str, int], where: Mapping[str, Any], what: str) -> None:
    """Raise :class:`LinkMsgForeignOriginError` unless ``url`` is on the ``expected`` origin."""
    if origin(url) != expected:
        scheme, host, port = expected
        raise LinkMsgForeignOriginError(
            f"{what} points to {describe_location(url)}, outside the connection's origin "
            f"{scheme}://{host}:{port}; nothing was sent there (the keys stay with the vendor's host). "
            "If the vendor really moved, change the connection's base URL",
            location=describe_location(url),
            **where,
        )


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
    netrc = requests.utils.get_netrc_auth(base_url)
    if netrc:
        session.auth = netrc
    session.trust_env = False


def read_body(
    response: requests.Response, max_bytes: int, deadline: float, where: Mapping[str, Any]
) -> bytes:
    """
    The decoded body, read streamed: past ``max_bytes`` (decoded) it stops with
    :class:`LinkMsgResponseTooLargeError`; past ``deadline`` (monotonic) with :class:`BodyDeadline`.
    """
    declared = response.headers.get("Content-Length")
    encoded = response.headers.get("Content-Encoding", "identity").lower() not in ("", "identity")
    if declared and declared.isdigit() and int(declared) > max_bytes and not encoded:
        raise _too_large(f"{int(declared)} bytes declared", max_bytes, where)
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
            raise _too_large("more", max_bytes, where)
        parts.append(chunk)
    return b"".join(parts)


def _too_large(what: str, max_bytes: int, where: Mapping[str, Any]) -> LinkMsgResponseTooLargeError:
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
    to another origin raises :class:`LinkMsgForeignOriginError` and nothing is sent there.
    """
    method, url, params, body = call.method, call.url, call.params or None, call.json_body
    headers = dict(call.headers) if call.headers else None
    for hop in range(MAX_REDIRECTS + 1):
        response = session.request(
            method,
            url,
            params=params,
            json=body,
            headers=headers,
            timeout=(connect_timeout, call.read_timeout),
            allow_redirects=False,
            stream=True,
        )
        try:
            location = response.headers.get("Location")
            if response.status_code in (301, 302, 303, 307, 308) and location:
                target = urljoin(response.url, location)
                check_origin(target, expected_origin, call.where, f"a {response.status_code} redirect")
                if hop == MAX_REDIRECTS:
                    raise LinkMsgVendorError(
                        f"more than {MAX_REDIRECTS} redirects (last to {describe_location(target)})",
                        status=response.status_code,
                        **call.where,
                    )
                if response.status_code not in (307, 308):
                    method, body = ("HEAD" if method == "HEAD" else "GET"), None
                url, params = target, None
                response.close()
                continue
            # the whole body within one read timeout of the headers: a trickle cannot stretch it
            content = read_body(response, max_bytes, time.monotonic() + call.read_timeout, call.where)
        except BaseException:
            response.close()
            raise
        response.raw.release_conn()  # read to the end: the connection goes back to the pool
        return response.status_code, response.headers, content
    raise AssertionError("unreachable")  # pragma: no cover
