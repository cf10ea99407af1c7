"""Fields from RabbitMQ's well-known messages, for the text and the JSON formats alike.

Connections (accepted, authenticated, closed, closed abruptly, missed heartbeats), authentication
failures, channel errors, and memory/disk alarms are what people search for when a broker
misbehaves; each gets ECS fields (source/destination addresses, user.name, event.*) and
``rabbitmq.*`` fields, plus a tag a saved search can rely on.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from .base import Document

#: ``10.0.0.5:53444 -> 10.0.0.2:5672``; an IPv6 peer is bracketed (``[::1]:53318``), and with
#: ``reverse_dns_lookups`` a peer is a host name. Which one it is, the pattern says (one pass).
_PEER = r"(?:(?P<{0}4>\d+\.\d+\.\d+\.\d+)|\[(?P<{0}6>[^\]\s]*)\]|(?P<{0}h>[^\s>,)\[:]+)):(?P<{0}port>\d+)"
ADDR = _PEER.format("s") + " -> " + _PEER.format("d")
ACCEPTING = re.compile(rf"accepting AMQP connection <(?P<pid>[\d.]+)> \({ADDR}\)")
AUTHENTICATED = re.compile(
    rf"connection <(?P<pid>[\d.]+)> \({ADDR}\): user '(?P<user>[^']*)' authenticated and granted access to "
    r"vhost '(?P<vhost>[^']*)'"
)
VHOST_USER = r"vhost: '(?P<vhost>[^']*)', user: '(?P<user>[^']*)'"
CLOSING = re.compile(
    rf"closing AMQP connection <(?P<pid>[\d.]+)> \({ADDR}(?:, {VHOST_USER})?\)"
    r":?\s*(?P<reason>.*)",
    re.S,
)
#: ``PLAIN login refused: user 'x' - invalid credentials``, ``... user 'root' can only connect via
#: localhost`` (no dash), and either quoted inside a 3.5/3.6 ``{handshake_error,...}`` term (the
#: reason then ends at the closing quote).
LOGIN_REFUSED = re.compile(
    r"(?P<mech>[A-Z][A-Z0-9\-]*) login refused: user '(?P<user>[^']*)'(?: - | )?(?P<why>[^\"\n]*)"
)
#: The management plugin (``rabbit_mgmt_util``): ``HTTP access denied: user 'guest' - <why>``, and
#: ``HTTP access denied: basic auth disabled`` with no user.
HTTP_DENIED = re.compile(r"HTTP access denied: (?:user '(?P<user>[^']*)' - )?(?P<why>.*)", re.S)
#: Close reasons meaning the client went away without closing: 3.7+ wording, and 3.5/3.6's atom.
ABRUPT = ("client unexpectedly closed TCP connection", "connection_closed_abruptly")
CONNECTION_ERROR = re.compile(rf"Error on AMQP connection <(?P<pid>[\d.]+)> \({ADDR}")
CHANNEL_ERROR = re.compile(
    rf"Channel error on connection <(?P<pid>[\d.]+)> \({ADDR}, {VHOST_USER}\), "
    r"channel (?P<channel>\d+):\s*(?P<reason>.*)",
    re.S,
)
ALARM = re.compile(r"(?P<type>memory|disk) resource limit alarm (?P<state>set|cleared)")
HEARTBEAT = re.compile(r"missed heartbeats from client, timeout: (\d+)s")
CLIENT_NAME = re.compile(rf"connection <(?P<pid>[\d.]+)> \({ADDR}\) has a client-provided name: (?P<name>.*)")


def _endpoint(ip4: str | None, ip6: str | None, name: str | None, port: str) -> dict[str, Any]:
    """ECS ``ip`` must hold a valid address: IPv6 loses RabbitMQ's brackets, a host name (reverse
    DNS lookups on) goes to ``domain`` instead."""
    if ip4 is not None:
        return {"ip": ip4, "port": int(port)}
    if ip6 is not None:
        try:
            ipaddress.ip_address(ip6)
            return {"ip": ip6, "port": int(port)}
        except ValueError:
            name = ip6
    return {"domain": name, "port": int(port)}


def _endpoints(doc: Document, m: re.Match[str]) -> None:
    s4, s6, sh, sport, d4, d6, dh, dport = m.group("s4", "s6", "sh", "sport", "d4", "d6", "dh", "dport")
    doc["source"] = _endpoint(s4, s6, sh, sport)
    doc["destination"] = _endpoint(d4, d6, dh, dport)


def _rabbit(doc: Document) -> dict[str, Any]:
    node: dict[str, Any] = doc.setdefault("rabbitmq", {})
    return node


def _connection(doc: Document, pid: str) -> dict[str, Any]:
    conn: dict[str, Any] = _rabbit(doc).setdefault("connection", {})
    conn["pid"] = f"<{pid}>"
    return conn


def _tag(doc: Document, tag: str) -> None:
    doc.setdefault("tags", []).append(tag)


def _auth_failure(doc: Document, event: dict[str, Any], user: str | None, auth: dict[str, str]) -> None:
    """The same fields for every refused login, AMQP or HTTP, whatever the record around it."""
    if user is not None:
        doc["user"] = {"name": user}
    event.update(category=["authentication"], type=["start"], action="login_refused", outcome="failure")
    _rabbit(doc)["auth"] = auth
    _tag(doc, "authentication_failure")


def _login_refused(doc: Document, event: dict[str, Any], msg: str) -> None:
    """``PLAIN login refused: user 'x' - invalid credentials``, alone, after a connection error, or
    quoted in a closing report's ``{handshake_error,...}``."""
    login = LOGIN_REFUSED.search(msg)
    if login:
        auth = {"mechanism": login.group("mech"), "reason": login.group("why").strip()}
        _auth_failure(doc, event, login.group("user"), auth)


