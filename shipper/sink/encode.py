"""Bulk request bodies, encoded by hand with orjson: pure functions.

Why not ``helpers.bulk``: it serialises each action and document through the client's generic
serializer and holds Python dicts until the request is built. We write the NDJSON bytes once,
keep them (a retry or a dead-letter entry reuses them), and hand the client ready bytes.

Every document is sent with ``create`` and a deterministic ``_id``: a document indexed before a
crash and sent again after it is refused with 409, which counts as indexed. That is what makes the
pipeline exactly-once end to end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

ECS_VERSION = "8.11.0"


@dataclass(frozen=True)
class IndexNaming:
    """``data_stream``: ``logs-{dataset}-{namespace}``; ``daily_index``: the same plus ``-YYYY.MM.DD``."""

    mode: str  # "data_stream" | "daily_index"
    namespace: str = "default"
    prefix: str = "logs"

    def index(self, dataset: str, timestamp: str) -> str:
        base = f"{self.prefix}-{dataset}-{self.namespace}"
        if self.mode == "data_stream":
            return base
        day = (
            timestamp[:10].replace("-", ".") if len(timestamp) >= 10 and timestamp[4:5] == "-" else "unknown"
        )
        return f"{base}-{day}"


@dataclass(frozen=True)
class Item:
    """One document ready to send: its action and source lines, and where its ack goes."""

    doc_id: str
    index: str
    body: bytes  # action line + document line, both ending in \\n
    batch_seq: int

    @property
    def size(self) -> int:
        return len(self.body)


def action_line(index: str, doc_id: str) -> bytes:
    return b'{"create":{"_index":' + orjson.dumps(index) + b',"_id":' + orjson.dumps(doc_id) + b"}}\n"


def encode_document(doc: dict[str, Any]) -> bytes:
    """orjson for speed; documents orjson refuses (lone surrogates, huge ints) go through the
    stdlib, which escapes them, so no record is ever lost to its encoding."""
    try:
        return orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        import json

        return json.dumps(doc, default=str, ensure_ascii=True, separators=(",", ":")).encode()


def make_item(
    doc_id: str, index: str, doc: dict[str, Any], batch_seq: int, data_stream: tuple[str, str] | None
) -> Item:
    if data_stream is not None:
        doc["data_stream"] = {"type": "logs", "dataset": data_stream[0], "namespace": data_stream[1]}
    return Item(doc_id, index, action_line(index, doc_id) + encode_document(doc) + b"\n", batch_seq)


def document_of(item: Item) -> Any:
    """The document of an encoded item (for the dead-letter file)."""
    _, _, source = item.body.partition(b"\n")
    try:
        return orjson.loads(source)
    except orjson.JSONDecodeError:
        return source.decode("utf-8", "replace")
