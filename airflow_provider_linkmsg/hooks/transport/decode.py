"""
A compressed body decoded under the size cap while it is decoded (the async path reads raw bytes and
decodes them here): every ``Content-Encoding`` layer httpx would undo (``gzip``, ``deflate``, in the order
the header lists them, so ``gzip, gzip`` too) inflates at most :data:`STEP` bytes at a time, and decoding
stops as soon as the decoded size passes ``max_bytes``. A gzip bomb therefore costs about ``max_bytes`` of
memory and of work, however far it would inflate. Encodings httpx does not decode are left as they are,
as httpx would (the JSON parser then refuses the body).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from airflow_provider_linkmsg.hooks.transport.http import too_large

#: the most one layer inflates per step
STEP = 64 * 1024
_GZIP = zlib.MAX_WBITS | 16


class _Layer:
    """
    One encoding layer: a ``zlib`` decompressor drained :data:`STEP` bytes at a time. ``deflate`` is read
    with its zlib header, or raw when the first bytes are no such header (as urllib3 and httpx do; the bytes
    fed before that shows are kept to start over). A gzip body of several members (RFC 1952 2.2) is decoded
    member after member; from the first undecodable byte after the first member on, the rest is ignored, as
    urllib3 (the sync path) does.
    """

    __slots__ = ("done", "head", "members", "name", "obj")

    def __init__(self, name: str) -> None:
        self.name = name
        self.obj = zlib.decompressobj(_GZIP if name != "deflate" else zlib.MAX_WBITS)
        self.head: bytes | None = b"" if name == "deflate" else None  # deflate, until its header is read
        self.members = 1
        self.done = False  # trailing bytes after the last member: swallowed

    def decompress(self, data: bytes) -> Iterator[bytes]:
        if self.head is not None:
            self.head += data
        while not self.done:
            try:
                out = self.obj.decompress(data, STEP)
            except zlib.error as exc:
                if self.head is not None:  # no zlib header: raw deflate, from the first byte again
                    self.obj, data, self.head = zlib.decompressobj(-zlib.MAX_WBITS), self.head, None
                    continue
                if self.members > 1:  # not a member after the first: the rest is ignored, as urllib3 does
                    self.done = True
                    return
                raise httpx.RemoteProtocolError(f"undecodable {self.name} body ({exc})") from None
            if self.head is not None and (out or len(self.head) >= 2):  # the 2-byte zlib header passed
                self.head = None
            if out:
                yield out
            if self.obj.eof:  # the member ended; what came after it is in unused_data (unconsumed_tail too)
                data = self.obj.unused_data
                if self.name == "deflate" or not data:
                    return
                self.obj, self.members = zlib.decompressobj(_GZIP), self.members + 1
                continue  # the next gzip member
            data = self.obj.unconsumed_tail
            if not data and len(out) < STEP:
                return

    def flush(self) -> bytes:
        try:
            return self.obj.flush()
        except zlib.error as exc:  # pragma: no cover - zlib reports a bad stream while decompressing
            raise httpx.RemoteProtocolError(f"undecodable {self.name} body ({exc})") from None


class BoundedDecoder:
    """
    The decoded body of a response, fed its raw bytes chunk by chunk.

    :param headers: the response headers (``Content-Encoding`` names the layers).
    :param max_bytes: past this many decoded bytes, :class:`LinkMsgResponseTooLargeError`.
    :param where: vendor, method and endpoint, for the error.
    """

    def __init__(self, headers: Mapping[str, str], max_bytes: int, where: Mapping[str, Any]) -> None:
        names = [e.strip().lower() for e in (headers.get("Content-Encoding") or "").split(",")]
        names = ["gzip" if n == "x-gzip" else n for n in names]
        # the last encoding applied is undone first
        self.layers = [_Layer(n) for n in reversed(names) if n in ("gzip", "deflate")]
        self.max_bytes = max_bytes
        self.where = where
        self.size = 0

    def feed(self, raw: bytes) -> list[bytes]:
        """The decoded bytes ``raw`` gives; raises past the cap (nothing past it is decoded)."""
        return self._count(self._push(0, raw))

    def finish(self) -> list[bytes]:
        """What the layers still hold once the raw body has ended."""
        return self._count(self._tail())

    def _count(self, chunks: Iterator[bytes]) -> list[bytes]:
        out = []
        for chunk in chunks:
            self.size += len(chunk)
            if self.size > self.max_bytes:
                raise too_large("more", self.max_bytes, self.where)
            out.append(chunk)
        return out

    def _push(self, i: int, data: bytes) -> Iterator[bytes]:
        if i == len(self.layers):
            yield data
            return
        for out in self.layers[i].decompress(data):
            yield from self._push(i + 1, out)

    def _tail(self) -> Iterator[bytes]:
        for i, layer in enumerate(self.layers):
            rest = layer.flush()
            if rest:
                yield from self._push(i + 1, rest)
