"""The product's own training function on a GPU host with JAX but no TensorFlow, in one command.

``covidct.training.train_model`` (what the DAG's train task calls) trains ResNet152 on synthetic
512x512 uint16 TIFF slices with the ``gpu-fast`` profile under ``KERAS_BACKEND=jax``: the NumPy
host pipeline (``covidct.data.host``, worker threads), the on-device Table 5 augmentation, bf16
mixed precision, XLA. In the same process the bare loop of ``benchmarks/gpu_train.py``
(``time_profile_jax``: the same model and optimizer fed by ``model.fit`` from host arrays) is
timed, and the script prints both rates, the product's fraction of the bf16 peak (datasheet
989 TFLOP/s, and a bf16 matrix product measured on the chip) and the ratio product / loop.

Two steps:

1. here (a machine with the project's ``.venv``): ``python benchmarks/gpu_product.py carry``
   writes ``.gpu-carry/`` (git-ignored, under 64 MiB): Keras and namex copied from the virtual
   environment (pure Python), covidct's source, and optree's CPython 3.12 manylinux wheel (the
   GPU host's Python, fetched once with ``pip download`` unless found in ``--wheels``: the only
   network step, on this machine) and this Python's (zipped from the installed package, for
   ``run --tiny`` here). The GPU
   host has JAX, NumPy, pandas, tifffile, h5py, rich, absl-py, ml-dtypes and lazy-loader already
   (``/work/.library/device/KINDS.md``), and no TensorFlow or Keras.
2. on the GPU host, from the repository root: ``bash benchmarks/gpu_product.sh`` (which runs
   ``python3 benchmarks/gpu_product.py run``): puts the carry first on ``sys.path``, unpacks the
   wheels matching the running Python into a temporary folder, checks that no TensorFlow module
   was imported, and prints the table. A few minutes on one H100 or H200.

``run --tiny`` checks the script on a CPU (64 px, batch 2, a few steps; ``--backbone`` to pick a
quicker model); ``--host-only`` runs it again in a Python that sees only the standard library,
links to the packages the GPU host has, and the carry (``python -S``), so an import the host
could not satisfy fails here (``tests/test_gpu_product.py`` runs both).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CARRY = ROOT / ".gpu-carry"
CARRY_LIMIT_BYTES = 64 * 2**20
#: pure-Python packages copied from the virtual environment into the carry
COPIED = ("keras", "namex")
#: compiled packages carried as wheels for the GPU host's Python (3.12), ``name==version``
WHEELS = ("optree",)
HOST_PYTHON = "3.12"
#: top-level import names the GPU host has (KINDS.md's package list, as import names)
HOST_PACKAGES = frozenset(
    [
        "absl",
        "certifi",
        "charset_normalizer",
        "cloudpickle",
        "contourpy",
        "cycler",
        "dateutil",
        "flatbuffers",
        "fontTools",
        "google",
        "h5py",
        "idna",
        "jax",
        "jaxlib",
        "joblib",
        "kiwisolver",
        "lazy_loader",
        "markdown_it",
        "matplotlib",
        "mdurl",
        "ml_dtypes",
        "mpl_toolkits",
        "narwhals",
        "numpy",
        "opt_einsum",
        "packaging",
        "pandas",
        "PIL",
        "psutil",
        "pyarrow",
        "pygments",
        "pyparsing",
        "pytz",
        "rich",
        "scipy",
        "six",
        "sklearn",
        "threadpoolctl",
        "tifffile",
        "typing_extensions",
        "tzdata",
        "urllib3",
        "requests",
        "yaml",
    ]
)
CARRIED = frozenset({"keras", "namex", "optree", "covidct"})


# --------------------------------------------------------------------------- here: the carry


def site_packages() -> Path:
    """The virtual environment's site-packages (where keras is installed)."""
    spec = importlib.util.find_spec("keras")
    if spec is None or spec.origin is None:
        raise SystemExit("keras is not installed here: run `uv sync` first")
    return Path(spec.origin).resolve().parents[1]


