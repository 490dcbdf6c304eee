#!/usr/bin/env bash
# PostgreSQL first-start hook (mounted into /docker-entrypoint-initdb.d/ by docker-compose.yaml):
# creates the `mlflow` role and its databases beside Airflow's: `mlflow` (tracking and registry)
# and `mlflow_auth` (accounts and permissions of MLflow's basic-auth app). Runs once, on an empty
# data volume (an existing volume: CREATE DATABASE mlflow_auth OWNER mlflow; by hand).
set -euo pipefail
: "${MLFLOW_DB_PASSWORD:?MLFLOW_DB_PASSWORD must be set}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v mlflow_password="$MLFLOW_DB_PASSWORD" <<'SQL'
CREATE ROLE mlflow LOGIN PASSWORD :'mlflow_password';
CREATE DATABASE mlflow OWNER mlflow;
CREATE DATABASE mlflow_auth OWNER mlflow;
SQL
