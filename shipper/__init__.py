"""Structured logging and exactly-once log shipping for Celery on RabbitMQ into Elasticsearch."""

__version__ = "0.1.0"
