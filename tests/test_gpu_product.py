"""benchmarks/gpu_product.py (issue 35): the carry fits the GPU host's 64 MiB and holds what the
host lacks; the run goes through the carry with only the host's packages, trains through
``covidct.training.train_model`` under JAX without TensorFlow, and prints its figures.

The GPU run itself needs a GPU host (benchmarks/RESULTS-gpu.md); here ``run --tiny`` checks the
script on the CPU with a quick backbone. No download: the carry is built for this Python only
(its compiled wheel zipped from the installed package).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_product.py"
HERE = f"{sys.version_info.major}.{sys.version_info.minor}"


def test_carry_is_small_and_tiny_run_trains_through_the_product_without_tensorflow(
    tmp_path: Path,
) -> None:
    carry = tmp_path / "carry"
    built = subprocess.run(
        [sys.executable, str(SCRIPT), "carry", "--dest", str(carry),
         "--wheels", str(tmp_path / "wheels"), "--pythons", HERE],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    size = sum(p.stat().st_size for p in carry.rglob("*") if p.is_file())
    assert size < 64 * 2**20 and f"{size / 2**20:.1f} MiB" in built.stdout
    assert (carry / "site" / "keras" / "__init__.py").is_file()
    assert (carry / "site" / "covidct" / "training" / "trainer.py").is_file()
    assert sorted(p.name for p in (carry / "site").iterdir()) == ["covidct", "keras", "namex"]
    assert not list(carry.rglob("__pycache__"))
    (wheel,) = (carry / "wheels").glob("optree-*.whl")
    assert "optree/__init__.py" in zipfile.ZipFile(wheel).namelist()

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("KERAS_BACKEND", None)  # the script sets jax itself
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "run", "--tiny", "--host-only", "--carry", str(carry),
         "--backbone", "vgg16"],
        capture_output=True, text=True, timeout=900, check=False, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    out = done.stdout
    assert f"from {carry / 'site' / 'keras'}" in out  # Keras came from the carry
    loop = float(re.search(r"bare loop .*: ([\d.]+) images/s", out).group(1))
    product = float(re.search(r"product \(covidct.training.train_model\): ([\d.]+)", out).group(1))
    ratio = float(re.search(r"product / bare loop: ([\d.]+)", out).group(1))
    assert loop > 0 and product > 0 and abs(ratio - product / loop) < 0.01
    assert re.search(r"product fraction of bf16 peak: [\d.]+% of 989 TFLOP/s", out)
    assert "tensorflow imported: False" in out


def test_without_a_gpu_the_full_run_refuses(tmp_path: Path) -> None:
    carry = tmp_path / "carry"
    subprocess.run(
        [sys.executable, str(SCRIPT), "carry", "--dest", str(carry),
         "--wheels", str(tmp_path / "wheels"), "--pythons", HERE],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "run", "--carry", str(carry)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and "no GPU visible" in done.stdout
