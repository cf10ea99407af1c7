"""A Celery app with Celery's OWN default text logging (no shipper.logconfig), for golden samples
of the plain text format the parser must read."""

from __future__ import annotations

import logging
import os
import time

from celery import Celery
from celery.exceptions import SoftTimeLimitExceeded
from celery.utils.log import get_task_logger

BROKER = os.environ.get("SHIPPER_TEST_BROKER", "amqp://guest:guest@127.0.0.1:5672//")
QUEUE = os.environ.get("SHIPPER_TEST_QUEUE", "shipper-plain")

app = Celery("plain", broker=BROKER, backend="rpc://")
app.conf.update(
    task_default_queue=QUEUE, broker_connection_retry_on_startup=True, worker_prefetch_multiplier=1
)
log = get_task_logger(__name__)


class PaymentDeclined(Exception):
    pass


@app.task(name="shop.charge")
def charge(order: int) -> str:
    log.info("charging order %s", order)
    logging.getLogger("shop.app").warning("slow payment gateway for order %s", order)
    return f"charged {order}"


@app.task(name="shop.fail")
def fail(order: int) -> None:
    raise PaymentDeclined(f"card declined for order {order}")


@app.task(name="shop.retry", bind=True, max_retries=2)
def retry(self, order: int) -> str:  # type: ignore[no-untyped-def]
    if self.request.retries < 1:
        raise self.retry(exc=ConnectionError("gateway unreachable"), countdown=0.2)
    return "ok"


@app.task(name="shop.slow", soft_time_limit=0.5)
def slow() -> None:
    try:
        time.sleep(3)
    except SoftTimeLimitExceeded:
        log.error("gave up after the soft time limit")
        raise
