#!/usr/bin/env bash
# The `airflow-init` job of docker-compose.yaml (the topology test runs it too):
# refuse weak secrets, migrate the metadata DB, write the admin's password for the simple auth
# manager, and create the pools the DAG uses: `gpu` (one slot per GPU worker) and `promote`
# (one slot: champion moves are serialised).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:?}" "${AIRFLOW_ADMIN_PASSWORD:?}"
python "$here/check_secrets.py" AIRFLOW_ADMIN_PASSWORD  # the secrets-check job checked the rest

echo "airflow-init: $(airflow version) - migrating the metadata database"
airflow db migrate

echo "airflow-init: writing the password of ${AIRFLOW_ADMIN_USER:-admin}"
python - <<'PY'
import json, os, pathlib
path = pathlib.Path(os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
path.parent.mkdir(parents=True, exist_ok=True)
path.write_text(json.dumps({os.environ.get("AIRFLOW_ADMIN_USER", "admin"): os.environ["AIRFLOW_ADMIN_PASSWORD"]}))
path.chmod(0o600)
PY

# both pools in one CLI call (each `airflow` start costs seconds of imports)
pools=$(mktemp)
trap 'rm -f "$pools"' EXIT
cat > "$pools" <<JSON
{"gpu": {"slots": ${GPU_POOL_SLOTS:-1}, "description": "GPU slots: one per GPU worker"},
 "promote": {"slots": 1, "description": "serialises champion moves"}}
JSON
airflow pools import "$pools"
echo "airflow-init: done"
