from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shipper.config import load_config, parse_config, read_secret
from shipper.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
MINIMAL = {"inputs": [{"id": "celery", "paths": ["/var/log/celery/*.log"], "parser": "celery"}]}


def test_shipped_config_is_valid() -> None:
    config = load_config(REPO / "configs" / "shipper.yml", env={})
    assert [i.id for i in config.inputs] == ["celery", "rabbitmq"]
    assert config.output.elasticsearch.hosts == ("http://localhost:9200",)
    assert config.output.elasticsearch.verify_certs is True
    assert os.path.isabs(config.data_dir)


def test_defaults_and_types() -> None:
    config = parse_config(MINIMAL, env={})
    inp = config.inputs[0]
    assert inp.paths == ("/var/log/celery/*.log",)
    assert inp.max_line_bytes == 1_048_576
    assert config.output.elasticsearch.batch.max_docs == 2000
    with pytest.raises(AttributeError):
        inp.id = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("data", "path", "words"),
    [
        ({**MINIMAL, "outptu": {}}, "outptu", "unknown key"),
        ({"inputs": [{"id": "a", "paths": ["x"], "bogus": 1}]}, "inputs[0].bogus", "unknown key"),
        ({"inputs": [{"id": "a", "paths": ["x"], "parser": "nginx"}]}, "inputs[0].parser", "one of"),
        (
            {"inputs": [{"id": "a", "paths": ["x"], "max_line_bytes": "big"}]},
            "inputs[0].max_line_bytes",
            "expected an integer",
        ),
        (
            {"inputs": [{"id": "a", "paths": ["x"], "max_line_bytes": 0}]},
            "inputs[0].max_line_bytes",
            "greater than 0",
        ),
        (
            {"inputs": [{"id": "a", "paths": ["x"], "timezone": "Mars/Base"}]},
            "inputs[0].timezone",
            "unknown time zone",
        ),
        ({"inputs": [{"id": "a"}]}, "inputs[0].paths", "required"),
        ({"inputs": []}, "inputs", "must not be empty"),
        ({}, "inputs", "required"),
        (
            {**MINIMAL, "output": {"elasticsearch": {"verify_certs": "no"}}},
            "output.elasticsearch.verify_certs",
            "true or false",
        ),
        (
            {**MINIMAL, "output": {"elasticsearch": {"batch": {"max_docs": 1.5}}}},
            "output.elasticsearch.batch.max_docs",
            "integer",
        ),
        ({**MINIMAL, "output": []}, "output", "expected a mapping"),
        ({**MINIMAL, "metrics": {"listen": "nowhere"}}, "metrics.listen", "HOST:PORT"),
        ({"inputs": [{"id": "a", "paths": ["x"]}, {"id": "a", "paths": ["y"]}]}, "inputs[1].id", "duplicate"),
    ],
)
def test_errors_name_the_key(data: dict[str, object], path: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data, env={})
    assert info.value.path == path
    assert words in str(info.value)
    assert "\n" not in str(info.value)


def test_env_interpolation() -> None:
    data = {
        **MINIMAL,
        "output": {
            "elasticsearch": {
                "hosts": ["${ES_URL}"],
                "password": "${ES_PASSWORD:-}",
                "verify_certs": "${ES_VERIFY:-true}",
            }
        },
    }
    config = parse_config(data, env={"ES_URL": "https://es:9200"})
    es = config.output.elasticsearch
    assert es.hosts == ("https://es:9200",)
    assert es.password == ""
    assert es.verify_certs is True
    config = parse_config(data, env={"ES_URL": "https://es:9200", "ES_VERIFY": "false"})
    assert config.output.elasticsearch.verify_certs is False


def test_missing_env_var_is_an_error_naming_key_and_variable() -> None:
    data = {**MINIMAL, "output": {"elasticsearch": {"hosts": ["${ES_URL}"]}}}
    with pytest.raises(ConfigError) as info:
        parse_config(data, env={})
    assert info.value.path == "output.elasticsearch.hosts[0]"
    assert "ES_URL" in str(info.value)


def test_a_single_string_is_a_list_of_one() -> None:
    config = parse_config({"inputs": [{"id": "a", "paths": "/x/*.log"}]}, env={})
    assert config.inputs[0].paths == ("/x/*.log",)


