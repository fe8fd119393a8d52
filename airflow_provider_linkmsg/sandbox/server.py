"""
The sandbox's HTTP/1.1 server: keep-alive, one thread per connection, malformed requests answered 400 and
closed (a ``Content-Length`` that is not a small whole number or is given twice, an HTTP/0.9 request line),
idle or stalled connections closed after :data:`~.core.IDLE_TIMEOUT` seconds.
"""

from __future__ import annotations

import socket
import struct
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from airflow_provider_linkmsg.sandbox.core import IDLE_TIMEOUT, MAX_BODY, Request, Response, reply

if TYPE_CHECKING:
    from airflow_provider_linkmsg.sandbox.core import Sandbox


# --------------------------------------------------------------------------------------------------------
# The HTTP server
# --------------------------------------------------------------------------------------------------------
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def setup(self) -> None:
        super().setup()
        # answers go out as one segment: without this, Nagle's algorithm and delayed ACKs cost 40 ms each
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    timeout = IDLE_TIMEOUT  # a stalled or idle connection frees its thread

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the counters say what happened
        pass

    def parse_request(self) -> bool:
        words = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n").split()
        if len(words) == 2:  # HTTP/0.9: no headers, no status line; refuse before waiting for headers
            self.command, self.request_version, self.close_connection = None, "HTTP/1.0", True
            self.requestline = " ".join(words)
            self.send_error(400, "HTTP/0.9 requests are not served: send HTTP/1.1")
            return False
        return super().parse_request()

    def _bad_request(self, reason: str) -> None:
        self.close_connection = True
        self.send(reply(400, {"error": reason}, Connection="close"))

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        if len(self.headers.get_all("Content-Length") or ()) > 1:
            self._bad_request("Content-Length given more than once")
            return
        declared = self.headers.get("Content-Length")
        text = (declared or "").strip()
        if declared is not None and (not text.isdigit() or int(text) > MAX_BODY):
            self._bad_request(f"bad Content-Length {declared!r}: a whole number of bytes up to {MAX_BODY}")
            return
        length = int(text or 0)
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            self.close_connection = True  # the client closed mid-body: nothing to answer
            return
        request = Request(
            self.command, unquote(parts.path), parse_qs(parts.query), self.headers, body, parts.path
        )
        try:
            response = self.server.sandbox.dispatch(request, self)
        except Exception as exc:  # a sandbox bug must show, not hang the client
            response = reply(500, {"error": f"sandbox error: {type(exc).__name__}: {exc}"})
        if response is not None:
            self.send(response)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

    def send(self, response: Response, truncate: bool = False) -> None:
        payload = response.encode()
        self.send_response(response.status)
        if response.body is not None and not isinstance(response.body, bytes):
            self.send_header("Content-Type", "application/json")
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        if truncate:
            self.send_header("Connection", "close")
        if truncate:
            self._headers_buffer.append(b"\r\n" + payload[: len(payload) // 2])
            self.flush_headers()
            self.reset()
        else:
            self._headers_buffer.append(b"\r\n" + payload)
            self.flush_headers()

    def reset(self) -> None:
        """Close the connection with a TCP reset (SO_LINGER 0)."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256
    sandbox: Sandbox
