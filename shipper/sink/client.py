"""The official ``elasticsearch`` client, configured from ``output.elasticsearch``.

- 8.x client: it talks to Elasticsearch 8 and 9 (the 9.x client sends ``compatible-with=9``,
  which an 8 server refuses).
- TLS verification stays on unless the config turns it off; a CA file can be given.
- Secrets come from the environment (interpolated into the config) or from ``*_file`` paths,
  and are never logged.
- Compression is done by the sink (zlib level 1): the transport's own ``http_compress`` uses
  gzip level 9, which costs more CPU than all of parsing.
- The client's own retries are off: the sink retries per item with backoff and accounting.
"""

from __future__ import annotations

import logging
from typing import Any

from ..config import ElasticsearchConfig, read_secret
from ..errors import ConfigError

KEY = "output.elasticsearch"

log = logging.getLogger(__name__)


def client_kwargs(cfg: ElasticsearchConfig) -> dict[str, Any]:
    username = cfg.username or None
    password = read_secret(cfg.password or None, cfg.password_file, f"{KEY}.password")
    api_key = read_secret(cfg.api_key or None, cfg.api_key_file, f"{KEY}.api_key")
    kwargs: dict[str, Any] = {
        "hosts": list(cfg.hosts),
        "request_timeout": cfg.request_timeout,
        "max_retries": 0,
        "retry_on_timeout": False,
        "http_compress": False,
        "verify_certs": cfg.verify_certs,
    }
    if any(h.startswith("https://") for h in cfg.hosts) and cfg.ca_file:
        kwargs["ca_certs"] = cfg.ca_file
    elif cfg.ca_file and not any(h.startswith("https://") for h in cfg.hosts):
        raise ConfigError(f"{KEY}.ca_file", "a CA file is set but no host uses https://")
    if api_key and (username or password):
        raise ConfigError(f"{KEY}.api_key", "set either api_key or username/password, not both")
    if api_key:
        kwargs["api_key"] = api_key
    elif username or password:
        if not (username and password):
            raise ConfigError(f"{KEY}.username", "username and password go together")
        kwargs["basic_auth"] = (username, password)
    if not cfg.verify_certs:
        kwargs["ssl_show_warn"] = False
    return kwargs


def make_client(cfg: ElasticsearchConfig, warn: bool = True) -> Any:
    """The client every command uses. With ``verify_certs: false`` it warns once (``warn``: the
    commands; worker processes of the same command pass False), since the client's own per-request
    warning is off."""
    from elastic_transport import NdjsonSerializer, OrjsonSerializer
    from elasticsearch import Elasticsearch

    kwargs = client_kwargs(cfg)
    if warn and not cfg.verify_certs:
        log.warning(
            f"{KEY}.verify_certs is false: TLS certificates of Elasticsearch are NOT verified, "
            "connections are not protected against interception (use ca_file for a private CA)"
        )

    class ReadyNdjsonSerializer(NdjsonSerializer):
        """Pass ready bytes through untouched. The stock serializer appends a newline to a body
        that does not end with one, which corrupts a gzip-compressed body."""

        def dumps(self, data: Any) -> bytes:
            if isinstance(data, bytes):
                return data
            return bytes(super().dumps(data))

    serializer = OrjsonSerializer()
    ndjson = ReadyNdjsonSerializer()
    return Elasticsearch(
        **kwargs,
        serializers={
            "application/json": serializer,
            "application/vnd.elasticsearch+json": serializer,
            "application/x-ndjson": ndjson,
            "application/vnd.elasticsearch+x-ndjson": ndjson,
        },
    )
