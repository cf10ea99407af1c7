"""Issue 12, item 6: a password in a URL is never printed or logged.

The redaction helper by direct calls, then every command that shows a host, run as the real
process with URLs holding a password and pointing at a closed port (or a broker that refuses)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shipper.redact import RedactFilter, redact_text, redact_url
from tests.support.components import free_port

REPO = Path(__file__).resolve().parents[1]
SECRET = "Hunter2-s3cret"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:pass@es:9200", "https://***@es:9200"),
        ("https://user:pass@es:9200/path?q=1", "https://***@es:9200/path?q=1"),
        ("amqp://guest:guest@rabbit:5672//", "amqp://***@rabbit:5672//"),
        ("amqp://guest:**@rabbit:5672//", "amqp://***@rabbit:5672//"),
        ("https://token@es", "https://***@es"),
        ("https://us%40er:p%3Ass@es", "https://***@es"),
        ("https://user:p@ss@es:9200/x", "https://***@es:9200/x"),
        ("https://user:pa/ss@es:9200", "https://***@es:9200"),
        ("https://user:pa#ss@es:9200", "https://***@es:9200"),
        ("https://user:pa?ss@es:9200", "https://***@es:9200"),
        ("http://[::1]:9200", "http://[::1]:9200"),
        ("http://u:p@[::1]:9200", "http://***@[::1]:9200"),
        ("https://es:9200", "https://es:9200"),
        ("https://es:9200/users/@me", "https://es:9200/users/@me"),
        ("https://es/x?password=abc&x=1", "https://es/x?password=***&x=1"),
        ("https://es/x?api_key=abc", "https://es/x?api_key=***"),
        ("user:pass@es:9200", "***@es:9200"),
        ("es:9200", "es:9200"),
        ("http://[::1", "http://***"),  # not a URL: masked rather than guessed at
        ("", ""),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_text_finds_urls_in_prose() -> None:
    text = (
        "ConnectionError(<urllib3 ...>: Failed to connect to https://elastic:changeme@es:9200/_bulk) "
        "and 'amqp://u:p@r//' then http://ok:9200"
    )
    assert redact_text(text) == (
        "ConnectionError(<urllib3 ...>: Failed to connect to https://***@es:9200/_bulk) "
        "and 'amqp://***@r//' then http://ok:9200"
    )


@given(
    st.sampled_from(["http", "https", "amqp", "redis+sentinel"]),
    st.text(min_size=1, alphabet=st.characters(blacklist_categories=("Cs", "Zs", "Cc"))),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",))),
    st.text(),
)
def test_the_password_never_survives(scheme: str, password: str, before: str, after: str) -> None:
    secret = "S3CRET" + password
    url = f"{scheme}://user:{secret}@host:1/p"
    assert secret not in redact_url(url)
    assert secret not in redact_text(before + " " + url + " " + after) or secret in before + after


def test_filter_redacts_messages_and_extras() -> None:
    record = logging.LogRecord(
        "x", logging.WARNING, "f", 1, "cannot reach %s", ("https://u:pw1@es:9200",), None
    )
    record.reason = "HTTPSConnection(host='https://u:pw2@es')"
    record.nested = {"urls": ["amqp://u:pw3@r//"]}
    assert RedactFilter().filter(record)
    assert record.getMessage() == "cannot reach https://***@es:9200"
    assert "pw2" not in record.reason and "pw3" not in json.dumps(record.nested)


# ---------------------------------------------------------------------------------------------
# The real commands.


def write_config(tmp_path: Path, port: int) -> Path:
    cfg = tmp_path / "shipper.yml"
    cfg.write_text(f"""
data_dir: {tmp_path / "data"}
inputs: [{{id: a, paths: ["{tmp_path}/logs/*.log"]}}]
output:
  elasticsearch:
    hosts: ["${{ES_URL}}"]
    request_timeout: 2
    retry: {{initial_backoff: 0.05, max_backoff: 0.2}}
events:
  broker_url: "amqp://shipper:{SECRET}@127.0.0.1:{port}//"
  alerts: {{webhook_url: "https://hook:{SECRET}@127.0.0.1:{port}/x"}}
