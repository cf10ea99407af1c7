"""The quickstart's Celery app, logging JSON through ``shipper.logconfig``.

celery -A shipper.demo.app worker --loglevel=INFO --logfile=logs/worker-%I.log
"""

from __future__ import annotations

import logging
import os
import random

from celery import Celery
from celery.utils.log import get_task_logger

from shipper.logconfig import connect_celery

app = Celery(
    "demo", broker=os.environ.get("DEMO_BROKER", "amqp://guest:guest@127.0.0.1:5672//"), backend="rpc://"
)
app.conf.update(
    task_default_queue=os.environ.get("DEMO_QUEUE", "shipper-demo"),
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
)
connect_celery(service_name="shipper-demo")

log = get_task_logger(__name__)
audit = logging.getLogger("demo.audit")


class PaymentDeclined(Exception):
    """A failure a real shop would log."""


@app.task(name="demo.charge", bind=True, max_retries=2)  # type: ignore[untyped-decorator]
def charge(self, order: int) -> str:  # type: ignore[no-untyped-def]
    log.info("charging order %s", order)
    if order % 7 == 0:
        raise PaymentDeclined(f"card declined for order {order}")
    if order % 5 == 0 and self.request.retries == 0:
        raise self.retry(exc=ConnectionError("payment gateway timed out"), countdown=0.5)
    audit.info("order %s charged", order, extra={"order": {"id": order, "amount": random.randint(5, 500)}})  # noqa: S311
    return f"order {order} charged"
