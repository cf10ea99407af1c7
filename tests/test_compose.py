"""docker-compose.elk.yml parses (Debian's docker-compose, no engine needed) and has the services,
health checks, start order and volumes the README promises; issue 12 item 15: no guest/guest, no
superuser for the shipper or the Kibana import, no secret on a command line, pinned images, and
the example passwords refused (docker/stack_setup.py, run as the real script)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.components import missing

REPO = Path(__file__).resolve().parents[1]


def env_example() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in (REPO / ".env.example").read_text().splitlines())
    return {k: v for k, v in (p for p in pairs if len(p) == 2) if not k.startswith("#")}


GOOD_ENV = {
    "STACK_VERSION": "8.15.3",
    "ELASTIC_PASSWORD": "a1b2c3d4e5f6a7b8c9d0elastic",
    "KIBANA_SYSTEM_PASSWORD": "a1b2c3d4e5f6a7b8c9d0kibana",
    "SHIPPER_ES_PASSWORD": "a1b2c3d4e5f6a7b8c9d0shipper",
    "RABBITMQ_USER": "celery",
    "RABBITMQ_PASSWORD": "a1b2c3d4e5f6a7b8c9d0rabbit",
}


def compose_config(tmp_path: Path, env: dict[str, str]) -> dict[str, Any]:
    binary = shutil.which("docker-compose")
    if binary is None:
        missing("docker-compose (apt-get install docker-compose)")
        raise AssertionError("unreachable")
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    out = subprocess.run(
        [binary, "--env-file", str(env_file), "-f", str(REPO / "docker-compose.elk.yml"), "config"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)  # type: ignore[no-any-return]


def test_compose_file_is_valid_and_complete(tmp_path: Path) -> None:
    cfg = compose_config(tmp_path, env_example())
    services = cfg["services"]
    assert set(services) >= {"elasticsearch", "kibana", "rabbitmq", "worker", "setup", "shipper", "preflight"}
    for name in ("elasticsearch", "kibana", "rabbitmq", "worker", "shipper"):
        assert "healthcheck" in services[name], name
    es_env = services["elasticsearch"]["environment"]
    assert es_env["xpack.security.enabled"] == "true" and es_env["ELASTIC_PASSWORD"] == "change-me-elastic"
    assert services["preflight"]["command"] == ["python", "/app/docker/stack_setup.py", "check"]
    assert services["setup"]["depends_on"]["kibana"]["condition"] == "service_healthy"
    assert services["shipper"]["depends_on"]["setup"]["condition"] == "service_completed_successfully"
    setup_cmd = services["setup"]["command"]
    setup_cmd = setup_cmd if isinstance(setup_cmd, str) else " ".join(setup_cmd)
    assert (
        setup_cmd == "python /app/docker/stack_setup.py setup"
    )  # roles, users, shipper setup, kibana import
    mounts = {}
    for v in services["shipper"]["volumes"]:  # "src:target:ro" (compose v1) or a mapping (v2)
        if isinstance(v, str):
            _src, target, *mode = v.split(":")
            mounts[target] = bool(mode and mode[0] == "ro")
        else:
            mounts[v["target"]] = bool(v.get("read_only"))
    assert mounts["/var/log/celery"] and mounts["/var/log/rabbitmq"] and not mounts["/var/lib/shipper"]
    assert set(cfg["volumes"]) >= {"esdata", "celery-logs", "rabbitmq-logs", "shipper-data"}
    # The shipper container reads the files the other containers write, where its config looks.
    assert services["rabbitmq"]["environment"]["RABBITMQ_LOGS"].startswith("/var/log/rabbitmq/rabbit@")
    assert "--logfile=/var/log/celery/worker-%I.log" in services["worker"]["command"]


def flat(value: Any) -> str:
    return value if isinstance(value, str) else " ".join(map(str, value))


def test_compose_security(tmp_path: Path) -> None:
    cfg = compose_config(tmp_path, GOOD_ENV)
    services = cfg["services"]
    secrets = [v for k, v in GOOD_ENV.items() if k.endswith("PASSWORD")]
    for name, svc in services.items():
        # No secret on a command line: not in the command, the entrypoint or the health check.
        for key in ("command", "entrypoint"):
            if key in svc:
                assert not any(x in flat(svc[key]) for x in secrets), (name, key)
        if "healthcheck" in svc:
            test = flat(svc["healthcheck"]["test"])
            assert not any(x in test for x in secrets), name
            assert not re.search(r"curl\b[^|]*\s-u\s", test), f"{name}: curl -u puts the password in argv"
        # Pinned images: an exact version, or the image built here.
        image = svc.get("image", "")
        assert image == "celery-log-shipper:local" or re.search(r":\d+\.\d+\.\d+(-[a-z]+)?$", image), image
    # RabbitMQ: the user from .env, no guest.
    rabbit = services["rabbitmq"]["environment"]
    assert (
        rabbit["RABBITMQ_DEFAULT_USER"] == "celery"
        and rabbit["RABBITMQ_DEFAULT_PASS"] == GOOD_ENV["RABBITMQ_PASSWORD"]
    )
    assert "guest" not in services["worker"]["environment"]["DEMO_BROKER"]
    # The shipper is not the superuser; the superuser password only reaches the one-shot jobs.
    shipper_env = services["shipper"]["environment"]
    assert shipper_env["ES_USERNAME"] == "celery_log_shipper"
    assert shipper_env["ES_PASSWORD"] == GOOD_ENV["SHIPPER_ES_PASSWORD"]
    holders = {
        n
        for n, svc in services.items()
        if GOOD_ENV["ELASTIC_PASSWORD"] in flat(list((svc.get("environment") or {}).values()))
    }
    assert holders == {"preflight", "elasticsearch", "kibana-password", "setup"}
    for name in ("setup", "kibana-password"):
        assert not {"ES_USERNAME", "KIBANA_USERNAME", "KIBANA_PASSWORD"} & set(services[name]["environment"])
    # Everything waits for the secrets check.
    for name in ("elasticsearch", "rabbitmq"):
        assert services[name]["depends_on"]["preflight"]["condition"] == "service_completed_successfully"
    dockerfile = (REPO / "Dockerfile").read_text()
    assert (
        re.search(r"^FROM python:\d+\.\d+\.\d+-", dockerfile, re.M) and "COPY docker ./docker" in dockerfile
    )


def stack_setup(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "docker" / "stack_setup.py"), command],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ["PATH"], **env},
    )


@pytest.mark.parametrize("command", ["check", "kibana-system", "setup"])
def test_example_passwords_are_refused_with_one_line(command: str) -> None:
    out = stack_setup(command, env_example())
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "stack setup: refusing to start: ELASTIC_PASSWORD is still the example value from .env.example: "
        "set a real password in .env"
    ]
    assert "change-me" not in out.stderr + out.stdout


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("ELASTIC_PASSWORD", "", "is not set"),
        ("KIBANA_SYSTEM_PASSWORD", "change-me-too", "example value"),
        ("SHIPPER_ES_PASSWORD", "changeme", "well-known"),
        ("RABBITMQ_PASSWORD", "x7Qz", "shorter than 12"),
        ("RABBITMQ_PASSWORD", 'quote"andslash\\x', "may only use"),
        ("RABBITMQ_USER", "guest", "not 'guest'"),
    ],
)
def test_weak_secrets_are_refused(name: str, value: str, words: str) -> None:
    out = stack_setup("check", {**GOOD_ENV, name: value})
    assert out.returncode == 2 and words in out.stderr and name in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    if value and name != "RABBITMQ_USER":
        assert value not in out.stderr
    assert stack_setup("check", GOOD_ENV).returncode == 0


def test_setup_job_creates_least_privilege_users_and_runs_as_them(tmp_path: Path) -> None:
    """The setup job against a recording Elasticsearch and a Kibana speaking the import API: roles
    and users are created, `shipper setup` and the import run as temporary users that are deleted
    afterwards, and the superuser password is sent only to Elasticsearch's security API."""
    import base64
    import json

    from tests.support.peers import Recorder
    from tests.test_kibana import FakeKibana

    es = Recorder(200, b"{}", {"X-Elastic-Product": "Elasticsearch", "Content-Type": "application/json"})
    kibana = FakeKibana(fail_ids=set())
    try:
        cfg = tmp_path / "shipper.yml"
        cfg.write_text(
            "inputs: [{id: a, paths: [x]}]\n"
            "output: {elasticsearch: {hosts: ['${ES_URL}'], username: '${ES_USERNAME:-}',"
            " password: '${ES_PASSWORD:-}'}}\n"
        )
        shim = tmp_path / "bin"
        shim.mkdir()
        (shim / "shipper").write_text(f'#!/bin/sh\nexec {sys.executable} -m shipper "$@"\n')
        (shim / "shipper").chmod(0o755)
        env = {
            **GOOD_ENV,
            "ES_URL": es.url,
            "KIBANA_URL": kibana.url,
            "SHIPPER_CONFIG": str(cfg),
            "PATH": f"{shim}:{os.environ['PATH']}",
            "PYTHONPATH": str(REPO),
        }
        out = subprocess.run(
            [sys.executable, str(REPO / "docker" / "stack_setup.py"), "setup"],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            cwd=REPO,
        )
        assert out.returncode == 0, out.stderr
    finally:
        es.close()
        kibana.server.shutdown()
    calls = [(m, p.split("?")[0]) for m, p, _h, _b in es.requests]
    assert ("PUT", "/_security/role/celery_log_shipper_writer") in calls
    bodies = {p: json.loads(b) for m, p, _h, b in es.requests if m == "PUT" and p.startswith("/_security/")}
    writer = bodies["/_security/role/celery_log_shipper_writer"]
    assert writer["indices"] == [
        {"names": ["logs-*"], "privileges": ["create_doc", "auto_configure", "view_index_metadata"]}
    ]
    assert "all" not in json.dumps(writer) and "manage" not in json.dumps(writer)
    assert bodies["/_security/user/celery_log_shipper"]["roles"] == ["celery_log_shipper_writer"]
    assert bodies["/_security/user/celery_log_shipper"]["password"] == GOOD_ENV["SHIPPER_ES_PASSWORD"]
    elastic = "Basic " + base64.b64encode(f"elastic:{GOOD_ENV['ELASTIC_PASSWORD']}".encode()).decode()
    as_elastic = [p for _m, p, h, _b in es.requests if h.get("authorization") == elastic]
    assert as_elastic and all(p.startswith("/_security/") for p in as_elastic)
    # shipper setup ran as the temporary setup user (templates), then the user was deleted.
    templates = [h for m, p, h, _b in es.requests if m == "PUT" and p.startswith("/_index_template/")]
    assert templates and all(
        base64.b64decode(h["authorization"][6:]).startswith(b"celery_log_shipper_setup:") for h in templates
    )
    assert ("DELETE", "/_security/user/celery_log_shipper_setup") in calls
    assert ("DELETE", "/_security/user/celery_log_shipper_kibana_import") in calls
    (_path, headers, _body) = kibana.requests[0]
    assert base64.b64decode(headers["authorization"][6:]).startswith(b"celery_log_shipper_kibana_import:")


def test_compose_refuses_to_start_without_passwords(tmp_path: Path) -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        missing("docker-compose (apt-get install docker-compose)")
        return
    (tmp_path / ".env").write_text("STACK_VERSION=8.15.3\n")
    out = subprocess.run(
        [binary, "--env-file", str(tmp_path / ".env"), "-f", str(REPO / "docker-compose.elk.yml"), "config"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert out.returncode != 0 and "ELASTIC_PASSWORD" in out.stderr