metrics: {{enabled: false}}
""")
    return cfg


def run(args: list[str], port: int, **kw: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ES_URL": f"http://elastic:{SECRET}@127.0.0.1:{port}"}
    return subprocess.run(
        [sys.executable, "-m", "shipper", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )


def assert_no_secret(out: str) -> None:
    assert SECRET not in out and "s3cret" not in out.lower()


@pytest.mark.parametrize(
    "command",
    [
        ["config", "check"],
        ["setup"],
        ["search", "x"],
        ["summary"],
        ["kibana", "import", "--url", f"http://admin:{SECRET}@127.0.0.1:{{port}}", "--timeout", "2"],
    ],
    ids=["config-check", "setup", "search", "summary", "kibana-import"],
)
def test_commands_never_print_the_password(tmp_path: Path, command: list[str]) -> None:
    port = free_port()  # nothing listens there
    cfg = write_config(tmp_path, port)
    args = [a.format(port=port) for a in command]
    if args[0] != "kibana":
        args += ["-c", str(cfg)]
    out = run(args, port)
    assert_no_secret(out.stdout + out.stderr)
    if args[0] == "config":
        assert out.returncode == 0 and f"http://***@127.0.0.1:{port}" in out.stdout
    else:
        assert out.returncode != 0 and len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert f"127.0.0.1:{port}" in out.stderr


def test_a_bad_url_in_the_config_is_not_echoed_with_its_password(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yml"
    cfg.write_text(
        f'inputs: [{{id: a, paths: [x]}}]\nevents: {{alerts: {{webhook_url: "ftp://u:{SECRET}@h/x"}}}}\n'
    )
    out = run(["config", "check", "-c", str(cfg)], 1)
    assert out.returncode == 2 and "webhook_url" in out.stderr
    assert_no_secret(out.stderr)


@pytest.mark.parametrize("command", ["run", "events"])
def test_long_running_commands_never_log_the_password(tmp_path: Path, command: str) -> None:
    port = free_port()
    cfg = write_config(tmp_path, port)
    env = {**os.environ, "ES_URL": f"http://elastic:{SECRET}@127.0.0.1:{port}"}
    log = tmp_path / "out.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shipper", command, "-c", str(cfg)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=out,
        )
    try:
        deadline = time.monotonic() + 60
        while b"Elasticsearch unreachable" not in log.read_bytes():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        time.sleep(1)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    text = log.read_text()
    assert f"127.0.0.1:{port}" in text
    assert_no_secret(text)


def events_config(tmp_path: Path, es_url: str, broker: str) -> Path:
    cfg = tmp_path / "events.yml"
    cfg.write_text(f"""
data_dir: {tmp_path / "data"}
inputs: [{{id: a, paths: ["{tmp_path}/logs/*.log"]}}]
output: {{elasticsearch: {{hosts: ["{es_url}"]}}}}
events: {{broker_url: "{broker}"}}
metrics: {{enabled: false}}
""")
    return cfg


@pytest.mark.slow
def test_events_login_refused_is_one_line_without_the_password(
    tmp_path: Path, es_url: str, broker_url: str
) -> None:
    """Wrong broker credentials: one clear line naming the broker (redacted), no traceback
    (py-amqp's ACCESS_REFUSED is not a connection error to kombu: it used to end in a traceback)."""
    cfg = events_config(tmp_path, es_url, broker_url.replace("guest:guest@", f"nobody:{SECRET}@"))
    out = subprocess.run(
        [sys.executable, "-m", "shipper", "events", "-c", str(cfg)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert out.returncode == 1
    assert_no_secret(out.stdout + out.stderr)
    assert "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("shipper: error:")]
    assert (
        len(errors) == 1 and "refused the login" in errors[0] and "amqp://***@127.0.0.1:5672//" in errors[0]
    )


@pytest.mark.slow
def test_events_reconnect_logs_never_show_the_password(tmp_path: Path, es_url: str) -> None:
    cfg = events_config(tmp_path, es_url, f"amqp://nobody:{SECRET}@127.0.0.1:{free_port()}//")
    log = tmp_path / "events.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shipper", "events", "-c", str(cfg)], cwd=REPO, stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + 60
        while log.read_bytes().count(b"broker connection lost, reconnecting") < 2:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    assert_no_secret(log.read_text())
