# syntax=docker/dockerfile:1
# steerrec images (docs/deploy.md).
#
#   docker build --target serve -t steerrec:serve .                       # slim serving image, CPU, no torch
#   docker build --target serve --build-arg VARIANT=gpu -t steerrec:serve-gpu .
#   docker build --target serve --build-arg BUNDLE=bundles/ml1m -t steerrec:ml1m .   # bundle baked in
#   docker build --target train -t steerrec:train .                       # torch (CPU wheel): train, sae, interpret
#
# VARIANT=cpu (default) installs the `cpu` extra (faiss-cpu, onnxruntime) on Debian slim Python;
# VARIANT=gpu starts from the CUDA runtime image and installs the `gpu` extra (faiss-gpu-cu12,
# onnxruntime-gpu) and, for the train target, the CUDA torch wheel. service/runtime.py picks the
# GPU at run time when one is visible and the CPU otherwise.

ARG VARIANT=cpu
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG CUDA_IMAGE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04

# ---- base: Python in a virtual environment, on Debian slim (cpu) or the CUDA runtime (gpu) ----
FROM ${PYTHON_IMAGE} AS base-cpu

FROM ${CUDA_IMAGE} AS base-gpu
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*

# DL3006: base-cpu or base-gpu, a stage of this file picked by VARIANT, not an image to tag.
# hadolint ignore=DL3006
FROM base-${VARIANT} AS base
# wget: KubeRay's readiness and liveness probes run it inside the Ray containers.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends wget \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/venv \
 && useradd --uid 10001 --create-home --shell /bin/bash steerrec
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# ---- the project's source, once for both targets ----
FROM base AS source
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY steerrec ./steerrec
COPY service ./service
COPY training ./training

# ---- serve-deps: steerrec with the serving extras only (torch is never installed here) ----
FROM source AS serve-deps
ARG VARIANT
# DL3013: "." is this repository; its dependencies carry version ranges in pyproject.toml.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[${VARIANT}]" \
 && python -c "import steerrec.service.app, sys; assert 'torch' not in sys.modules"

# ---- train: torch first (CPU wheel, or CUDA for VARIANT=gpu), then the train extra ----
FROM source AS train
ARG VARIANT
ARG TORCH_VERSION=2.13.0
ARG TORCH_CUDA=cu126
# hadolint ignore=DL3013
RUN index="https://download.pytorch.org/whl/$([ "${VARIANT}" = gpu ] && echo "${TORCH_CUDA}" || echo cpu)" \
 && pip install --no-cache-dir "torch==${TORCH_VERSION}" --index-url "${index}" \
 && pip install --no-cache-dir ".[${VARIANT},train]"
USER 10001:10001
WORKDIR /home/steerrec
# e.g. docker run -v "$PWD/bundles:/home/steerrec/bundles" steerrec:train demo --out bundles/demo
ENTRYPOINT ["steerrec"]
CMD ["--help"]

# ---- serve (the default target): the venv from serve-deps, a non-root user, the bundle ----
FROM base AS serve
ARG BUNDLE=deploy/docker/no-bundle
COPY --from=serve-deps /opt/venv /opt/venv
# Root-owned and read-only to the service user: a compromised process cannot alter the bundle.
COPY ${BUNDLE} /srv/bundle
# Then the HAProxy wrapper for clusters whose manifest sets Ray's environment (deploy/kuberay names
# it in RAY_SERVE_HAPROXY_BINARY_PATH): HAProxy's stats and metrics listeners on loopback, no access
# log, no disconnect watch in the replicas (service/ingress.py). `steerrec serve` writes its own.
RUN install -d -o steerrec -g steerrec /var/lib/steerrec \
 && python -m steerrec.service.ingress --write-wrapper /opt/steerrec
USER 10001:10001
WORKDIR /home/steerrec
# `steerrec serve` reads these (steerrec/commands/serve.py). In a container the service must listen
# on all of the container's interfaces; outside one it defaults to 127.0.0.1.
ENV STEERREC_BUNDLE=/srv/bundle \
    STEERREC_HOST=0.0.0.0 \
    STEERREC_PORT=8000 \
    STEERREC_METRICS_PORT=8080
EXPOSE 8000 8080
VOLUME ["/var/lib/steerrec"]
HEALTHCHECK --interval=15s --timeout=5s --start-period=180s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('STEERREC_PORT', '8000'), timeout=4)"]
CMD ["steerrec", "serve"]
