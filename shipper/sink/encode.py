"""Bulk request bodies, encoded by hand with orjson: pure functions.

Why not ``helpers.bulk``: it serialises each action and document through the client's generic
serializer and holds Python dicts until the request is built. We write the NDJSON bytes once,
keep them (a retry or a dead-letter entry reuses them), and hand the client ready bytes.

Every document is sent with ``create`` and a deterministic ``_id``: a document indexed before a
crash and sent again after it is refused with 409, which counts as indexed. That is what makes the
pipeline exactly-once end to end.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

ECS_VERSION = "8.11.0"


class IndexNaming:
    """``data_stream``: ``logs-{dataset}-{namespace}``; ``daily_index``: the same plus ``-YYYY.MM.DD``.

    Also owns the encoded ``create`` action prefix per index name, so the per-document work is
    one dictionary lookup and one concatenation.
    """

    def __init__(self, mode: str, namespace: str = "default", prefix: str = "logs") -> None:
        self.mode = mode
        self.namespace = namespace
        self.prefix = prefix
        self._names: dict[tuple[str, str], str] = {}
        self._actions: dict[str, bytes] = {}

    def index(self, dataset: str, timestamp: str) -> str:
        day = timestamp[:10] if self.mode != "data_stream" else ""
        name = self._names.get((dataset, day))
        if name is None:
            base = f"{self.prefix}-{dataset}-{self.namespace}"
            if self.mode == "data_stream":
                name = base
            else:
                valid = len(day) == 10 and day[4] == "-" and day[7] == "-"
                name = f"{base}-{day.replace('-', '.') if valid else 'unknown'}"
            if len(self._names) > 10_000:  # bounded: a file with garbage dates cannot grow it forever
                self._names.clear()
            self._names[(dataset, day)] = name
        return name

    def action_prefix(self, index: str) -> bytes:
        prefix = self._actions.get(index)
        if prefix is None:
            prefix = self._actions[index] = b'{"create":{"_index":' + orjson.dumps(index) + b',"_id":"'
        return prefix


class Item(NamedTuple):
    """One document ready to send: action line and source line (both ending in \\n), and the
    tailer batch its acknowledgement belongs to. A tuple: there are 100,000 of them a second."""

    body: bytes
    batch_seq: int


def encode_document(doc: dict[str, Any]) -> bytes:
    """orjson for speed; documents orjson refuses (lone surrogates, huge ints) go through the
    stdlib, which escapes them, so no record is ever lost to its encoding."""
    try:
        return orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        import json

        return json.dumps(doc, default=str, ensure_ascii=True, separators=(",", ":")).encode()


def make_item(
    naming: IndexNaming,
    doc_id: str,
    index: str,
    doc: dict[str, Any],
    batch_seq: int,
    data_stream: tuple[str, str] | None,
) -> Item:
    """Ids are ``<hex>-<hex>`` (record_id), so they need no JSON escaping in the action line."""
    if data_stream is not None:
        doc["data_stream"] = {"type": "logs", "dataset": data_stream[0], "namespace": data_stream[1]}
    return Item(
        naming.action_prefix(index) + doc_id.encode() + b'"}}\n' + encode_document(doc) + b"\n", batch_seq
    )


def item_parts(item: Item) -> tuple[str, str, Any]:
    """``(_id, _index, document)`` of an encoded item (for the dead-letter file: the rare path)."""
    action, _, source = item.body.partition(b"\n")
    op = orjson.loads(action)["create"]
    try:
        doc = orjson.loads(source)
    except orjson.JSONDecodeError:
        doc = source.decode("utf-8", "replace")
    return op["_id"], op["_index"], doc
