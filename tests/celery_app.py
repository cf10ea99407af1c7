"""A real Celery app for the tests: JSON logging through ``shipper.logconfig``.

The worker is started as a subprocess (``celery -A tests.celery_app worker``) against the real
RabbitMQ. Tasks cover what the configurator must handle: success with app logging, a failure with
a traceback, a retry, and a kombu record logged inside a task.
"""

from __future__ import annotations

import logging
import os

from celery import Celery
from celery.utils.log import get_task_logger

from shipper.logconfig import connect_celery

BROKER = os.environ.get("SHIPPER_TEST_BROKER", "amqp://guest:guest@127.0.0.1:5672//")
QUEUE = os.environ.get("SHIPPER_TEST_QUEUE", "shipper-tests")

app = Celery("tests", broker=BROKER, backend="rpc://")
app.conf.update(
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
    worker_prefetch_multiplier=1,
    task_acks_late=False,
    worker_send_task_events=os.environ.get("SHIPPER_TEST_EVENTS") == "1",
    task_send_sent_event=os.environ.get("SHIPPER_TEST_EVENTS") == "1",
    task_track_started=True,
)

connect_celery(service_name="shipper-tests", kombu_level=os.environ.get("SHIPPER_TEST_KOMBU_LEVEL"))

task_log = get_task_logger(__name__)
app_log = logging.getLogger("tests.app")


class Boom(RuntimeError):
    """Raised by the failing task so the tests can look for its type."""


@app.task(name="tests.add")
def add(x: int, y: int) -> int:
    task_log.info("adding %s and %s", x, y)
    app_log.info('app logger inside a task: "quoted"\nsecond line')
    return x + y


@app.task(name="tests.fail")
def fail(reason: str) -> None:
    task_log.warning("about to fail")
    raise Boom(reason)


@app.task(name="tests.retry_once", bind=True, max_retries=3)
def retry_once(self) -> str:  # type: ignore[no-untyped-def]
    task_log.info("attempt %s", self.request.retries)
    if self.request.retries == 0:
        raise self.retry(exc=ValueError("first attempt fails"), countdown=0.1)
    return "ok after retry"


@app.task(name="tests.kombu_publish")
def kombu_publish() -> str:
    """Publish with a fresh kombu connection: kombu.* loggers log inside the task."""
    from kombu import Connection

    logging.getLogger("kombu.connection").info("kombu logging from inside a task")
    with Connection(BROKER) as conn:
        producer = conn.Producer(serializer="json")
        producer.publish({"hello": "world"}, routing_key=f"{QUEUE}-sink", declare=[])
    return "published"


@app.task(name="tests.sleep")
def sleep(seconds: float) -> None:
    import time

    time.sleep(seconds)
