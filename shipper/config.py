"""Load ``shipper.yml`` into typed, frozen dataclasses.

Why hand-written instead of a schema library: the rules are few (types, ranges, unknown keys,
``${ENV}`` interpolation) and every error must name the full key path in one line, e.g.
``output.elasticsearch.batch.max_docs: expected an integer, got 'many'``. A small walker over the
dataclass type hints gives exactly that with no extra dependency.

Secrets never live in the file: ``${ES_PASSWORD}`` is replaced from the environment at load, and
``password_file`` / ``api_key_file`` read them from files (Docker/Kubernetes secrets).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

from .errors import ConfigError

Check = Callable[[Any], str | None]


def _positive(value: Any) -> str | None:
    return None if value > 0 else "must be greater than 0"


def _non_negative(value: Any) -> str | None:
    return None if value >= 0 else "must be 0 or greater"


def _ratio(value: Any) -> str | None:
    return None if 0 < value <= 1 else "must be greater than 0 and at most 1"


def _timezone(value: Any) -> str | None:
    if value.upper() in ("UTC", "Z", "LOCAL"):
        return None
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {value!r} (use an IANA name like 'Europe/Berlin', 'UTC' or 'local')"
    return None


def _listen(value: Any) -> str | None:
    _host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        return f"expected HOST:PORT, got {value!r}"
    return None


def _non_empty(value: Any) -> str | None:
    return None if len(value) > 0 else "must not be empty"


def _http_url(value: Any) -> str | None:
    """Only http(s) URLs with a host: a ``file://`` or ``ftp://`` webhook must not be opened."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a port out of range or not a number
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return f"must be an http:// or https:// URL, got scheme {parts.scheme or 'none'!r}"
    if not parts.hostname:
        return "the URL has no host"
    return None


def _checked(default: Any, check: Check) -> Any:
    """A dataclass field with a default and a validation rule applied at load time."""
    if isinstance(default, list | dict):
        raise TypeError("use immutable defaults")
    return field(default=default, metadata={"check": check})


ParserName = Literal["celery", "celery_json", "rabbitmq", "rabbitmq_json", "auto"]


@dataclass(frozen=True)
class InputConfig:
    """One group of files to follow, all read with the same parser."""

    id: str
    paths: tuple[str, ...] = field(metadata={"check": _non_empty})
    parser: ParserName = "auto"
    exclude: tuple[str, ...] = ("*.gz", "*.bz2", "*.xz", "*.zip", "*.zst")
    #: ``event.dataset``; by default derived from the parser (celery.worker, rabbitmq.log).
    dataset: str | None = None
    #: Time zone of timestamps written without an offset (Celery asctime, RabbitMQ <= 3.8).
    timezone: str = _checked("UTC", _timezone)
    #: Longer lines are cut to this many bytes and flagged, never allowed to stall the file.
    max_line_bytes: int = _checked(1_048_576, _positive)
    #: Seconds a multi-line record (traceback) may stay open waiting for continuation lines.
    multiline_timeout: float = _checked(1.0, _positive)
    #: Seconds a final line without newline waits before it is emitted as it is.
    partial_line_timeout: float = _checked(5.0, _positive)
    #: Keep the raw line in ``event.original``.
    include_original: bool = False
    #: Where to start in a file seen for the first time (no checkpoint yet).
    start_at: Literal["beginning", "end"] = "beginning"


@dataclass(frozen=True)
class BatchConfig:
    max_docs: int = _checked(2000, _positive)
    max_bytes: int = _checked(5 * 1024 * 1024, _positive)
    max_wait: float = _checked(1.0, _positive)


@dataclass(frozen=True)
class RetryConfig:
    initial_backoff: float = _checked(0.25, _positive)
    max_backoff: float = _checked(30.0, _positive)


