"""One HTTP POST to a peer we do not trust (Kibana, an alert webhook), with hard limits.

Why not ``urllib.request``: it follows redirects, and on a 301/302/303 it turns the POST into a GET
and forwards every header, ``Authorization`` included, to wherever the ``Location`` points (another
host, or plain http). Its ``timeout`` is per socket operation, so a server that trickles one byte
at a time holds the caller for as long as it likes. Here:

- no redirect is ever followed: a 3xx raises :class:`RedirectRefused` naming the target (redacted);
- one deadline covers the whole call (connect, send, status, headers, body): a timer shuts the
  socket down when it passes, whatever the peer does;
- the answer's body is read up to a size cap;
- any garbage (not HTTP, reset, bad TLS) becomes one :class:`HttpPostError` line, never a traceback.

Only DNS resolution is outside the deadline (``getaddrinfo`` cannot be interrupted).
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from .errors import ShipperError
from .redact import redact_text, redact_url

#: Bytes of an answer we read at most; the rest is ignored (we only need a status and a summary).
MAX_ANSWER_BYTES = 16 * 1024 * 1024


class HttpPostError(ShipperError):
    """The POST did not get a usable answer: unreachable, timed out, not HTTP, redirected."""


class RedirectRefused(HttpPostError):
    """The peer answered 3xx; redirects are never followed (credentials stay where they were sent)."""

    def __init__(self, message: str, status: int, location: str | None) -> None:
        super().__init__(message)
        self.status = status
        self.location = location


@dataclass(frozen=True)
class Answer:
    status: int
    reason: str
    #: Header names lowercased.
    headers: Mapping[str, str]
    body: bytes


def split_userinfo(url: str) -> tuple[str, str | None, str | None]:
    """``(url without userinfo, user, password)``; user and password percent-decoded."""
    from urllib.parse import unquote

    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, sep, password = userinfo.partition(":")
    return parts._replace(netloc=hostport).geturl(), unquote(user), unquote(password) if sep else None


def post(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    deadline: float,
    *,
    max_answer_bytes: int = MAX_ANSWER_BYTES,
    context: ssl.SSLContext | None = None,
) -> Answer:
    """POST ``body`` to ``url`` and return the answer; raises :class:`HttpPostError` otherwise.

    ``deadline`` is the number of seconds the whole call may take. Userinfo in ``url`` is not
    sent (pass credentials in ``headers``)."""
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise HttpPostError(f"invalid URL {shown}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HttpPostError(f"not an http:// or https:// URL: {shown}")
    host = parts.hostname
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(
            host, port, timeout=deadline, context=context or ssl.create_default_context()
        )
    else:
        conn = http.client.HTTPConnection(host, port, timeout=deadline)
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        sock = conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):  # wakes up a recv/send blocked in another thread
                sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(deadline, expire)
    timer.daemon = True
    started = time.monotonic()
    timer.start()
    try:
        conn.request("POST", target, body=body, headers=dict(headers))
        resp = conn.getresponse()
        answer_headers = {k.lower(): v for k, v in resp.getheaders()}
        data = resp.read(max_answer_bytes)
        status, reason = resp.status, resp.reason
    except (OSError, http.client.HTTPException, ValueError) as exc:
        if expired.is_set() or time.monotonic() - started >= deadline:
            raise HttpPostError(f"{shown} gave no complete answer within {deadline:g} s") from None
        raise HttpPostError(f"POST to {shown} failed: {_describe(exc)}") from None
    finally:
        timer.cancel()
        conn.close()
    if expired.is_set():
        raise HttpPostError(f"{shown} gave no complete answer within {deadline:g} s")
    if 300 <= status < 400:
        location = answer_headers.get("location")
        target_shown = redact_url(urljoin(url, location)) if location else "nowhere (no Location header)"
        raise RedirectRefused(
            f"{shown} answered HTTP {status} redirecting to {target_shown}; redirects are not followed "
            "(credentials are never sent on to another address): use the final URL",
            status,
            location,
        )
    return Answer(status, reason, answer_headers, data)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, http.client.BadStatusLine | http.client.LineTooLong):
        return "the answer is not HTTP"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "the server closed the connection without answering"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return redact_text(f"{type(exc).__name__}: {exc}")[:300]
