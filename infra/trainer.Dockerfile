# syntax=docker/dockerfile:1
# The GPU trainer image: the Airflow image's content (uv.lock) with TensorFlow built for CUDA,
# for the Celery worker that consumes queue `gpu`. Needs the NVIDIA driver and the NVIDIA
# Container Toolkit on the host; CUDA and cuDNN come as pip wheels (tensorflow[and-cuda]).
#
#   docker compose build airflow-worker-gpu
#
# The one departure from uv.lock: tensorflow-cpu is replaced by tensorflow[and-cuda] of the
# same version, constrained by the lock so no other package moves.
FROM python:3.11-slim-bookworm

ARG UV_VERSION=0.13.9
ARG AIRFLOW_UID=50000
ARG TENSORFLOW_VERSION=2.21.0
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_PROJECT_ENVIRONMENT=/opt/covidct/.venv \
    VIRTUAL_ENV=/opt/covidct/.venv \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/airflow/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/airflow/plugins \
    COVIDCT_HOME=/opt/covidct/home \
    TF_FORCE_GPU_ALLOW_GROWTH=true \
    PATH=/opt/covidct/.venv/bin:$PATH

RUN apt-get update \
    && apt-get install -y --no-install-recommends curl tini \
    && rm -rf /var/lib/apt/lists/* \
    && pip install --no-cache-dir "uv==${UV_VERSION}" \
    && useradd --uid "${AIRFLOW_UID}" --gid 0 --home-dir /opt/airflow --create-home airflow

WORKDIR /opt/covidct
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
RUN uv export --frozen --only-group dev --no-hashes --no-emit-project \
        | grep -E '^psycopg(-binary)?==' > /tmp/postgres-driver.txt \
    && uv pip install --no-deps -r /tmp/postgres-driver.txt \
    && rm /tmp/postgres-driver.txt
# CUDA TensorFlow, every other package held at its locked version
RUN uv export --frozen --no-dev --no-hashes --no-emit-project \
        | grep -v '^tensorflow-cpu==' > /tmp/locked.txt \
    && uv pip uninstall tensorflow-cpu \
    && uv pip install --constraint /tmp/locked.txt "tensorflow[and-cuda]==${TENSORFLOW_VERSION}" \
    && rm /tmp/locked.txt
COPY covidct ./covidct
RUN uv pip install --no-deps --no-cache .
COPY dags /opt/airflow/dags
COPY plugins /opt/airflow/plugins
COPY infra/init /opt/covidct/infra/init

RUN mkdir -p /opt/airflow/logs /opt/covidct/home /opt/covidct/keras \
    && chown -R "${AIRFLOW_UID}:0" /opt/airflow /opt/covidct/home /opt/covidct/keras \
    && chmod -R g+rwX /opt/airflow /opt/covidct/home /opt/covidct/keras

USER ${AIRFLOW_UID}
WORKDIR /opt/airflow
# fail the build early if TensorFlow cannot load its CUDA build (GPUs are not visible at build)
RUN python -c "import tensorflow as tf; assert tf.test.is_built_with_cuda(), 'not a CUDA build'"
ENTRYPOINT ["/usr/bin/tini", "--", "airflow"]
CMD ["version"]
