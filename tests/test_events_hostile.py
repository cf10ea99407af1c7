"""Issue 12, item 7: no Celery event, however malformed, stops `shipper events`; webhooks run off
the capture thread with a bounded queue and a deadline.

The mapping and the bridge by direct calls (hypothesis), then the REAL `shipper events` process
fed hostile messages on the REAL RabbitMQ `celeryev` exchange, with a webhook that trickles."""

from __future__ import annotations

import json
import logging
import math
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shipper.config import AlertsConfig, EventsConfig
from shipper.events import MALFORMED_TAG, MAX_KEYWORD, EventsBridge, WebhookSender, event_document
from shipper.sink.encode import encode_document
from shipper.sink.templates import FIELDS
from tests.support.es import es_client
from tests.support.peers import trickler

REPO = Path(__file__).resolve().parents[1]
#: Indexed keywords: a term each, which Lucene limits to 32,766 bytes.
KEYWORDS = {path for path, m in FIELDS.items() if m["type"] == "keyword" and m.get("index", True)}
EVENT_KEYS = [
    "type", "uuid", "hostname", "timestamp", "pid", "name", "retries", "queue", "routing_key", "eta",
    "expires", "exchange", "runtime", "exception", "traceback", "result", "args", "kwargs",
    "terminated", "signum", "clock", "utcoffset", "local_received", "freq", "sw_ident",
]  # fmt: skip
TASK_KINDS = (
    "sent",
    "received",
    "started",
    "succeeded",
    "failed",
    "retried",
    "revoked",
    "rejected",
    "custom",
)
TYPES = [f"task-{t}" for t in TASK_KINDS] + ["worker-online", "worker-heartbeat", "worker-offline"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63, max_value=2**200),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1.0, 2**64, 10**40]),
    st.text(),
    st.text(alphabet=st.characters(blacklist_categories=()), max_size=50),
    st.sampled_from(["\udcff", "x" * 100_000, "\x1b]52;c;cHduZWQ=\x07", ""]),
)
junk = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(st.text(max_size=5), children)
    ),
    max_leaves=20,
)


def deep(n: int) -> Any:
    value: Any = "bottom"
    for _ in range(n):
        value = [value]
    return value


events = st.dictionaries(
    st.sampled_from(EVENT_KEYS) | st.text(max_size=10),
    junk,
    max_size=12,
).flatmap(
    lambda d: st.one_of(
        st.just(d),
        st.sampled_from(TYPES).map(lambda t: {**d, "type": t}),
        st.sampled_from(TYPES).map(lambda t: {**d, "type": t, "uuid": str(uuid.uuid4()), "timestamp": 1.0}),
    )
)


