"""
The connection lookup of the async path, on every claimed Airflow line, with Airflow's own compatibility
helpers (``apache-airflow-providers-common-compat``), as the official providers' triggers do:

* the connection: ``BaseHook.aget_connection`` where it exists and masks without blocking (Airflow 3.3.2+),
  else ``BaseHook.get_connection`` in a worker thread (``asgiref.sync.sync_to_async``; Airflow 2.11, 3.0);
* its extra: ``Connection.aextra_dejson`` (3.3.2+), else ``extra_dejson`` in a worker thread;
* the API key registered with the secret masker: ``amask_secret`` (3.3.2+), else ``mask_secret`` in a worker
  thread. On Airflow 3 before 3.3.2 the synchronous masker (and ``extra_dejson``) call the triggerer's
  supervisor through ``async_to_sync``, which refuses to run on the event loop's own thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.connection import get_async_connection, get_async_extra_dejson
from airflow.providers.common.compat.sdk import AirflowNotFoundException

from airflow_provider_linkmsg.exceptions import LinkMsgValidationError

if TYPE_CHECKING:
    from airflow_provider_linkmsg.hooks.base import LinkMsgHook


async def amask_secret(value: str) -> None:
    """Register ``value`` with Airflow's secret masker without blocking the event loop."""
    try:
        from airflow.sdk.log import amask_secret as masker
    except ImportError:  # before Airflow 3.3.2
        from airflow.providers.common.compat.sdk import mask_secret
        from asgiref.sync import sync_to_async

        await sync_to_async(mask_secret)(value)
    else:
        await masker(value)


async def alook_up(hook: LinkMsgHook) -> tuple[Any, dict[str, Any]]:
    """``hook``'s connection and its extra, looked up without blocking the loop, the API key masked."""
    try:
        conn = await get_async_connection(hook.conn_id, hook=hook)
    except AirflowNotFoundException:  # a trigger reports it as an error event, as any call that cannot work
        raise LinkMsgValidationError(
            f"connection {hook.conn_id!r} is not defined: create it (type {hook.conn_type!r}) or give "
            f"{hook.conn_name_attr} an existing {hook.vendor_info().label} connection",
            field=hook.conn_name_attr,
            vendor=hook.vendor,
        ) from None
    extra = await get_async_extra_dejson(conn)
    api_key = hook.api_key_of(conn, extra)
    if api_key:
        await amask_secret(api_key)
    return conn, extra
