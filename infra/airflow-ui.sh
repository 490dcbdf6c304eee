#!/usr/bin/env bash
# `make airflow-ui`: `airflow standalone` on the embedded default, sized for a 2-core laptop,
# and stopped whole on Ctrl-C or SIGTERM.
#
# Size: Airflow's defaults start 4 API workers, a LocalExecutor with `parallelism` (32) worker
# processes and 2 DAG-parsing processes: about 5.7 GB resident on a 2-core machine. Here: 1 API
# worker, 2 executor slots (the DAG's gpu and promote pools have 1 slot each), 1 parsing
# process (each may be overridden from the environment).
# Stop: standalone runs in its own session; a signal to this script stops every process of
# that session (SIGTERM, then SIGKILL after 15 s), where standalone alone left the scheduler's
# executor workers running.
set -euo pipefail
RUN=${RUN:-uv run --frozen}
export AIRFLOW__API__HOST=${AIRFLOW__API__HOST:-127.0.0.1}
export AIRFLOW__API__WORKERS=${AIRFLOW__API__WORKERS:-1}
export AIRFLOW__CORE__PARALLELISM=${AIRFLOW__CORE__PARALLELISM:-2}
export AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES=${AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES:-1}

# shellcheck disable=SC2086  # RUN is a command line
setsid $RUN airflow standalone &
leader=$!

members() { ps -o pid= -s "$leader" 2>/dev/null | tr -d ' ' || true; }

stop() {
  trap - INT TERM
  local left
  kill -TERM -- "-$leader" 2>/dev/null || true
  for _ in $(seq 1 30); do
    left=$(members)
    [ -z "$left" ] && break
    # shellcheck disable=SC2086  # one pid a word
    kill -TERM $left 2>/dev/null || true  # those that left the process group, same session
    sleep 0.5
  done
  left=$(members)
  # shellcheck disable=SC2086
  [ -z "$left" ] || kill -KILL $left 2>/dev/null || true
  wait "$leader" 2>/dev/null || true
  echo "airflow-ui: every process of airflow standalone stopped" >&2
  exit 0
}
trap stop INT TERM
wait "$leader" || true
stop
