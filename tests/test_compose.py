"""docker-compose.elk.yml parses (Debian's docker-compose, no engine needed) and has the services,
health checks, start order and volumes the README promises."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.support.components import missing

REPO = Path(__file__).resolve().parents[1]


def test_compose_file_is_valid_and_complete(tmp_path: Path) -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        missing("docker-compose (apt-get install docker-compose)")
        return
    env = tmp_path / ".env"
    shutil.copy(REPO / ".env.example", env)
    out = subprocess.run(
        [binary, "--env-file", str(env), "-f", str(REPO / "docker-compose.elk.yml"), "config"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr
    cfg = yaml.safe_load(out.stdout)
    services = cfg["services"]
    assert set(services) >= {"elasticsearch", "kibana", "rabbitmq", "worker", "setup", "shipper"}
    for name in ("elasticsearch", "kibana", "rabbitmq", "worker", "shipper"):
        assert "healthcheck" in services[name], name
    es_env = services["elasticsearch"]["environment"]
    assert es_env["xpack.security.enabled"] == "true" and es_env["ELASTIC_PASSWORD"] == "change-me-elastic"
    assert services["setup"]["depends_on"]["kibana"]["condition"] == "service_healthy"
    assert services["shipper"]["depends_on"]["setup"]["condition"] == "service_completed_successfully"
    setup_cmd = services["setup"]["command"]
    setup_cmd = setup_cmd if isinstance(setup_cmd, str) else " ".join(setup_cmd)
    assert "shipper setup" in setup_cmd and "shipper kibana import" in setup_cmd
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
