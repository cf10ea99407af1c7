"""The ``shipper`` command line.

Every deliberate failure is a :class:`~shipper.errors.ShipperError`; ``main`` prints it as one line
on stderr (``shipper: error: output.elasticsearch.hosts: must not be empty``) and exits non-zero.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from . import __version__
from .config import ShipperConfig, load_config
from .errors import ShipperError

if TYPE_CHECKING:
    from .source import Batch

#: Seconds a stopping command keeps retrying Elasticsearch before it gives up.
SHUTDOWN_TIMEOUT = 10.0

CONFIG_OPTION = click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default="configs/shipper.yml",
    show_default=True,
    help="YAML config file.",
)


def load(config_path: str) -> ShipperConfig:
    return load_config(config_path)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="shipper")
def cli() -> None:
    """Ship Celery and RabbitMQ logs into Elasticsearch, exactly once."""


@cli.group("config")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command("check")
@CONFIG_OPTION
def config_check(config_path: str) -> None:
    """Validate the config file and print a summary of the inputs."""
    from .redact import redact_url
    from .terminal import printable

    config = load(config_path)
    click.echo(printable(f"{config_path}: OK"))
    for inp in config.inputs:
        click.echo(printable(f"  input {inp.id}: parser={inp.parser} paths={', '.join(inp.paths)}"))
    click.echo(printable(f"  output: {', '.join(redact_url(h) for h in config.output.elasticsearch.hosts)}"))
    click.echo(printable(f"  data_dir: {config.data_dir}"))
    click.echo(printable(f"  events: {redact_url(config.events.broker_url)}"))
    if config.events.alerts.webhook_url:
        click.echo(printable(f"  alerts webhook: {redact_url(config.events.alerts.webhook_url)}"))


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _own_logging(level: str = "INFO") -> logging.Logger:
    """The shipper logs about itself in the same ECS JSON it ships (stderr, dataset shipper.log)."""
    from .logconfig import install_json_logging
    from .redact import RedactFilter

    handlers = install_json_logging(
        service_name="shipper", dataset="shipper.log", stream=sys.stderr, level=level, celery_context=False
    )
    for handler in handlers:  # a URL in an error message or an extra never shows its password
        handler.addFilter(RedactFilter())
    # One line per request, and one per failed request ("node has failed N times") otherwise: the
    # sender reports failures itself, rate-limited.
    logging.getLogger("elastic_transport").setLevel(logging.ERROR)
    return logging.getLogger("shipper")


@cli.command("tail")
@CONFIG_OPTION
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(dir_okay=False),
    help="NDJSON file to append records to (with their ids).",
)
@click.option(
    "--parse", "parse_records", is_flag=True, help="Write parsed ECS documents instead of raw records."
)
def tail_command(config_path: str, output: str, parse_records: bool) -> None:
    """Follow the inputs and append records to an NDJSON file (no Elasticsearch).

    Uses and advances the same checkpoints as `shipper run`: point it at its own data_dir.
    """
    from .parse import PARSERS, InputParsing
    from .sink.file import NdjsonFileSink
    from .source import CheckpointStore, Tailer, locked
    from .source.follow import follow

    config = load(config_path)
    stop = threading.Event()
    _stop_on_signals(stop)
    log = _own_logging()
    rules = {inp.id: PARSERS[inp.parser].continues for inp in config.inputs}
    parsing = (
        {inp.id: InputParsing.from_config(inp, config.hostname) for inp in config.inputs}
        if parse_records
        else None
    )
    with locked(config.data_dir):
        tailer = Tailer(
            config.inputs,
            CheckpointStore.open(config.data_dir),
            config.watch,
            rules=rules,
            host=config.hostname,
        )
        sink = NdjsonFileSink(output, parsing)

        def deliver(batches: list[Batch]) -> None:
            sink.write(batches)
            for batch in batches:
                tailer.ack(batch.seq)

        log.info("tail started", extra={"output": output})
        try:
            follow(tailer, config.watch, deliver, stop)
        finally:
            tailer.close()
            sink.close()
        log.info("tail stopped", extra={"tailer": tailer.stats.__dict__})


def _wait_for_mode(
    client: Any,
    configured: str,
    stop: threading.Event,
    log: logging.Logger,
    on_problem: Callable[[str], None] = lambda _reason: None,
    hosts: tuple[str, ...] = (),
) -> str | None:
    """Ask the server which index mode to use; retry while it is unreachable or refuses (or until
    stopped). ``on_problem`` hears why it cannot go on yet (for /health)."""
    from elastic_transport import TransportError
    from elasticsearch import ApiError

    from .redact import redact_text, redact_url
    from .sink.bulk import api_error_reason
    from .sink.setup import detect_mode
    from .throttle import Throttled

    delay = 1.0
    problems = Throttled(log)
    while not stop.is_set():
        try:
            mode, note = detect_mode(client, configured)
        except (TransportError, ApiError) as exc:
            if isinstance(exc, ApiError):
                status = exc.meta.status if exc.meta is not None else None
                reason = f"Elasticsearch refuses the requests: {api_error_reason(status, exc.body, str(exc))}"
            else:
                where = f" at {', '.join(redact_url(h) for h in hosts)}" if hosts else ""
                reason = f"Elasticsearch unreachable{where}: {' '.join(str(exc).split())[:300]}"
            reason = redact_text(reason)
            on_problem(reason)
            level = logging.ERROR if isinstance(exc, ApiError) else logging.WARNING
            problems.problem(level, f"{reason}; retrying", retry_in=delay)
            stop.wait(delay)
            delay = min(delay * 2, 30.0)
            continue
        problems.resolved("Elasticsearch answers")
        if note:
            log.warning(note)
        return mode
    return None


def _start_metrics(
    config: ShipperConfig, collector: Any, health: Callable[[], tuple[int, dict[str, Any]]]
) -> Any:
    """The /metrics and /health server, started before anything that may wait on Elasticsearch."""
    from .metrics import MetricsServer, metrics_address

    if not config.metrics.enabled:
        return None
    host, port = metrics_address(config.metrics.listen)
    server = MetricsServer(collector, health, host, port)
    server.start()
    return server


@cli.command("run")
@CONFIG_OPTION
@click.option("--log-level", default="INFO", show_default=True, help="Level of the shipper's own logs.")
def run_command(config_path: str, log_level: str) -> None:
    """Follow the inputs and ship them into Elasticsearch until SIGTERM/SIGINT."""
    from .health import HealthMonitor
    from .metrics import PipelineCollector
    from .pipeline import Pipeline
    from .sink.bulk import EsTransport
    from .sink.client import make_client
    from .source import locked

    config = load(config_path)
    stop = threading.Event()
    _stop_on_signals(stop)
    log = _own_logging(log_level)
    es = config.output.elasticsearch
    client = make_client(es)
    monitor = HealthMonitor(config.metrics.unhealthy_after, es.dead_letter_alarm_ratio)
    holder: list[Pipeline] = []
    with locked(config.data_dir):
        metrics = _start_metrics(
            config, PipelineCollector(lambda: holder[0] if holder else None, monitor.status), monitor.status
        )
        try:
            monitor.waiting("detecting the index mode")
            mode = _wait_for_mode(client, es.index_mode, stop, log, monitor.waiting, es.hosts)
            if mode is None:
                return
            pipeline = Pipeline(
                config,
                lambda: EsTransport(client, es.compression),
                mode,
                monitor=monitor,
                log_level=log_level,
                shutdown_timeout=SHUTDOWN_TIMEOUT,
            )
            holder.append(pipeline)

            def stop_pipeline() -> None:
                stop.wait()
                pipeline.stop()

            threading.Thread(target=stop_pipeline, name="signals", daemon=True).start()
            log.info(
                "shipper started",
                extra={
                    "index_mode": mode,
                    "inputs": [i.id for i in config.inputs],
                    "metrics": config.metrics.listen if metrics else None,
                },
            )
            monitor.start()
            pipeline.run()
        finally:
            if metrics is not None:
                metrics.stop()
        log.info(
            "shipper stopped",
            extra={"sink": pipeline.stats.as_dict(), "tailer": pipeline.tailer.stats.__dict__},
        )


@cli.command("events")
@CONFIG_OPTION
@click.option("--broker", help="Broker URL (default: events.broker_url in the config).")
def events_command(config_path: str, broker: str | None) -> None:
    """Ship Celery's event stream (task life cycle, workers) into Elasticsearch until SIGTERM.

    Workers must send events: worker_send_task_events=True (or `celery worker -E`), and for the
    whole life cycle task_send_sent_event=True and task_track_started=True.
    """
    import dataclasses
    import os
    import uuid

    from .events import EventsBridge
    from .health import HealthMonitor
    from .metrics import EventsCollector, EventsSnapshot
    from .sink.bulk import BulkSender, EsTransport, SinkStats
    from .sink.client import make_client
    from .sink.deadletter import DeadLetterFile
    from .sink.encode import IndexNaming, make_item

    config = load(config_path)
    events_cfg = dataclasses.replace(config.events, broker_url=broker) if broker else config.events
    stop = threading.Event()
    _stop_on_signals(stop)
    log = _own_logging()
    es = config.output.elasticsearch
    client = make_client(es)
    monitor = HealthMonitor(config.metrics.unhealthy_after, es.dead_letter_alarm_ratio)
    stats = SinkStats()
    state: dict[str, Any] = {"bridge": None, "in_flight": 0, "unsent": 0}

    def snapshot() -> EventsSnapshot:
        bridge = state["bridge"]
        if bridge is None:
            return EventsSnapshot(unsent=state["unsent"])
        return EventsSnapshot(
            received=bridge.received,
            in_flight=len(bridge.pending) + state["in_flight"],
            unsent=state["unsent"],
            reconnects=bridge.reconnects,
        )

    metrics = _start_metrics(config, EventsCollector(snapshot, lambda: stats, monitor.status), monitor.status)
    try:
        monitor.waiting("detecting the index mode")
        mode = _wait_for_mode(client, es.index_mode, stop, log, monitor.waiting, es.hosts)
        if mode is None:
            return
        naming = IndexNaming(mode, es.namespace)
        os.makedirs(config.data_dir, mode=0o700, exist_ok=True)
        dead = DeadLetterFile(os.path.join(config.data_dir, "events-dead-letter.ndjson"))
        # Events have no file position to commit: the sender retries until they are indexed, and
        # after SIGTERM for at most SHUTDOWN_TIMEOUT seconds more (the broker already acknowledged
        # them).
        give_up = threading.Event()

        def give_up_after_stop() -> None:
            stop.wait()
            give_up.wait(SHUTDOWN_TIMEOUT)
            give_up.set()

        threading.Thread(target=give_up_after_stop, daemon=True).start()
        sender = BulkSender(
            EsTransport(client, es.compression),
            dead,
            lambda items: None,
            give_up,
            es.retry.initial_backoff,
            es.retry.max_backoff,
            stats,
        )

        def deliver(docs: list[tuple[str, dict[str, Any]]]) -> None:
            ds = ("celery.events", es.namespace) if mode == "data_stream" else None
            items = [
                make_item(naming, doc_id, naming.index("celery.events", doc["@timestamp"]), doc, 0, ds)
                for doc_id, doc in docs
            ]
            state["in_flight"] = len(items)
            try:
                if not sender.send(items):
                    state["unsent"] += len(items)
            finally:
                state["in_flight"] = 0

        def observe() -> None:
            while not stop.wait(1.0):
                monitor.observe(snapshot().in_flight, stats)

        def dead_letter(raw: Any, reason: str) -> None:
            """A message that is not an event: kept in the events dead-letter file with the reason."""
            text = raw.decode("utf-8", "backslashreplace") if isinstance(raw, bytes) else str(raw)
            doc_id = str(uuid.uuid4())
            item = make_item(naming, doc_id, "n/a", {"event": {"original": text}}, 0, None)
            dead.write([(item, 0, None, reason)])

        bridge = EventsBridge(events_cfg, deliver, stop, dead_letter=dead_letter)
        state["bridge"] = bridge
        threading.Thread(target=observe, name="health", daemon=True).start()
        log.info("events started", extra={"index_mode": mode})
        monitor.start()
        bridge.run()
    finally:
        if metrics is not None:
            metrics.stop()
    if state["unsent"]:
        log.error(
            "Elasticsearch unreachable at shutdown: events not indexed", extra={"unsent": state["unsent"]}
        )
    log.info(
        "events stopped",
        extra={**bridge.counters(), "unsent": state["unsent"], "sink": stats.as_dict()},
    )
    dead.close()


@cli.command("setup")
@CONFIG_OPTION
def setup_command(config_path: str) -> None:
    """Install the index templates (and ILM policy) in Elasticsearch; safe to run again."""
    from .sink.client import make_client
    from .sink.setup import run_setup

    config = load(config_path)
    result = run_setup(make_client(config.output.elasticsearch), config.output.elasticsearch)
    click.echo(f"index mode: {result.mode}")
    for note in result.notes:
        click.echo(f"note: {note}")
    for kind in ("created", "updated", "unchanged"):
        for name in getattr(result, kind):
            click.echo(f"{kind}: {name}")


@cli.command("status")
@CONFIG_OPTION
def status_command(config_path: str) -> None:
    """Per-file acknowledged offsets and lag, from the checkpoint store."""
    import os
    from pathlib import Path

    from .source import CheckpointStore

    config = load(config_path)
    store = CheckpointStore(Path(config.data_dir) / "checkpoints.json")
    if not store.load():
        click.echo(f"no checkpoints yet in {config.data_dir}")
        return
    click.echo(f"{'input':10s} {'state':9s} {'offset':>12s} {'size':>12s} {'lag':>10s}  path")
    for st in sorted(store, key=lambda s: (s.input_id, s.path)):
        try:
            info = os.stat(st.path)
            size: int | None = info.st_size if (info.st_dev, info.st_ino) == (st.dev, st.ino) else None
        except OSError:
            size = None
        state = "finished" if st.finished else ("live" if size is not None else "rotated")
        lag = "-" if size is None else str(max(0, size - st.offset))
        click.echo(
            f"{st.input_id:10s} {state:9s} {st.offset:12d} {size if size is not None else '-':>12} "
            f"{lag:>10s}  {st.path}"
        )


@cli.command("search")
@CONFIG_OPTION
@click.argument("query", required=False, default="*")
@click.option("--task-id", help="Everything about one Celery task: worker and broker lines.")
@click.option("--dataset", help="celery.worker, rabbitmq.log, ...")
@click.option("--size", default=20, show_default=True, help="How many documents.")
@click.option("--json", "as_json", is_flag=True, help="Print whole documents as JSON lines.")
def search_command(
    config_path: str, query: str, task_id: str | None, dataset: str | None, size: int, as_json: bool
) -> None:
    """Search the shipped logs (Lucene query_string syntax, newest first).

    \b
    shipper search 'log.level:error'
    shipper search --task-id 1f0c6f0e-...
    shipper search 'tags:authentication_failure' --dataset rabbitmq.log
    """
    from .search import search, search_line
    from .sink.client import make_client
    from .terminal import json_line

    config = load(config_path)
    es = config.output.elasticsearch
    hits = search(make_client(es), query, task_id=task_id, dataset=dataset, size=size, hosts=es.hosts)
    for doc in hits:
        # Log content is untrusted: no control character of it reaches the terminal.
        click.echo(json_line(doc) if as_json else search_line(doc))
    if not hits:
        click.echo("no documents match", err=True)


@cli.command("summary")
@CONFIG_OPTION
def summary_command(config_path: str) -> None:
    """Documents per dataset and level, and the latest failed tasks with their error."""
    from .search import summary
    from .sink.client import make_client
    from .terminal import printable

    config = load(config_path)
    es = config.output.elasticsearch
    for line in summary(make_client(es), hosts=es.hosts):
        click.echo(printable(line))


@cli.group("kibana")
def kibana_group() -> None:
    """Kibana saved objects: data views, saved searches, a dashboard."""


@kibana_group.command("export")
def kibana_export() -> None:
    """Print the saved objects as NDJSON (what kibana/saved_objects.ndjson holds)."""
    from .kibana import to_ndjson

    click.echo(to_ndjson(), nl=False)


@kibana_group.command("import")
@click.option("--url", required=True, help="Kibana base URL, e.g. https://kibana:5601")
@click.option("--space", help="Kibana space id (default space if omitted).")
@click.option(
    "--file",
    "path",
    type=click.Path(exists=True, dir_okay=False),
    help="NDJSON to import (default: the objects built into this version).",
)
@click.option(
    "--timeout",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds the whole import may take.",
)
def kibana_import(url: str, space: str | None, path: str | None, timeout: float) -> None:
    """Import the saved objects (overwrite). Credentials: KIBANA_USERNAME/KIBANA_PASSWORD or
    KIBANA_API_KEY in the environment (or user:password@ in the URL). They are sent to that
    address only: a redirect is an error. Exits non-zero if any object failed."""
    import os

    from .kibana import KibanaError, basic_auth, import_objects, to_ndjson
    from .terminal import printable

    auth = None
    if os.environ.get("KIBANA_API_KEY"):
        auth = f"ApiKey {os.environ['KIBANA_API_KEY']}"
    elif os.environ.get("KIBANA_USERNAME"):
        auth = basic_auth(os.environ["KIBANA_USERNAME"], os.environ.get("KIBANA_PASSWORD", ""))
    try:
        ndjson = open(path, encoding="utf-8").read() if path else to_ndjson()  # noqa: SIM115
    except (OSError, UnicodeDecodeError) as exc:
        raise KibanaError(f"cannot read {path}: {exc}") from None
    result = import_objects(url, ndjson, space=space, auth=auth, timeout=timeout)
    for name in result.created:
        click.echo(printable(f"created: {name}"))
    for name in result.updated:
        click.echo(printable(f"updated: {name}"))
    for name in result.failed:
        click.echo(printable(f"failed: {name}"), err=True)
    if result.failed:
        raise KibanaError(f"{len(result.failed)} saved object(s) failed to import")


def error_line(exc: BaseException) -> str:
    """An error as one printable line with no credentials in it, whatever its message held."""
    from .redact import redact_text
    from .terminal import printable

    return printable(redact_text(str(exc)))


def main(argv: list[str] | None = None) -> Any:
    try:
        return cli.main(args=argv, prog_name="shipper", standalone_mode=False)
    except ShipperError as exc:
        click.echo(f"shipper: error: {error_line(exc)}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("shipper: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
