"""Install JSON logging for a Celery worker (or any process) in one call.

``install_json_logging`` configures the root logger; ``connect_celery`` hooks it into Celery's
``setup_logging`` signal so Celery installs none of its own handlers and passes us the worker's
``--loglevel`` and ``--logfile`` (already expanded for ``%n``/``%h``; ``%i``/``%I`` per pool child).

Idempotent by construction: the handlers we install carry a marker and are replaced, never added
again, so calling twice, or once more in every prefork child, leaves exactly one of each.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from .context import CeleryContextFilter
from .formatter import EcsJsonFormatter
from .handlers import JsonLinesFileHandler

_MARK = "_shipper_json_logging"


@dataclass(frozen=True)
class JsonLoggingOptions:
    """What ``install_json_logging`` installs; also what the Celery hook was connected with."""

    service_name: str = "celery"
    #: ``event.dataset``; None: ``celery.worker``, or the service name with ``spec_strict``.
    dataset: str | None = None
    level: int | str = logging.INFO
    #: A file path (WatchedFileHandler, one write per record) or None.
    logfile: str | None = None
    #: Also write to this stream (stderr by default when there is no logfile).
    stream: TextIO | None = None
    #: Level for the ``kombu`` and ``amqp`` loggers; None leaves them at the root level.
    #: DEBUG (with KOMBU_LOG_CONNECTION=1) is the tool for transport problems.
    kombu_level: int | str | None = None
    include_task_args: bool = False
    static_fields: Mapping[str, Any] = field(default_factory=dict)
    #: Add the Celery task context filter (imports Celery); off for processes that run no tasks.
    celery_context: bool = True
    #: ``log.origin`` (file, line, function) on every record; None: on, off with ``spec_strict``.
    include_origin: bool | None = None
    #: Follow the ECS logging spec's SHOULDs (dotted ``log.level``/``ecs.version``...; README).
    spec_strict: bool = False


def _our_handlers(logger: logging.Logger) -> list[logging.Handler]:
    return [h for h in logger.handlers if getattr(h, _MARK, False)]


def build_handlers(options: JsonLoggingOptions, worker_hostname: str | None = None) -> list[logging.Handler]:
    """The handlers ``install_json_logging`` attaches to the root logger, each with our formatter
    and the Celery context filter."""
    formatter = EcsJsonFormatter(
        service_name=options.service_name,
        dataset=options.dataset,
        include_task_args=options.include_task_args,
        static_fields=options.static_fields,
        include_origin=options.include_origin,
        spec_strict=options.spec_strict,
    )
    context = CeleryContextFilter(worker_hostname) if options.celery_context else None
    handlers: list[logging.Handler] = []
    if options.logfile:
        handlers.append(JsonLinesFileHandler(options.logfile))
    stream = options.stream if options.stream is not None else (None if options.logfile else sys.stderr)
    if stream is not None:
        handlers.append(logging.StreamHandler(stream))
    for handler in handlers:
        handler.setFormatter(formatter)
        if context is not None:
            handler.addFilter(context)
        setattr(handler, _MARK, True)
    return handlers


def install_json_logging(
    options: JsonLoggingOptions | None = None, *, worker_hostname: str | None = None, **overrides: Any
) -> list[logging.Handler]:
    """Make the root logger write ECS JSON lines; returns the handlers it installed.

    Keyword overrides are fields of :class:`JsonLoggingOptions`, e.g.
    ``install_json_logging(logfile="/var/log/celery/w1.log", level="INFO")``.
    Handlers a previous call installed are closed and replaced; other handlers on the root logger
    (a test runner's capture, say) are left alone unless ``logfile``/``stream`` duplicate them.
    """
    opts = options or JsonLoggingOptions()
    if overrides:
        opts = JsonLoggingOptions(**{**opts.__dict__, **overrides})
    root = logging.getLogger()
    for old in _our_handlers(root):
        root.removeHandler(old)
        old.close()
    handlers = build_handlers(opts, worker_hostname)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(opts.level)
    # Celery sets propagate=0 on celery.task only when it configures logging itself; make sure the
    # task loggers reach our root handlers whichever way the worker was started.
    logging.getLogger("celery.task").propagate = True
    if opts.kombu_level is not None:
        for name in ("kombu", "amqp"):
            logging.getLogger(name).setLevel(opts.kombu_level)
    logging.captureWarnings(True)
    return handlers


class CeleryJsonLogging:
    """The Celery hook: ``CeleryJsonLogging(options).connect()`` before the worker starts.

    Connecting to ``setup_logging`` makes Celery skip its own logging set-up entirely (no handler
    to remove afterwards, no text lines before ours). The receiver takes the worker's loglevel and
    logfile from the signal, unless the options fix them.
    """

    def __init__(self, options: JsonLoggingOptions | None = None) -> None:
        self.options = options or JsonLoggingOptions()
        self.worker_hostname: str | None = None
        self.handlers: list[logging.Handler] = []

    def connect(self) -> CeleryJsonLogging:
        from celery import signals

        # weak=False: the bound methods would otherwise be collected with a temporary instance.
        # dispatch_uid makes connecting twice a no-op.
        signals.celeryd_init.connect(self._on_celeryd_init, weak=False, dispatch_uid=f"{_MARK}.init")
        signals.setup_logging.connect(self._on_setup_logging, weak=False, dispatch_uid=f"{_MARK}.setup")
        return self

    def _on_celeryd_init(self, sender: Any = None, **_: Any) -> None:
        # sender is the node name, e.g. "celery@host"; records outside tasks carry it too.
        self.worker_hostname = str(sender) if sender else None
        for handler in self.handlers:
            for flt in handler.filters:
                if isinstance(flt, CeleryContextFilter):
                    flt.worker_hostname = self.worker_hostname

    def _on_setup_logging(self, loglevel: int | None = None, logfile: str | None = None, **_: Any) -> None:
        opts = self.options
        overrides: dict[str, Any] = {}
        if loglevel:
            overrides["level"] = loglevel
        if logfile and opts.logfile is None:
            overrides["logfile"] = logfile
        self.handlers = install_json_logging(opts, worker_hostname=self.worker_hostname, **overrides)


def connect_celery(**options: Any) -> CeleryJsonLogging:
    """One call in the Celery app module: ``connect_celery(service_name="billing")``."""
    return CeleryJsonLogging(JsonLoggingOptions(**options)).connect()