@dataclass(frozen=True)
class IlmConfig:
    enabled: bool = True
    policy_name: str = "celery-rabbitmq-logs"
    rollover_max_age: str = "1d"
    rollover_max_primary_shard_size: str = "50gb"
    delete_after_days: int = _checked(30, _positive)


@dataclass(frozen=True)
class ElasticsearchConfig:
    hosts: tuple[str, ...] = field(default=("http://localhost:9200",), metadata={"check": _non_empty})
    username: str | None = None
    password: str | None = None
    password_file: str | None = None
    api_key: str | None = None
    api_key_file: str | None = None
    ca_file: str | None = None
    verify_certs: bool = True
    request_timeout: float = _checked(30.0, _positive)
    #: ``data_stream`` (logs-DATASET-NAMESPACE), ``daily_index`` (logs-DATASET-NAMESPACE-YYYY.MM.DD)
    #: or ``auto`` (data streams where the server supports them).
    index_mode: Literal["data_stream", "daily_index", "auto"] = "auto"
    namespace: str = "default"
    compression: bool = True
    #: Processes that parse, encode and send (the main process reads files and keeps the
    #: checkpoints). 0: everything in one process. One core parses ~80,000 Celery lines/s.
    workers: int = _checked(0, _non_negative)
    #: Alarm (an ERROR line, /health degraded) when more than this share of the documents resolved
    #: in the last minute was dead-lettered: a mapping conflict or a bad name refusing everything.
    dead_letter_alarm_ratio: float = _checked(0.5, _ratio)
    batch: BatchConfig = BatchConfig()
    retry: RetryConfig = RetryConfig()
    ilm: IlmConfig = IlmConfig()


@dataclass(frozen=True)
class OutputConfig:
    elasticsearch: ElasticsearchConfig = ElasticsearchConfig()


@dataclass(frozen=True)
class WatchConfig:
    #: ``inotify``: file-system events make reads and scans happen at once; ``polling``: the
    #: periodic scan alone (NFS and other file systems without inotify).
    mode: Literal["inotify", "polling"] = "inotify"
    #: The periodic directory scan that is the source of truth, whatever events say.
    scan_interval: float = _checked(1.0, _positive)
    #: Bound of the records read but not yet acknowledged; reading pauses when it is reached.
    max_pending_records: int = _checked(20_000, _positive)
    #: Seconds after its last growth that a file is closed: a file renamed away by rotation is then
    #: finished (it is always read to its end first; this only decides how long to wait for a late
    #: write), a live file is closed and reopened when it changes (saves descriptors).
    close_inactive: float = _checked(60.0, _positive)
    #: Most live files kept open at once; the longest idle ones beyond it are closed (reopened when
    #: they change), so 10,000 watched files need no 10,000 descriptors.
    max_open_files: int = _checked(4096, _positive)
    #: Seconds a new file whose bytes so far are a prefix of a file still being read waits to see
    #: whether it is a copy (copytruncate truncates the original right after copying): if the
    #: original keeps its content that long, the new file is read as a file of its own.
    copy_wait: float = _checked(5.0, _positive)
    #: Seconds between checkpoint saves (positions are saved on shutdown too).
    checkpoint_interval: float = _checked(1.0, _positive)
    #: Finished entries (files rotated away and fully shipped) are forgotten after this many hours.
    forget_finished_after_hours: float = _checked(168.0, _positive)


@dataclass(frozen=True)
class MetricsConfig:
    enabled: bool = True
    listen: str = _checked("127.0.0.1:9108", _listen)
    #: /health answers 503 when records have been in flight this many seconds without a successful
    #: bulk request (also when there never was one: Elasticsearch unreachable from the start).
    unhealthy_after: float = _checked(60.0, _positive)


