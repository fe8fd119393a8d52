"""Event helpers without a server: LinkupAPI's signature check, the webhook URLs, the operator's default URL."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from airflow_provider_linkmsg.events import (
    check_linkup_signature,
    koneksi_completion_asset,
    koneksi_completion_uri,
    koneksi_completion_url,
    sign_linkup_payload,
    webhook_url,
)
from airflow_provider_linkmsg.operators.koneksi import KoneksiRequestMessageGenerationOperator
from tests.compat import asset_name

NOW = 1_790_000_000
BODY = b'{"event":"message_received","account_id":"acc_1"}'


def vendor_signature(secret: str, ts: int, body: bytes = BODY) -> str:
    """As LinkupAPI documents it, written out independently of the code under test."""
    return "v1=" + hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()


def test_sign_linkup_payload_is_the_documented_scheme():
    assert sign_linkup_payload(BODY, "s3cret", NOW) == vendor_signature("s3cret", NOW)


@pytest.mark.parametrize(
    ("ts", "signature", "secrets", "expected"),
    [
        (str(NOW - 10), vendor_signature("s3cret", NOW - 10), ["s3cret"], (True, "")),
        # rotation: several v1 values, or several candidate secrets
        (str(NOW), "v1=00ff," + vendor_signature("s3cret", NOW), ["s3cret"], (True, "")),
        (str(NOW), vendor_signature("new", NOW), ["old", "new"], (True, "")),
        (str(NOW), vendor_signature("other", NOW), ["s3cret"], (False, "bad_signature")),
        (str(NOW), vendor_signature("s3cret", NOW + 1), ["s3cret"], (False, "bad_signature")),
        (
            str(NOW),
            vendor_signature("s3cret", NOW).upper().replace("V1=", "v2="),
            ["s3cret"],
            (False, "bad_signature"),
        ),
        (None, vendor_signature("s3cret", NOW), ["s3cret"], (False, "missing_signature")),
        (str(NOW), None, ["s3cret"], (False, "missing_signature")),
        (str(NOW), vendor_signature("s3cret", NOW), [], (False, "bad_signature")),
        (str(NOW - 301), vendor_signature("s3cret", NOW - 301), ["s3cret"], (False, "too_old")),
        (str(NOW + 120), vendor_signature("s3cret", NOW + 120), ["s3cret"], (False, "too_old")),
        ("nan", sign_linkup_payload(BODY, "s3cret", "nan"), ["s3cret"], (False, "bad_signature")),
    ],
)
def test_linkup_signature_check(ts, signature, secrets, expected):
    assert check_linkup_signature(BODY, ts, signature, secrets, now=NOW) == expected


def test_a_tampered_body_fails_the_linkup_check():
    signature = vendor_signature("s3cret", NOW)
    assert check_linkup_signature(BODY + b" ", str(NOW), signature, ["s3cret"], now=NOW) == (
        False,
        "bad_signature",
    )


def test_the_completion_asset_and_urls():
    asset = koneksi_completion_asset("kon_prod")
    assert (asset_name(asset), asset.uri) == (
        koneksi_completion_uri("kon_prod"),
        "x-linkmsg-koneksi://kon_prod/completions",
    )
    assert webhook_url("https://af.example.com/", "koneksi", "kon_prod") == (
        "https://af.example.com/linkmsg/webhooks/koneksi/kon_prod"
    )


def test_the_completion_url_comes_from_the_connection_then_the_config(monkeypatch):
    monkeypatch.delenv("AIRFLOW__LINKMSG__WEBHOOK_BASE_URL", raising=False)
    assert koneksi_completion_url("kon") is None
    monkeypatch.setenv("AIRFLOW__LINKMSG__WEBHOOK_BASE_URL", "https://af.example.com")
    assert koneksi_completion_url("kon") == "https://af.example.com/linkmsg/webhooks/koneksi/kon"
    assert koneksi_completion_url("kon", "https://mine.example.com/done") == "https://mine.example.com/done"


def _operator(monkeypatch, campaign_url: str | None, conn_url: str | None) -> dict:
    extra = {"completion_notification_url": conn_url} if conn_url else {}
    monkeypatch.setenv(
        "AIRFLOW_CONN_KON_EVENTS", json.dumps({"conn_type": "koneksi", "password": "k", "extra": extra})
    )
    monkeypatch.setenv("AIRFLOW__LINKMSG__WEBHOOK_BASE_URL", "https://af.example.com")
    campaign = {"automation_tool_customer_id": "c1"}
    if campaign_url:
        campaign["completion_notification_url"] = campaign_url
    lead = {"external_prospect_id": "l1", "first_name": "A", "lead_company": "B", "linkedin": "https://x"}
    op = KoneksiRequestMessageGenerationOperator(
        task_id="t", campaign=campaign, leads=[lead], koneksi_conn_id="kon_events"
    )
    return op.build_payload()


@pytest.mark.parametrize(
    ("campaign_url", "conn_url", "expected"),
    [
        ("https://campaign.example.com/x", "https://conn.example.com/y", "https://campaign.example.com/x"),
        (None, "https://conn.example.com/y", "https://conn.example.com/y"),
        (None, None, "https://af.example.com/linkmsg/webhooks/koneksi/kon_events"),
    ],
)
def test_the_request_operator_fills_in_the_completion_url(monkeypatch, campaign_url, conn_url, expected):
    assert _operator(monkeypatch, campaign_url, conn_url)["completion_notification_url"] == expected


def test_the_example_export_dag_retrieves_each_triggering_generation_once():
    import importlib.util
    from pathlib import Path
    from types import SimpleNamespace

    path = Path(__file__).resolve().parents[2] / "example_dags" / "example_koneksi_webhook_export.py"
    spec = importlib.util.spec_from_file_location("example_koneksi_webhook_export", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.COMPLETIONS.uri == koneksi_completion_uri("koneksi_default")
    events = [SimpleNamespace(extra={"secure_request_id": i}) for i in ("a", "b", "a")] + [
        SimpleNamespace(extra={})
    ]

    class Accessor(dict):
        """Events looked up by asset, as Airflow's accessor does (3.0's Asset is not hashable: keyed by URI)."""

        def get(self, asset, default=None):
            return super().get(asset.uri, default)

    ids = module.generation_ids.function(triggering_asset_events=Accessor({module.COMPLETIONS.uri: events}))
    assert ids == ["a", "b"]
    assert module.generation_ids.function(triggering_asset_events={}) == []
