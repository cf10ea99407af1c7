from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.components import ensure_rabbitmq


@pytest.fixture(scope="session")
def broker_url() -> str:
    """A real RabbitMQ broker on localhost (started if installed and not running)."""
    return ensure_rabbitmq()


@pytest.fixture(scope="session")
def es_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Elasticsearch-compatible server: noida-db on a free port, or ES_URL if set."""
    from tests.support.es import elasticsearch_server

    with elasticsearch_server(tmp_path_factory.mktemp("es")) as url:
        yield url
