# The base image by exact version and digest: a tag is re-pushed with every Debian update, a
# digest never changes. Refresh both together (docs/operations.md, "Reproducible installs").
FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
# Dependencies first, at the versions CI tested (hash-checked), in a layer of their own.
COPY requirements-runtime.lock ./
RUN pip install --require-hashes -r requirements-runtime.lock
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY adapters ./adapters
RUN pip install --no-deps . && useradd --system --uid 10001 --home /var/lib/gateway gateway \
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
