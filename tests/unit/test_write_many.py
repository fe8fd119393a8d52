"""A conversation staged in one call: the same part files, bytes and counts as one record at a time."""

from __future__ import annotations

import pytest

from airflow_provider_linkmsg.io.staging import StagingWriter
from airflow_provider_linkmsg.records import GeneratedMessage, Message


def _messages(conversation: str, count: int) -> list[Message]:
    return [
        Message(
            "linkup",
            "acc",
            conversation,
            f"{conversation}-{i}",
            f"2026-01-01T00:00:{i:02d}.000000Z",
            "inbound",
            text=f'é {i}\n"quoted"',
            raw={"id": i},
        )
        for i in range(count)
    ]


@pytest.mark.parametrize("include_raw", [False, True])
def test_write_many_stages_what_write_stages(tmp_path, include_raw):
    batches = [_messages("c1", 2), [], _messages("c2", 5), _messages("c3", 1)]
    staged = {}
    for how in ("one", "many"):
        with StagingWriter(
            str(tmp_path / how),
            vendor="linkup",
            record_type="message",
            run_id="r",
            include_raw=include_raw,
            max_records_per_file=3,
        ) as writer:
            for batch in batches:
                if how == "many":
                    writer.write_many(batch)
                else:
                    for message in batch:
                        writer.write(message)
        manifest = writer.close()
        staged[how] = (
            manifest.files,
            manifest.record_count,
            [(manifest.directory / info["name"]).read_bytes() for info in manifest.files],
        )
    assert staged["many"] == staged["one"]
    assert [info["records"] for info in staged["many"][0]] == [3, 3, 2]


def test_write_many_refuses_another_record_type_before_writing(tmp_path):
    writer = StagingWriter(str(tmp_path), vendor="linkup", record_type="message", run_id="r")
    generated = GeneratedMessage("req", "lead", "first_follow_up", 1, "generated", text="hi")
    with pytest.raises(TypeError, match="generated_message"):
        writer.write_many([*_messages("c1", 2), generated])
    assert writer.record_count == 0
    writer.abort()
