#!/usr/bin/env python3
"""Security set-up of the demo stack (docker-compose.elk.yml), one sub-command per one-shot job.

- ``check``: refuse to start with the example passwords of .env.example (or empty, short ones),
  one clear line naming the variable; Elasticsearch and RabbitMQ wait for it.
- ``kibana-system``: give the built-in ``kibana_system`` user its password.
- ``setup``: create least-privilege roles and users, then run ``shipper setup`` and
  ``shipper kibana import`` as two short-lived users of their own (random passwords, deleted
  afterwards), so only this one-shot job ever holds the ``elastic`` superuser password.

Secrets come from the environment only and never appear on a command line (no ``curl -u``):
requests are made here, and the child commands get their credentials through their environment.
Standard library only.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import secrets
import subprocess
import sys
import time
from typing import Any
from urllib.parse import urlsplit

#: Variables that hold secrets, and what they are for (for the refusal message).
SECRETS = {
    "ELASTIC_PASSWORD": "the elastic superuser (setup jobs only)",
    "KIBANA_SYSTEM_PASSWORD": "the kibana_system user Kibana connects as",
    "SHIPPER_ES_PASSWORD": "the celery_log_shipper user the shipper writes as",
    "RABBITMQ_PASSWORD": "the RabbitMQ user of the demo worker",
}
#: Characters a secret may use: safe inside a URL (the broker URL), a curl config line and YAML.
SAFE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._~-")
MIN_LENGTH = 12
WEAK = {"changeme", "password", "guest", "elastic", "admin", "secret", "kibana", "rabbitmq"}

WRITER_ROLE = "celery_log_shipper_writer"
SETUP_ROLE = "celery_log_shipper_setup"
KIBANA_IMPORT_ROLE = "celery_log_shipper_kibana_import"
SHIPPER_USER = "celery_log_shipper"
SETUP_USER = "celery_log_shipper_setup"
IMPORT_USER = "celery_log_shipper_kibana_import"

ROLES: dict[str, dict[str, Any]] = {
    # `shipper run`: write documents (creating the data stream / daily index on first write) and
    # detect the index mode (data streams, ILM). Nothing else: no read, no delete, no manage.
    WRITER_ROLE: {
        "cluster": ["read_ilm"],
        "indices": [
            {"names": ["logs-*"], "privileges": ["create_doc", "auto_configure", "view_index_metadata"]}
        ],
    },
    # `shipper setup`: index templates and the ILM policy.
    SETUP_ROLE: {
        "cluster": ["manage_index_templates", "manage_ilm", "read_ilm"],
        "indices": [{"names": ["logs-*"], "privileges": ["view_index_metadata"]}],
    },
    # `shipper kibana import`: data views, saved searches and a dashboard, nothing else.
    KIBANA_IMPORT_ROLE: {
        "cluster": [],
        "indices": [],
        "applications": [
            {
                "application": "kibana-.kibana",
                "privileges": [
                    "feature_savedObjectsManagement.all",
                    "feature_indexPatterns.all",
                    "feature_discover.all",
                    "feature_dashboard.all",
                ],
                "resources": ["*"],
            }
        ],
    },
}


class SetupFailed(Exception):
    """One line for the operator; the job exits non-zero."""


def secret_problem(name: str, value: str | None) -> str | None:
    """Why ``value`` cannot be the secret ``name`` (never echoing the value)."""
    if not value:
        return f"{name} is not set ({SECRETS[name]}): set it in .env"
    if value.lower().startswith("change-me"):
        return f"{name} is still the example value from .env.example: set a real password in .env"
    if value.lower() in WEAK:
        return f"{name} is a well-known default password: set a real password in .env"
    if len(value) < MIN_LENGTH:
        return f"{name} is shorter than {MIN_LENGTH} characters"
    if not set(value) <= SAFE:
        return f"{name} may only use letters, digits and . _ ~ - (e.g. openssl rand -hex 24)"
    return None


def check(env: dict[str, str], names: tuple[str, ...] = tuple(SECRETS)) -> None:
    """Refuse the example, empty, short or well-known secrets among ``names``."""
    for name in names:
        problem = secret_problem(name, env.get(name))
        if problem:
            raise SetupFailed(f"refusing to start: {problem}")
    if "RABBITMQ_PASSWORD" in names:
        user = env.get("RABBITMQ_USER", "")
        if not user or user == "guest" or not set(user) <= SAFE:
            raise SetupFailed(
                "refusing to start: RABBITMQ_USER must be set, not 'guest' (letters, digits, ._~-)"
            )


class Elasticsearch:
    """The few security API calls we need, with basic auth from the environment."""

    def __init__(self, url: str, user: str, password: str, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SetupFailed(f"ES_URL must be an http(s) URL, got {parts.scheme}://{parts.hostname}")
        self.parts, self.timeout = parts, timeout
        self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        cls = http.client.HTTPSConnection if self.parts.scheme == "https" else http.client.HTTPConnection
        conn = cls(self.parts.hostname or "", self.parts.port, timeout=self.timeout)
        try:
            data = json.dumps(body).encode() if body is not None else None
            headers = {"Authorization": self.auth, "Content-Type": "application/json"}
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read(1 << 20)
        finally:
            conn.close()
        try:
            return resp.status, json.loads(raw) if raw else None
        except ValueError:
            return resp.status, raw[:200].decode("utf-8", "replace")

    def must(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = self.request(method, path, body)
        if not 200 <= status < 300:
            raise SetupFailed(f"Elasticsearch refused {method} {path}: HTTP {status} {str(answer)[:300]}")
        return answer

    def wait(self, deadline: float = 300.0) -> None:
        end = time.monotonic() + deadline
        while True:
            try:
                status, _ = self.request("GET", "/_security/_authenticate")
                if status == 200:
                    return
                if status == 401:
                    raise SetupFailed("Elasticsearch refused the elastic user's password (HTTP 401)")
            except OSError:
                pass
            if time.monotonic() > end:
                raise SetupFailed(f"Elasticsearch did not answer within {deadline:g} s")
            time.sleep(2)

    def put_user(self, name: str, password: str, roles: list[str], full_name: str) -> None:
        self.must(
            "PUT", f"/_security/user/{name}", {"password": password, "roles": roles, "full_name": full_name}
        )


def kibana_system(env: dict[str, str]) -> None:
    es = Elasticsearch(env.get("ES_URL", "http://elasticsearch:9200"), "elastic", env["ELASTIC_PASSWORD"])
    es.wait()
    es.must("POST", "/_security/user/kibana_system/_password", {"password": env["KIBANA_SYSTEM_PASSWORD"]})
    print("kibana_system password set")


def run_as(args: list[str], env: dict[str, str], extra: dict[str, str]) -> None:
    """Run a shipper command with credentials in its environment (never in its arguments)."""
    child = {k: v for k, v in env.items() if k not in SECRETS} | extra
    out = subprocess.run(args, env=child, check=False)
    if out.returncode != 0:
        raise SetupFailed(f"{' '.join(args[:3])} failed (exit {out.returncode})")


def setup(env: dict[str, str], shipper: list[str] | None = None) -> None:
    shipper = shipper or ["shipper"]
    es_url = env.get("ES_URL", "http://elasticsearch:9200")
    es = Elasticsearch(es_url, "elastic", env["ELASTIC_PASSWORD"])
    es.wait()
    for name, body in ROLES.items():
        es.must("PUT", f"/_security/role/{name}", body)
    es.put_user(SHIPPER_USER, env["SHIPPER_ES_PASSWORD"], [WRITER_ROLE], "celery-log-shipper (writer)")
    setup_password, import_password = secrets.token_hex(24), secrets.token_hex(24)
    es.put_user(SETUP_USER, setup_password, [SETUP_ROLE], "celery-log-shipper setup (temporary)")
    es.put_user(IMPORT_USER, import_password, [KIBANA_IMPORT_ROLE], "Kibana import (temporary)")
    try:
        config = env.get("SHIPPER_CONFIG", "/app/configs/shipper.yml")
        run_as(
            [*shipper, "setup", "-c", config], env, {"ES_USERNAME": SETUP_USER, "ES_PASSWORD": setup_password}
        )
        run_as(
            [*shipper, "kibana", "import", "--url", env.get("KIBANA_URL", "http://kibana:5601")],
            env,
            {"KIBANA_USERNAME": IMPORT_USER, "KIBANA_PASSWORD": import_password},
        )
    finally:  # the temporary users do not outlive the job
        for user in (SETUP_USER, IMPORT_USER):
            es.request("DELETE", f"/_security/user/{user}")
    print(f"roles {', '.join(ROLES)} and user {SHIPPER_USER} ready; templates and saved objects installed")


def main(argv: list[str]) -> int:
    env = dict(os.environ)
    try:
        if argv[1:] == ["check"]:
            check(env)
            print("secrets: OK")
        elif argv[1:] == ["kibana-system"]:
            check(env, ("ELASTIC_PASSWORD", "KIBANA_SYSTEM_PASSWORD"))
            kibana_system(env)
        elif argv[1:] == ["setup"]:
            check(env, ("ELASTIC_PASSWORD", "SHIPPER_ES_PASSWORD"))
            setup(env)
        else:
            raise SetupFailed("usage: stack_setup.py check | kibana-system | setup")
    except SetupFailed as exc:
        print(f"stack setup: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
