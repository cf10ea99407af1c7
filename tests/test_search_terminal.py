"""Issue 12, item 12: log content never drives the operator's terminal.

Documents holding ANSI/OSC escape sequences, C1 controls, bidi overrides and newlines are indexed
into the real test server; the real `shipper search` / `summary` print them escaped, one line per
document, and `--json` stays valid JSON that round-trips to the stored text."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shipper.search import search_line
from shipper.terminal import json_line, printable
from tests.support.es import es_client

REPO = Path(__file__).resolve().parents[1]
HOSTILE = [
    "title \x1b]0;pwned\x07 and colour \x1b[31mRED\x1b[0m",
    "clipboard \x1b]52;c;cm0gLXJmIH4=\x07 write",
    "c1 csi \x9b2J clear",
    "bidi \u202eevil\u202c and isolate \u2066x\u2069",
    "fake line\n2026-11-24T00:00:00.000Z info    celery.worker  all good",
    "carriage\rreturn and bell \x07 and del \x7f and nul \x00",
]
DANGEROUS = ["\x1b", "\x07", "\x9b", "\u202e", "\u2066", "\r", "\x7f", "\x00", "\x9d"]


BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")


@given(st.text() | st.sampled_from([*HOSTILE, "lone surrogate \udcff here"]))
def test_printable_leaves_no_control_character(text: str) -> None:
    import unicodedata

    out = printable(text)
    assert all(unicodedata.category(c) not in ("Cc", "Cs", "Zl", "Zp") and c not in BIDI for c in out)
    out.encode("utf-8")  # always printable on a UTF-8 terminal


@given(st.text())
def test_json_line_is_valid_terminal_safe_json(text: str) -> None:
    line = json_line({"message": text, "n": [1, 2.5, None]})
    assert not any(c in line for c in DANGEROUS) and "\n" not in line
    assert json.loads(line) == {"message": text, "n": [1, 2.5, None]}


def test_search_line_escapes_every_field() -> None:
    line = search_line(
        {
            "@timestamp": "2026\x1b[2J",
            "log": {"level": "\x1b]0;x\x07"},
            "event": {"dataset": "a\nb"},
            "message": HOSTILE[0],
        }
    )
    assert not any(c in line for c in DANGEROUS) and "\n" not in line
    assert "\\x1b]0;pwned\\x07" in line


def test_search_line_tolerates_odd_documents() -> None:
    assert search_line({"log": "x", "event": 5, "message": {"a": 1}})
    assert search_line({})


@pytest.fixture(scope="module")
def hostile_index(es_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    namespace = "term" + uuid.uuid4().hex[:8]
    client = es_client(es_url)
    ops: list[dict[str, object]] = []
    for i, message in enumerate(HOSTILE):
        ops.append({"create": {"_index": f"logs-celery.worker-{namespace}-2099.01.01", "_id": f"h{i}"}})
        ops.append(
            {
                "@timestamp": f"2099-01-01T00:00:{i:02d}.000Z",  # the newest: first in search and summary
                "message": message,
                "log": {"level": "error"},
                "event": {"dataset": "celery.worker"},
                "labels": {"hostile": namespace},
                "celery": {"task": {"state": "failed", "name": "t\x1b[8m", "id": str(i)}},
                "error": {"type": "E\x1b]0;x\x07", "message": message},
            }
        )
    resp = client.bulk(operations=ops, refresh=True)
    assert not resp["errors"]
    cfg = tmp_path_factory.mktemp("search") / "shipper.yml"
    cfg.write_text(f'inputs: [{{id: a, paths: [x]}}]\noutput: {{elasticsearch: {{hosts: ["{es_url}"]}}}}\n')
    return cfg


def shipper(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "shipper", *args], capture_output=True, cwd=REPO, timeout=120
    )


def test_real_search_prints_no_escape_sequence(hostile_index: Path) -> None:
    out = shipper("search", "-c", str(hostile_index), "--size", "200")
    assert out.returncode == 0, out.stderr
    text = out.stdout.decode("utf-8")
    assert not any(c in text for c in DANGEROUS)
    for message in HOSTILE:
        assert printable(message) in text
    assert "\\x1b]52;c;cm0gLXJmIH4=\\x07" in text
    assert all(line.count("Z ") >= 1 for line in text.splitlines())  # every line starts with a doc


def test_real_search_json_round_trips(hostile_index: Path) -> None:
    out = shipper("search", "-c", str(hostile_index), "--size", "200", "--json")
    assert out.returncode == 0, out.stderr
    text = out.stdout.decode("utf-8")
    assert not any(c in text for c in DANGEROUS)
    messages = {json.loads(line)["message"] for line in text.splitlines()}
    assert set(HOSTILE) <= messages


def test_real_summary_prints_no_escape_sequence(hostile_index: Path) -> None:
    out = shipper("summary", "-c", str(hostile_index))
    assert out.returncode == 0, out.stderr
    text = out.stdout.decode("utf-8")
    assert not any(c in text for c in DANGEROUS)
    assert "\\x1b" in text
