"""Secret redaction of text that came from a vendor, before it reaches an exception, a log line or XCom."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

#: connection extras whose values are secrets (besides the password)
SECRET_EXTRA = re.compile(r"(key|token|secret|password|passwd|credential)", re.IGNORECASE)
#: shorter values are not redacted by value (they would blank out ordinary words); Airflow's masker agrees
MIN_SECRET_LENGTH = 5
MASK = "***"


def secret_values(api_key: str, extra: Mapping[str, Any]) -> list[str]:
    """The connection's secrets: the API key and every extra whose name says it is a key, token or secret."""
    values = [api_key, *(str(v) for k, v in extra.items() if v and SECRET_EXTRA.search(str(k)))]
    return [v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET_LENGTH]


class Redactor:
    """
    Replace the connection's secrets in a text, then pass it through Airflow's secrets masker (which knows
    every secret registered in the process, e.g. other connections' passwords and masked variables).

    :param secrets: the values to hide.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = sorted(
            {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True
        )

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return _airflow_redact(text)


def _airflow_redact(text: str) -> str:
    try:
        from airflow.providers.common.compat.sdk import redact
    except ImportError:  # pragma: no cover - an Airflow without the masker
        return text
    result = redact(text)
    return result if isinstance(result, str) else text
