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
