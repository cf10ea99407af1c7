#!/usr/bin/env bash
# The main job on a fresh Debian machine: install everything, start a local Elasticsearch-compatible
# server (unless ES_URL is set) and RabbitMQ, run a real Celery worker logging JSON through our
# configurator, ship its log and RabbitMQ's with `shipper run`, and print what arrived.
# Options: --tasks N (default 40), --keep (leave the servers, worker and shipper running).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_apt_packages
ensure_venv ".[local]"
ensure_rabbitmq
exec .venv/bin/python scripts/quickstart.py "$@"
