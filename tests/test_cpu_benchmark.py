"""benchmarks/cpu_train.py and warm_folds.py run end to end on the smallest settings and print
their tables."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_cpu_train_benchmark_prints_a_row_per_backbone_and_size() -> None:
    args = ["--backbones", "vgg16", "--sizes", "32", "--batch", "2", "--steps", "1"]
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "cpu_train.py"), *args, "--eager-steps", "1"],
        capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    (row,) = [line for line in done.stdout.splitlines() if line.startswith("| vgg16 | 32 |")]
    eager, compiled, speed_up, trace = (cell.strip() for cell in row.split("|")[3:7])
    assert float(eager) > 0 and float(compiled) > 0 and float(trace) > 0
    assert speed_up.endswith("x")


def test_warm_folds_benchmark_reuses_to_identical_weights() -> None:
    args = ["--backbones", "vgg16", "--size", "32", "--steps", "2", "--slices", "16"]
    args += ["--batch", "4"]
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "warm_folds.py"), *args],
        capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    (row,) = [line for line in done.stdout.splitlines() if line.startswith("| vgg16 |")]
    fresh, first, reused, diff = (cell.strip() for cell in row.split("|")[2:6])
    assert min(float(fresh), float(first), float(reused)) > 0
    assert float(diff) == 0.0
