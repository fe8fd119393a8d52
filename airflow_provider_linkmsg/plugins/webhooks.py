"""
The provider's Airflow plugin: serves the webhook app (:mod:`~airflow_provider_linkmsg.plugins.app`) on the
Airflow 3 API server under ``/linkmsg``, where vendor webhooks become asset events.

Registered twice, as official providers do: the ``airflow.plugins`` entry point (always loaded) and the
provider info's ``plugins`` (loaded when ``[core] lazy_discover_providers`` is off; the second copy is
skipped by name).

Airflow 2 has no FastAPI API server to mount the app on (and no FastAPI installed), so there the plugin
registers nothing and says so once in the log: schedule the exports on time or on a sensor instead.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.plugins_manager import AirflowPlugin
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

from airflow_provider_linkmsg.events import URL_PREFIX

log = logging.getLogger(__name__)


def _fastapi_apps() -> list[dict[str, Any]]:
    if not AIRFLOW_V_3_0_PLUS:
        log.info("linkmsg webhooks: not served on Airflow 2 (they need Airflow 3's FastAPI API server)")
        return []
    from airflow_provider_linkmsg.plugins.app import app

    return [{"app": app, "url_prefix": URL_PREFIX, "name": "LinkedIn-messaging webhooks"}]


class LinkMsgWebhooksPlugin(AirflowPlugin):
    """Serves :data:`~airflow_provider_linkmsg.plugins.app.app` on the Airflow 3 API server under ``/linkmsg``."""

    name = "linkmsg_webhooks"
    fastapi_apps = _fastapi_apps()
