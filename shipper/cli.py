"""The ``shipper`` command line.

Every deliberate failure is a :class:`~shipper.errors.ShipperError`; ``main`` prints it as one line
on stderr (``shipper: error: output.elasticsearch.hosts: must not be empty``) and exits non-zero.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

import click

from . import __version__
from .config import ShipperConfig, load_config
from .errors import ShipperError

if TYPE_CHECKING:
    from .source import Batch

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
    config = load(config_path)
    click.echo(f"{config_path}: OK")
    for inp in config.inputs:
        click.echo(f"  input {inp.id}: parser={inp.parser} paths={', '.join(inp.paths)}")
    click.echo(f"  output: {', '.join(config.output.elasticsearch.hosts)}")
    click.echo(f"  data_dir: {config.data_dir}")


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _own_logging(level: str = "INFO") -> logging.Logger:
    """The shipper logs about itself in the same ECS JSON it ships (stderr, dataset shipper.log)."""
    from .logconfig import install_json_logging

    install_json_logging(service_name="shipper", dataset="shipper.log", stream=sys.stderr, level=level)
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
        tailer = Tailer(config.inputs, CheckpointStore.open(config.data_dir), config.watch, rules=rules)
        sink = NdjsonFileSink(output, parsing)

        def deliver(batches: list[Batch]) -> None:
            sink.write(batches)
            for batch in batches:
                tailer.ack(batch.seq)

        log.info("tail started", extra={"output": output})
        try:
            follow(tailer, config.watch, deliver, stop)
        finally:
            sink.close()
        log.info("tail stopped", extra={"tailer": tailer.stats.__dict__})


def main(argv: list[str] | None = None) -> Any:
    try:
        return cli.main(args=argv, prog_name="shipper", standalone_mode=False)
    except ShipperError as exc:
        click.echo(f"shipper: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("shipper: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
