"""
The HTTP exchange of one attempt over httpx: the async twin of :mod:`.http`, with the same rules (redirects
checked hop by hop and never followed to another origin, the body streamed under a size cap, one read
deadline for the whole answer over every hop, the environment resolved once, no ``.netrc``).

Requests go straight to the connection's :class:`httpx.AsyncHTTPTransport` (httpx's public transport API)
rather than through ``AsyncClient.send``: the client binds each response to a stream that points back at it
(``Response.stream._response``), a reference cycle per request that only the cyclic collector frees, and adds
cookie, auth and event-hook work the vendors' calls do not use. Without it a request leaves no cyclic
garbage, and costs less CPU on the triggerer's loop.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import requests

from airflow_provider_linkmsg.hooks.transport.adeadline import Deadline, loop_deadlines
from airflow_provider_linkmsg.hooks.transport.decode import BoundedDecoder
from airflow_provider_linkmsg.hooks.transport.http import (
    BodyDeadline,
    check_length,
    next_hop,
)

#: what the vendors may compress with (decoded streamed, under the size cap: :mod:`.decode`)
ACCEPT_ENCODING = "gzip, deflate"


def async_transport(
    base_url: str, max_in_flight: int, ssl_context: Callable[[str | None], ssl.SSLContext]
) -> httpx.AsyncHTTPTransport:
    """
    The ``httpx.AsyncHTTPTransport`` of one connection: proxies and the CA bundle resolved once from the
    environment (``ssl_context(bundle)`` makes one SSL context per bundle), at most ``max_in_flight``
    connections. ``.netrc`` is not used, as on the sync path: the vendors' keys are the only credentials
    sent, and a netrc entry would replace a vendor's own ``Authorization`` header.
    """
    proxies = requests.utils.get_environ_proxies(base_url)
    proxy = proxies.get(base_url.split(":", 1)[0]) or proxies.get("all")
    bundle = (
        os.environ.get("REQUESTS_CA_BUNDLE")
        or os.environ.get("CURL_CA_BUNDLE")
        or os.environ.get("SSL_CERT_FILE")
    )
    return httpx.AsyncHTTPTransport(
        verify=ssl_context(bundle),
        proxy=proxy,
        trust_env=False,
        limits=httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=max_in_flight),
    )


def client_on(transport: httpx.AsyncHTTPTransport, headers: Mapping[str, str]) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` over ``transport`` (for callers that want a client; it follows no redirect)."""
    return httpx.AsyncClient(
        transport=transport, headers=dict(headers), trust_env=False, follow_redirects=False
    )


async def aexchange(
    transport: httpx.AsyncHTTPTransport,
    base_headers: Mapping[str, str],
    call: Any,
    *,
    expected_origin: tuple[str, str, int],
    connect_timeout: float,
    max_bytes: int,
) -> tuple[int, Mapping[str, str], bytes]:
    """
    Send ``call`` and return ``(status, headers, body)``, with the rules of :func:`.http.exchange`; past the
    attempt's read deadline (:mod:`.adeadline`: one timer for every attempt of the loop, instead of httpx's
    per-read and per-write timers) it raises :class:`BodyDeadline`.
    """
    deadline = loop_deadlines().new(call.read_timeout)
    try:
        return await _exchange(
            transport, base_headers, call, deadline, expected_origin, connect_timeout, max_bytes
        )
    except asyncio.CancelledError:
        if not deadline.timed_out():
            raise
    finally:
        deadline.owner.end(deadline)
    _unlink(deadline.stream)  # cancelled before any response: the connection it opened was dropped
    raise BodyDeadline()


async def _exchange(
    transport: httpx.AsyncHTTPTransport,
    base_headers: Mapping[str, str],
    call: Any,
    clock: Deadline,
    expected_origin: tuple[str, str, int],
    connect_timeout: float,
    max_bytes: int,
) -> tuple[int, Mapping[str, str], bytes]:
    method, url, params, body = call.method, call.url, call.params or None, call.json_body
    headers = {**base_headers, **call.headers} if call.headers else base_headers
    # reads and writes are bounded by the clock; a pool wait (none while the limiter caps requests in
    # flight at the pool's size) and a connect by the connect timeout
    timeout = {"connect": connect_timeout, "read": None, "write": None, "pool": connect_timeout}
    extensions = {"timeout": timeout, "trace": clock}
    hop = 0
    while True:
        request = httpx.Request(method, url, params=params, json=body, headers=headers, extensions=extensions)
        response = await transport.handle_async_request(request)
        try:
            location = response.headers.get("Location")
            if response.status_code in (301, 302, 303, 307, 308) and location:
                target, method, body = next_hop(
                    response.status_code,
                    str(request.url),
                    location,
                    method,
                    body,
                    hop,
                    expected_origin,
                    call.where,
                )
                url, params, hop = target, None, hop + 1
                continue
            check_length(response.headers, max_bytes, call.where)
            # raw bytes, decoded here under the cap (httpx would inflate a whole chunk, every layer, first)
            decoder = BoundedDecoder(response.headers, max_bytes, call.where)
            parts: list[bytes] = []
            async for raw in response.aiter_raw():
                parts += decoder.feed(raw)
            parts += decoder.finish()
            return response.status_code, response.headers, b"".join(parts)
        finally:
            stream = response.extensions.get("network_stream")
            await response.aclose()
            _unlink(stream)


def _unlink(stream: Any) -> None:
    """
    Break the reference cycle a dropped connection leaves (a response not read to its end: a foreign
    redirect, a body too large, a read timeout). asyncio's socket transport keeps a bound method of itself
    (``_read_ready_cb``, CPython 3.11-3.13), so a closed transport and its socket are freed only by the
    cyclic collector: about 7 objects per failed call. Once it is closing, the callback is never called
    again. A connection kept for reuse is left alone; any other stream (another backend) too.
    """
    inner = getattr(stream, "_stream", None)  # httpcore's AnyIOStream -> anyio's stream
    inner = getattr(inner, "transport_stream", inner)  # under TLS, the socket stream beneath
    transport = getattr(inner, "_transport", None)
    closing = isinstance(transport, asyncio.Transport) and transport.is_closing()
    if closing and getattr(transport, "_read_ready_cb", None) is not None:
        transport._read_ready_cb = None  # type: ignore[attr-defined]
