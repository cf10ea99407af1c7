"""A small Celery app for the quickstart: tasks that succeed, fail, retry and log."""
