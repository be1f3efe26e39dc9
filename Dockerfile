# syntax=docker/dockerfile:1
# deploy-manager service image: Python 3.11, the pinned helm binary (checksum-verified), no compilers.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
# git is needed by GitPython at run time; the build stage also needs it for `pip install .` metadata.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git=1:2.39.* \
 && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY deploy_manager ./deploy_manager
COPY kubesim ./kubesim
COPY scripts/install_tools.py ./scripts/install_tools.py
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir . \
 && /opt/venv/bin/python scripts/install_tools.py --dest /opt/tools/bin --cache /tmp/tools-cache \
 && rm -rf /tmp/tools-cache

FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends git=1:2.39.* \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/deploy-manager --create-home deploy-manager
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/tools/bin/helm /usr/local/bin/helm
ENV PATH=/opt/venv/bin:$PATH \
    DM_HELM_BIN=/usr/local/bin/helm \
    DM_STATE_DIR=/var/lib/deploy-manager \
    DM_HOST=0.0.0.0 \
    DM_PORT=8080 \
    HELM_CACHE_HOME=/var/lib/deploy-manager/.cache/helm \
    HELM_CONFIG_HOME=/var/lib/deploy-manager/.config/helm \
    PYTHONUNBUFFERED=1
USER 10001
WORKDIR /var/lib/deploy-manager
EXPOSE 8080
ENTRYPOINT ["deploy-manager"]
CMD ["serve"]
