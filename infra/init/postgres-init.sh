#!/usr/bin/env bash
# PostgreSQL first-start hook (mounted into /docker-entrypoint-initdb.d/ by docker-compose.yaml):
# creates the `mlflow` role and database beside Airflow's. Runs once, on an empty data volume.
set -euo pipefail
: "${MLFLOW_DB_PASSWORD:?MLFLOW_DB_PASSWORD must be set}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v mlflow_password="$MLFLOW_DB_PASSWORD" <<'SQL'
CREATE ROLE mlflow LOGIN PASSWORD :'mlflow_password';
CREATE DATABASE mlflow OWNER mlflow;
SQL