def leaves(doc: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from leaves(value, f"{prefix}.{key}" if prefix else key)
    elif isinstance(doc, list):
        for value in doc:
            yield from leaves(value, prefix)
    else:
        yield prefix, doc


def check_document(doc: dict[str, Any]) -> None:
    encoded = encode_document(doc)
    assert json.loads(encoded, parse_constant=lambda c: pytest.fail(f"bare {c} in JSON"))
    assert isinstance(doc["@timestamp"], str) and doc["@timestamp"][:4].isdigit()
    for path, value in leaves(doc):
        if path in KEYWORDS and value is not None:
            assert isinstance(value, str | bool | int), (path, type(value))
            assert len(str(value)) <= MAX_KEYWORD, path
        if isinstance(value, float):
            assert math.isfinite(value), path
        if isinstance(value, int) and not isinstance(value, bool):
            assert -(2**63) <= value < 2**63, path


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(events, st.one_of(st.none(), st.text(), st.sampled_from(["t" * 2_000_000])), st.booleans())
def test_any_event_maps_to_a_valid_bounded_document(
    event: dict[str, Any], task_name: Any, args: bool
) -> None:
    doc_id, doc = event_document(event, task_name, include_args=args)
    uuid.UUID(doc_id)
    check_document(doc)
    if "tags" in doc:
        assert doc["tags"] == [MALFORMED_TAG] and doc["celery"]["event"]["problems"]
        assert len(doc["event"]["original"]) <= 32 * 1024


@pytest.mark.parametrize(
    ("event", "problem"),
    [
        ({"type": "task-succeeded", "uuid": "a", "timestamp": 1.0, "runtime": math.nan}, "runtime"),
        ({"type": "task-succeeded", "uuid": "a", "timestamp": 1.0, "runtime": math.inf}, "runtime"),
        ({"type": "task-failed", "uuid": ["a", "b"], "timestamp": 1.0}, "uuid"),
        ({"type": 42, "timestamp": 1.0}, "type"),
        ({"type": ["task-failed"], "timestamp": 1.0}, "type"),
        ({"type": "task-started", "uuid": "a", "timestamp": 1e20}, "timestamp"),
        ({"type": "task-started", "uuid": "a", "timestamp": -5}, "timestamp"),
        ({"type": "task-started", "uuid": "a", "timestamp": "yesterday"}, "timestamp"),
        ({"type": "task-started", "uuid": "a"}, "timestamp"),
        ({}, "type"),
        ({"type": "task-received", "uuid": "a", "timestamp": 1.0, "name": "n" * 1_000_000}, "name"),
        ({"type": "worker-online", "timestamp": 1.0, "hostname": {"a": deep(5000)}}, "hostname"),
        ({"type": "task-received", "uuid": "a", "timestamp": 1.0, "retries": "many"}, "retries"),
        ({"type": "task-received", "uuid": "a", "timestamp": 1.0, "pid": 2**70}, "pid"),
        ({"type": "task-failed", "uuid": "a", "timestamp": 1.0, "exception": 10**5000}, "exception"),
    ],
)
def test_each_known_killer_is_flagged_and_named(event: dict[str, Any], problem: str) -> None:
    _, doc = event_document(event, None)
    check_document(doc)
    assert doc["tags"] == [MALFORMED_TAG]
    assert any(p.startswith(problem) for p in doc["celery"]["event"]["problems"]), doc["celery"]["event"]


def test_good_events_are_not_flagged() -> None:
    for etype in TYPES:
        _, doc = event_document(
            {"type": etype, "uuid": "u", "hostname": "celery@w", "timestamp": 1764000000.0, "runtime": 0.5},
            "t",
        )
        assert "tags" not in doc and "original" not in doc["event"], etype


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.one_of(events, junk), max_size=8))
def test_the_bridge_never_raises_and_accounts_for_every_message(messages: list[Any]) -> None:
    got: list[tuple[str, dict[str, Any]]] = []
    dead: list[tuple[Any, str]] = []
    bridge = EventsBridge(
        EventsConfig(include_heartbeats=True),
        got.extend,
        threading.Event(),
        dead_letter=lambda r, w: dead.append((r, w)),
    )
    for message in messages:
        bridge.on_event(message)
    bridge.flush()
    events_in = [m for m in messages if isinstance(m, dict)]
    assert bridge.received == len(messages)
    assert len(dead) == bridge.dead_lettered == len(messages) - len(events_in)
    assert all(reason for _, reason in dead)
    assert len([d for _, d in got if d["event"]["kind"] == "event"]) == len(events_in)
    for _, doc in got:
        check_document(doc)


def test_webhook_queue_is_bounded_and_drops_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    release = threading.Event()
    calls: list[Any] = []

    def blocked_post(url: str, body: Any, timeout: float) -> tuple[bool, str]:
        calls.append(body)
        release.wait(30)
        return True, ""

    sender = WebhookSender("http://127.0.0.1:9/x", timeout=1, max_queue=5, post=blocked_post)
    with caplog.at_level(logging.WARNING, logger="shipper.events"):
        t0 = time.monotonic()
        results = [sender.submit({"n": i}) for i in range(100)]
        assert time.monotonic() - t0 < 1  # submit never waits for the peer
    release.set()
    sender.close(timeout=5)
    assert results.count(True) in (5, 6)  # the queue, plus the one being delivered
    assert sender.dropped == 100 - results.count(True)
    assert sender.sent == results.count(True)
    full = [r for r in caplog.records if r.getMessage() == "alert webhook queue full, alert dropped"]
    assert len(full) == 1  # rate limited


