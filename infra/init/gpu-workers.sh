#!/usr/bin/env bash
# The GPU worker of the stack: one Celery worker per GPU, each pinned to its GPU with
# CUDA_VISIBLE_DEVICES and running one task at a time, all consuming queue `gpu`. The service's
# concurrency is therefore its number of GPUs, and no two tasks ever share a GPU.
#
#   gpu-workers.sh          start the workers; exits (so the container restarts) when one dies
#   gpu-workers.sh --ping   health check: every worker answers a Celery ping
#
# GPU_IDS: comma-separated GPU indices (default: every GPU `nvidia-smi` lists). The first
# worker serves task logs (worker_log_server_port); the others share the logs volume.
set -euo pipefail
app=airflow.providers.celery.executors.celery_executor.app
host=$(hostname)
gpu_ids=${GPU_IDS:-$(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null | paste -sd, -)}
if [ -z "$gpu_ids" ]; then
  echo "gpu-workers: no GPU visible (nvidia-smi lists none) and GPU_IDS is empty" >&2
  exit 1
fi
IFS=, read -r -a gpus <<< "$gpu_ids"

if [ "${1:-}" = "--ping" ]; then
  destinations=$(printf "gpu%s@$host," "${gpus[@]}")
  exec celery --app "$app" inspect ping --timeout 10 -d "${destinations%,}"
fi

pids=()
stop() { kill -TERM "${pids[@]}" 2>/dev/null || true; wait; }
trap stop TERM INT
for index in "${!gpus[@]}"; do
  gpu=${gpus[$index]}
  serve_logs=()
  [ "$index" -eq 0 ] || serve_logs=(--skip-serve-logs)
  echo "gpu-workers: worker gpu$gpu@$host on CUDA_VISIBLE_DEVICES=$gpu"
  CUDA_VISIBLE_DEVICES=$gpu airflow celery worker --queues gpu --concurrency 1 \
    --celery-hostname "gpu$gpu@%h" "${serve_logs[@]}" &
  pids+=($!)
done
set +e
wait -n "${pids[@]}"
status=$?
echo "gpu-workers: a worker exited ($status); stopping the others" >&2
stop
exit "$status"
