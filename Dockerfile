# One image for the shipper, `shipper setup`, the demo Celery worker and the one-shot set-up jobs of
# docker-compose.elk.yml. The base image is pinned to an exact version.
FROM python:3.11.10-slim-bookworm
RUN useradd --create-home --uid 1000 shipper
WORKDIR /app
COPY pyproject.toml README.md ./
COPY shipper ./shipper
COPY configs ./configs
COPY kibana ./kibana
COPY docker ./docker
RUN pip install --no-cache-dir . && mkdir -p /var/lib/shipper /var/log/celery && chown shipper /var/lib/shipper /var/log/celery
USER shipper
CMD ["shipper", "run", "-c", "/app/configs/shipper.yml"]