def test_alerts_never_wait_for_a_trickling_webhook() -> None:
    """on_event returns at once even when every alert goes to a server that trickles bytes."""
    with trickler(0.2) as hook:
        cfg = EventsConfig(alerts=AlertsConfig(webhook_url=hook.url, webhook_timeout=1.0, webhook_queue=10))
        bridge = EventsBridge(cfg, lambda docs: None, threading.Event())
        t0 = time.monotonic()
        for i in range(50):
            bridge.on_event({"type": "task-failed", "uuid": f"u{i}", "timestamp": 1.0, "exception": "x"})
        assert time.monotonic() - t0 < 1.0
        assert bridge.webhook is not None
        bridge.webhook.close(timeout=3)
        assert bridge.webhook.sent == 0 and bridge.webhook.failed >= 1
        assert bridge.webhook.dropped + bridge.webhook.failed == 50


# ---------------------------------------------------------------------------------------------
# The real process on the real broker.


def publish(broker_url: str, messages: list[tuple[Any, dict[str, Any]]]) -> None:
    from celery.events.event import get_exchange
    from kombu import Connection, Producer

    with Connection(broker_url) as conn:
        exchange = get_exchange(conn)
        producer = Producer(conn.channel(), exchange=exchange)
        for body, options in messages:
            producer.publish(body, routing_key=options.pop("routing_key", "task.x"), **options)


def raw(body: bytes) -> tuple[bytes, dict[str, Any]]:
    return body, {"content_type": "application/json", "content_encoding": "utf-8"}


def js(event: Any) -> tuple[Any, dict[str, Any]]:
    return event, {"serializer": "json"}


def docs_for(es_url: str, namespace: str, query: dict[str, Any]) -> list[dict[str, Any]]:
    client = es_client(es_url)
    index = f"logs-celery.events-{namespace}*"
    client.indices.refresh(index=index, allow_no_indices=True)
    resp = client.search(index=index, size=1000, allow_no_indices=True, query=query)
    return [h["_source"] for h in resp["hits"]["hits"]]


