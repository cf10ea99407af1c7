"""Map Celery's ``extra={'data': ...}`` on task life-cycle records to ``celery.task.*`` fields.

Celery logs received / succeeded / failed / retry / rejected / ignored with the message template
as ``record.msg`` and the values in ``record.data``. Matching the template (taken from Celery
itself, not copied) tells us the task state without parsing the rendered text.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TaskFields:
    """``celery.task`` sub-fields and ``event.duration`` (ns) derived from one record."""

    task: Mapping[str, Any]
    duration_ns: int | None = None


@functools.cache
def _state_by_template() -> Mapping[str, str]:
    from celery.app import trace

    # LOG_FAILURE and LOG_INTERNAL_ERROR are the same template; both mean the task failed.
    return {
        trace.LOG_RECEIVED.strip(): "received",
        trace.LOG_SUCCESS.strip(): "succeeded",
        trace.LOG_FAILURE.strip(): "failed",
        trace.LOG_INTERNAL_ERROR.strip(): "failed",
        trace.LOG_RETRY.strip(): "retry",
        trace.LOG_REJECTED.strip(): "rejected",
        trace.LOG_IGNORED.strip(): "ignored",
    }


def task_fields_from_data(template: Any, data: Any, include_args: bool) -> TaskFields | None:
    """Return the fields for a Celery task record, or None if ``data`` is not one of Celery's."""
    if not isinstance(data, Mapping) or not isinstance(template, str) or "id" not in data:
        return None
    state = _state_by_template().get(template.strip())
    if state is None:
        return None
    task: dict[str, Any] = {"id": data.get("id"), "name": data.get("name"), "state": state}
    duration_ns = None
    runtime = data.get("runtime")
    if isinstance(runtime, int | float):
        task["runtime"] = float(runtime)
        duration_ns = int(runtime * 1_000_000_000)
    if state in ("failed", "retry", "rejected") and data.get("exc") is not None:
        task["exception"] = str(data["exc"])
    if data.get("eta"):
        task["eta"] = str(data["eta"])
    if include_args:
        for key in ("args", "kwargs"):
            if data.get(key) is not None:
                task[key] = str(data[key])
    return TaskFields(task=task, duration_ns=duration_ns)
