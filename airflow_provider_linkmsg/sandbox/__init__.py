"""
An offline server of the four vendor APIs, for tests, benchmarks, the demo and users without an account.

>>> from airflow_provider_linkmsg.sandbox import Sandbox
>>> with Sandbox(seed=7) as sb:  # doctest: +SKIP
...     os.environ.update(sb.env())  # AIRFLOW_CONN_KONEKSI_DEFAULT, ... point at the sandbox
"""

from __future__ import annotations

from airflow_provider_linkmsg.sandbox.core import FaultRule, Sandbox, VendorApp

__all__ = ["FaultRule", "Sandbox", "VendorApp", "vendor_apps"]


def vendor_apps() -> list[type[VendorApp]]:
    """The vendor apps the sandbox serves, one module per vendor."""
    from airflow_provider_linkmsg.sandbox.connectsafely import ConnectSafelyApp
    from airflow_provider_linkmsg.sandbox.koneksi import KoneksiApp
    from airflow_provider_linkmsg.sandbox.linkedapi import LinkedApiApp
    from airflow_provider_linkmsg.sandbox.linkup import LinkupApp

    return [KoneksiApp, ConnectSafelyApp, LinkedApiApp, LinkupApp]
