"""Provider registration: what ``airflow providers list`` shows and what the connection forms hold."""

from __future__ import annotations

from typing import Any

from airflow_provider_linkmsg import __version__
from airflow_provider_linkmsg.vendors import VENDORS, VendorInfo

_PACKAGE = "airflow_provider_linkmsg"
_DOCS = {
    "koneksi": "https://www.upscaleoutreach.com/api-docs",
    "connectsafely": "https://connectsafely.ai/docs",
    "linkedapi": "https://linkedapi.io/docs",
    "linkup": "https://docs.linkupapi.com",
}


def _optional(kind: str | list[str]) -> list[str]:
    return [kind, "null"] if isinstance(kind, str) else [*kind, "null"]


def _common_fields(info: VendorInfo) -> dict[str, Any]:
    return {
        "base_url": {
            "label": "Base URL",
            "description": f"API base URL; the vendor's own is {info.base_url}. Point it at the sandbox to try DAGs.",
            "schema": {"type": _optional("string"), "default": info.base_url, "format": "uri"},
        },
        "connect_timeout": {
            "label": "Connect timeout (s)",
            "schema": {"type": _optional("number"), "default": 10, "minimum": 0.1},
        },
        "read_timeout": {
            "label": "Read timeout (s)",
            "schema": {"type": _optional("number"), "default": 60, "minimum": 0.1},
        },
        "max_retries": {
            "label": "Max retries",
            "description": "Retries of a call that met a 429, a 5xx, a reset or a timeout. Auth errors never retry.",
            "schema": {"type": _optional("integer"), "default": 5, "minimum": 0},
        },
        "max_retry_wait": {
            "label": "Max total retry wait (s)",
            "description": "Cap on the time one call may spend waiting between retries (Retry-After included).",
            "schema": {"type": _optional("number"), "default": 300, "minimum": 0},
        },
        "max_response_bytes": {
            "label": "Max response size (bytes)",
            "description": "Cap on one decoded response body; a larger one fails the call (64 MiB by default).",
            "schema": {"type": _optional("integer"), "default": 67108864, "minimum": 1024},
        },
        "requests_per_second": {
            "label": "Requests per second",
            "description": f"Client-side rate limit. {info.limits_note}",
            "schema": {"type": _optional("number"), "default": info.requests_per_second, "minimum": 0},
        },
        "burst": {
            "label": "Burst",
            "description": "Requests that may go out at once after a pause (token-bucket size).",
            "schema": {"type": _optional("integer"), "default": info.burst, "minimum": 1},
        },
        "max_in_flight": {
            "label": "Max requests in flight",
            "schema": {"type": _optional("integer"), "default": info.max_in_flight, "minimum": 1},
        },
    }


_VENDOR_FIELDS: dict[str, dict[str, Any]] = {
    "koneksi": {
        "auth_style": {
            "label": "Auth style",
            "description": "'api_key': the current Api-Key header. 'legacy': Koneksi's pair of "
            "Koneksi-Start-Messages-Api-Key (the API key field) and Koneksi-Get-Messages-Api-Key.",
            "schema": {
                "type": _optional("string"),
                "enum": ["api_key", "legacy", None],
                "default": "api_key",
            },
        },
        "get_messages_api_key": {
            "label": "Get-messages API key (legacy)",
            "description": "Legacy Koneksi only: the Koneksi-Get-Messages-Api-Key.",
            "schema": {"type": _optional("string"), "format": "password"},
        },
        "webhook_secret": {
            "label": "Webhook secret",
            "description": "Secret that signs completion webhooks (koneksi-signature), created next to the API key.",
            "schema": {"type": _optional("string"), "format": "password"},
        },
    },
    "connectsafely": {
        "account_id": {
            "label": "Default account id",
            "description": "LinkedIn account id (24 hex digits) used when a task names none.",
            "schema": {"type": _optional("string")},
        },
    },
    "linkedapi": {
        "identification_token": {
            "label": "Identification token",
            "description": "The identification-token of the LinkedIn account (one per account).",
            "schema": {"type": _optional("string"), "format": "password"},
        },
        "api": {
            "label": "API generation",
            "description": "'seed': /account/conversations.synchronize and .get (the documented contract). "
            "'current': /workflows and /conversations/poll (what the official SDK uses today).",
            "schema": {"type": _optional("string"), "enum": ["seed", "current", None], "default": "seed"},
        },
    },
    "linkup": {
        "account_id": {
            "label": "Default account id",
            "description": "LinkupAPI account_id (e.g. acc_abc123) used when a task names none.",
            "schema": {"type": _optional("string")},
        },
    },
}


