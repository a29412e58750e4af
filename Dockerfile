# syntax=docker/dockerfile:1
# dlc-guard: one image, one entrypoint for `webhook`, `operator`, `check`, `scan` and `catalog`.
#
# The base is pinned to an exact Python patch release; for a reproducible build pin it by digest
# too:  docker build --build-arg PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:<digest> .
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- build: wheels for dlc-guard and its dependencies, installed into a virtualenv ----------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY policy ./policy
COPY controller ./controller
RUN python -m pip wheel --wheel-dir /wheels ".[aws]" \
 && python -m venv /opt/dlc-guard \
 && /opt/dlc-guard/bin/pip install --no-index --find-links /wheels "dlc-guard[aws]" \
 && /opt/dlc-guard/bin/pip uninstall --yes pip \
 && /opt/dlc-guard/bin/dlc-guard catalog info

# --- final: the virtualenv on the same base, no pip, no wheels, no compilers, not root -------
FROM ${PYTHON_IMAGE}
RUN python -m pip uninstall --yes pip setuptools wheel 2>/dev/null || true
COPY --from=build /opt/dlc-guard /opt/dlc-guard
ENV PATH=/opt/dlc-guard/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# 65532: the conventional "nonroot" uid; the chart's securityContext uses the same
USER 65532:65532
WORKDIR /tmp
EXPOSE 8443 8080
ENTRYPOINT ["dlc-guard"]
CMD ["--help"]
