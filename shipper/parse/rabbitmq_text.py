"""RabbitMQ node logs in text format, every generation.

- 3.9+: ``2026-11-24 11:48:19.985052+00:00 [info] <0.223.0> message``; a multi-line message
  repeats the whole prefix on every line, so a record is the lines sharing the first one's prefix.
- 3.7-3.8 (lager): ``2018-11-22 10:44:33.654 [info] <0.620.0> message``, local time with no
  offset; continuation lines have no prefix.
- <= 3.6: ``=INFO REPORT==== 8-Mar-2017::14:12:05 ===`` then body lines, blank line between reports.

The message is the record as written, minus the prefixes: only trailing newlines (the blank line
before the next report) are dropped. A leading newline stays: the start-up banner is logged as a
message that begins with one, and Filebeat's RabbitMQ module keeps it too.
"""

from __future__ import annotations

import re

from .base import Document, ParseContext, Parser, unparsed, with_offset
from .rabbitmq_messages import enrich

MODERN = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\.(\d+)([+-]\d\d:\d\d|Z) \[([A-Za-z]+)\] <([\d.]+)> ?")
LAGER = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\.(\d{3}) \[([a-z]+)\] <([\d.]+)>@?\S* ?")
REPORT = re.compile(
    r"=([A-Z ]+?) REPORT==== (\d{1,2})-([A-Za-z]{3})-(\d{4})::(\d\d):(\d\d):(\d\d)(?:\.(\d+))? ==="
)
_MODERN_PREFIX = re.compile(
    rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+(?:[+-]\d\d:\d\d|Z) \[[A-Za-z]+\] <[\d.]+> ?"
)
_START = re.compile(rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+|=[A-Z ]+ REPORT====")
MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
#: RabbitMQ's level names to ECS ``log.level``: lager's short forms (``err``, ``emerg``) and the
#: four-letter forms of the 3.9+ logger (``level_format = lc4``: ``[erro]``, ``[dbug]``, ...).
#: Names not listed (``info``, ``error``, ``debug``, ...) are already ECS and kept as they are.
LEVELS = {
    "warn": "warning",
    "err": "error",
    "erro": "error",
    "dbug": "debug",
    "noti": "notice",
    "crit": "critical",
    "alrt": "alert",
    "emerg": "emergency",
    "emgc": "emergency",
}


def ecs_level(name: str) -> str:
    """ECS ``log.level`` of a RabbitMQ level name in any of its case forms (``level_format``:
    ``lc``, ``uc``, ``lc4``, ``uc4``: ``info``, ``INFO``, ``erro``, ``ERRO``)."""
    low = name.lower()
    return LEVELS.get(low, low)


def is_record_start(line: bytes) -> bool:
    return _START.match(line) is not None


def continues(first: bytes, line: bytes) -> bool:
    m = _MODERN_PREFIX.match(first)
    if m is not None:
        # 3.9+: same prefix means same message; a line without any prefix is kept with it too.
        return line.startswith(m.group(0)) or not is_record_start(line)
    return not is_record_start(line)


def _finish(doc: Document, msg: str) -> Document:
    doc["message"] = msg
    enrich(doc, msg)
    return doc


def parse(text: str, ctx: ParseContext) -> Document:
    first, _, more = text.partition("\n")
    m = MODERN.match(first)
    if m is not None:
        date_time, frac, offset, level, pid = m.groups()
        prefix = first[: m.end()]
        lines = [first[m.end() :]]
        if more:
            stripped = prefix.rstrip(" ")
            for line in more.split("\n"):
                if line.startswith(prefix):
                    lines.append(line[len(prefix) :])
                elif line.startswith(stripped):
                    lines.append(line[len(stripped) :])
                else:
                    lines.append(line)
        ts = with_offset(date_time, frac, offset)
        doc: Document = {
            "@timestamp": ts or ctx.ingest_time,
            "log": {"level": ecs_level(level)},
            "rabbitmq": {"log": {"pid": f"<{pid}>"}},
        }
        if ts is None:
            doc["tags"] = ["invalid_timestamp"]
        return _finish(doc, "\n".join(lines).rstrip("\n"))
    m = LAGER.match(first)
    if m is not None:
        date_time, ms, level, pid = m.groups()
        ts = ctx.times.local(date_time, ms)
        doc = {
            "@timestamp": ts or ctx.ingest_time,
            "log": {"level": ecs_level(level)},
            "rabbitmq": {"log": {"pid": f"<{pid}>"}},
        }
        if ts is None:
            doc["tags"] = ["invalid_timestamp"]
        body = first[m.end() :] + ("\n" + more if more else "")
        return _finish(doc, body.rstrip("\n"))
    m = REPORT.match(first)
    if m is not None:
        kind, day, mon, year, hh, mi, ss, frac = m.groups()
        month = MONTHS.get(mon)
        ts = None
        if month is not None:
            ts = ctx.times.local(f"{year}-{month:02d}-{int(day):02d} {hh}:{mi}:{ss}", (frac or "000")[:6])
        level = kind.split()[0].lower()
        doc = {
            "@timestamp": ts or ctx.ingest_time,
            "log": {"level": ecs_level(level)},
        }
        if ts is None:
            doc["tags"] = ["invalid_timestamp"]
        return _finish(doc, more.rstrip("\n"))
    return unparsed(text)


PARSER = Parser(name="rabbitmq", dataset="rabbitmq.log", continues=continues, parse=parse)
