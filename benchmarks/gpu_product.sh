#!/usr/bin/env bash
# The GPU check of issue 35 as one command: covidct.training.train_model (ResNet152, gpu-fast,
# synthetic 512 px slices) against the bare loop of benchmarks/gpu_train.py, on a GPU host with
# JAX and no TensorFlow or Keras. benchmarks/gpu_product.py's docstring says what is measured.
#
#   here:        python benchmarks/gpu_product.py carry      # writes .gpu-carry/ (< 64 MiB)
#   GPU host:    bash benchmarks/gpu_product.sh [run options, e.g. --steps 40 --batch-size 64]
#
# With the device tool of this workplace: run(command="bash benchmarks/gpu_product.sh",
# carry=[".gpu-carry"], timeout_s=540).
set -euo pipefail
cd "$(dirname "$0")/.."
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=${XLA_PYTHON_CLIENT_PREALLOCATE:-true}
PYTHON=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
exec "$PYTHON" benchmarks/gpu_product.py run "$@"
