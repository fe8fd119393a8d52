"""The async path's bounded decoder reads every gzip body as urllib3 (the sync path) does, however it is chunked."""

from __future__ import annotations

import gzip
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from urllib3.response import DeflateDecoder, GzipDecoder

from airflow_provider_linkmsg.exceptions import LinkMsgResponseTooLargeError
from airflow_provider_linkmsg.hooks.transport.decode import STEP, BoundedDecoder


def _decode(body: bytes, encoding: str, chunk: int, cap: int = 1 << 24) -> bytes:
    decoder = BoundedDecoder({"Content-Encoding": encoding}, cap, {"vendor": "koneksi"})
    out = []
    for i in range(0, len(body), chunk):
        out += decoder.feed(body[i : i + chunk])
    out += decoder.finish()
    return b"".join(out)


def _urllib3(body: bytes, decoder: GzipDecoder | DeflateDecoder) -> bytes:
    return decoder.decompress(body) + decoder.flush()


members = st.lists(st.binary(max_size=3 * STEP) | st.just(b"p" * (2 * STEP + 7)), min_size=1, max_size=4)
trailers = st.sampled_from([b"", b"\0" * 8, b"garbage", b"\x1f\x8b\x08\x00broken"])


@settings(max_examples=150, deadline=None)
@given(parts=members, trailer=trailers, chunk=st.integers(min_value=1, max_value=STEP + 10))
def test_a_gzip_body_of_any_members_and_chunking_reads_as_urllib3_reads_it(parts, trailer, chunk):
    body = b"".join(gzip.compress(p) for p in parts) + trailer
    expected = _urllib3(body, GzipDecoder())
    assert expected == b"".join(parts)
    assert _decode(body, "gzip", chunk) == expected


@settings(max_examples=50, deadline=None)
@given(data=st.binary(max_size=2 * STEP), raw=st.booleans(), chunk=st.integers(min_value=1, max_value=5000))
def test_a_deflate_body_reads_as_urllib3_reads_it(data, raw, chunk):
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
    body = compressor.compress(data) + compressor.flush()
    assert _decode(body, "deflate", chunk) == _urllib3(body, DeflateDecoder()) == data


def test_many_members_still_stop_at_the_cap():
    body = gzip.compress(b"x" * (1 << 20)) * 64  # 64 MiB in 64 members, ~64 KiB on the wire
    with pytest.raises(LinkMsgResponseTooLargeError):
        _decode(body, "gzip", 4096, cap=2 << 20)
