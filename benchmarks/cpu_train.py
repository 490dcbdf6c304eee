"""CPU training speed: eager against compiled train steps, the one-off trace, the demo's bytes.

For each backbone and image size, the product's own model set-up (``training.new_training_model``
with the ``cpu-smoke`` profile: Nadam, categorical cross-entropy, random weights) is timed on
random float32 batches:

- ``eager img/s``: ``run_eagerly=True`` (what ``cpu-smoke`` did before), after one warm-up step;
- ``trace s``: the first compiled step (tracing, graph optimisation and the step itself);
- ``compiled img/s``: later compiled steps; ``speed-up`` = compiled / eager;
- ``keras trace s`` (``--keras-trace``): the first step with Keras's own Nadam and lazily built
  variables, which trace the train step twice (see ``covidct/training/optimization.py``);
- ``--grappler``: ``trace s`` and ``compiled img/s`` again with TensorFlow's graph optimiser
  (Grappler) skipped, as ``cpu-smoke`` runs (``training.graph_optimizer_policy``).

``--backends tensorflow,jax`` runs the table once per Keras backend, each in its own process
(``KERAS_BACKEND``), rows tagged with the backend in the last column; the ``eager`` column is
op by op on either (JAX's trainer without ``jit``), ``compiled`` is ``tf.function`` under
TensorFlow and ``jax.jit`` (XLA) under JAX, and ``trace s`` the first step with its tracing or
compilation. Grappler options apply to TensorFlow only.

``--demo`` also runs ``infra/demo.sh`` (a fresh ``COVIDCT_HOME`` in a temporary folder) and
prints its wall time and the bytes its processes wrote (``getrusage`` block outputs, 512-byte
blocks, as ``/usr/bin/time -v`` reports them). Prints a Markdown table; nothing is asserted.

    uv run python benchmarks/cpu_train.py [--backbones resnet152,resnet50,vgg16]
        [--sizes 64,128] [--batch 16] [--steps 5] [--eager-steps 2] [--keras-trace] [--grappler]
        [--backends tensorflow,jax] [--demo]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]


def _batch(size: int, batch: int):  # noqa: ANN202 - numpy arrays
    import numpy as np

    rng = np.random.default_rng(0)
    images = rng.random((batch, size, size, 1), dtype=np.float32)
    targets = np.eye(2, dtype=np.float32)[rng.integers(0, 2, batch)]
    return images, targets


def _time_steps(model, images, targets, steps: int) -> float:  # noqa: ANN001
    started = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(images, targets)
    return time.perf_counter() - started


def measure(backbone: str, size: int, batch: int, steps: int, eager_steps: int) -> dict:
    """One row: eager and compiled images per second, and the first compiled step's time."""
    from covidct import training

    config = training.TrainingConfig.from_profile(
        "cpu-smoke", image_size=size, batch_size=batch, run_eagerly=True
    )
    images, targets = _batch(size, batch)
    row: dict = {"backbone": backbone, "size": size, "batch": batch}
    model = training.new_training_model(backbone, config, replicas=1)
    _time_steps(model, images, targets, 1)  # warm-up (eager kernels, allocator)
    row["eager"] = batch * eager_steps / _time_steps(model, images, targets, eager_steps)
    model = training.new_training_model(
        backbone, training.TrainingConfig.from_profile("cpu-smoke", image_size=size,
                                                       batch_size=batch, run_eagerly=False),
        replicas=1,
    )  # fmt: skip
    with training.graph_optimizer_policy(True):
        row["trace_s"] = _time_steps(model, images, targets, 1)
        row["compiled"] = batch * steps / _time_steps(model, images, targets, steps)
    return row


def measure_without_grappler(backbone: str, size: int, batch: int, steps: int) -> dict:
    """The first compiled step and later steps with TensorFlow's graph optimiser skipped."""
    from covidct import training

    config = training.TrainingConfig.from_profile(
        "cpu-smoke", image_size=size, batch_size=batch, run_eagerly=False, graph_optimizer=False
    )
    images, targets = _batch(size, batch)
    model = training.new_training_model(backbone, config, replicas=1)
    with training.graph_optimizer_policy(False):
        trace = _time_steps(model, images, targets, 1)
        compiled = batch * steps / _time_steps(model, images, targets, steps)
    return {"trace_s": trace, "compiled": compiled}


