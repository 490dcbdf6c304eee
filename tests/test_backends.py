"""The product on every Keras backend (issue 35): a JAX training process imports no TensorFlow;
a model saved under one backend loads and predicts (and explains) the same under the other; the
training, data, evaluation and serving tests run under JAX too.

Each backend runs in its own process (Keras picks its backend once, at import, from
``KERAS_BACKEND``). ``make test`` runs this file with the rest; its JAX share costs a few
minutes on 2 cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]

#: Trains one fold under the backend of its environment, exercising what the DAG's train,
#: evaluate and explain tasks call: train_model (compiled step, PreciseBN, per-epoch checkpoints,
#: MLflow records and the logged model), a resumed call, predict_p_covid and Grad-CAM. Prints a
#: JSON line with what it saw, and the TensorFlow modules loaded at the end.
TRAIN_SCRIPT = r"""
import json, sys
from pathlib import Path
import mlflow, numpy as np, tifffile
import pandas as pd
from covidct.evaluation import gradcam_batch
from covidct.data import make_dataset
from covidct.keras_backend import backend_name
from covidct.training import Profile, TrainingConfig, predict_p_covid, train_model

root = Path(sys.argv[1])
rng = np.random.default_rng(0)
rows = []
for index in range(12):
    positive = index % 2 == 1
    stored = rng.normal(300 + 500 * positive, 80, (40, 40)).clip(0, 4095).astype(np.uint16)
    name = f"patient{index}/IM{index:05d}.tif"
    (root / "images" / name).parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(root / "images" / name, stored)
    rows.append((name, "Positive" if positive else "Negative"))
frame = pd.DataFrame(rows, columns=["path", "label"])
train, val = frame.iloc[:8].reset_index(drop=True), frame.iloc[8:].reset_index(drop=True)
config = TrainingConfig.from_profile(
    Profile.CPU_SMOKE, image_size=32, batch_size=4, epochs=2, steps_per_epoch=2,
    run_eagerly=False, batchnorm_recalibration_batches=2,
)
mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
mlflow.set_experiment("backends")
with mlflow.start_run():
    result = train_model(
        "resnet50", train, val, image_root=root / "images", config=config,
        checkpoint_dir=root / "ckpt",
    )
again = train_model(
    "resnet50", train, val, image_root=root / "images", config=config,
    checkpoint_dir=root / "ckpt", mlflow_run=False,
)
p = predict_p_covid(result.model, list(val["path"]), image_root=root / "images", config=config)
images = make_dataset(
    [root / "images" / x for x in val["path"]], [0] * 4, image_size=32, batch_size=4
)[0][0]
cams = gradcam_batch(result.model, images)
print(json.dumps({
    "backend": backend_name(),
    "steps": result.total_steps,
    "epochs": result.epochs_completed,
    "resumed_from": again.resumed_from_epoch,
    "model_uri": result.model_uri,
    "p_covid": [float(x) for x in p],
    "cam_shape": list(cams.shape),
    "cam_range": [float(cams.min()), float(cams.max())],
    "tensorflow_modules": sorted(m for m in sys.modules if m.split(".")[0] == "tensorflow"),
}))
"""

#: Under the backend of its environment: ``save`` builds a registry backbone at 64 px with
#: seeded random weights (batch-norm statistics moved off their initial values) and saves it;
#: both modes then load the file, predict P(COVID) and Grad-CAM maps for fixed inputs, and
#: write them as .npy beside the model.
CROSS_SCRIPT = r"""
import sys
from pathlib import Path
import keras, numpy as np
from covidct.evaluation import gradcam_batch
from covidct.keras_backend import backend_name, set_random_seed
from covidct.models import get_backbone

mode, folder = sys.argv[1], Path(sys.argv[2])
model_file = folder / "model.keras"
if mode == "save":
    set_random_seed(0)
    model = get_backbone("resnet50").build((64, 64, 1), 2, None)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            shape = layer.moving_mean.shape
            layer.moving_mean.assign(np.random.default_rng(1).normal(0, 0.1, shape))
            layer.moving_variance.assign(np.random.default_rng(2).uniform(0.5, 2.0, shape))
    model.save(model_file)