@pytest.mark.slow
def test_shipper_events_survives_hostile_events_on_the_real_broker(
    tmp_path: Path, broker_url: str, es_url: str
) -> None:
    namespace = "hostile" + uuid.uuid4().hex[:8]
    now = time.time()
    good = {f"good{i}": str(uuid.uuid4()) for i in range(3)}
    with trickler(0.2) as hook:
        cfg = tmp_path / "shipper.yml"
        cfg.write_text(f"""
data_dir: {tmp_path / "data"}
inputs: [{{id: none, paths: ["{tmp_path}/nothing/*.log"]}}]
output:
  elasticsearch:
    hosts: ["{es_url}"]
    namespace: {namespace}
    retry: {{initial_backoff: 0.05, max_backoff: 0.5}}
events:
  broker_url: "{broker_url}"
  alerts: {{webhook_url: "{hook.url}/alerts", webhook_timeout: 1, webhook_queue: 3}}
metrics: {{enabled: false}}
""")
        setup = subprocess.run(
            [sys.executable, "-m", "shipper", "setup", "-c", str(cfg)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert setup.returncode == 0, setup.stderr
        log = tmp_path / "events.log"
        with open(log, "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "shipper", "events", "-c", str(cfg)], cwd=REPO, stderr=err
            )
        try:
            deadline = time.monotonic() + 60
            while b'"capturing Celery events"' not in log.read_bytes():
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            time.sleep(1)
            big = str(uuid.uuid4())
            flagged_uuids = {f"bad{i}": str(uuid.uuid4()) for i in range(8)}
            b = flagged_uuids
            hostile = [
                # a good failure first: its alert goes to the trickling webhook
                js({"type": "task-failed", "uuid": good["good0"], "timestamp": now, "hostname": "celery@h",
                    "exception": "Boom()", "name": "t.fail"}),
                raw(b'{"type": "task-succeeded", "uuid": "%s", "timestamp": %f, "runtime": NaN}'
                    % (b["bad0"].encode(), now)),
                raw(b'{"type": "task-succeeded", "uuid": "%s", "timestamp": %f, "runtime": Infinity}'
                    % (b["bad1"].encode(), now)),
                js({"type": "task-failed", "uuid": [b["bad2"]], "timestamp": now, "hostname": "h-list"}),
                js({"type": 42, "timestamp": now, "hostname": "h-int"}),
                js({"type": ["task-failed"], "timestamp": now, "hostname": "h-listtype"}),
                js({"type": "task-started", "uuid": b["bad3"], "timestamp": 1e300}),
                js({"type": "task-started", "uuid": b["bad4"], "timestamp": "yesterday", "clock": "x",
                    "utcoffset": "y"}),
                js({"uuid": b["bad5"], "timestamp": now}),
                js({"type": "task-received", "uuid": big, "timestamp": now, "name": "n" * 1_000_000,
                    "hostname": "h" * 100_000}),
                js({"type": "task-received", "uuid": b["bad6"], "timestamp": now, "retries": "many",
                    "pid": 2**70, "hostname": {"nested": deep(200)}}),
                js([{"type": "task-started", "uuid": b["bad7"], "timestamp": now, "runtime": -1}, 42, "text",
                    None]),
                raw(b"{not json at all"),
                raw(b'{"type": "task-started", "timestamp": ' + b"9" * 5000 + b"}"),
                ({"type": "task-started"}, {"serializer": "pickle"}),
                js("a string"),
                js(12),
                js({"type": "task-succeeded", "uuid": good["good1"], "timestamp": now + 1, "runtime": 0.5,
                    "hostname": "celery@h"}),
                js({"type": "task-failed", "uuid": good["good2"], "timestamp": now + 2,
                    "hostname": "celery@h", "exception": "Again()"}),
            ]  # fmt: skip
            for i in range(10):  # more failures than the webhook queue holds: dropped, not waited for
                hostile.append(js({"type": "task-failed", "uuid": f"f{i}-{uuid.uuid4()}", "timestamp": now}))
            t_published = time.monotonic()
            publish(broker_url, hostile)

            def have_good() -> bool:
                ids = {
                    d["celery"]["task"]["id"]
                    for d in docs_for(es_url, namespace, {"terms": {"celery.task.id": list(good.values())}})
                }
                return ids == set(good.values())

            deadline = time.monotonic() + 60
            while not have_good():
                assert proc.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.3)
            # The trickling webhook (1 s per call) did not hold the capture.
            assert time.monotonic() - t_published < 30
            flagged = docs_for(es_url, namespace, {"term": {"tags": MALFORMED_TAG}})
            flagged_ids = {d["celery"]["task"]["id"] for d in flagged if "task" in d["celery"]}
            assert set(b.values()) - {b["bad2"], b["bad5"]} <= flagged_ids, flagged_ids
            assert len(flagged) >= 11
            (big_doc,) = docs_for(es_url, namespace, {"term": {"celery.task.id": big}})
            assert len(big_doc["celery"]["task"]["name"]) == MAX_KEYWORD and big_doc["tags"] == [
                MALFORMED_TAG
            ]
            assert proc.poll() is None
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    lines = [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]
    stopped = next(x for x in lines if x["message"] == "events stopped")
    assert stopped["malformed"] >= 11 and stopped["dead_lettered"] == 8, stopped
    assert stopped["webhook_dropped"] >= 1 and stopped["webhook_sent"] == 0
    assert "Traceback" not in log.read_text()
    dead = [
        orjson.loads(x) for x in (tmp_path / "data" / "events-dead-letter.ndjson").read_bytes().splitlines()
    ]
    assert len(dead) == 8 and all(d["reason"] for d in dead)
    reasons = " ".join(d["reason"] for d in dead)
    assert "undecodable" in reasons and "JSON object" in reasons