def test_invalid_yaml_reports_position(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("inputs:\n  - id: a\n   paths: [x\n")
    with pytest.raises(ConfigError) as info:
        load_config(bad, env={})
    assert "invalid YAML at line" in str(info.value)


def test_yaml_tags_are_not_executed(tmp_path: Path) -> None:
    bad = tmp_path / "evil.yml"
    bad.write_text("!!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError):
        load_config(bad, env={})


def test_relative_data_dir_is_relative_to_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "conf" / "s.yml"
    cfg.parent.mkdir()
    cfg.write_text("data_dir: state\ninputs: [{id: a, paths: [x]}]\n")
    assert load_config(cfg, env={}).data_dir == str(tmp_path / "conf" / "state")


def test_secret_from_file(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    assert read_secret(None, str(secret), "output.elasticsearch.password") == "s3cret"
    assert read_secret("inline", None, "output.elasticsearch.password") == "inline"
    with pytest.raises(ConfigError, match="not both"):
        read_secret("inline", str(secret), "output.elasticsearch.password")
    with pytest.raises(ConfigError) as info:
        read_secret(None, str(tmp_path / "missing"), "output.elasticsearch.password")
    assert info.value.path == "output.elasticsearch.password_file"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shipper", *args], capture_output=True, text=True, cwd=REPO, timeout=60
    )


def test_cli_version_and_help() -> None:
    from shipper import __version__

    out = run_cli("--version")
    assert out.returncode == 0 and __version__ in out.stdout
    out = run_cli("--help")
    assert out.returncode == 0 and "config" in out.stdout


def test_cli_bad_config_is_one_line_and_non_zero(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("inputs:\n  - id: a\n    paths: [x]\n    max_line_bytes: lots\n")
    out = run_cli("config", "check", "-c", str(bad))
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "shipper: error: inputs[0].max_line_bytes: expected an integer, got 'lots'"
    ]
    out = run_cli("config", "check", "-c", str(tmp_path / "missing.yml"))
    assert out.returncode == 2 and "does not exist" in out.stderr
    out = run_cli("no-such-command")
    assert out.returncode != 0 and "No such command" in out.stderr


def test_cli_good_config(tmp_path: Path) -> None:
    out = run_cli("config", "check", "-c", str(REPO / "configs" / "shipper.yml"))
    assert out.returncode == 0, out.stderr
    assert "input celery" in out.stdout


# ---------------------------------------------------------------------------------------------
# Issue 12, item 14: duplicate keys, consistent relative paths, .inf/.nan, webhook scheme, size;
# item 9: index-name rules for namespace and datasets.


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("inputs: [{id: a, paths: [x]}]\ninputs: [{id: b, paths: [y]}]\n", "inputs"),
        ("inputs:\n  - id: a\n    paths: [x]\n    id: b\n", "inputs[0].id"),
        (
            "inputs: [{id: a, paths: [x]}]\noutput:\n  elasticsearch:\n    hosts: [a]\n"
            "    batch: {max_docs: 1}\n    hosts: [b]\n",
            "output.elasticsearch.hosts",
        ),
    ],
)
def test_duplicate_yaml_keys_are_refused_naming_the_key(tmp_path: Path, text: str, path: str) -> None:
    cfg = tmp_path / "dup.yml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(cfg, env={})
    assert info.value.path == path and "duplicate key" in str(info.value)


def test_yaml_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    cfg = tmp_path / "merge.yml"
    cfg.write_text("inputs:\n  - &a {id: a, paths: [/x], parser: celery}\n  - {<<: *a, id: b}\n")
    config = load_config(cfg, env={})
    assert [(i.id, i.parser) for i in config.inputs] == [("a", "celery"), ("b", "celery")]