def _http_denied(doc: Document, event: dict[str, Any], msg: str) -> None:
    m = HTTP_DENIED.match(msg)
    if m:
        _auth_failure(doc, event, m.group("user"), {"reason": m.group("why").strip()})
        doc["network"] = {"protocol": "http"}


def enrich(doc: Document, msg: str) -> None:
    """Add fields for a recognised message; cheap substring checks before any regex."""
    event: dict[str, Any] = doc.setdefault("event", {})
    if "AMQP connection" in msg:
        if msg.startswith("accepting AMQP connection"):
            m = ACCEPTING.match(msg)
            if m:
                _endpoints(doc, m)
                _connection(doc, m.group("pid"))
                event.update(category=["network"], type=["connection", "start"], action="connection_accepted")
        elif msg.startswith("closing AMQP connection"):
            m = CLOSING.match(msg)
            if m:
                _endpoints(doc, m)
                conn = _connection(doc, m.group("pid"))
                event.update(category=["network"], type=["connection", "end"], action="connection_closed")
                if m.group("user") is not None:
                    doc["user"] = {"name": m.group("user")}
                    _rabbit(doc)["vhost"] = m.group("vhost")
                reason = m.group("reason").strip()
                if reason:
                    conn["close_reason"] = reason
                    if ABRUPT[0] in reason or ABRUPT[1] in reason:
                        _tag(doc, "connection_closed_abruptly")
                        event["outcome"] = "failure"
                    elif "login refused" in reason:
                        _login_refused(doc, event, reason)
                    hb = HEARTBEAT.search(reason)
                    if hb:
                        _tag(doc, "missed_heartbeats")
                        conn["heartbeat_timeout"] = int(hb.group(1))
                        event["outcome"] = "failure"
        elif msg.startswith("Error on AMQP connection"):
            m = CONNECTION_ERROR.match(msg)
            if m:
                _endpoints(doc, m)
                _connection(doc, m.group("pid"))
            _login_refused(doc, event, msg)
    elif msg.startswith("connection <"):
        m = AUTHENTICATED.match(msg)
        if m:
            _endpoints(doc, m)
            _connection(doc, m.group("pid"))
            doc["user"] = {"name": m.group("user")}
            _rabbit(doc)["vhost"] = m.group("vhost")
            event.update(
                category=["authentication"],
                type=["start"],
                action="connection_authenticated",
                outcome="success",
            )
        else:
            m = CLIENT_NAME.match(msg)
            if m:
                _endpoints(doc, m)
                _connection(doc, m.group("pid"))["name"] = m.group("name").strip()
    elif "login refused" in msg:
        _login_refused(doc, event, msg)
    elif msg.startswith("HTTP access denied"):
        _http_denied(doc, event, msg)
    elif msg.startswith("Channel error on connection"):
        m = CHANNEL_ERROR.match(msg)
        if m:
            _endpoints(doc, m)
            _connection(doc, m.group("pid"))
            doc["user"] = {"name": m.group("user")}
            _rabbit(doc)["vhost"] = m.group("vhost")
            _rabbit(doc)["channel"] = {"number": int(m.group("channel"))}
            doc["error"] = {"message": m.group("reason").strip()}
        event.update(action="channel_error", outcome="failure")
        _tag(doc, "channel_error")
    elif "resource limit alarm" in msg:
        m = ALARM.search(msg)
        if m:
            _rabbit(doc)["alarm"] = {"type": m.group("type"), "state": m.group("state")}
            event.update(action=f"alarm_{m.group('state')}")
            _tag(doc, f"{m.group('type')}_alarm")
    elif msg.startswith("Server startup complete"):
        event["action"] = "startup_complete"
    if not event:
        del doc["event"]