def keras_trace(backbone: str, size: int, batch: int) -> float:
    """First-step time with Keras's Nadam and metric built lazily (the old behaviour)."""
    import keras

    from covidct.models import get_backbone

    model = get_backbone(backbone).build((size, size, 1), 2, None)
    model.compile(
        optimizer=keras.optimizers.Nadam(1e-3), loss="categorical_crossentropy",
        metrics=["accuracy"],
    )  # fmt: skip
    images, targets = _batch(size, batch)
    return _time_steps(model, images, targets, 1)


def run_demo() -> tuple[float, int]:
    """Run ``infra/demo.sh`` in a fresh home; return (wall seconds, bytes written)."""
    with tempfile.TemporaryDirectory(prefix="covidct-demo-bench-") as home:
        env = {
            **os.environ,
            "COVIDCT_HOME": home,
            "AIRFLOW_HOME": f"{home}/airflow",
            "SHARED": os.environ.get("SHARED", str(REPO.parent / "shared")),
            "RUN": "uv run --frozen --no-sync",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow/airflow.db",
        }
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_oublock
        started = time.perf_counter()
        subprocess.run(["bash", str(REPO / "infra" / "demo.sh")], env=env, check=True, cwd=REPO)
        wall = time.perf_counter() - started
        blocks = resource.getrusage(resource.RUSAGE_CHILDREN).ru_oublock - before
    return wall, blocks * 512


def _framework_version() -> str:
    from covidct.keras_backend import backend_name

    module = __import__("tensorflow" if backend_name() == "tensorflow" else backend_name())
    return str(module.__version__)


def per_backend(args: argparse.Namespace, argv: list[str]) -> int:
    """This script once per backend of ``--backends``, each in a process of its own."""
    rest = [a for i, a in enumerate(argv) if a != "--backends" and argv[i - 1] != "--backends"]
    rest = [a for a in rest if not a.startswith("--backends=") and a != "--demo"]
    for index, backend in enumerate(args.backends.split(",")):
        env = {**os.environ, "KERAS_BACKEND": backend}
        command = [sys.executable, __file__, *rest, *(["--no-header"] if index else [])]
        subprocess.run(command, env=env, check=True, cwd=REPO)
    if args.demo:
        wall, written = run_demo()
        print(f"\ndemo: {wall:.0f} s wall, {written / 1e9:.2f} GB written", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Print the benchmark table (see module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", default="resnet152,resnet50,vgg16")
    parser.add_argument("--sizes", default="64,128")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5, help="compiled steps timed after tracing")
    parser.add_argument("--eager-steps", type=int, default=2, help="eager steps timed")
    parser.add_argument("--keras-trace", action="store_true", help="also time Keras's own set-up")
    parser.add_argument("--grappler", action="store_true", help="also time without Grappler")
    parser.add_argument("--demo", action="store_true", help="also run the demo and count bytes")
    parser.add_argument("--backends", default="", help="e.g. tensorflow,jax: one process each")
    parser.add_argument("--no-header", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.backends:
        return per_backend(args, list(sys.argv[1:] if argv is None else argv))
    import keras

    from covidct.keras_backend import backend_name, uses_tensorflow

    grappler = args.grappler and uses_tensorflow()
    version = getattr(keras.backend, "__version__", "") or _framework_version()
    print(f"Keras {keras.__version__} on {backend_name()} {version}, {os.cpu_count()} CPUs, "
          f"batch {args.batch}", flush=True)  # fmt: skip
    if not args.no_header:
        header = "| backbone | px | eager img/s | compiled img/s | speed-up | trace s |"
        extra = [" keras trace s |"] * args.keras_trace
        extra += [" no-Grappler trace s | no-Grappler img/s |"] * grappler
        print(header + "".join(extra) + " backend |")
        print("|---" * (7 + args.keras_trace + 2 * grappler) + "|", flush=True)
    for backbone in args.backbones.split(","):
        for size in (int(value) for value in args.sizes.split(",")):
            row = measure(backbone, size, args.batch, args.steps, args.eager_steps)
            line = (
                f"| {backbone} | {size} | {row['eager']:.1f} | {row['compiled']:.1f} | "
                f"{row['compiled'] / row['eager']:.1f}x | {row['trace_s']:.1f} |"
            )
            if args.keras_trace:
                line += f" {keras_trace(backbone, size, args.batch):.1f} |"
            if grappler:
                bare = measure_without_grappler(backbone, size, args.batch, args.steps)
                line += f" {bare['trace_s']:.1f} | {bare['compiled']:.1f} |"
            print(line + f" {backend_name()} |", flush=True)
    if args.demo:
        wall, written = run_demo()
        print(f"\ndemo: {wall:.0f} s wall, {written / 1e9:.2f} GB written", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