def test_an_alias_bomb_is_refused_not_expanded(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    cfg = tmp_path / "bomb.yml"
    cfg.write_text("\n".join(lines) + "\ninputs: [{id: a, paths: *a8}]\n")
    with pytest.raises(ConfigError, match="expands to more than"):
        load_config(cfg, env={})


def test_config_size_is_capped(tmp_path: Path) -> None:
    cfg = tmp_path / "big.yml"
    cfg.write_text("inputs: [{id: a, paths: [x]}]\n" + "# padding\n" * 120_000)
    with pytest.raises(ConfigError, match="larger than 1048576 bytes"):
        load_config(cfg, env={})
    out = run_cli("config", "check", "-c", "/dev/zero")
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "larger than" in out.stderr


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", ".NaN", ".Inf"])
@pytest.mark.parametrize(
    "key",
    [
        "watch.scan_interval",
        "output.elasticsearch.request_timeout",
        "output.elasticsearch.retry.max_backoff",
        "events.alerts.window",
        "events.alerts.failure_rate",
    ],
)
def test_non_finite_durations_are_refused(tmp_path: Path, key: str, value: str) -> None:
    *parents, leaf = key.split(".")
    text = "inputs: [{id: a, paths: [x]}]\n"
    indent = ""
    for part in parents:
        text += f"{indent}{part}:\n"
        indent += "  "
    text += f"{indent}{leaf}: {value}\n"
    cfg = tmp_path / "inf.yml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(cfg, env={})
    assert info.value.path == key


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("file:///etc/passwd", "http:// or https://"),
        ("ftp://hooks.example.com/x", "http:// or https://"),
        ("gopher://x", "http:// or https://"),
        ("hooks.example.com/alerts", "http:// or https://"),
        ("http:///alerts", "no host"),
        ("http://hooks.example.com:99999/x", "not a valid URL"),
        ("http://hooks.example.com:port/x", "not a valid URL"),
    ],
)
def test_webhook_url_must_be_http(url: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({**MINIMAL, "events": {"alerts": {"webhook_url": url}}}, env={})
    assert info.value.path == "events.alerts.webhook_url" and words in str(info.value)
    ok = parse_config({**MINIMAL, "events": {"alerts": {"webhook_url": "https://h.example/x"}}}, env={})
    assert ok.events.alerts.webhook_url == "https://h.example/x"


@pytest.mark.parametrize(
    "name", ["Prod", "my space", "a/b", "a*b", "a?b", 'a"b', "a<b", "a>b", "a|b", "a,b", "a#b", "a\\b",
             "a:b", "-x", "_x", "+x", ".", "..", "team-a", "x" * 101, "tab\there", ""]
)  # fmt: skip
def test_namespace_and_dataset_follow_index_name_rules(name: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({**MINIMAL, "output": {"elasticsearch": {"namespace": name}}}, env={})
    assert info.value.path == "output.elasticsearch.namespace" and "\n" not in str(info.value)
    with pytest.raises(ConfigError) as info:
        parse_config({"inputs": [{"id": "a", "paths": ["x"], "dataset": name}]}, env={})
    assert info.value.path == "inputs[0].dataset"


@pytest.mark.parametrize("name", ["default", "prod", "eu_west1", "x" * 100, "team.a", "ns42"])
def test_valid_namespaces_and_datasets(name: str) -> None:
    config = parse_config(
        {
            "inputs": [{"id": "a", "paths": ["x"], "dataset": f"app.{name}"[:100]}],
            "output": {"elasticsearch": {"namespace": name}},
        },
        env={},
    )
    assert config.output.elasticsearch.namespace == name


def test_relative_paths_are_all_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    cfg = conf / "s.yml"
    cfg.write_text(
        "data_dir: state\n"
        "inputs: [{id: a, paths: [logs/*.log, /abs/*.log, ../other/x.log]}]\n"
        "output: {elasticsearch: {hosts: ['https://es:9200'], ca_file: ca.pem, password_file: pw}}\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(os.path.relpath(cfg), env={})
    assert config.data_dir == str(conf / "state")
    assert config.inputs[0].paths == (str(conf / "logs/*.log"), "/abs/*.log", str(tmp_path / "other/x.log"))
    es = config.output.elasticsearch
    assert (es.ca_file, es.password_file) == (str(conf / "ca.pem"), str(conf / "pw"))


def test_relative_input_paths_are_followed_from_any_working_directory(tmp_path: Path) -> None:
    """`shipper tail` started from another directory reads the files next to the config."""
    import signal
    import time

    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "a.log").write_text("[2026-11-24 10:00:00,000: INFO/MainProcess] hello\n")
    cfg = tmp_path / "s.yml"
    cfg.write_text(
        "data_dir: data\ninputs: [{id: a, paths: [logs/*.log], parser: celery}]\n"
        "watch: {scan_interval: 0.1}\nmetrics: {enabled: false}\n"
    )
    out = tmp_path / "out.ndjson"
    proc = subprocess.Popen(
        [sys.executable, "-m", "shipper", "tail", "-c", str(cfg), "-o", str(out)],
        cwd="/",
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not (out.exists() and b"hello" in out.read_bytes()):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert (tmp_path / "data").is_dir()
