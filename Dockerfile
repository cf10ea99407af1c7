# One image for the shipper, `shipper setup` and the demo Celery worker of docker-compose.elk.yml.
FROM python:3.11-slim
RUN useradd --create-home --uid 1000 shipper
WORKDIR /app
COPY pyproject.toml README.md ./
COPY shipper ./shipper
COPY configs ./configs
COPY kibana ./kibana
RUN pip install --no-cache-dir . && mkdir -p /var/lib/shipper /var/log/celery && chown shipper /var/lib/shipper /var/log/celery
USER shipper
CMD ["shipper", "run", "-c", "/app/configs/shipper.yml"]
