# One image for the gRPC server (`python -m server`, the default command), the RQ training
# worker (`python -m worker`) and the `cnn` CLI. Runs as the non-root user `cnn` (uid 10001).
#
#   docker build -t cnn-service .                                   # python:3.11-slim + PyPI
#   docker build --build-arg BASE_IMAGE=cnn-service-base:bookworm . # offline (docker/README.md)
#
# Dependencies come from docker/wheels/ when it holds wheels (filled by docker/wheels.sh:
# `pip install --no-index`, no network during the build), otherwise from PyPI pinned by
# constraints.txt. The Numba compile cache is warmed at build time (WARM_NUMBA_CACHE=1) into
# /srv/cnn/numba-cache; docker-compose.yml mounts a named volume there, which Docker seeds from
# the image on first use, so workers and server start with compiled kernels.
# Stages: `app` (the default, what users run) and `tests` (app + pytest, tritonclient and
# tests/, for the compose integration suite).

ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS base
ENV LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/cnn \
    PATH=/opt/cnn/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN useradd --uid 10001 --user-group --home-dir /srv/cnn --no-create-home \
        --shell /usr/sbin/nologin cnn \
    && mkdir -p /srv/cnn/models /srv/cnn/data /srv/cnn/numba-cache \
    && chown -R cnn:cnn /srv/cnn

# ---- build: the dependencies in the virtual environment /opt/cnn; the project as a wheel ----
FROM base AS build
COPY docker/install.sh /usr/local/lib/cnn/install.sh
COPY docker/wheels/ /wheels/
COPY pyproject.toml constraints.txt /src/
# Dependencies first: this layer survives changes to the project's code.
RUN sh /usr/local/lib/cnn/install.sh deps
COPY . /src
# A reproducible wheel (fixed timestamps): when only tests or docs change, its checksum does not,
# so the app stage below (and its Numba warm-up) comes from the build cache.
RUN sh /usr/local/lib/cnn/install.sh wheel

# ---- app: what users run ----
FROM base AS app
ARG WARM_NUMBA_CACHE=1
COPY --from=build /opt/cnn /opt/cnn
COPY --from=build /dist /dist
COPY docker/grpc_health_check.py /opt/cnn/bin/cnn-grpc-health
RUN /opt/cnn/bin/python -m pip install -q --no-index --no-deps /dist/*.whl \
    && rm -rf /dist && chmod 0755 /opt/cnn/bin/cnn-grpc-health
ENV CNN_MODELS_DIR=/srv/cnn/models \
    CNN_DATA_DIR=/srv/cnn/data \
    NUMBA_CACHE_DIR=/srv/cnn/numba-cache \
    CNN_GRPC_ADDRESS=0.0.0.0:50051
USER cnn
WORKDIR /srv/cnn
# Compile every kernel a typical job and the server need, once, into NUMBA_CACHE_DIR.
RUN if [ "$WARM_NUMBA_CACHE" = 1 ]; then python -m worker.warmup; fi
EXPOSE 50051
HEALTHCHECK --interval=5s --timeout=5s --start-period=60s --retries=3 \
    CMD ["cnn-grpc-health", "127.0.0.1:50051"]
CMD ["python", "-m", "server"]

# ---- tests: the integration suite (tests/integration) against a running stack ----
FROM app AS tests
USER root
COPY --from=build /wheels/ /wheels/
COPY --from=build /usr/local/lib/cnn/install.sh /usr/local/lib/cnn/install.sh
COPY --from=build /src/constraints.txt /src/constraints.txt
RUN sh /usr/local/lib/cnn/install.sh tests && rm -rf /wheels /src
COPY --chown=cnn:cnn pyproject.toml /app/pyproject.toml
COPY --chown=cnn:cnn tests /app/tests
USER cnn
WORKDIR /app
HEALTHCHECK NONE
CMD ["python", "-m", "pytest", "-p", "no:cacheprovider", "tests/integration"]