@dataclass(frozen=True)
class AlertsConfig:
    """Alerts from the Celery event stream: a webhook call and/or an alert document."""

    #: POST a JSON body here (http/https only) for each alert; None: no webhook. Redirects are
    #: not followed (a 3xx is a failed delivery).
    webhook_url: str | None = _checked(None, _http_url)
    #: Seconds one webhook call may take in all (connect, send, the whole answer).
    webhook_timeout: float = _checked(5.0, _positive)
    #: Alerts waiting for the webhook; more are dropped (counted, with a warning).
    webhook_queue: int = _checked(1000, _positive)
    #: Alert on every failed task.
    on_task_failure: bool = True
    #: Alert when the share of failed tasks among those finished in ``window`` seconds passes this.
    failure_rate: float | None = _checked(None, lambda v: None if 0 < v <= 1 else "must be in (0, 1]")
    window: float = _checked(60.0, _positive)
    #: Minimum finished tasks in the window before the rate means anything.
    min_tasks: int = _checked(10, _positive)
    #: Also index each alert as a document (event.kind: alert) next to the events.
    write_document: bool = True


@dataclass(frozen=True)
class EventsConfig:
    """``shipper events``: Celery's event stream (what Flower shows, kept)."""

    broker_url: str = "amqp://guest:guest@localhost:5672//"
    #: worker-heartbeat arrives every 2 s per worker; off by default.
    include_heartbeats: bool = False
    #: Ship task args/kwargs reprs (may hold personal data).
    include_task_args: bool = False
    alerts: AlertsConfig = AlertsConfig()


@dataclass(frozen=True)
class ShipperConfig:
    inputs: tuple[InputConfig, ...] = field(metadata={"check": _non_empty})
    #: Checkpoints and the dead-letter file live here (created 0700, files 0600).
    data_dir: str = "/var/lib/shipper"
    #: ``host.hostname`` on every document and part of every document id (two hosts never share
    #: an id); the machine's name by default. Set it in containers, whose names change.
    hostname: str | None = None
    output: OutputConfig = OutputConfig()
    watch: WatchConfig = WatchConfig()
    metrics: MetricsConfig = MetricsConfig()
    events: EventsConfig = EventsConfig()

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for i, inp in enumerate(self.inputs):
            if inp.id in seen:
                raise ConfigError(f"inputs[{i}].id", f"duplicate input id {inp.id!r}")
            seen.add(inp.id)


# --------------------------------------------------------------------------------------------
# Loading

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


