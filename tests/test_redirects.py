"""Issue 12, item 3: credentials never follow a redirect, and a redirect is never a success.

A lying peer redirects to a second local server (another port: another origin) that records
what it got. `shipper kibana import` runs as the real process; the alert webhook is called
directly (its end-to-end run with `shipper events` is in tests/test_events_hostile.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from shipper.events import post_webhook
from shipper.httppost import HttpPostError, RedirectRefused, post
from tests.support.components import free_port
from tests.support.peers import Recorder, elapsed, garbage, redirector, silent, trickler

REPO = Path(__file__).resolve().parents[1]
CODES = [301, 302, 303, 307, 308]


def kibana_import(
    url: str, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "shipper", "kibana", "import", "--url", url, *extra],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize("code", CODES)
def test_kibana_import_refuses_a_redirect_and_sends_nothing_on(code: int) -> None:
    with Recorder() as elsewhere, redirector(code, elsewhere.url + "/api/saved_objects/_import") as kibana:
        out = kibana_import(kibana.url, env={"KIBANA_API_KEY": "sekret-api-key"})
        assert out.returncode != 0
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1, out.stderr
        assert f"HTTP {code}" in lines[0] and "redirect" in lines[0] and elsewhere.url in lines[0]
        assert elsewhere.requests == []  # nothing followed the redirect: no header, no body
        assert len(kibana.requests) == 1 and kibana.requests[0][2]["authorization"] == "ApiKey sekret-api-key"


def test_kibana_redirect_target_is_shown_redacted() -> None:
    with redirector(302, "http://user:hunter2secret@evil.example:8080/x") as kibana:
        out = kibana_import(kibana.url, env={"KIBANA_USERNAME": "u", "KIBANA_PASSWORD": "p4ssw0rd-x"})
    assert out.returncode != 0
    assert "hunter2secret" not in out.stderr and "p4ssw0rd-x" not in out.stderr
    assert "http://***@evil.example:8080/x" in out.stderr


def test_kibana_credentials_in_the_url_are_used_not_shown() -> None:
    """`--url http://user:pass@kibana` authenticates (Basic) and never prints the password."""
    with Recorder(500, b"boom") as kibana:
        url = kibana.url.replace("http://", "http://importer:s3cr%40t-pw@")
        out = kibana_import(url)
    assert out.returncode != 0 and "HTTP 500" in out.stderr
    assert "s3cr" not in out.stderr + out.stdout
    import base64

    assert (
        kibana.requests[0][2]["authorization"] == "Basic " + base64.b64encode(b"importer:s3cr@t-pw").decode()
    )


@pytest.mark.parametrize(
    ("peer", "words"),
    [(garbage, "not HTTP"), (silent, "no complete answer within 2 s"), (trickler, "no complete answer")],
)
def test_kibana_import_against_a_lying_kibana_is_one_line_within_the_deadline(
    peer: object, words: str
) -> None:
    with peer() as kibana:  # type: ignore[operator]
        out, took = elapsed(kibana_import, kibana.url, "--timeout", "2")
    assert out.returncode != 0
    assert len(out.stderr.strip().splitlines()) == 1 and words in out.stderr, out.stderr
    assert took < 15  # 2 s deadline + interpreter start-up
    assert "\x1b" not in out.stderr


def test_kibana_import_that_reports_nothing_imported_fails() -> None:
    with Recorder(200, b'{"success": true, "successCount": 0, "successResults": []}') as kibana:
        out = kibana_import(kibana.url)
    assert out.returncode != 0 and "Kibana reported 0 of the" in out.stderr


def test_kibana_space_cannot_change_the_path() -> None:
    with Recorder() as kibana:
        out = kibana_import(kibana.url, "--space", "../../api/other")
    assert out.returncode != 0 and "--space" in out.stderr and kibana.requests == []


@pytest.mark.parametrize("code", CODES)
def test_webhook_redirect_is_a_failed_delivery(code: int) -> None:
    with Recorder(200) as elsewhere, redirector(code, elsewhere.url + "/hook") as hook:
        ok, why = post_webhook(hook.url + "/alerts", {"alert": "task_failed"}, timeout=5)
    assert not ok and f"HTTP {code}" in why and elsewhere.url in why
    assert elsewhere.requests == []
    assert [r[0] for r in hook.requests] == ["POST"]


@pytest.mark.parametrize("status", [400, 404, 500, 503])
def test_webhook_error_status_is_a_failed_delivery(status: int) -> None:
    with Recorder(status) as hook:
        ok, why = post_webhook(hook.url, {"alert": "x"})
    assert not ok and str(status) in why


def test_webhook_success() -> None:
    with Recorder(204, b"") as hook:
        assert post_webhook(hook.url, {"alert": "x"}) == (True, "")
    method, _path, headers, body = hook.requests[0]
    assert method == "POST" and headers["content-type"] == "application/json" and body == b'{"alert":"x"}'


@pytest.mark.parametrize("peer", [trickler, silent])
def test_one_deadline_covers_the_whole_call(peer: object) -> None:
    """urllib's timeout is per socket read: a byte every 0.2 s held the caller for ever."""
    with peer() as slow:  # type: ignore[operator]
        (ok, why), took = elapsed(post_webhook, slow.url, {"alert": "x"}, 1.0)
    assert not ok and "within 1 s" in why
    assert took < 2.5


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://127.0.0.1/x",
        f"http://127.0.0.1:{free_port()}/closed",
        "http://127.0.0.1:99999/x",
        "http://[::1/x",
        "not a url",
    ],
)
def test_webhook_bad_urls_fail_without_raising(url: str) -> None:
    ok, why = post_webhook(url, {"alert": "x"}, timeout=2)
    assert not ok and why


def test_garbage_answer_is_an_error() -> None:
    with garbage() as peer, pytest.raises(HttpPostError, match="not HTTP"):
        post(peer.url, b"x", {}, 2)


def test_redirect_error_carries_status_and_location() -> None:
    with redirector(307, "/elsewhere") as peer, pytest.raises(RedirectRefused) as info:
        post(peer.url + "/a", b"x", {"Authorization": "Basic eA=="}, 2)
    assert info.value.status == 307 and info.value.location == "/elsewhere"
    assert f"{peer.url}/elsewhere" in str(info.value)
