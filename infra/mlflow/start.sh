#!/usr/bin/env bash
# MLflow tracking server of the stack (the `mlflow` service; the topology test runs it too):
# PostgreSQL backend store, artifacts proxied to S3 (clients need no S3 credentials).
#
#   MLFLOW_BACKEND_STORE_URI      default postgresql+psycopg://mlflow:$MLFLOW_DB_PASSWORD@postgres:5432/mlflow
#   MLFLOW_ARTIFACTS_DESTINATION  s3://bucket/prefix (required)
#   MLFLOW_S3_ENDPOINT_URL        the S3 server (SeaweedFS); AWS_* credentials in the environment
#   MLFLOW_HOST / MLFLOW_PORT / MLFLOW_WORKERS / MLFLOW_ALLOWED_HOSTS
#   MLFLOW_SERVER_ENABLE_JOB_EXECUTION  default false: nothing here uses MLflow server jobs, and
#                                 enabled, the server keeps job-runner processes busy while idle
set -euo pipefail
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}"
: "${MLFLOW_ARTIFACTS_DESTINATION:?set MLFLOW_ARTIFACTS_DESTINATION (s3://bucket/prefix)}"
if [ -z "${MLFLOW_BACKEND_STORE_URI:-}" ]; then
  : "${MLFLOW_DB_PASSWORD:?set MLFLOW_DB_PASSWORD or MLFLOW_BACKEND_STORE_URI}"
  MLFLOW_BACKEND_STORE_URI="postgresql+psycopg://mlflow:${MLFLOW_DB_PASSWORD}@${MLFLOW_DB_HOST:-postgres}:5432/mlflow"
fi
port=${MLFLOW_PORT:-5000}
exec mlflow server \
  --backend-store-uri "$MLFLOW_BACKEND_STORE_URI" \
  --artifacts-destination "$MLFLOW_ARTIFACTS_DESTINATION" \
  --host "${MLFLOW_HOST:-0.0.0.0}" --port "$port" \
  --workers "${MLFLOW_WORKERS:-2}" \
  --allowed-hosts "${MLFLOW_ALLOWED_HOSTS:-mlflow,mlflow:$port,localhost,localhost:$port,127.0.0.1,127.0.0.1:$port}"