def interpolate(text: str, env: Mapping[str, str], path: str) -> str:
    """Replace ``${VAR}`` and ``${VAR:-default}``; a missing variable without default is an error."""

    def repl(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(path, f"environment variable {name} is not set")

    return _ENV_RE.sub(repl, text)


T = TypeVar("T")


def _type_name(tp: Any) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    if tp in names:
        return names[tp]
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if get_origin(tp) in (tuple, list):
        return "a list"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return str(tp)


def _convert(tp: Any, value: Any, path: str, env: Mapping[str, str]) -> Any:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        options = [a for a in get_args(tp) if a is not type(None)]
        if value is None:
            if type(None) in get_args(tp):
                return None
            raise ConfigError(path, "must not be empty")
        return _convert(options[0], value, path, env)
    if isinstance(value, str) and tp is not str and "${" in value:
        # An interpolated value for a non-string field, e.g. verify_certs: ${ES_VERIFY:-true}.
        value = yaml.safe_load(interpolate(value, env, path))
    if origin is Literal:
        if isinstance(value, str):
            value = interpolate(value, env, path)
        if value not in get_args(tp):
            raise ConfigError(path, f"expected {_type_name(tp)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(path, f"expected a mapping, got {_describe(value)}")
        return _build(typing.cast(type[Any], tp), value, path, env)
    if origin in (tuple, list):
        (item_tp, *_rest) = get_args(tp)
        if isinstance(value, str):
            value = [value]  # a single glob or host is a list of one
        if not isinstance(value, list):
            raise ConfigError(path, f"expected a list, got {_describe(value)}")
        return tuple(_convert(item_tp, v, f"{path}[{i}]", env) for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(path, f"expected true or false, got {_describe(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(path, f"expected an integer, got {_describe(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(path, f"expected a number, got {_describe(value)}")
        if not math.isfinite(value):  # YAML's .inf / .nan: no duration or rate means that
            raise ConfigError(path, f"expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ConfigError(path, f"expected a string, got {_describe(value)}")
        return interpolate(str(value), env, path)
    raise TypeError(f"unsupported config type {tp!r} at {path}")


def _describe(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _build(cls: type[T], data: Mapping[str, Any], path: str, env: Mapping[str, str]) -> T:
    assert dataclasses.is_dataclass(cls)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    prefix = f"{path}." if path else ""
    for key in data:
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"{prefix}{key}", f"unknown key (known keys here: {known})")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        key_path = f"{prefix}{name}"
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(key_path, "required key is missing")
            continue
        value = _convert(hints[name], data[name], key_path, env)
        check: Check | None = f.metadata.get("check")
        if check is not None and value is not None:
            problem = check(value)
            if problem:
                raise ConfigError(key_path, problem)
        kwargs[name] = value
    return cls(**kwargs)


#: Characters Elasticsearch refuses in an index or data stream name (and ':', deprecated there).
_INDEX_NAME_FORBIDDEN = set('\\/*?"<>|,# :')
#: The data stream naming scheme's limit for the dataset and the namespace part.
_NAME_PART_MAX = 100


def index_name_part_problem(value: str) -> str | None:
    """Why ``value`` cannot be the dataset or namespace part of ``logs-<dataset>-<namespace>``.

    Elasticsearch's index-name rules (lowercase; none of ``\\ / * ? " < > | , #``, space or ``:``;
    not starting with ``-``, ``_`` or ``+``; not ``.`` or ``..``; at most 255 bytes in all) and the
    data stream naming scheme (no ``-`` inside a part, at most 100 characters). Checked at load:
    Elasticsearch would otherwise refuse every single document with the same error.
    """
    if not value:
        return "must not be empty"
    if value != value.lower():
        return f"must be lowercase, got {value!r}"
    bad = sorted({c for c in value if c in _INDEX_NAME_FORBIDDEN or not c.isprintable()})
    if bad:
        return f"must not contain {' '.join(repr(c) for c in bad)} (Elasticsearch index name rules)"
    if "-" in value:
        return f"must not contain '-' (it separates type, dataset and namespace), got {value!r}"
    if value[0] in "_+":
        return f"must not start with '_' or '+', got {value!r}"
    if value in (".", ".."):
        return f"must not be {value!r}"
    if len(value.encode("utf-8")) > _NAME_PART_MAX:
        return f"must be at most {_NAME_PART_MAX} bytes, got {len(value.encode('utf-8'))}"
    return None


def _check_names(config: ShipperConfig) -> None:
    problem = index_name_part_problem(config.output.elasticsearch.namespace)
    if problem:
        raise ConfigError("output.elasticsearch.namespace", problem)
    for i, inp in enumerate(config.inputs):
        if inp.dataset is not None:
            problem = index_name_part_problem(inp.dataset)
            if problem:
                raise ConfigError(f"inputs[{i}].dataset", problem)


def _relative_to(base_dir: Path, path: str) -> str:
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(base_dir, path))


def _resolve_paths(config: ShipperConfig, base_dir: Path) -> ShipperConfig:
    """Every relative path in the file is relative to the file's directory (not to wherever the
    command happens to run): ``data_dir``, ``inputs[].paths`` and the ``*_file`` secrets/CA."""
    es = config.output.elasticsearch
    files: dict[str, Any] = {
        key: _relative_to(base_dir, getattr(es, key))
        for key in ("ca_file", "password_file", "api_key_file")
        if getattr(es, key)
    }
    es = dataclasses.replace(es, **files)
    inputs = tuple(
        dataclasses.replace(inp, paths=tuple(_relative_to(base_dir, p) for p in inp.paths))
        for inp in config.inputs
    )
    return dataclasses.replace(
        config,
        data_dir=config.data_dir
        if os.path.isabs(config.data_dir)
        else str((base_dir / config.data_dir).resolve()),
        inputs=inputs,
        output=dataclasses.replace(config.output, elasticsearch=es),
    )


def parse_config(
    data: Any, env: Mapping[str, str] | None = None, base_dir: Path | None = None
) -> ShipperConfig:
    """Validate an already-decoded YAML document; pure apart from reading ``env``.

    With ``base_dir`` (the config file's directory), relative paths are made absolute against it.
    """
    if not isinstance(data, Mapping):
        raise ConfigError("", f"the config must be a mapping at the top level, got {_describe(data)}")
    config = _build(ShipperConfig, data, "", os.environ if env is None else env)
    _check_names(config)
    if base_dir is not None:
        config = _resolve_paths(config, base_dir)
    return config


#: A config is a few kilobytes; anything near this is a mistake (or /dev/zero).
MAX_CONFIG_BYTES = 1024 * 1024
#: Values after expanding YAML aliases: a "billion laughs" file is refused, not expanded.
MAX_CONFIG_NODES = 100_000


def _key_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _check_nodes(root: yaml.Node) -> None:
    """Refuse duplicate mapping keys (YAML's last-wins would silently drop the first value),
    naming the full key path, and alias expansion beyond :data:`MAX_CONFIG_NODES`."""
    expanded: dict[int, int] = {}  # id(node) -> values it expands to (aliases share nodes)

    def walk(node: yaml.Node, path: str, depth: int) -> int:
        if depth > 100:
            raise ConfigError(path, "nested too deeply")
        if id(node) in expanded:
            return expanded[id(node)]
        expanded[id(node)] = 1  # a recursive alias counts once instead of looping
        total = 1
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    total += walk(value_node, path, depth + 1)
                    continue
                key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "<complex key>"
                if key in seen:
                    raise ConfigError(
                        _key_path(path, key),
                        f"duplicate key (lines {seen[key]} and {key_node.start_mark.line + 1})",
                    )
                seen[key] = key_node.start_mark.line + 1
                total += walk(value_node, _key_path(path, key), depth + 1)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                total += walk(item, f"{path}[{i}]", depth + 1)
        if total > MAX_CONFIG_NODES:
            raise ConfigError(path, f"the config expands to more than {MAX_CONFIG_NODES} values")
        expanded[id(node)] = total
        return total

    walk(root, "", 0)


def parse_yaml(text: str, source: str = "<config>") -> Any:
    """``yaml.safe_load`` that refuses duplicate keys and alias bombs; errors as one line."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_nodes(node)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError("", f"{source}: invalid YAML{where}: {problem}") from None
    except RecursionError:
        raise ConfigError("", f"{source}: invalid YAML: nested too deeply") from None
    finally:
        loader.dispose()


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> ShipperConfig:
    """Read, interpolate and validate a config file (at most :data:`MAX_CONFIG_BYTES`); relative
    paths in it are relative to the file's directory."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError("", f"config file {p} does not exist") from None
    except OSError as exc:
        raise ConfigError("", f"cannot read config file {p}: {exc.strerror or exc}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError("", f"config file {p} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            "", f"cannot read config file {p}: not UTF-8 ({exc.reason} at byte {exc.start})"
        ) from None
    data = parse_yaml(text, str(p))
    return parse_config(data, env, base_dir=p.parent.resolve())


def read_secret(value: str | None, file: str | None, what: str) -> str | None:
    """Return a secret given inline (already env-interpolated) or in a file, stripped of the newline."""
    if value is not None and file is not None:
        raise ConfigError(what, f"set either {what} or {what}_file, not both")
    if file is None:
        return value
    try:
        return Path(file).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(f"{what}_file", f"cannot read {file}: {exc.strerror}") from None
