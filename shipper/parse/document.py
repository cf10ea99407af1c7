"""From a tailer record to an ECS document: decode, parse, add the fields every document carries.

Every record becomes exactly one document, whatever its bytes: a line no rule understands is
shipped with its text as ``message`` and ``tags: ["unparsed"]``; repaired bytes (invalid UTF-8,
NUL) and tailer flags (cut long lines, a final line without newline) become tags.
"""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from ..config import InputConfig
from ..source.records import NO_NEWLINE, TRUNCATED, Record, SourceRef, record_id
from . import auto, celery_text, json_lines, rabbitmq_json, rabbitmq_text
from .base import Document, ParseContext, Parser, TimeConverter, decode, unparsed

PARSERS: Mapping[str, Parser] = {
    p.name: p
    for p in (celery_text.PARSER, json_lines.PARSER, rabbitmq_text.PARSER, rabbitmq_json.PARSER, auto.PARSER)
}


@dataclass(frozen=True)
class InputParsing:
    """Everything needed to turn records of one input into documents; built once per input."""

    input_id: str
    parser: Parser
    #: Forced dataset (the input's ``dataset``), or None: the parser's, or auto-detected per record.
    dataset: str | None
    times: TimeConverter
    include_original: bool
    hostname: str
    #: ``{"hostname": ...}``, one object shared by every document of the input (never mutated).
    host: Mapping[str, str]

    @classmethod
    def from_config(cls, inp: InputConfig, hostname: str | None = None) -> InputParsing:
        return cls(
            input_id=inp.id,
            parser=PARSERS[inp.parser],
            dataset=inp.dataset,
            times=TimeConverter(inp.timezone),
            include_original=inp.include_original,
            hostname=hostname or socket.gethostname(),
            host={"hostname": hostname or socket.gethostname()},
        )


def utc_now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_document(
    record: Record, source: SourceRef, ip: InputParsing, ctx: ParseContext
) -> tuple[str, str, Document]:
    """Return ``(id, dataset, document)`` for one record. Never raises for any input bytes."""
    text, repair_tags = decode(record.data)
    parser = ip.parser
    try:
        if parser is auto.PARSER:
            doc, dataset = auto.parse_with_dataset(text, ctx)
        else:
            doc, dataset = parser.parse(text, ctx), parser.dataset
    except Exception as exc:  # a parser bug must not stop the file: ship the line, say why
        doc, dataset = unparsed(text, "parser_error"), parser.dataset
        doc["error"] = {"message": f"{type(exc).__name__}: {exc}"}
    if ip.dataset:
        dataset = ip.dataset
    if repair_tags or record.flags:
        _add_tags(doc, repair_tags, record.flags)
    if not doc.get("@timestamp"):
        doc["@timestamp"] = ctx.ingest_time
    event = doc.get("event")
    if type(event) is dict:
        event["dataset"] = dataset
    else:
        event = doc["event"] = {"dataset": dataset}
    if ip.include_original:
        event["original"] = text
    log = doc.get("log")
    if type(log) is not dict:
        log = doc["log"] = {}
    log["file"] = {"path": source.path}
    log["offset"] = record.offset
    host = doc.get("host")
    if host is None:
        doc["host"] = ip.host  # shared and never mutated
    elif type(host) is dict:
        host.setdefault("hostname", ip.hostname)
    return record_id(source.key, record.offset), dataset, doc


def _add_tags(doc: Document, repair_tags: list[str], flags: int) -> None:
    tags = doc.get("tags")
    if not isinstance(tags, list):
        tags = doc["tags"] = [] if tags is None else [str(tags)]
    tags.extend(repair_tags)
    if flags & TRUNCATED:
        tags.append("truncated")
    if flags & NO_NEWLINE:
        tags.append("partial_line")
