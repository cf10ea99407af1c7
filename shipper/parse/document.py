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
from .base import Document, JsonTooDeep, ParseContext, Parser, TimeConverter, decode, unparsed

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


def strip_crlf(text: str) -> str:
    """Drop the ``\r`` of every ``\r\n`` in a record and at its end (the record's own line end);
    a lone ``\r`` inside a line is content and stays."""
    text = text.replace("\r\n", "\n")
    return text[:-1] if text.endswith("\r") else text


def build_document(
    record: Record, source: SourceRef, ip: InputParsing, ctx: ParseContext
) -> tuple[str, str, Document]:
    """Return ``(id, dataset, document)`` for one record. Never raises for any input bytes.

    A record a parser cannot take apart (JSON nested too deep, a parser bug) is shipped as its
    text, tagged, and tallied in ``ctx.problems``: one bad record never stops the file.
    """
    original, repair_tags = decode(record.data)
    # CRLF files (Windows services, some Docker log drivers): each line's "\r" before its "\n"
    # is line ending, not content. Parsers see the text without it; event.original keeps it.
    text = strip_crlf(original) if "\r" in original else original
    parser = ip.parser
    try:
        if parser is auto.PARSER:
            doc, dataset = auto.parse_with_dataset(text, ctx)
        else:
            doc, dataset = parser.parse(text, ctx), parser.dataset
    except Exception as exc:  # a parser bug must not stop the file: ship the line, say why
        dataset, described = parser.dataset, describe_exception(exc)
        if isinstance(exc, JsonTooDeep | RecursionError) or "Recursion limit" in described:
            # Nested deeper than the decoder, Python or orjson (re-encoding a value) goes.
            doc = unparsed(text, "json_too_deep")
            ctx.problems["json_too_deep"] += 1
        else:
            doc = unparsed(text, "parser_error")
            doc["error"] = {"message": described}
            ctx.problems["parser_error"] += 1
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
        event["original"] = original
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


def describe_exception(exc: BaseException) -> str:
    """``Type: message``, even for an exception whose ``__str__`` raises."""
    try:
        return f"{type(exc).__name__}: {exc}"[:1000]
    except Exception:
        return type(exc).__name__


def salvage_document(
    record: Record, source: SourceRef, ip: InputParsing, ctx: ParseContext, reason: str
) -> tuple[str, str, Document]:
    """The document for a record whose parsed document cannot be shipped (``json_too_deep``: nested
    deeper than the encoder goes) or whose normal path raised anyway (``record_error``: a bug): its
    text, tagged ``unparsed`` and ``reason``, with nothing taken from the parser, so it cannot fail
    the same way. Counted in ``ctx.problems``."""
    text, repair_tags = decode(record.data)
    ctx.problems[reason] += 1
    dataset = ip.dataset or ip.parser.dataset
    doc: Document = {
        "@timestamp": ctx.ingest_time,
        "message": text,
        "tags": ["unparsed", reason, *repair_tags],
        "event": {"dataset": dataset},
        "log": {"file": {"path": source.path}, "offset": record.offset},
        "host": {"hostname": ip.hostname},
    }
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
