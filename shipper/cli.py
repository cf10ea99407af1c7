"""The ``shipper`` command line.

Every deliberate failure is a :class:`~shipper.errors.ShipperError`; ``main`` prints it as one line
on stderr (``shipper: error: output.elasticsearch.hosts: must not be empty``) and exits non-zero.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from . import __version__
from .config import ShipperConfig, load_config
from .errors import ShipperError

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
