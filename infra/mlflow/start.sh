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
#
# Authentication: MLflow's basic-auth app (`--app-name basic-auth`), default permission READ.
# `auth_init.py` creates the accounts first (admin, the pipeline's, the one for people; their
# passwords come from .env): only the pipeline's account may register versions and move aliases.
#   MLFLOW_AUTH_DATABASE_URI      default postgresql+psycopg://mlflow:$MLFLOW_DB_PASSWORD@postgres:5432/mlflow_auth
#   MLFLOW_ADMIN_PASSWORD, MLFLOW_PIPELINE_PASSWORD, MLFLOW_VIEWER_PASSWORD (required)
#   MLFLOW_FLASK_SERVER_SECRET_KEY  the auth app's CSRF key (required; the same for every worker)
#   MLFLOW_ADMIN_USER, MLFLOW_PIPELINE_USER, MLFLOW_VIEWER_USER, COVIDCT_MODEL_NAME (defaults)
set -euo pipefail
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}"
: "${MLFLOW_ARTIFACTS_DESTINATION:?set MLFLOW_ARTIFACTS_DESTINATION (s3://bucket/prefix)}"
if [ -z "${MLFLOW_BACKEND_STORE_URI:-}" ]; then
  : "${MLFLOW_DB_PASSWORD:?set MLFLOW_DB_PASSWORD or MLFLOW_BACKEND_STORE_URI}"
  MLFLOW_BACKEND_STORE_URI="postgresql+psycopg://mlflow:${MLFLOW_DB_PASSWORD}@${MLFLOW_DB_HOST:-postgres}:5432/mlflow"
fi
if [ -z "${MLFLOW_AUTH_DATABASE_URI:-}" ]; then
  : "${MLFLOW_DB_PASSWORD:?set MLFLOW_DB_PASSWORD or MLFLOW_AUTH_DATABASE_URI}"
  MLFLOW_AUTH_DATABASE_URI="postgresql+psycopg://mlflow:${MLFLOW_DB_PASSWORD}@${MLFLOW_DB_HOST:-postgres}:5432/mlflow_auth"
fi
export MLFLOW_AUTH_DATABASE_URI
: "${MLFLOW_FLASK_SERVER_SECRET_KEY:?set MLFLOW_FLASK_SERVER_SECRET_KEY (CSRF key of the auth app)}"
# the auth app's config (mode 600: its database URL may hold the DB password)
MLFLOW_AUTH_CONFIG_PATH=$(mktemp -t mlflow-auth.XXXXXX.ini)
export MLFLOW_AUTH_CONFIG_PATH
cat > "$MLFLOW_AUTH_CONFIG_PATH" <<INI
[mlflow]
default_permission = READ
database_uri = $MLFLOW_AUTH_DATABASE_URI
admin_username = ${MLFLOW_ADMIN_USER:-mlflow-admin}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
INI
chmod 600 "$MLFLOW_AUTH_CONFIG_PATH"
python "$(dirname "$0")/auth_init.py"
port=${MLFLOW_PORT:-5000}
exec mlflow server --app-name basic-auth \
  --backend-store-uri "$MLFLOW_BACKEND_STORE_URI" \
  --artifacts-destination "$MLFLOW_ARTIFACTS_DESTINATION" \
  --host "${MLFLOW_HOST:-0.0.0.0}" --port "$port" \
  --workers "${MLFLOW_WORKERS:-2}" \
  --allowed-hosts "${MLFLOW_ALLOWED_HOSTS:-mlflow,mlflow:$port,localhost,localhost:$port,127.0.0.1,127.0.0.1:$port}"
