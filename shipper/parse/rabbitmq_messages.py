"""Fields from RabbitMQ's well-known messages, for the text and the JSON formats alike.

Connections (accepted, authenticated, closed, closed abruptly, missed heartbeats), authentication
failures, channel errors, and memory/disk alarms are what people search for when a broker
misbehaves; each gets ECS fields (source/destination addresses, user.name, event.*) and
``rabbitmq.*`` fields, plus a tag a saved search can rely on.
"""

from __future__ import annotations

import re
from typing import Any

from .base import Document

ADDR = r"(?P<src>[^\s>]+?):(?P<sport>\d+) -> (?P<dst>[^\s,)]+?):(?P<dport>\d+)"
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
LOGIN_REFUSED = re.compile(r"(?P<mech>[A-Z\-]+) login refused: user '(?P<user>[^']*)' - (?P<why>.*)")
CONNECTION_ERROR = re.compile(rf"Error on AMQP connection <(?P<pid>[\d.]+)> \({ADDR}")
CHANNEL_ERROR = re.compile(
    rf"Channel error on connection <(?P<pid>[\d.]+)> \({ADDR}, {VHOST_USER}\), "
    r"channel (?P<channel>\d+):\s*(?P<reason>.*)",
    re.S,
)
ALARM = re.compile(r"(?P<type>memory|disk) resource limit alarm (?P<state>set|cleared)")
HEARTBEAT = re.compile(r"missed heartbeats from client, timeout: (\d+)s")
CLIENT_NAME = re.compile(rf"connection <(?P<pid>[\d.]+)> \({ADDR}\) has a client-provided name: (?P<name>.*)")


def _endpoints(doc: Document, m: re.Match[str]) -> None:
    doc["source"] = {"ip": m.group("src"), "port": int(m.group("sport"))}
    doc["destination"] = {"ip": m.group("dst"), "port": int(m.group("dport"))}


def _rabbit(doc: Document) -> dict[str, Any]:
    node: dict[str, Any] = doc.setdefault("rabbitmq", {})
    return node


def _connection(doc: Document, pid: str) -> dict[str, Any]:
    conn: dict[str, Any] = _rabbit(doc).setdefault("connection", {})
    conn["pid"] = f"<{pid}>"
    return conn


def _tag(doc: Document, tag: str) -> None:
    doc.setdefault("tags", []).append(tag)


def _login_refused(doc: Document, event: dict[str, Any], msg: str) -> None:
    """``PLAIN login refused: user 'x' - invalid credentials``, alone or after a connection error."""
    login = LOGIN_REFUSED.search(msg)
    if login:
        doc["user"] = {"name": login.group("user")}
        event.update(category=["authentication"], type=["start"], action="login_refused", outcome="failure")
        _rabbit(doc)["auth"] = {"mechanism": login.group("mech"), "reason": login.group("why").strip()}
        _tag(doc, "authentication_failure")


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
                    if "client unexpectedly closed TCP connection" in reason:
                        _tag(doc, "connection_closed_abruptly")
                        event["outcome"] = "failure"
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
