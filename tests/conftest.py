from __future__ import annotations

import pytest

from tests.support.components import ensure_rabbitmq


@pytest.fixture(scope="session")
def broker_url() -> str:
    """A real RabbitMQ broker on localhost (started if installed and not running)."""
    return ensure_rabbitmq()
