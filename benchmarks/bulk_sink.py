"""A minimal Elasticsearch bulk endpoint that acknowledges every item (201), for benchmarks:
the shipper, not a server, is what gets measured. Counts documents; GET /_count_received.

Run: python benchmarks/bulk_sink.py PORT
"""

from __future__ import annotations

import sys
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ITEM = b'{"create":{"status":201,"result":"created"}},'


class State:
    docs = 0
    requests = 0
    lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _reply(self, data: bytes, status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Elastic-Product", "Elasticsearch")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.startswith("/_count_received"):
            self._reply(b'{"docs":%d,"requests":%d}' % (State.docs, State.requests))
        else:
            self._reply(b'{"version":{"number":"8.15.0"},"tagline":"You Know, for Search"}')

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if self.headers.get("Content-Encoding") == "gzip":
            body = zlib.decompress(body, 47)
        n = body.count(b"\n") // 2
        with State.lock:
            State.docs += n
            State.requests += 1
        self._reply(b'{"took":1,"errors":false,"items":[' + (ITEM * n)[:-1] + b"]}")

    do_PUT = do_POST


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.serve_forever()
