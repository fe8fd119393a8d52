"""Apache Airflow provider for LinkedIn-messaging APIs (Koneksi, ConnectSafely, Linked API, LinkupAPI)."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
