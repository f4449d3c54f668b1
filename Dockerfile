FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY adapters ./adapters
RUN pip install '.[postgres]' && useradd --system --uid 10001 --home /var/lib/gateway gateway \
    && mkdir -p /var/lib/gateway /etc/gateway && chown gateway /var/lib/gateway
USER gateway
WORKDIR /var/lib/gateway
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"
ENTRYPOINT ["gateway"]
# The container listens on 0.0.0.0:8080 whatever server.host and server.port say: the config's
# default host, 127.0.0.1, would answer the healthcheck inside yet refuse `docker run -p`.
CMD ["serve", "--config", "/etc/gateway/config.yaml", "--host", "0.0.0.0", "--port", "8080"]
