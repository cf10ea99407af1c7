"""Kibana saved objects: the file is consistent, every field it names is mapped, and each saved
search's KQL finds exactly the right documents in an index filled from the real samples."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from shipper.kibana import SEARCHES, import_objects, objects, to_ndjson
from shipper.kql import fields_of, to_query
from shipper.sink.templates import FIELDS
from tests.support.docs import get
from tests.support.es import es_client
from tests.test_parsers import documents

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "tests" / "samples"
FILE = REPO / "kibana" / "saved_objects.ndjson"


def load() -> list[dict[str, Any]]:
    return [json.loads(line) for line in FILE.read_text().splitlines()]


def test_file_is_what_the_code_exports() -> None:
    assert FILE.read_text() == to_ndjson(), "run: shipper kibana export > kibana/saved_objects.ndjson"


def test_objects_parse_and_references_resolve() -> None:
    objs = load()
    ids = {(o["type"], o["id"]) for o in objs}
    assert len(ids) == len(objs)
    for o in objs:
        for ref in o["references"]:
            assert (ref["type"], ref["id"]) in ids, (o["id"], ref)
        if o["type"] == "search":
            source = json.loads(o["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
            assert source["query"]["language"] == "kuery"
            assert source["indexRefName"] in {r["name"] for r in o["references"]}
        if o["type"] == "dashboard":
            panels = json.loads(o["attributes"]["panelsJSON"])
            names = {r["name"] for r in o["references"]}
            assert {p["panelRefName"] for p in panels} == names
            assert len(panels) == len(SEARCHES)
    assert {o["attributes"]["title"] for o in objs if o["type"] == "index-pattern"} >= {
        "logs-celery.worker-*",
        "logs-rabbitmq.log-*",
    }


def test_every_field_named_is_in_the_mapping() -> None:
    for s in SEARCHES:
        named = fields_of(s.kql) | set(s.columns) | {"@timestamp"}
        missing = named - set(FIELDS)
        assert not missing, (s.slug, missing)


EXPECT: dict[str, Callable[[dict[str, Any]], bool]] = {
    "all-errors": lambda d: get(d, "log.level") in ("error", "critical"),
    "failed-tasks": lambda d: get(d, "celery.task.state") == "failed",
    "retried-tasks": lambda d: get(d, "celery.task.state") == "retry",
    "slow-tasks": lambda d: (get(d, "celery.task.runtime") or 0) > 10,
    "task-timeline": lambda d: get(d, "celery.task.id") is not None,
    "time-limits": lambda d: get(d, "celery.task.state") == "time_limit_exceeded",
    "broker-connection-errors": lambda d: bool(
        {"broker_connection_error", "broker_connection_lost"} & set(d.get("tags", []))
    ),
    "rabbitmq-alarms": lambda d: bool({"memory_alarm", "disk_alarm"} & set(d.get("tags", []))),
    "rabbitmq-abrupt-closes": lambda d: bool(
        {"connection_closed_abruptly", "missed_heartbeats"} & set(d.get("tags", []))
    ),
    "rabbitmq-auth-failures": lambda d: "authentication_failure" in d.get("tags", []),
    "task-lifecycle": lambda d: get(d, "celery.task.id") is not None,
}


@pytest.fixture(scope="module")
def sample_index(es_url: str) -> tuple[str, list[dict[str, Any]]]:
    """Documents parsed from every real sample, indexed under a namespace of their own."""
    from shipper.config import ElasticsearchConfig
    from shipper.sink.setup import run_setup

    client = es_client(es_url)
    run_setup(client, ElasticsearchConfig(hosts=(es_url,), index_mode="daily_index"))
    namespace = "kib" + uuid.uuid4().hex[:6]
    docs: list[dict[str, Any]] = []
    slow = (
        b"[2026-11-24 10:00:00,000: INFO/ForkPoolWorker-1] "
        b"Task shop.report[0b8e2a7c-9f1d-4c3b-8a5e-2d7f6c1b9e99] succeeded in 12.5s: None\n"
    )
    for name, parser in [
        ("celery-5.7-text.log", "celery"),
        ("celery-5.7-broker-errors.log", "celery"),
        ("celery-4-text.documented.log", "celery"),
        ("celery-5.7-json.log", "celery_json"),
        ("rabbitmq-3.10-text.log", "rabbitmq"),
        ("rabbitmq-3.10-json.log", "rabbitmq_json"),
    ]:
        docs += documents((SAMPLES / name).read_bytes(), parser)
    docs += documents(slow, "celery")
    # Celery events for the life-cycle search, shaped like the real ones tests/test_events.py ships.
    from shipper.events import event_document

    for etype in ("task-sent", "task-received", "task-started", "task-succeeded"):
        event = {
            "type": etype,
            "uuid": "27347a50-e429-409a-8aa3-5f3bfefada2c",
            "hostname": "celery@vm",
            "timestamp": 1795553983.9 + len(docs) / 1000,
            "runtime": 0.01,
        }
        docs.append(event_document(event, "shop.charge")[1])
    body = []
    for i, doc in enumerate(docs):
        index = f"logs-{get(doc, 'event.dataset')}-{namespace}-{doc['@timestamp'][:10].replace('-', '.')}"
        body.append({"create": {"_index": index, "_id": f"d{i}"}})
        body.append(doc)
    resp = client.bulk(operations=body, refresh=True)
    assert not resp["errors"], [i for i in resp["items"] if i["create"]["status"] >= 300][:3]
    return namespace, docs


@pytest.mark.parametrize("search", SEARCHES, ids=[s.slug for s in SEARCHES])
def test_saved_search_finds_what_it_should(
    search: Any, sample_index: tuple[str, list[dict[str, Any]]], es_url: str
) -> None:
    namespace, docs = sample_index
    view = {
        "celery": "logs-celery.worker-*",
        "rabbitmq": "logs-rabbitmq.log-*",
        "all": "logs-celery.worker-*,logs-rabbitmq.log-*",
        "lifecycle": "logs-celery.events-*,logs-celery.worker-*",
    }[search.view]
    index = ",".join(p.replace("-*", f"-{namespace}-*") for p in view.split(","))
    datasets = {
        "celery": {"celery.worker"},
        "rabbitmq": {"rabbitmq.log"},
        "all": {"celery.worker", "rabbitmq.log"},
        "lifecycle": {"celery.events", "celery.worker"},
    }[search.view]
    expected = sum(1 for d in docs if get(d, "event.dataset") in datasets and EXPECT[search.slug](d))
    assert expected > 0, f"the samples contain nothing for {search.slug}"
    found = es_client(es_url).count(index=index, query=to_query(search.kql))["count"]
    assert found == expected


def test_kql_translation() -> None:
    assert to_query('celery.task.state: "failed"') == {"term": {"celery.task.state": "failed"}}
    assert to_query("celery.task.runtime > 10") == {"range": {"celery.task.runtime": {"gt": "10"}}}
    assert to_query("celery.task.id: *") == {"exists": {"field": "celery.task.id"}}
    q = to_query('tags: ("a" or "b") and not log.level: info')
    assert q == {
        "bool": {
            "filter": [
                {
                    "bool": {
                        "should": [{"term": {"tags": "a"}}, {"term": {"tags": "b"}}],
                        "minimum_should_match": 1,
                    }
                },
                {"bool": {"must_not": [{"term": {"log.level": "info"}}]}},
            ]
        }
    }
    assert to_query('error.message: "card declined"') == {"match_phrase": {"error.message": "card declined"}}


class FakeKibana:
    """A local HTTP receiver speaking Kibana's import API (no Kibana can run here): it records the
    request and answers like Kibana 8 does, 200 with per-object results."""

    def __init__(self, fail_ids: set[str]) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                lines = [
                    json.loads(x) for x in body.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n--", 1)[0].splitlines()
                ]
                ok = [o for o in lines if o["id"] not in fail_ids]
                bad = [o for o in lines if o["id"] in fail_ids]
                answer = {
                    "success": not bad,
                    "successCount": len(ok),
                    "successResults": [{"type": o["type"], "id": o["id"], "overwrite": True} for o in ok],
                    "errors": [
                        {"type": o["type"], "id": o["id"], "error": {"type": "missing_references"}}
                        for o in bad
                    ],
                }
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


def test_import_posts_with_overwrite_and_reads_every_result() -> None:
    kibana = FakeKibana(fail_ids=set())
    result = import_objects(kibana.url, to_ndjson(), space="ops", auth="ApiKey abc")
    assert len(result.updated) == len(objects()) and not result.failed
    path, headers, body = kibana.requests[0]
    assert path == "/s/ops/api/saved_objects/_import?overwrite=true"
    assert headers["kbn-xsrf"] and headers["authorization"] == "ApiKey abc"
    assert to_ndjson().encode() in body


def test_import_command_fails_when_kibana_says_200_with_errors() -> None:
    import subprocess
    import sys

    failing = objects()[-1]["id"]
    kibana = FakeKibana(fail_ids={failing})
    out = subprocess.run(
        [sys.executable, "-m", "shipper", "kibana", "import", "--url", kibana.url],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert out.returncode != 0
    assert f"failed: dashboard/{failing}: missing_references" in out.stderr
    assert "1 saved object(s) failed" in out.stderr
