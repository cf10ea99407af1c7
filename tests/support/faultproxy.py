"""A fault-injecting HTTP proxy in front of the test Elasticsearch, on real sockets.

- ``reject_items``: a predicate on a bulk item's ``_id``; matching items get a 429 in the response
  and are NOT forwarded (a real 429 means the document was not indexed), at most
  ``reject_times`` times per id.
- ``fail_requests``: the next N bulk requests get a whole-request 503.
- ``reset_requests``: the next N bulk requests read the body and then drop the connection.
- ``refuse``: ``(status, body, content type)``: every bulk request gets this whole-request answer
  (a 404 from a wrong proxy path, a 401...) until set back to None; counted in ``refused``.
- ``down()`` / ``up()``: stop listening (connection refused), start again on the same port.
Everything else is forwarded as is.
"""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import threading
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


class FaultProxy:
    def __init__(self, upstream: str, port: int) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 9200)
        self.port = port
        self.reject_items: Callable[[str], bool] = lambda _id: False
        self.reject_times = 1
        self.rejected: Counter[str] = Counter()
        self.fail_requests = 0
        self.reset_requests = 0
        self.bulk_requests = 0
        self.refuse: tuple[int, bytes, str] | None = None
        self.refused = 0
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")
                }
                if self.path.split("?")[0].endswith("/_bulk"):
                    with proxy.lock:
                        proxy.bulk_requests += 1
                        if proxy.reset_requests > 0:
                            proxy.reset_requests -= 1
                            self.connection.setsockopt(
                                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                            )
                            self.connection.close()
                            self.close_connection = True
                            return
                        if proxy.refuse is not None:
                            proxy.refused += 1
                            self._reply(*proxy.refuse)
                            return
                        if proxy.fail_requests > 0:
                            proxy.fail_requests -= 1
                            self._reply(503, b'{"error":{"type":"unavailable"},"status":503}')
                            return
                    self._bulk(body, headers)
                    return
                status, data, ctype = proxy.forward(self.command, self.path, body, headers)
                self._reply(status, data, ctype)

            def _bulk(self, body: bytes, headers: dict[str, str]) -> None:
                raw = (
                    gzip.decompress(body)
                    if headers.get("content-encoding", headers.get("Content-Encoding")) == "gzip"
                    else body
                )
                lines = raw.split(b"\n")
                pairs = [(lines[i], lines[i + 1]) for i in range(0, len(lines) - 1, 2)]
                keep, verdict = [], []
                for action, source in pairs:
                    op = json.loads(action)
                    doc_id = next(iter(op.values())).get("_id", "")
                    with proxy.lock:
                        reject = proxy.reject_items(doc_id) and proxy.rejected[doc_id] < proxy.reject_times
                        if reject:
                            proxy.rejected[doc_id] += 1
                    if reject:
                        verdict.append(
                            {
                                "create": {
                                    "_id": doc_id,
                                    "status": 429,
                                    "error": {
                                        "type": "es_rejected_execution_exception",
                                        "reason": "injected",
                                    },
                                }
                            }
                        )
                    else:
                        keep.append(action + b"\n" + source + b"\n")
                        verdict.append(None)
                forwarded: list[Any] = []
                if keep:
                    fwd_headers = {k: v for k, v in headers.items() if k.lower() != "content-encoding"}
                    status, data, _ = proxy.forward("POST", self.path, b"".join(keep), fwd_headers)
                    if status != 200:
                        self._reply(status, data)
                        return
                    forwarded = json.loads(data)["items"]
                it = iter(forwarded)
                items = [v if v is not None else next(it) for v in verdict]
                errors = any(next(iter(i.values())).get("status", 500) >= 300 for i in items)
                self._reply(200, json.dumps({"took": 1, "errors": errors, "items": items}).encode())

            def _reply(self, status: int, data: bytes, ctype: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("X-Elastic-Product", "Elasticsearch")
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def forward(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, str]:
        conn = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            conn.request(method, path, body=body or None, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read(), resp.getheader("Content-Type", "application/json")
        finally:
            conn.close()
