#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: installs the apt packages and Python deps it
# needs, starts RabbitMQ when it is not running, then runs ruff, mypy and pytest.
# Same command for a newcomer, a developer and CI (.ci/run calls it). Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_apt_packages
ensure_venv ".[test]"
ensure_rabbitmq
export PATH="$PWD/.venv/bin:$PATH"

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
exec .venv/bin/python -m pytest "$@"
