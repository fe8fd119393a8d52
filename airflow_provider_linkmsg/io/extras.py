"""
Optional dependencies of the exports, checked before anything is written, with the extra to install.

- :func:`require_parquet`: pyarrow, the ``parquet`` extra;
- :func:`require_sql_provider`: the Airflow provider that registers a connection's type (the ``postgres``
  and ``sqlite`` extras, or the ``apache-airflow-providers-<name>`` package of any other database).
"""

from __future__ import annotations

from typing import Any

from airflow_provider_linkmsg.exceptions import LinkMsgValidationError

DISTRIBUTION = "airflow-provider-linkmsg"

#: connection type -> (our extra that installs its provider, or None; the provider's distribution)
SQL_PROVIDERS: dict[str, tuple[str | None, str]] = {
    "postgres": ("postgres", "apache-airflow-providers-postgres"),
    "sqlite": ("sqlite", "apache-airflow-providers-sqlite"),
    "mysql": (None, "apache-airflow-providers-mysql"),
    "mssql": (None, "apache-airflow-providers-microsoft-mssql"),
    "oracle": (None, "apache-airflow-providers-oracle"),
    "snowflake": (None, "apache-airflow-providers-snowflake"),
    "redshift": (None, "apache-airflow-providers-amazon"),
    "gcpbigquery": (None, "apache-airflow-providers-google"),
    "databricks": (None, "apache-airflow-providers-databricks"),
    "trino": (None, "apache-airflow-providers-trino"),
    "presto": (None, "apache-airflow-providers-presto"),
    "vertica": (None, "apache-airflow-providers-vertica"),
    "exasol": (None, "apache-airflow-providers-exasol"),
    "teradata": (None, "apache-airflow-providers-teradata"),
    "odbc": (None, "apache-airflow-providers-odbc"),
    "jdbc": (None, "apache-airflow-providers-jdbc"),
}


def install_hint(extra: str | None, package: str) -> str:
    """
    The command that installs what is missing: our extra when there is one, else the package itself.

    :param extra: our extra (``postgres``, ``parquet`` ...), or ``None``.
    :param package: the distribution the extra brings.
    """
    if extra:
        return f'pip install "{DISTRIBUTION}[{extra}]" (or {package})'
    return f'pip install "{package}"'


def require_parquet() -> None:
    """Raise :class:`LinkMsgValidationError` naming the ``parquet`` extra unless pyarrow imports."""
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError as err:
        raise LinkMsgValidationError(
            f"file_format 'parquet' needs pyarrow, which is not installed ({err}): "
            f"{install_hint('parquet', 'pyarrow')}, or choose file_format 'jsonl' or 'csv'",
            field="file_format",
        ) from err


def _registered_hook_types() -> Any:
    """The connection types whose hooks the installed providers register (a mapping keyed by type)."""
    try:
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime
    except ImportError:  # Airflow 2.x
        from airflow.providers_manager import ProvidersManager

        return ProvidersManager().hooks
    return ProvidersManagerTaskRuntime().hooks


def require_sql_provider(conn: Any) -> None:
    """
    Raise :class:`LinkMsgValidationError` naming the extra or provider to install when no installed
    provider registers the connection's type.

    :param conn: an Airflow connection (``conn_id`` and ``conn_type`` are read).
    """
    conn_type = (getattr(conn, "conn_type", None) or "").strip()
    conn_id = getattr(conn, "conn_id", None)
    if not conn_type:
        raise LinkMsgValidationError(
            f"connection {conn_id!r} has no connection type: give it the type of its database "
            "(postgres, sqlite, mysql ...)",
            field="conn_id",
        )
    if conn_type in _registered_hook_types():
        return
    extra, package = SQL_PROVIDERS.get(
        conn_type, (None, "apache-airflow-providers-" + conn_type.replace("_", "-"))
    )
    known = "" if conn_type in SQL_PROVIDERS else " (the provider that registers this connection type)"
    raise LinkMsgValidationError(
        f"connection {conn_id!r} is of type {conn_type!r}, whose Airflow provider is not installed: "
        f"{install_hint(extra, package)}{known} where the tasks run, then restart the workers",
        field="conn_id",
    )
