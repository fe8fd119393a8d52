"""Connection settings: what a vendor hook reads from its Airflow connection, with defaults filled in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from airflow_provider_linkmsg.exceptions import LinkMsgValidationError


@dataclass(frozen=True)
class ConnParams:
    """
    Settings read from an Airflow connection, with the vendor's defaults filled in.

    The API key is the connection's password; ``extra`` holds the rest, under plain keys (Airflow 3 forms)
    or the legacy ``extra__<conn_type>__<key>`` form.
    """

    base_url: str
    api_key: str = field(repr=False)
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    max_retries: int = 5
    max_retry_wait: float = 300.0
    requests_per_second: float = 1.0
    burst: int = 5
    max_in_flight: int = 4
    max_response_bytes: int = 64 * 1024 * 1024
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)


def extra_value(extra: Mapping[str, Any], conn_type: str, key: str) -> Any:
    """``extra[key]``, else the legacy ``extra__<conn_type>__<key>``; ``None`` when absent or blank."""
    value = extra.get(key)
    if value in (None, ""):
        value = extra.get(f"extra__{conn_type}__{key}")
    return None if value == "" else value


def number(name: str, value: Any, default: float, *, minimum: float, cast: type = float) -> Any:
    """``value`` as a number of at least ``minimum`` (``default`` when ``None``), else an error naming it."""
    if value is None:
        return cast(default)
    try:
        result = cast(value)
    except (TypeError, ValueError):
        raise LinkMsgValidationError(
            f"connection field {name!r} must be a number, got {value!r}; fix it in the connection's extra",
            field=name,
        ) from None
    if not result >= minimum:  # also refuses NaN
        raise LinkMsgValidationError(
            f"connection field {name!r} must be at least {minimum}, got {result}; fix it in the connection",
            field=name,
        )
    return result


def bounded(params: ConnParams) -> ConnParams:
    """``params`` for a connection test: no retries, short timeouts."""
    return replace(
        params,
        max_retries=0,
        connect_timeout=min(params.connect_timeout, 5.0),
        read_timeout=min(params.read_timeout, 10.0),
    )