model = keras.saving.load_model(model_file)
images = np.random.default_rng(5).random((4, 64, 64, 1), dtype=np.float32)
np.save(folder / f"p-{backend_name()}.npy", keras.ops.convert_to_numpy(model(images))[:, 1])
np.save(folder / f"cam-{backend_name()}.npy", gradcam_batch(model, images))
print(backend_name(), sorted(m for m in sys.modules if m.split(".")[0] == "tensorflow")[:3])
"""


def run_under(backend: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -c <script> args...`` with ``KERAS_BACKEND=backend``; raises with stderr's tail."""
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip
    tail = f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert done.returncode == 0, f"{backend}: exit {done.returncode}\n{tail}"
    return done


def test_jax_training_process_imports_no_tensorflow(tmp_path: Path) -> None:
    done = run_under("jax", "-c", TRAIN_SCRIPT, str(tmp_path))
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["backend"] == "jax"
    assert seen["tensorflow_modules"] == []
    assert seen["steps"] == 4 and seen["epochs"] == 2 and seen["resumed_from"] == 2
    assert seen["model_uri"] and len(seen["p_covid"]) == 4
    assert all(0.0 <= p <= 1.0 for p in seen["p_covid"])
    assert seen["cam_shape"] == [4, 32, 32] and seen["cam_range"][0] >= 0.0
    assert seen["cam_range"][1] <= 1.0
    assert (tmp_path / "ckpt" / "epoch-0002.keras").is_file()


@pytest.mark.parametrize(
    ("saved_by", "loaded_by"), [("tensorflow", "jax"), ("jax", "tensorflow")],
    ids=["tensorflow-to-jax", "jax-to-tensorflow"],
)  # fmt: skip
def test_a_saved_model_predicts_the_same_on_the_other_backend(
    tmp_path: Path, saved_by: str, loaded_by: str
) -> None:
    saved = run_under(saved_by, "-c", CROSS_SCRIPT, "save", str(tmp_path))
    loaded = run_under(loaded_by, "-c", CROSS_SCRIPT, "load", str(tmp_path))
    if "jax" in (saved_by, loaded_by):
        jax_output = saved.stdout if saved_by == "jax" else loaded.stdout
        assert jax_output.strip().endswith("jax []")  # no TensorFlow in the JAX process
    p_saved = np.load(tmp_path / f"p-{saved_by}.npy")
    p_loaded = np.load(tmp_path / f"p-{loaded_by}.npy")
    assert p_saved.shape == (4,) and np.ptp(p_saved) > 0  # not a constant model
    np.testing.assert_allclose(p_loaded, p_saved, atol=1e-4, rtol=0)
    cam_saved = np.load(tmp_path / f"cam-{saved_by}.npy")
    cam_loaded = np.load(tmp_path / f"cam-{loaded_by}.npy")
    assert cam_saved.shape == (4, 64, 64) and cam_saved.max() > 0
    np.testing.assert_allclose(cam_loaded, cam_saved, atol=1e-3, rtol=0)


#: The tests of the training, data, evaluation and serving code that run under JAX as well.
JAX_SUITE = (
    "tests/data/test_host.py",
    "tests/training/test_training.py::test_trains_and_checkpoints_every_epoch",
    "tests/training/test_training.py::test_killed_mid_epoch_resumes_with_the_same_total_steps",
    "tests/training/test_training.py::test_recalibration_leaves_the_equal_weight_average_of_its_batches",
    "tests/training/test_warm.py",
    "tests/training/test_loaded.py",
    "tests/promotion/test_serving.py::test_matching_model_passes",
    "tests/promotion/test_serving.py::test_a_registry_backbone_serves_on_the_other_backend",
)


def test_focused_suite_passes_under_jax() -> None:
    done = run_under(
        "jax", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *JAX_SUITE, timeout=900
    )
    assert " passed" in done.stdout.splitlines()[-1] and "failed" not in done.stdout
