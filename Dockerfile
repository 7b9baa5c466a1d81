# syntax=docker/dockerfile:1
# dynamo-scaling: one image for every component (`dynamo-scaling adapter | metrics-server |
# planner`). It carries the services and their base dependencies only, at the versions and
# hashes of requirements/image.txt (regenerate with scripts/lock-image); replay, the demo, the
# local cluster (devcluster/) and the test tools stay out.
#
#   docker build -t dynamo-scaling:0.1.0 .
#
# The base is pinned to an exact Python patch release on Debian bookworm; pin it further to a
# digest (python:3.11.13-slim-bookworm@sha256:...) in the registry you build from.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /opt/dynamo-scaling
# The locked dependencies first so their layer is reused while only code changes.
COPY requirements/image.txt requirements/image.txt
RUN python3 -m venv .venv \
 && .venv/bin/pip install --require-hashes --no-deps -r requirements/image.txt
COPY pyproject.toml README.md ./
COPY dynamo_scaling/ dynamo_scaling/
COPY adapter/ adapter/
COPY external_metrics/ external_metrics/
COPY scaler/ scaler/
RUN .venv/bin/pip install --no-deps . \
 && .venv/bin/dynamo-scaling --version \
 && rm -rf dynamo_scaling adapter external_metrics scaler \
 && find .venv -name __pycache__ -prune -exec rm -rf {} +

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="dynamo-scaling" \
      org.opencontainers.image.description="Autoscaling for NVIDIA Dynamo on Kubernetes" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/dynamo-scaling/.venv/bin:$PATH
RUN groupadd --system --gid 10001 dynamo \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin dynamo
# Same path as in the build stage: the virtual environment's package install points here.
COPY --from=build --chown=0:0 /opt/dynamo-scaling /opt/dynamo-scaling
WORKDIR /opt/dynamo-scaling
USER 10001:10001
# adapter: 8080 metrics, 8081 health; metrics-server: 6443 TLS, 8080 HTTP, 6000 gRPC;
# planner: 8085 API and metrics.
EXPOSE 6443 8080 8081 8085 6000
ENTRYPOINT ["dynamo-scaling"]
CMD ["--help"]
