"""Issue 12, item 9: no document the shipper produces can hit Lucene's 32,766-byte term limit.

A real Elasticsearch refuses the WHOLE document when one keyword value is longer than 32,766 bytes
(the local test server is more lenient), so this tests against the limit itself: every keyword in
the templates has ``ignore_above``, and the documents made from a 1 MB task name or a 40 KB
``error.type`` (configurator -> JSON parser, Celery text parser, events) are indexable under those
mappings, by the same rules Elasticsearch applies."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from shipper.events import event_document
from shipper.logconfig import EcsJsonFormatter
from shipper.sink.templates import (
    DATASETS,
    FIELDS,
    KEYWORD_IGNORE_ABOVE,
    LUCENE_MAX_TERM_BYTES,
    index_template,
)
from tests.test_parsers import documents

#: Elasticsearch's default dynamic mapping of a string: text, plus a keyword sub-field that has
#: ignore_above 256. Fields we do not map explicitly get that.
DYNAMIC_KEYWORD_IGNORE_ABOVE = 256


def walk_properties(props: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    for name, mapping in props.items():
        path = f"{prefix}{name}"
        if "properties" in mapping:
            yield from walk_properties(mapping["properties"], f"{path}.")
        else:
            yield path, mapping
        for sub, sub_mapping in mapping.get("fields", {}).items():
            yield f"{path}.{sub}", sub_mapping


@pytest.mark.parametrize("mode", ["data_stream", "daily_index"])
@pytest.mark.parametrize("dataset", DATASETS)
def test_every_keyword_in_every_template_has_ignore_above(dataset: str, mode: str) -> None:
    body = index_template(dataset, mode, data_stream_fields=mode == "data_stream")
    keywords = 0
    for path, mapping in walk_properties(body["template"]["mappings"]["properties"]):
        if mapping.get("type") in ("keyword", "wildcard"):
            keywords += 1
            assert 0 < mapping.get("ignore_above", 10**9) <= 1024, path
    assert keywords > 30


def leaves(doc: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from leaves(value, f"{prefix}.{key}" if prefix else key)
    elif isinstance(doc, list):
        for value in doc:
            yield from leaves(value, prefix)
    else:
        yield prefix, doc


def unindexable_terms(doc: dict[str, Any]) -> list[str]:
    """Fields whose value Elasticsearch would refuse (whole document) under our mappings."""
    problems = []
    for path, value in leaves(doc):
        if not isinstance(value, str) or path.split(".")[0] == "json":  # json: enabled false
            continue
        mapping = FIELDS.get(path)
        if mapping is None:
            limit = DYNAMIC_KEYWORD_IGNORE_ABOVE
        elif mapping["type"] != "keyword" or (
            mapping.get("index") is False and mapping.get("doc_values") is False
        ):
            continue  # text is tokenized; a keyword neither indexed nor with doc values makes no term
        else:
            limit = mapping.get("ignore_above", 10**12)
        if len(value) <= limit and len(value.encode("utf-8", "surrogatepass")) > LUCENE_MAX_TERM_BYTES:
            problems.append(f"{path}: {len(value.encode('utf-8', 'surrogatepass'))} bytes")
    return problems


def test_the_checker_sees_the_problem_without_ignore_above() -> None:
    doc = {"celery": {"task": {"name": "n" * 40_000}}}
    saved = FIELDS["celery.task.name"]
    try:
        FIELDS["celery.task.name"] = {"type": "keyword"}
        assert unindexable_terms(doc) == ["celery.task.name: 40000 bytes"]
    finally:
        FIELDS["celery.task.name"] = saved
    assert unindexable_terms(doc) == []


def configurator_line(task_name: str, error_type_len: int) -> bytes:
    """A record logged inside a task whose name is ``task_name``, with an exception whose
    qualified name is ``error_type_len`` characters, as the configurator writes it."""
    exc_type = type("E" * error_type_len, (Exception,), {})
    try:
        raise exc_type("boom")
    except Exception:
        record = logging.LogRecord("app", logging.ERROR, "/a.py", 1, "failed", None, sys.exc_info())
    record.celery_task_id = "0b8e2a7c-9f1d-4c3b-8a5e-2d7f6c1b9e99"
    record.celery_task_name = task_name
    record.celery_worker_hostname = "celery@" + "w" * 10_000
    return (EcsJsonFormatter(hostname="h").format(record) + "\n").encode()


def test_configurator_output_with_huge_names_is_indexable() -> None:
    line = configurator_line("t" * 900_000, 40_000)  # the line stays below max_line_bytes (1 MiB)
    (doc,) = documents(line, "celery_json")
    assert len(doc["celery"]["task"]["name"]) == 900_000
    assert len(doc["error"]["type"]) >= 40_000
    assert unindexable_terms(doc) == []


def test_celery_text_with_a_huge_task_name_is_indexable() -> None:
    name = "shop." + "x" * 1_000_000
    line = f"[2026-11-24 20:59:43,887: INFO/MainProcess] Task {name}[27347a50-e429] received\n".encode()
    (doc,) = documents(line, "celery")
    assert doc["celery"]["task"]["name"] == name
    assert unindexable_terms(doc) == []


def test_event_with_a_huge_task_name_is_indexable() -> None:
    _, doc = event_document(
        {"type": "task-failed", "uuid": "u" * 100_000, "timestamp": 1.0, "name": "n" * 1_000_000,
         "exception": "E" * 100_000, "hostname": "h" * 100_000},
        None,
    )  # fmt: skip
    assert unindexable_terms(doc) == []
    assert orjson.loads(orjson.dumps(doc))["celery"]["task"]["name"] == "n" * KEYWORD_IGNORE_ABOVE
