"""Secret redaction of text that came from a vendor, before it reaches an exception, a log line or XCom."""

from __future__ import annotations

import base64
import functools
import html
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus, unquote_plus

#: connection extras whose values are secrets (besides the password)
SECRET_EXTRA = re.compile(r"(key|token|secret|password|passwd|credential)", re.IGNORECASE)
#: shorter values are not redacted by value (they would blank out ordinary words); Airflow's masker agrees
MIN_SECRET_LENGTH = 5
MASK = "***"
#: what may split an echoed secret without hiding it from a reader: whitespace (a line break a vendor or the
#: shortening put in), and the JSON escapes of whitespace as they appear in a raw body (``\\n``)
_GAP = r"(?:\s|\\[nrtfb])*"
#: a JSON ``\\uXXXX`` escape (a vendor may spell every character of an echoed key that way)
_JSON_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")


def secret_values(api_key: str, extra: Mapping[str, Any]) -> list[str]:
    """
    The connection's secrets: the API key and every extra whose name says it is a key, token or secret;
    under such a name, every string it holds (``webhook_secrets: {"acc_1": "whsec_..."}``), not its repr.
    """
    values = [api_key]
    for key, value in extra.items():
        if value and SECRET_EXTRA.search(str(key)):
            values.extend(_strings(value))
    return [v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET_LENGTH]


def _strings(value: Any, depth: int = 0) -> list[str]:
    """The strings (and numbers, as text) in a secret extra's value, down nested mappings and lists."""
    if isinstance(value, Mapping) and depth < 8:
        return [s for v in value.values() for s in _strings(v, depth + 1)]
    if isinstance(value, (list, tuple)) and depth < 8:
        return [s for v in value for s in _strings(v, depth + 1)]
    return [value if isinstance(value, str) else str(value)]


class Redactor:
    """
    Replace the connection's secrets in a text, then pass it through Airflow's secrets masker (which knows
    every secret registered in the process, e.g. other connections' passwords and masked variables).

    :param secrets: the values to hide.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        plain = {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}
        forms = {form for s in plain for form in encoded_forms(s)}
        self.secrets = sorted(plain | forms, key=len, reverse=True)

    @functools.cached_property
    def _pattern(self) -> re.Pattern[str] | None:
        """
        Each secret, longest first, also when whitespace splits it anywhere (``kon-ab\\ncd``): a reader (or a
        later ``" ".join(text.split())``) would put the halves back together. Compiled on the first text
        to redact (an error's), not with the hook: it takes ~0.1-0.3 s, which a triggerer's loop would
        otherwise spend on every connection's first call, error or not.
        """
        if not self.secrets:
            return None
        return re.compile("|".join(_GAP.join(map(re.escape, s)) for s in self.secrets))

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return _airflow_redact(text)
        # entity-, percent- or JSON-\\u-encoded in any spelling: decode the text when that reveals a secret
        for marker, decode in (("&", html.unescape), ("%", unquote_plus), ("\\u", _json_unescape)):
            if marker in text:
                decoded = decode(text)
                if decoded != text and self._pattern.search(decoded):
                    text = decoded
        return _airflow_redact(self._pattern.sub(MASK, text))

    def deep(self, value: Any) -> Any:
        """``value`` (a parsed JSON body) with every string in it redacted."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {self.deep(k): self.deep(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.deep(v) for v in value]
        return value


def _json_unescape(text: str) -> str:
    """``text`` with its JSON ``\\uXXXX`` escapes read (the rest left as it is)."""
    return _JSON_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)


def encoded_forms(secret: str) -> set[str]:
    """
    The forms a vendor may echo ``secret`` in: URL-quoted (``quote``, ``quote_plus``), HTML entities, and
    base64, alone or inside a longer base64 text such as ``user:secret`` (Basic auth): for each of the three
    alignments, the run of base64 characters that only the secret decides.
    """
    forms = {quote(secret, safe=""), quote(secret), quote_plus(secret), html.escape(secret)}
    forms.add("".join(f"&#{ord(c)};" if not c.isalnum() else c for c in secret))
    raw = secret.encode()
    for prefix in (b"", b":"):
        forms.add(base64.b64encode(prefix + raw).decode().rstrip("="))
    for shift in range(3):  # the secret starting at byte offset 0, 1 or 2 of a 3-byte group
        encoded = base64.b64encode(b"\0" * shift + raw).decode()
        start = 4 if shift else 0  # the first group mixes in the bytes before the secret
        end = ((shift + len(raw)) // 3) * 4  # the last full group: padding not included
        if end - start >= 8:
            forms.add(encoded[start:end])
    return {f for f in forms if f != secret and len(f) >= MIN_SECRET_LENGTH}


@functools.cache
def _masker() -> Callable[[Any], Any] | None:
    """
    Airflow's ``redact``, looked up once: on Airflow 2 each lookup through common.compat first fails over the
    Airflow 3 module paths, and their ImportErrors would leave cyclic garbage on every call.
    """
    try:
        from airflow.providers.common.compat.sdk import redact
    except ImportError:  # pragma: no cover - an Airflow without the masker
        return None
    return redact


def masked(text: str) -> str:
    """``text`` through Airflow's secrets masker only (every secret registered in the process)."""
    return _airflow_redact(text)


def _airflow_redact(text: str) -> str:
    redact = _masker()
    if redact is None:  # pragma: no cover - an Airflow without the masker
        return text
    result = redact(text)
    return result if isinstance(result, str) else text
