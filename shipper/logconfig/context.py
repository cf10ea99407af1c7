"""A logging filter that stamps the current Celery task onto every record.

Celery adds task id/name only inside ``TaskFormatter.format()``, so replacing the formatter would
lose them, and only for the ``celery.task`` loggers. A filter on the *handler* sees every record
that reaches it, from the app's loggers, Celery's and kombu's alike, and the task stack it reads is
per thread and per process, so it is right under prefork, threads and solo pools.
"""

from __future__ import annotations

import logging


class CeleryContextFilter(logging.Filter):
    """Add ``celery_task_id``, ``celery_task_name``, ``celery_task_retries`` and
    ``celery_worker_hostname`` to records logged while a task runs.

    ``worker_hostname`` is the node name (``celery@host``) used for records logged outside a task;
    the configurator fills it in from the ``celeryd_init`` signal.
    """

    def __init__(self, worker_hostname: str | None = None) -> None:
        super().__init__()
        self.worker_hostname = worker_hostname
        try:
            from celery._state import get_current_task
        except ImportError:  # a non-Celery service using the same formatter
            self._current = None
        else:
            self._current = get_current_task

    def filter(self, record: logging.LogRecord) -> bool:
        task = self._current() if self._current is not None else None
        hostname = self.worker_hostname
        if task is not None:
            request = task.request
            task_id = request.id
            if task_id is not None:
                record.celery_task_id = task_id
                record.celery_task_name = task.name
                record.celery_task_retries = request.retries
                hostname = request.hostname or hostname
        if hostname and not hasattr(record, "celery_worker_hostname"):
            record.celery_worker_hostname = hostname
        return True
