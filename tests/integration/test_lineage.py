"""OpenLineage of every operator that moves data: inputs and outputs named one way per kind of data."""

from __future__ import annotations

import json

import pytest

from airflow_provider_linkmsg.hooks.koneksi import KoneksiHook
from airflow_provider_linkmsg.operators.connectsafely import ConnectSafelyRetrieveMessagesOperator
from airflow_provider_linkmsg.operators.export import LinkMsgExportToFilesOperator
from airflow_provider_linkmsg.operators.koneksi import (
    KoneksiRequestMessageGenerationOperator,
    KoneksiRetrieveMessagesOperator,
)
from airflow_provider_linkmsg.operators.linkedapi import (
    LinkedApiRetrieveMessagesOperator,
    LinkedApiSyncConversationsOperator,
)
from airflow_provider_linkmsg.operators.linkup import LinkupRetrieveMessagesOperator
from tests.fixtures.koneksi import make_campaign
from tests.integration.test_export import run_operator
from tests.integration.test_koneksi_hook import direct_context, wait_complete


def pairs(datasets) -> list[tuple[str, str]]:
    return [(d.namespace, d.name) for d in datasets]


def staged_run(manifest: str) -> tuple[str, str]:
    """How a staged run is named: the ``file`` namespace and its directory (as the exports name it)."""
    return ("file", manifest.rsplit("/", 1)[0])


@pytest.mark.parametrize(
    ("vendor", "operator_class", "extra"),
    [
        ("connectsafely", ConnectSafelyRetrieveMessagesOperator, {}),
        ("linkup", LinkupRetrieveMessagesOperator, {"max_credits": 100}),
    ],
)
def test_an_inbox_retrieve_reads_the_vendors_inbox_and_writes_a_staged_run(
    inbox_sandbox, tmp_path, inbox_context, vendor, operator_class, extra
):
    sandbox = inbox_sandbox(vendor, conversations=2, messages=2)
    operator = operator_class(task_id="retrieve", staging_path=str(tmp_path), **extra)
    result = operator.execute(inbox_context())
    lineage = operator.get_openlineage_facets_on_complete(None)
    base_url = json.loads(sandbox.env()[f"AIRFLOW_CONN_{vendor.upper()}_DEFAULT"])["extra"]["base_url"]
    assert pairs(lineage.inputs) == [
        (base_url.rstrip("/"), f"{vendor}/accounts/{result['account_id']}/conversations")
    ]
    assert pairs(lineage.outputs) == [staged_run(result["manifest"])]
    # the export of that run names it the same way: the two tasks join in the lineage graph
    export = LinkMsgExportToFilesOperator(
        task_id="export", manifests=[result["manifest"]], destination=str(tmp_path / "out")
    )
    run_operator(export)
    assert pairs(export.get_openlineage_facets_on_complete(None).inputs) == pairs(lineage.outputs)


def test_a_koneksi_request_reads_its_leads_file_and_the_retrieve_stages_the_generation(
    koneksi_sandbox, tmp_path
):
    leads = koneksi_sandbox.truth("koneksi")["leads"]
    leads_file = tmp_path / "leads.json"
    leads_file.write_text(json.dumps(leads))
    request = KoneksiRequestMessageGenerationOperator(
        task_id="request",
        campaign=make_campaign(koneksi_sandbox),
        leads=str(leads_file),
        staging_path=str(tmp_path),
    )
    request_id = request.execute(direct_context())
    base_url = KoneksiHook().conn_params.base_url
    generation = (base_url, f"koneksi/generations/{request_id}")
    lineage = request.get_openlineage_facets_on_complete(None)
    assert pairs(lineage.inputs) == [("file", str(leads_file))]
    assert pairs(lineage.outputs) == [generation]
    # leads given inline (an upstream XCom): no input dataset, the same output
    inline = KoneksiRequestMessageGenerationOperator(
        task_id="request2", campaign=make_campaign(koneksi_sandbox), leads=leads, staging_path=str(tmp_path)
    )
    assert inline.execute(direct_context()) == request_id  # the same request: Koneksi de-duplicates it
    assert pairs(inline.get_openlineage_facets_on_complete(None).inputs) == []
    assert pairs(inline.get_openlineage_facets_on_complete(None).outputs) == [generation]

    wait_complete(KoneksiHook(), request_id)
    retrieve = KoneksiRetrieveMessagesOperator(
        task_id="retrieve", secure_request_id=request_id, staging_path=str(tmp_path)
    )
    summary = retrieve.execute(direct_context())
    lineage = retrieve.get_openlineage_facets_on_complete(None)
    assert pairs(lineage.inputs) == [generation]
    assert pairs(lineage.outputs) == [staged_run(summary["manifest"])]


def test_a_linkedapi_sync_writes_the_inbox_the_retrieve_then_reads(
    linkedapi_world, tmp_path, linkedapi_context
):
    world = linkedapi_world("seed", persons=3, not_found=0)
    persons = world.persons()
    sync = LinkedApiSyncConversationsOperator(
        task_id="sync", persons=persons, staging_path=str(tmp_path), poll_interval=0.05, deferrable=False
    )
    sync.execute(linkedapi_context("sync"))
    retrieve = LinkedApiRetrieveMessagesOperator(
        task_id="retrieve", persons=persons, staging_path=str(tmp_path)
    )
    result = retrieve.execute(linkedapi_context("retrieve"))
    base_url = world.conn["extra"]["base_url"].rstrip("/")
    inbox = (base_url, f"linkedapi/accounts/{result['account_id']}/conversations")
    synced = sync.get_openlineage_facets_on_complete(None)
    assert pairs(synced.inputs) == [] and pairs(synced.outputs) == [inbox]
    read = retrieve.get_openlineage_facets_on_complete(None)
    assert pairs(read.inputs) == [inbox]
    assert pairs(read.outputs) == [staged_run(result["manifest"])]


def test_a_run_that_did_not_finish_reports_no_datasets():
    operator = ConnectSafelyRetrieveMessagesOperator(task_id="retrieve")
    lineage = operator.get_openlineage_facets_on_complete(None)
    assert lineage.inputs == [] and lineage.outputs == []


def test_the_operators_modules_import_no_openlineage_module_beyond_what_airflow_loads():
    import subprocess
    import sys

    code = (
        "import sys, airflow; from airflow.providers.common.compat import sdk; "
        "before = {m for m in sys.modules if 'openlineage' in m}; "
        "import airflow_provider_linkmsg.operators.connectsafely, "
        "airflow_provider_linkmsg.operators.koneksi, airflow_provider_linkmsg.operators.linkedapi, "
        "airflow_provider_linkmsg.operators.lineage; "
        "print(sorted(m for m in sys.modules if 'openlineage' in m and m not in before))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