def _copy_tree(source: Path, target: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "tests", "*_test.py")
    shutil.copytree(source, target, ignore=ignore, dirs_exist_ok=True)


def pinned(name: str) -> str:
    """``name==version`` of the package installed here."""
    from importlib import metadata

    return f"{name}=={metadata.version(name)}"


def fetch_wheel(requirement: str, wheels: Path, python: str = HOST_PYTHON) -> Path:
    """The CPython ``python`` (``"3.12"``) manylinux x86-64 wheel of ``requirement`` in
    ``wheels``, downloaded once with ``pip download`` when absent. Raises SystemExit when pip
    cannot get it."""
    name = requirement.split("==")[0].replace("-", "_")
    version = requirement.split("==")[1]
    tag = "cp" + python.replace(".", "")
    found = sorted(wheels.glob(f"{name}-{version}-{tag}-*.whl"))
    if found:
        return found[-1]
    wheels.mkdir(parents=True, exist_ok=True)
    if python == f"{sys.version_info.major}.{sys.version_info.minor}":
        return wheel_of_installed(name, version, tag, wheels)
    platforms = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64"]
    command = [
        "python3", "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--python-version", python, "--implementation", "cp", "-d", str(wheels),
        *[part for platform in platforms for part in ("--platform", platform)], requirement,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    found = sorted(wheels.glob(f"{name}-{version}-{tag}-*.whl"))
    if done.returncode != 0 or not found:
        raise SystemExit(f"could not get the wheel of {requirement}: {done.stderr[-500:]}")
    return found[-1]


def wheel_of_installed(name: str, version: str, tag: str, wheels: Path) -> Path:
    """A wheel (a zip of the package and its metadata) of ``name`` as installed here, for this
    Python: no download."""
    installed = site_packages()
    wheel = wheels / f"{name}-{version}-{tag}-{tag}-linux_x86_64.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for folder in (installed / name, installed / f"{name}-{version}.dist-info"):
            for path in sorted(folder.rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    archive.write(path, path.relative_to(installed).as_posix())
    return wheel


def folder_bytes(folder: Path) -> int:
    """Bytes of every file under ``folder``."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def build_carry(destination: Path, wheels: Path, pythons: list[str]) -> int:
    """Write the carry folder; return its size in bytes. Raises SystemExit over 64 MiB."""
    if destination.exists():
        shutil.rmtree(destination)
    site = destination / "site"
    site.mkdir(parents=True)
    installed = site_packages()
    for package in COPIED:
        _copy_tree(installed / package, site / package)
    _copy_tree(ROOT / "covidct", site / "covidct")
    (destination / "wheels").mkdir()
    for package in WHEELS:
        for python in pythons:
            wheel = fetch_wheel(pinned(package), wheels, python)
            shutil.copy2(wheel, destination / "wheels" / wheel.name)
    size = folder_bytes(destination)
    if size > CARRY_LIMIT_BYTES:
        raise SystemExit(f"{destination}: {size / 2**20:.1f} MiB, over the 64 MiB carry limit")
    return size


# --------------------------------------------------------------------------- there: the run


def host_site(installed: Path, target: Path) -> Path:
    """A folder of links to the packages of ``installed`` (site-packages) that the GPU host has
    (:data:`HOST_PACKAGES`, with their metadata and bundled libraries), for ``--host-only``."""
    target.mkdir(parents=True, exist_ok=True)
    for entry in installed.iterdir():
        name = entry.name.split(".")[0].split("-")[0]
        metadata = entry.name.endswith((".dist-info", ".libs"))
        carried = name.lower().replace("-", "_") in CARRIED
        if (name in HOST_PACKAGES or metadata) and not carried:
            (target / entry.name).symlink_to(entry)
    return target


def host_only_process(args: argparse.Namespace) -> int:
    """Run this command again in a Python that sees only the standard library, the packages
    the GPU host has and the carry (``python -S``: no site-packages of this environment)."""
    scratch = Path(tempfile.mkdtemp(prefix="covidct-host-site-"))
    try:
        site = host_site(site_packages(), scratch / "site")
        command = [sys.executable, "-S", *sys.argv]
        command.remove("--host-only")
        env = {**os.environ, "PYTHONPATH": str(site)}
        return subprocess.run(command, env=env, check=False).returncode
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def activate_carry(carry: Path) -> None:
    """Put the carry's packages first on ``sys.path`` (its wheels for this Python unpacked)."""
    if not (carry / "site" / "keras").is_dir():
        raise SystemExit(f"{carry}: no carry here; run `python benchmarks/gpu_product.py carry`")
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    unpacked = Path(tempfile.mkdtemp(prefix="covidct-carry-"))
    for wheel in sorted((carry / "wheels").glob("*.whl")):
        if f"-{tag}-" in wheel.name:
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(unpacked)
    sys.path[:0] = [str(carry / "site"), str(unpacked)]


def load_bare_loop() -> Any:
    """``benchmarks/gpu_train.py`` as a module (its JAX loop, FLOP count and slice writer)."""
    spec = importlib.util.spec_from_file_location("gpu_train", ROOT / "benchmarks" / "gpu_train.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def product_rate(args: argparse.Namespace, root: Path, paths: list[Path]) -> dict[str, float]:
    """``train_model`` of ``args.backbone`` with ``gpu-fast`` on ``paths``: images/s of the
    steps after ``args.warmup`` (the first of them compile), timed by a callback that waits for
    the device at both ends."""
    import keras
    import pandas as pd

    from covidct.training import TrainingConfig, train_model

    overrides: dict[str, Any] = {
        "image_size": args.image_size, "epochs": 1,
        "steps_per_epoch": args.warmup + args.steps,
    }  # fmt: skip
    if args.batch_size:
        overrides["batch_size"] = args.batch_size
    config = TrainingConfig.from_profile("gpu-fast", **overrides)
    batch = config.global_batch_size(1)

    class Clock(keras.callbacks.Callback):
        """Start: when step ``warmup`` - 1's loss is on the host; end: the epoch's end. Async
        safe: Keras then runs ``on_train_batch_end`` in a helper thread, after the step's logs
        arrive, and keeps dispatching steps ahead (a per-batch callback that is not would make
        every step wait for the device: the train_on_batch cost in RESULTS-gpu.md)."""

        async_safe = True

        def __init__(self) -> None:
            super().__init__()
            self.start = self.end = 0.0

        def on_train_batch_end(self, batch_index: int, logs: Any = None) -> None:
            if batch_index == args.warmup - 1:
                self.start = time.perf_counter()  # logs are host values here: the step is done

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            float((logs or {})["loss"])  # host floats: the device has finished
            self.end = time.perf_counter()

    clock = Clock()
    labels = ["Positive" if index % 2 else "Negative" for index in range(len(paths))]
    frame = pd.DataFrame({"path": [p.name for p in paths], "label": labels})
    started = time.perf_counter()
    result = train_model(
        args.backbone, frame, frame.iloc[0:0], image_root=root, config=config,
        checkpoint_dir=root / "checkpoints", mlflow_run=False, callbacks=[clock],
    )  # fmt: skip
    wall = time.perf_counter() - started
    return {
        "batch": float(batch),
        "images_per_s": args.steps * batch / (clock.end - clock.start),
        "wall_s": wall,
        "steps": float(result.total_steps),
    }


def run(args: argparse.Namespace) -> int:
    """Bare loop and product path in this process; prints the table, returns the exit code."""
    if args.host_only:
        return host_only_process(args)
    os.environ["KERAS_BACKEND"] = "jax"
    activate_carry(Path(args.carry))
    import jax
    import keras

    from covidct.keras_backend import tensorflow_imported

    gpu = jax.devices()[0].platform == "gpu"
    print(f"keras {keras.__version__} from {Path(keras.__file__).parent}")
    print(f"jax {jax.__version__}; devices: {[str(d) for d in jax.devices()]}", flush=True)
    if not gpu and not args.tiny:
        print("no GPU visible: refusing the full run (use --tiny to check the script)")
        return 2
    bare = load_bare_loop()
    measured = bare.measured_bf16_peak(8192 if gpu else 256, 10 if gpu else 2)
    with tempfile.TemporaryDirectory(prefix="covidct-gpu-") as scratch:
        root = Path(scratch)
        paths = bare.write_slices(root, args.files, args.image_size)
        images = bare.decode_lung_window(paths)
        loop_args = argparse.Namespace(
            batch_size=args.batch_size, backbone=args.backbone, no_augment=False,
            device_resident=False, warmup=args.warmup, steps=args.steps,
            peak_flops=args.peak_flops,
        )  # fmt: skip
        loop = bare.time_profile_jax("gpu-fast", loop_args, images)
        keras.backend.clear_session()
        product = product_rate(args, root, paths)
    flops = loop["train_flops_per_image"]
    rate = product["images_per_s"]
    print(f"{args.backbone} {args.image_size}x{args.image_size}x1, gpu-fast, batch "
          f"{int(product['batch'])}, {args.steps} timed steps after {args.warmup}")  # fmt: skip
    print(f"bare loop (benchmarks/gpu_train.py): {loop['images_per_s']:.1f} images/s")
    print(f"product (covidct.training.train_model): {rate:.1f} images/s "
          f"({product['wall_s']:.0f} s for the whole call)")  # fmt: skip
    print(f"product fraction of bf16 peak: {flops * rate / args.peak_flops:.1%} of "
          f"{args.peak_flops / 1e12:.0f} TFLOP/s (datasheet), {flops * rate / measured:.1%} of "
          f"{measured / 1e12:.1f} TFLOP/s (measured matrix product)")  # fmt: skip
    print(f"product / bare loop: {rate / loop['images_per_s']:.3f}")
    print(f"tensorflow imported: {tensorflow_imported()}")
    return 1 if tensorflow_imported() else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    carry = commands.add_parser("carry", help="here: write the carry folder")
    carry.add_argument("--dest", default=str(CARRY))
    carry.add_argument("--wheels", default=str(Path.home() / ".cache" / "covidct-gpu-wheels"))
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    carry.add_argument(
        "--pythons", default=f"{HOST_PYTHON},{here}",
        help="Python versions to carry compiled wheels for: the GPU host's (downloaded once) and "
        "this one's (made from the installed package, for `run --tiny` here)",
    )  # fmt: skip
    go = commands.add_parser("run", help="on the GPU host: bare loop and train_model")
    go.add_argument("--carry", default=str(CARRY))
    go.add_argument("--backbone", default="resnet152")
    go.add_argument("--image-size", type=int, default=512)
    go.add_argument("--batch-size", type=int, default=0, help="0 = the profile's (32)")
    go.add_argument("--warmup", type=int, default=5, help="untimed steps (compile)")
    go.add_argument("--steps", type=int, default=40, help="timed steps")
    go.add_argument("--files", type=int, default=64, help="distinct slices written")
    go.add_argument("--peak-flops", type=float, default=989e12, help="datasheet bf16 FLOP/s")
    go.add_argument("--tiny", action="store_true", help="CPU check: 64 px, batch 2, 3 steps")
    go.add_argument("--host-only", action="store_true", help="refuse packages the host lacks")
    args = parser.parse_args()
    if args.command == "carry":
        pythons = sorted(set(args.pythons.split(",")))
        size = build_carry(Path(args.dest), Path(args.wheels), pythons)
        print(f"{args.dest}: {size / 2**20:.1f} MiB (limit 64 MiB)")
        return 0
    if args.tiny:
        args.image_size, args.batch_size, args.warmup, args.steps, args.files = 64, 2, 1, 3, 8
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
