"""An NDJSON file sink: what the tailer read, with ids, for debugging and for crash tests.

Each batch is written and fsynced before it is acknowledged, so after a ``kill -9`` the file holds
at least every acknowledged record (and possibly some again after the restart, with the same id).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import orjson

from ..parse import InputParsing, ParseContext, build_document, salvage_document, utc_now_iso
from ..source import NO_NEWLINE, TRUNCATED, Batch, record_id
from .encode import DocumentTooDeep, encode_document


def flag_names(flags: int) -> list[str]:
    names = []
    if flags & TRUNCATED:
        names.append("truncated")
    if flags & NO_NEWLINE:
        names.append("no_newline")
    return names


class NdjsonFileSink:
    def __init__(self, path: str, parsing: Mapping[str, InputParsing] | None = None) -> None:
        self.parsing = parsing
        self.fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        size = os.fstat(self.fd).st_size
        if size and os.pread(self.fd, 1, size - 1) != b"\n":
            # A previous run was killed mid-write: end the torn line so ours start on their own.
            os.write(self.fd, b"\n")

    def write(self, batches: list[Batch]) -> None:
        out = bytearray()
        now = utc_now_iso()
        for batch in batches:
            src = batch.source
            if self.parsing is not None:
                ip = self.parsing[src.input_id]
                ctx = ParseContext(ip.times, now)
                for r in batch.records:
                    try:
                        doc_id, dataset, doc = build_document(r, src, ip, ctx)
                        line = encode_document(
                            {**doc, "_id": doc_id, "_dataset": dataset}, ctx.problems, raise_too_deep=True
                        )
                    except Exception as exc:  # one record never stops the file (see Shipping.items)
                        reason = "json_too_deep" if isinstance(exc, DocumentTooDeep) else "record_error"
                        doc_id, dataset, doc = salvage_document(r, src, ip, ctx, reason)
                        line = encode_document({**doc, "_id": doc_id, "_dataset": dataset})
                    out += line
                    out += b"\n"
                continue
            for r in batch.records:
                doc = {
                    "_id": record_id(src.key, r.offset),
                    "input": src.input_id,
                    "path": src.path,
                    "offset": r.offset,
                    "message": r.data.decode("utf-8", "replace"),
                }
                if r.flags:
                    doc["flags"] = flag_names(r.flags)
                out += orjson.dumps(doc)
                out += b"\n"
        view = memoryview(out)
        while view:
            view = view[os.write(self.fd, view) :]
        os.fsync(self.fd)

    def close(self) -> None:
        os.close(self.fd)
