# The SpyCloud relay for Cisco XDR, served by gunicorn on port 9090.
# Stage 1 builds a virtualenv from the hash-locked requirements; stage 2 holds
# only that virtualenv and the relay's runtime files (no tests, no devtools).
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY code/requirements.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install --no-cache-dir --require-hashes \
    -r /tmp/requirements.txt

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY code/app.py code/serve.py code/gunicorn.conf.py code/healthcheck.py ./
COPY code/relay ./relay
USER 10001:10001
EXPOSE 9090
# Slim images have no curl; /watchdog needs no token and no SpyCloud call.
# It probes the port BIND names (a wildcard host on loopback).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["python", "healthcheck.py"]
# serve.py checks every setting (one line naming a bad one), then runs
# gunicorn with gunicorn.conf.py.
CMD ["python", "serve.py"]
