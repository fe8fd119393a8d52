"""Webhook replay protection across hooks, tasks and workers, and the default maximum age."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from airflow_provider_linkmsg import webhooks
from airflow_provider_linkmsg.exceptions import LinkMsgValidationError
from airflow_provider_linkmsg.hooks.koneksi import KoneksiHook
from airflow_provider_linkmsg.webhooks import (
    MemorySeenStore,
    PathSeenStore,
    WebhookVerificationError,
    process_seen_store,
    sign_koneksi_payload,
    verify_koneksi_webhook,
)

SECRET = "whsec-test-0001"


def delivery(
    age: timedelta = timedelta(0), request_id: str = "7f1c1f9e-0000-4000-8000-000000000001"
) -> bytes:
    sent = (datetime.now(UTC) - age).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    body = {"secure_request_id": request_id, "status": "complete", "webhook_triggered_at": sent}
    return json.dumps(body).encode()


@pytest.fixture(autouse=True)
def _fresh_process_store(monkeypatch):
    monkeypatch.setattr(webhooks, "_process_store", None)


@pytest.fixture
def koneksi_conn(monkeypatch):
    conn = {"conn_type": "koneksi", "password": "key", "extra": {"webhook_secret": SECRET}}
    monkeypatch.setenv("AIRFLOW_CONN_KONEKSI_DEFAULT", json.dumps(conn))


def test_a_three_year_old_delivery_is_refused_by_default():
    old = delivery(timedelta(days=3 * 365))
    with pytest.raises(WebhookVerificationError) as info:
        verify_koneksi_webhook(old, sign_koneksi_payload(old, SECRET), SECRET)
    assert info.value.reason == "too_old"
    fresh = delivery(timedelta(minutes=59))
    assert verify_koneksi_webhook(fresh, sign_koneksi_payload(fresh, SECRET), SECRET)


def test_the_maximum_age_is_configurable_in_minutes(monkeypatch):
    monkeypatch.setenv("AIRFLOW__LINKMSG__WEBHOOK_MAX_AGE_MINUTES", "1")
    late = delivery(timedelta(minutes=2))
    with pytest.raises(WebhookVerificationError, match="outside max_age"):
        verify_koneksi_webhook(late, sign_koneksi_payload(late, SECRET), SECRET)
    recent = delivery(timedelta(seconds=30))
    assert verify_koneksi_webhook(recent, sign_koneksi_payload(recent, SECRET), SECRET)


def test_a_replay_through_a_new_hook_is_refused(koneksi_conn):
    body = delivery()
    signature = sign_koneksi_payload(body, SECRET)
    assert KoneksiHook().verify_webhook(body, signature)["status"] == "complete"
    with pytest.raises(WebhookVerificationError) as info:
        KoneksiHook().verify_webhook(body, signature)
    assert info.value.reason == "replay"
    with pytest.raises(WebhookVerificationError):  # and through the plain function, same process
        verify_koneksi_webhook(body, signature, SECRET)


def test_one_store_per_process_can_live_on_a_shared_path(monkeypatch, tmp_path, koneksi_conn):
    monkeypatch.setenv("AIRFLOW__LINKMSG__WEBHOOK_REPLAY_STORE", str(tmp_path / "seen"))
    store = process_seen_store()
    assert isinstance(store, PathSeenStore) and process_seen_store() is store
    body = delivery()
    signature = sign_koneksi_payload(body, SECRET)
    KoneksiHook().verify_webhook(body, signature)
    # another worker (a separate process) sees the key and refuses the replay
    script = "\n".join(
        [
            "from airflow_provider_linkmsg.webhooks import WebhookVerificationError, verify_koneksi_webhook",
            "try:",
            f"    verify_koneksi_webhook({body!r}, {signature!r}, {SECRET!r})",
            "except WebhookVerificationError as e:",
            "    print(e.reason)",
            "else:",
            "    print('accepted')",
        ]
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "replay", out.stderr[-2000:]


def test_a_path_store_lets_exactly_one_of_many_concurrent_claims_win(tmp_path):
    stores = [PathSeenStore(tmp_path / "seen") for _ in range(8)]
    results: list[bool] = []
    barrier = threading.Barrier(len(stores))

    def claim(store: PathSeenStore) -> None:
        barrier.wait()
        results.append(store.add("delivery-1"))

    threads = [threading.Thread(target=claim, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == [False] * 7 + [True]


def test_a_path_store_forgets_after_its_ttl(tmp_path):
    store = PathSeenStore(tmp_path / "seen", ttl=0.05)
    assert store.add("k") and not store.add("k")
    time.sleep(0.06)
    assert store.add("k") and not store.add("k")


def test_a_path_store_on_object_storage():
    store = PathSeenStore(f"memory://linkmsg-webhooks-{time.time_ns()}/seen")
    assert store.add("k") and not store.add("k")
    assert PathSeenStore(store.root).add("k") is False  # another instance on the same prefix
    assert store.add("other")


def test_an_explicit_store_and_no_age_limit_still_work():
    old = delivery(timedelta(days=400))
    seen = MemorySeenStore()
    signature = sign_koneksi_payload(old, SECRET)
    assert verify_koneksi_webhook(old, signature, SECRET, seen_store=seen, max_age=None)
    assert len(seen) == 1 and len(process_seen_store()) == 0


# ---- time values that break the checks (adversarial review of issue 14, F11) ------------------------------
def signed(body: dict) -> tuple[bytes, str]:
    raw = json.dumps(body).encode()
    return raw, sign_koneksi_payload(raw, SECRET)


@pytest.mark.parametrize("sent_at", ["9" * 30, "99999-01-01T00:00:00", "-" + "9" * 20])
def test_a_signed_timestamp_out_of_range_is_a_verification_error(sent_at):
    raw, sig = signed({"secure_request_id": "r-1", "status": "complete", "webhook_triggered_at": sent_at})
    with pytest.raises(WebhookVerificationError) as info:
        verify_koneksi_webhook(raw, sig, SECRET, seen_store=MemorySeenStore())
    assert info.value.reason == "malformed"


@pytest.mark.parametrize("max_age", [float("nan"), float("inf"), -1, "soon", True])
def test_an_explicit_max_age_must_be_finite_and_not_negative(max_age):
    old = delivery(timedelta(days=3 * 365))
    with pytest.raises(LinkMsgValidationError) as info:
        verify_koneksi_webhook(old, sign_koneksi_payload(old, SECRET), SECRET, max_age=max_age)
    assert info.value.field == "max_age"


@pytest.mark.parametrize("minutes", ["nan", "inf", "-5", "soon"])
def test_a_configured_max_age_must_be_finite_and_not_negative(monkeypatch, minutes):
    monkeypatch.setenv("AIRFLOW__LINKMSG__WEBHOOK_MAX_AGE_MINUTES", minutes)
    old = delivery(timedelta(days=3 * 365))
    with pytest.raises(LinkMsgValidationError, match="webhook_max_age_minutes") as info:
        verify_koneksi_webhook(old, sign_koneksi_payload(old, SECRET), SECRET, seen_store=MemorySeenStore())
    assert info.value.field == "[linkmsg] webhook_max_age_minutes"


def test_a_replay_store_entry_lives_at_least_as_long_as_a_delivery_is_accepted():
    class Recording(MemorySeenStore):
        def add(self, key, ttl=None):
            self.asked = ttl
            return super().add(key, ttl)

    store = Recording(ttl=60)  # shorter than the accepted age: a replay after a minute would pass
    body = delivery(timedelta(minutes=50))
    signature = sign_koneksi_payload(body, SECRET)
    verify_koneksi_webhook(body, signature, SECRET, seen_store=store, max_age=3 * 24 * 3600)
    assert store.asked >= 3 * 24 * 3600
    fresh = delivery(request_id="7f1c1f9e-0000-4000-8000-000000000002")
    verify_koneksi_webhook(fresh, sign_koneksi_payload(fresh, SECRET), SECRET, seen_store=store, max_age=None)
    assert store.asked == float("inf")  # any age accepted: the entry never expires
    with pytest.raises(WebhookVerificationError, match="already received"):
        verify_koneksi_webhook(body, signature, SECRET, seen_store=store, max_age=3 * 24 * 3600)


def test_a_signed_body_nested_too_deep_for_the_parser_is_malformed():
    for body in (b"[" * 40_000, b'{"a":' * 8_000):
        with pytest.raises(WebhookVerificationError) as info:
            verify_koneksi_webhook(body, sign_koneksi_payload(body, SECRET), SECRET, seen_store=None)
        assert info.value.reason == "malformed"
