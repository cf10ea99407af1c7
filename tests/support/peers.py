"""Lying HTTP peers for the tests: a recorder, a redirector, a trickler, a garbage talker.

Each one is a real server on 127.0.0.1 (its own port, hence its own origin), run in a daemon
thread and closed by the test (use them as context managers)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


class _Peer:
    url: str

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Any:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class Recorder(_Peer):
    """Answers every request with ``status`` and ``body``; records method, path, headers, body."""

    def __init__(self, status: int = 200, body: bytes = b"{}", headers: dict[str, str] | None = None) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length) if length else b""
                outer.requests.append(
                    (self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, data)
                )
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def redirector(status: int, location: str) -> Recorder:
    return Recorder(status, b"moved", {"Location": location})


class RawPeer(_Peer):
    """Accepts connections and runs ``talk(conn)`` for each: anything but well-behaved HTTP."""

    def __init__(self, talk: Any) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.closed = threading.Event()
        self.connections = 0
        self.talk = talk
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(1)
            with contextlib.suppress(OSError):
                conn.recv(65536)
            self.talk(conn, self.closed)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.closed.set()
        self.sock.close()


def trickler(interval: float = 0.2) -> RawPeer:
    """A valid status line and headers, one byte every ``interval`` seconds, forever."""

    def talk(conn: socket.socket, closed: threading.Event) -> None:
        data = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n" + b"X-Slow: " + b"a" * 10_000_000
        for byte in data:
            if closed.wait(interval):
                return
            conn.sendall(bytes([byte]))

    return RawPeer(talk)


def garbage() -> RawPeer:
    """Answers with bytes that are not HTTP, then closes."""

    def talk(conn: socket.socket, closed: threading.Event) -> None:
        conn.sendall(b"\x00\xffSSH-2.0-not-http \x1b]0;pwned\x07\r\n\r\n")

    return RawPeer(talk)


def silent() -> RawPeer:
    """Accepts and says nothing until closed."""

    def talk(conn: socket.socket, closed: threading.Event) -> None:
        closed.wait(600)

    return RawPeer(talk)


def elapsed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    t0 = time.monotonic()
    try:
        result = fn(*args, **kwargs)
    except Exception as exc:
        result = exc
    return result, time.monotonic() - t0
