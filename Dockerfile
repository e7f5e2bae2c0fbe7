# callscreen: the call-screening gateway (FastAGI on 4573) and, with `api` as the
# command, the HTTP API (8573), for docker-compose.yml.
# Not built in CI (no container engine there): tests/test_deploy.py checks this file's
# shape only. See docs/deploy.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/callscreen
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install ".[api]" \
 && useradd --system --uid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin callscreen \
 && install -d -o callscreen -g callscreen /var/lib/callscreen-api

# Listen on every interface of the container; Asterisk reaches it by service name.
# Only private and loopback addresses may connect unless CALLSCREEN_ALLOWED_CLIENTS
# says otherwise (set it to the Asterisk hosts): the port must never face the Internet.
ENV CALLSCREEN_LISTEN_HOST=0.0.0.0 \
    CALLSCREEN_LISTEN_PORT=4573 \
    CALLSCREEN_ALLOWED_CLIENTS=127.0.0.0/8,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16
EXPOSE 4573 8573

USER callscreen
# A TCP connect that closes at once is a hang-up to the gateway (logged at DEBUG).
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["python", "-c", "import socket; socket.create_connection(('127.0.0.1', 4573), 2).close()"]

# First SIGTERM: stop accepting, finish calls in flight (CALLSCREEN_SHUTDOWN_GRACE_S).
STOPSIGNAL SIGTERM
ENTRYPOINT ["callscreen"]
CMD ["serve"]