def _connection_type(info: VendorInfo) -> dict[str, Any]:
    return {
        "connection-type": info.name,
        "hook-class-name": info.hook_class,
        "hook-name": info.label,
        "ui-field-behaviour": {
            "hidden-fields": ["host", "port", "schema", "login"],
            "relabeling": {"password": "API key"},
            "placeholders": {"password": f"your {info.label} API key"},
        },
        "conn-fields": {**_common_fields(info), **_VENDOR_FIELDS[info.name]},
    }


#: The ``[linkmsg]`` section: every option the package reads (``conf.get("linkmsg", ...)``), shown by
#: ``airflow providers configs`` and ``airflow config list``; set them in ``airflow.cfg`` or as
#: ``AIRFLOW__LINKMSG__<OPTION>``.
CONFIG: dict[str, Any] = {
    "linkmsg": {
        "description": "Settings of the LinkedIn-messaging provider (airflow-provider-linkmsg).",
        "options": {
            "staging_path": {
                "description": "Root of staged records (JSON Lines + manifests) and of the incremental state "
                "(watermarks), used when a task gives no ``staging_path``. A local path or any fsspec URL "
                "(``s3://``, ``gs://`` ...; the tasks' ``staging_conn_id`` names its connection). Workers, "
                "retries and later runs must all reach it: on more than one machine use an object store. "
                "Empty: ``$AIRFLOW_HOME/linkmsg``.",
                "version_added": "0.1.0",
                "type": "string",
                "example": "s3://my-bucket/linkmsg",
                "default": "",
            },
            "webhook_max_age_minutes": {
                "description": "Koneksi completion webhooks older than this (by their delivery time) are refused "
                "by ``verify_koneksi_webhook`` unless it is given ``max_age``.",
                "version_added": "0.1.0",
                "type": "float",
                "example": "15",
                "default": "60",
            },
            "webhook_replay_store": {
                "description": "Where verified webhook delivery keys are remembered, so a replay is refused "
                "across tasks and workers: a shared directory or an fsspec URL. Empty: in the memory of each "
                "process only.",
                "version_added": "0.1.0",
                "type": "string",
                "example": "s3://my-bucket/linkmsg/webhooks",
                "default": "",
            },
            "webhook_replay_store_conn_id": {
                "description": "Connection of ``webhook_replay_store`` when it is a URL (``aws_default`` ...).",
                "version_added": "0.1.0",
                "type": "string",
                "example": "aws_default",
                "default": "",
            },
            "webhook_base_url": {
                "description": (
                    "Public base URL of this Airflow's API server, as the vendors reach it. When set, the Koneksi "
                    "request operator sends ``{webhook_base_url}/linkmsg/webhooks/koneksi/{conn_id}`` as the "
                    "completion notification URL unless the task, the campaign or the connection names one "
                    "(docs/events.md)."
                ),
                "version_added": "0.1.0",
                "type": "string",
                "example": "https://airflow.example.com",
                "default": "",
            },
        },
    },
}


def _modules(layer: str, names: list[str]) -> list[dict[str, Any]]:
    return [
        {"integration-name": VENDORS[n].label, "python-modules": [f"{_PACKAGE}.{layer}.{n}"]} for n in names
    ]


def get_provider_info() -> dict[str, Any]:
    """The provider's registration dict, read by Airflow through the ``apache_airflow_provider`` entry point."""
    return {
        "package-name": "airflow-provider-linkmsg",
        "name": "LinkedIn Messaging (linkmsg)",
        "description": "Koneksi (Upscale Outreach), ConnectSafely, Linked API and LinkupAPI for Apache Airflow: "
        "generate outreach messages, synchronize and retrieve LinkedIn inboxes incrementally, and export "
        "them to files or SQL databases.",
        "versions": [__version__],
        "integrations": [
            {"integration-name": info.label, "external-doc-url": _DOCS[name], "tags": ["service"]}
            for name, info in VENDORS.items()
        ],
        "hooks": _modules("hooks", list(VENDORS)),
        "operators": _modules("operators", list(VENDORS)),
        "sensors": _modules("sensors", ["koneksi"]),
        "triggers": _modules("triggers", ["koneksi", "linkedapi"])
        + _modules("triggers.watchers", ["connectsafely", "linkedapi", "linkup"]),
        "connection-types": [_connection_type(info) for info in VENDORS.values()],
        "config": CONFIG,
        "extra-links": [
            f"{_PACKAGE}.operators.links.LinkedInThreadLink",
            f"{_PACKAGE}.operators.links.VendorDashboardLink",
        ],
        "plugins": [
            {"name": "linkmsg_webhooks", "plugin-class": f"{_PACKAGE}.plugins.webhooks.LinkMsgWebhooksPlugin"}
        ],
    }
