"""
Facts about each vendor that both the connection forms and the hooks need: labels, real base URLs and
client-side rate-limit defaults taken from each vendor's documented limits.

This module imports nothing heavy: ``get_provider_info`` reads it while Airflow discovers providers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VendorInfo:
    """
    Static description of one vendor.

    :param name: connection type and vendor key (``koneksi`` ...).
    :param label: the UI label of the connection type.
    :param base_url: the vendor's real API base URL.
    :param requests_per_second: default client-side request rate.
    :param burst: default token-bucket size (requests that may go out at once after a pause).
    :param max_in_flight: default cap on concurrent requests.
    :param limits_note: where the defaults come from.
    """

    name: str
    label: str
    hook_class: str
    base_url: str
    requests_per_second: float
    burst: int
    max_in_flight: int
    limits_note: str


VENDORS: dict[str, VendorInfo] = {
    "koneksi": VendorInfo(
        name="koneksi",
        label="Koneksi / Upscale Outreach",
        hook_class="airflow_provider_linkmsg.hooks.koneksi.KoneksiHook",
        base_url="https://app.upscaleoutreach.com/api/v2",
        requests_per_second=2.0,
        burst=5,
        max_in_flight=4,
        limits_note="No rate limit is documented; a gentle default.",
    ),
    "connectsafely": VendorInfo(
        name="connectsafely",
        label="ConnectSafely",
        hook_class="airflow_provider_linkmsg.hooks.connectsafely.ConnectSafelyHook",
        base_url="https://api.connectsafely.ai/linkedin",
        # a bucket of depth b at rate r admits up to b + 60 r requests in any minute: 2 + 57 <= 60
        requests_per_second=0.95,
        burst=2,
        max_in_flight=4,
        limits_note="Documented: 60 requests a minute, bursts to 100 per 10 s; the default stays within "
        "60 in any sliding minute.",
    ),
    "linkedapi": VendorInfo(
        name="linkedapi",
        label="Linked API",
        hook_class="airflow_provider_linkmsg.hooks.linkedapi.LinkedApiHook",
        base_url="https://api.linkedapi.io",
        requests_per_second=1.5,
        burst=10,
        max_in_flight=10,
        limits_note="Documented: at most 10 unfinished requests per account; admin API 100 requests a minute.",
    ),
    "linkup": VendorInfo(
        name="linkup",
        label="LinkupAPI",
        hook_class="airflow_provider_linkmsg.hooks.linkup.LinkupHook",
        base_url="https://api.linkupapi.com/v2",
        requests_per_second=5.0,
        burst=10,
        max_in_flight=8,
        limits_note="A 429 RATE_LIMITED code is documented without numbers; a moderate default.",
    ),
}
