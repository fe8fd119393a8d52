"""The HTTP exchange of one attempt over ``httpx.AsyncClient``: the async twin of :mod:`.http`."""

from __future__ import annotations

import os
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import requests

from airflow_provider_linkmsg.hooks.transport.http import (
    BodyDeadline,
    check_length,
    next_hop,
    too_large,
)


def async_client(
    base_url: str,
    headers: Mapping[str, str],
    max_in_flight: int,
    ssl_context: Callable[[str | None], ssl.SSLContext],
) -> httpx.AsyncClient:
    """
    An ``httpx.AsyncClient`` for one connection: the environment (proxies, CA bundle, netrc) resolved once,
    the SSL context from ``ssl_context(bundle)`` (made once per bundle), redirects never followed by httpx
    (the exchange checks each hop).
    """
    proxies = requests.utils.get_environ_proxies(base_url)
    proxy = proxies.get(base_url.split(":", 1)[0]) or proxies.get("all")
    bundle = (
        os.environ.get("REQUESTS_CA_BUNDLE")
        or os.environ.get("CURL_CA_BUNDLE")
        or os.environ.get("SSL_CERT_FILE")
    )
    netrc = requests.utils.get_netrc_auth(base_url)
    return httpx.AsyncClient(
        headers=dict(headers),
        proxy=proxy,
        verify=ssl_context(bundle),
        auth=netrc,
        trust_env=False,
        follow_redirects=False,
        limits=httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=max_in_flight),
    )


async def aexchange(
    client: httpx.AsyncClient,
    call: Any,
    *,
    expected_origin: tuple[str, str, int],
    connect_timeout: float,
    max_bytes: int,
) -> tuple[int, Mapping[str, str], bytes]:
    """Send ``call`` and return ``(status, headers, body)``, with the rules of :func:`.http.exchange`."""
    method, url, params, body = call.method, call.url, call.params or None, call.json_body
    timeout = httpx.Timeout(call.read_timeout, connect=connect_timeout)
    hop = 0
    while True:
        request = client.build_request(
            method, url, params=params, json=body, headers=call.headers or None, timeout=timeout
        )
        response = await client.send(request, stream=True)
        try:
            location = response.headers.get("Location")
            if response.status_code in (301, 302, 303, 307, 308) and location:
                target, method, body = next_hop(
                    response.status_code,
                    str(response.url),
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
            deadline = time.monotonic() + call.read_timeout
            parts: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise too_large("more", max_bytes, call.where)
                if time.monotonic() > deadline:
                    raise BodyDeadline()
                parts.append(chunk)
            return response.status_code, response.headers, b"".join(parts)
        finally:
            await response.aclose()
