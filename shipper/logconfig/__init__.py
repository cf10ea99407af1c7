"""Structured ECS JSON logging for Celery workers, kombu and any other Python service.

Quick start, in the module that creates the Celery app::

    from shipper.logconfig import connect_celery
    connect_celery(service_name="billing")

Then ``celery -A app worker --logfile=/var/log/celery/%n%I.log --loglevel=INFO`` writes one ECS
JSON object per line, with the task id and name on every record logged inside a task.
"""

from .context import CeleryContextFilter
from .dictconfig import dict_config
from .formatter import EcsJsonFormatter
from .handlers import JsonLinesFileHandler
from .setup import CeleryJsonLogging, JsonLoggingOptions, connect_celery, install_json_logging

__all__ = [
    "CeleryContextFilter",
    "CeleryJsonLogging",
    "EcsJsonFormatter",
    "JsonLinesFileHandler",
    "JsonLoggingOptions",
    "connect_celery",
    "dict_config",
    "install_json_logging",
]
