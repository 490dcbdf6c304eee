# syntax=docker/dockerfile:1
# The Airflow image of the covidct stack: Airflow 3.3.2, the covidct library, its DAG and
# plugins, every dependency from uv.lock (CPU TensorFlow). Runs airflow-init, the api-server,
# scheduler, dag-processor, triggerer, the CPU Celery worker, Flower, MLflow and the init jobs.
#
#   docker compose build        (or: docker build -f infra/airflow.Dockerfile -t covidct/airflow:0.1.0 .)
#
# Pin the base image by digest (FROM python:3.11-slim-bookworm@sha256:...) in your registry.
FROM python:3.11-slim-bookworm

ARG UV_VERSION=0.13.9
ARG AIRFLOW_UID=50000
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
    PATH=/opt/covidct/.venv/bin:$PATH

# curl for health checks, tini as PID 1 (forwards SIGTERM: Celery's warm shutdown)
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl tini \
    && rm -rf /var/lib/apt/lists/* \
    && pip install --no-cache-dir "uv==${UV_VERSION}" \
    && useradd --uid "${AIRFLOW_UID}" --gid 0 --home-dir /opt/airflow --create-home airflow

WORKDIR /opt/covidct
# 1. third-party dependencies exactly as locked (cached while uv.lock does not change)
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
# 2. the PostgreSQL driver (psycopg 3), pinned by the lock's dev group until it moves to the
#    main dependencies
RUN uv export --frozen --only-group dev --no-hashes --no-emit-project \
        | grep -E '^psycopg(-binary)?==' > /tmp/postgres-driver.txt \
    && uv pip install --no-deps -r /tmp/postgres-driver.txt \
    && rm /tmp/postgres-driver.txt
# 3. the project itself, then the DAG, plugins and start-up scripts
COPY covidct ./covidct
RUN uv sync --frozen --no-dev --no-editable
COPY dags /opt/airflow/dags
COPY plugins /opt/airflow/plugins
COPY infra/init /opt/covidct/infra/init
COPY infra/mlflow /opt/covidct/infra/mlflow

RUN mkdir -p /opt/airflow/logs /opt/airflow/auth /opt/covidct/home /opt/covidct/keras \
    && chown -R "${AIRFLOW_UID}:0" /opt/airflow /opt/covidct/home /opt/covidct/keras \
    && chmod -R g+rwX /opt/airflow /opt/covidct/home /opt/covidct/keras

USER ${AIRFLOW_UID}
WORKDIR /opt/airflow
ENTRYPOINT ["/usr/bin/tini", "--", "airflow"]
CMD ["version"]
