"""benchmarks/gpu_train.py: its JAX settings mirror the training profiles; the script runs.

The full benchmark needs a GPU (figures in benchmarks/RESULTS-gpu.md); here the ``--tiny``
mode checks the TensorFlow path end to end on the CPU, and the JAX path's inputs are checked
against the library's own transform.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from covidct.data import IntensityTransform
from covidct.training import LearningRateRule, TrainingConfig

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_train.py"


def load_benchmark():
    spec = importlib.util.spec_from_file_location("gpu_train", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("profile", ["paper", "gpu-fast"])
def test_jax_profile_settings_match_training_profiles(profile: str) -> None:
    settings = load_benchmark().JAX_PROFILES[profile]
    config = TrainingConfig.from_profile(profile)
    assert settings == {
        "batch_size": config.batch_size,
        "learning_rate": config.learning_rate,
        "reference_batch_size": config.reference_batch_size,
        "linear_learning_rate": config.learning_rate_rule is LearningRateRule.LINEAR,
        "mixed_precision": config.mixed_precision,
        "image_size": config.image_size,
    }


def test_jax_inputs_equal_the_default_intensity_transform(tmp_path: Path) -> None:
    benchmark = load_benchmark()
    paths = benchmark.write_slices(tmp_path, 3, 32, seed=5)
    ours = benchmark.decode_lung_window(paths)
    import tifffile

    expected = np.stack([IntensityTransform().apply(tifffile.imread(path)) for path in paths])[
        ..., None
    ]
    np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-6)
    assert len(np.unique(ours)) > 256  # 16-bit levels survive


def test_device_augmentation_module_never_imports_tensorflow() -> None:
    """covidct.data.augment must run on a JAX-only GPU host (the benchmark runs it there)."""
    tree = ast.parse((ROOT / "covidct" / "data" / "augment.py").read_text())
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module.split(".")[0])
    assert "keras" in modules  # the parse found the imports
    assert not modules & {"tensorflow", "tf_keras", "torch"}


def test_tiny_benchmark_runs_on_the_tensorflow_backend(tmp_path: Path) -> None:
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--backbone", "vgg16"],  # quickest to compile
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = [
        line.split()
        for line in result.stdout.splitlines()
        if line.strip().startswith(("paper", "gpu-fast"))
    ]
    assert {row[0] for row in rows} == {"paper", "gpu-fast"}
    assert all(float(row[5]) > 0 for row in rows)  # images/s
    assert "speed-up gpu-fast / paper" in result.stdout


def test_full_benchmark_refuses_without_a_gpu(tmp_path: Path) -> None:
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is visible")
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--profiles", "paper"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 2
    assert "no GPU visible" in result.stdout
