"""Tests for covidct.training: profiles, resumable training, MLflow records, prediction."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import keras
import mlflow
import numpy as np
import pandas as pd
import pytest
import tifffile

from benchmarks.warm_folds import write_slices
from covidct.data import AugmentConfig, IntensityMode, IntensityTransform
from covidct.lake.backends import LocalStore
from covidct.lake.storage import IntegrityError, ObjectStore
from covidct.training import (
    CheckpointMirror,
    CheckpointMismatchError,
    CheckpointStateError,
    CheckpointSyncError,
    LearningRateRule,
    Profile,
    TrainingConfig,
    label_indices,
    predict_p_covid,
    pull_checkpoint,
    push_checkpoint,
    read_remote_state,
    read_state,
    train_model,
)

BACKBONE = "vgg16"  # the quickest registry model to build and step on 2 CPU cores


class Killed(RuntimeError):
    """Stands in for the worker dying (SIGKILL, pre-emption) at a chosen step."""


class KillAt(keras.callbacks.Callback):
    """Raise :class:`Killed` at the end of batch ``batch`` of epoch ``epoch`` (0-based)."""

    def __init__(self, epoch: int, batch: int) -> None:
        super().__init__()
        self.epoch, self.batch, self.current = epoch, batch, -1

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self.current = epoch

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        if (self.current, batch) == (self.epoch, self.batch):
            raise Killed(f"killed at epoch {self.epoch} batch {batch}")


class CountSteps(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.steps = 0

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        self.steps += 1


def write_fold(root: Path, count: int = 12, size: int = 40) -> pd.DataFrame:
    """``count`` uint16 TIFF slices under ``root``: COVID ones brighter; columns path, label
    (the benchmarks' writer, :func:`benchmarks.warm_folds.write_slices`, well separated)."""
    return write_slices(root, count, side=size, contrast=500.0, noise=80.0)


@pytest.fixture
def fold(tmp_path: Path) -> tuple[Path, pd.DataFrame, pd.DataFrame]:
    root = tmp_path / "images"
    frame = write_fold(root)
    return root, frame.iloc[:8].reset_index(drop=True), frame.iloc[8:].reset_index(drop=True)


def tiny_config(**overrides) -> TrainingConfig:
    settings = {"image_size": 32, "batch_size": 4, "epochs": 2, "steps_per_epoch": 2}
    return TrainingConfig.from_profile(Profile.CPU_SMOKE, **{**settings, **overrides})


def train_fold(
    fold: tuple[Path, pd.DataFrame, pd.DataFrame],
    tmp_path: Path,
    backbone: str = BACKBONE,
    train_df: pd.DataFrame | None = None,
    **arguments,
):  # noqa: ANN201 - a TrainingResult
    """``train_model`` of ``backbone`` on ``fold`` (its ``train_df`` unless one is given) with
    the tests' common arguments: the fold's image root, :func:`tiny_config`, checkpoints in
    ``tmp_path / "ckpt"``, no MLflow; ``arguments`` (``config``, ``callbacks``,
    ``mlflow_run``, ...) replace or add to them."""
    root, fold_train, val_df = fold
    common = {
        "image_root": root,
        "config": tiny_config(),
        "checkpoint_dir": tmp_path / "ckpt",
        "mlflow_run": False,
    }
    frame = fold_train if train_df is None else train_df
    return train_model(backbone, frame, val_df, **{**common, **arguments})


@pytest.fixture
def mlflow_store(tmp_path: Path) -> Iterator[str]:
    """A real SQLite-backed MLflow tracking store with local artifacts under ``tmp_path``."""
    previous = mlflow.get_tracking_uri()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment(
        "training-test", artifact_location=(tmp_path / "artifacts").as_uri()
    )
    mlflow.set_experiment(experiment_id=experiment)
    yield uri
    mlflow.set_tracking_uri(previous)


# --------------------------------------------------------------------------- profiles


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("optimizer", "nadam"),
        ("learning_rate", 1e-4),
        ("batch_size", 10),
        ("loss", "categorical_crossentropy"),
        ("epochs", 100),
        ("steps_per_epoch", 100),
        ("image_size", 512),
        ("augment", AugmentConfig(True, True, 360.0, 0.05, 0.05, 0.05)),
        ("mixed_precision", False),
        ("jit_compile", False),
        ("distribute", False),
        ("learning_rate_rule", LearningRateRule.CONSTANT),
        ("graph_optimizer", True),
    ],
)
def test_paper_profile_is_table_5(field: str, value: object) -> None:
    assert getattr(TrainingConfig.from_profile("paper"), field) == value


@pytest.mark.parametrize(
    ("profile", "enabled"), [("paper", True), ("gpu-fast", True), ("cpu-smoke", False)]
)
def test_graph_optimizer_policy_is_the_profiles_and_is_restored(
    profile: str, enabled: bool
) -> None:
    import tensorflow as tf

    from covidct.training import graph_optimizer_policy

    def disabled() -> bool:
        return bool(tf.config.optimizer.get_experimental_options().get("disable_meta_optimizer"))

    before = disabled()
    with graph_optimizer_policy(TrainingConfig.from_profile(profile).graph_optimizer):
        assert disabled() is not enabled
    assert disabled() is before


def test_paper_table_5_augment_values() -> None:
    augment = TrainingConfig.from_profile("paper").augment
    assert augment is not None
    assert (augment.horizontal_flip, augment.vertical_flip) == (True, True)
    assert augment.rotation_degrees == 360.0
    assert (augment.zoom, augment.width_shift, augment.height_shift) == (0.05, 0.05, 0.05)


@pytest.mark.parametrize(
    ("replicas", "global_batch", "learning_rate", "steps"),
    [(1, 32, 1e-4 * 32 / 10, 32), (2, 64, 1e-4 * 64 / 10, 16), (8, 256, 1e-4 * 256 / 10, 4)],
)
def test_gpu_fast_linear_scaling(
    replicas: int, global_batch: int, learning_rate: float, steps: int
) -> None:
    config = TrainingConfig.from_profile("gpu-fast")
    assert (config.mixed_precision, config.jit_compile, config.distribute) == (True, True, True)
    assert config.augment_on_device
    assert config.global_batch_size(replicas) == global_batch
    assert config.effective_learning_rate(replicas) == pytest.approx(learning_rate)
    assert config.effective_steps_per_epoch(replicas) == steps  # ceil(1000 / global batch)


def test_cpu_smoke_is_small_compiled_and_flips_only() -> None:
    smoke, paper = TrainingConfig.from_profile("cpu-smoke"), TrainingConfig.from_profile("paper")
    assert (smoke.image_size, smoke.batch_size, smoke.epochs, smoke.steps_per_epoch) == (
        64,
        16,
        2,
        3,
    )
    # compiled from COMPILE_MIN_STEPS steps on: the demo's 40 steps are, a 2-step test run is not
    assert smoke.run_eagerly is None
    assert not TrainingConfig.from_profile("cpu-smoke", epochs=2, steps_per_epoch=20).eager(1)
    assert TrainingConfig.from_profile("cpu-smoke", epochs=1, steps_per_epoch=2).eager(1)
    assert (smoke.optimizer, smoke.loss) == (paper.optimizer, paper.loss)
    # Table 5's flips only: its rotation, zoom and shifts stop a run of a few dozen steps learning
    assert smoke.augment == AugmentConfig(True, True, 0.0, 0.0, 0.0, 0.0)
    assert paper.augment == AugmentConfig(True, True, 360.0, 0.05, 0.05, 0.05)
    assert (smoke.learning_rate, smoke.batchnorm_momentum) == (1e-3, 0.9)
    assert smoke.balance_classes and smoke.zero_init_residual
    # the paper profile stays the seed's Table 5: none of the from-scratch settings
    assert (paper.learning_rate, paper.batchnorm_momentum) == (1e-4, None)
    assert not (paper.balance_classes or paper.zero_init_residual or paper.run_eagerly)


@pytest.mark.parametrize(
    ("profile", "overrides", "match"),
    [
        ("fast", {}, "profile: expected one of paper, gpu-fast, cpu-smoke; got 'fast'"),
        ("paper", {"epoch": 3}, "unknown TrainingConfig fields"),
        ("paper", {"batch_size": 0}, "batch_size must be >= 1"),
        ("paper", {"learning_rate": -1.0}, "learning_rate must be > 0"),
    ],
)
def test_config_rejects(profile: str, overrides: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TrainingConfig.from_profile(profile, **overrides)


def test_overrides_apply_and_params_are_flat_strings() -> None:
    config = TrainingConfig.from_profile(
        "paper", epochs=3, steps_per_epoch=5, batch_size=4, image_size=128, learning_rate=2e-4
    )
    assert (config.epochs, config.steps_per_epoch, config.batch_size) == (3, 5, 4)
    params = config.to_params()
    assert params["epochs"] == "3" and params["learning_rate"] == "0.0002"
    assert params["augment_rotation_degrees"] == "360.0"
    assert params["intensity_mode"] == "hu-window"
    assert all(isinstance(value, str) for value in params.values())


@pytest.mark.parametrize(
    ("labels", "expected"),
    [(["Positive", "Negative", "Positive"], [1, 0, 1]), (["Negative"], [0])],
)
def test_label_indices(labels: list[str], expected: list[int]) -> None:
    frame = pd.DataFrame({"path": [f"s{i}.tif" for i in range(len(labels))], "label": labels})
    np.testing.assert_array_equal(label_indices(frame), expected)


def test_label_indices_names_the_bad_row() -> None:
    frame = pd.DataFrame({"path": ["a.tif", "b.tif"], "label": ["Positive", "covid"]})
    with pytest.raises(ValueError, match="b.tif"):
        label_indices(frame)


# --------------------------------------------------------------------------- training


@pytest.mark.parametrize(
    ("run_eagerly", "recalibrate"),
    [(False, 0), (None, 0), (False, 20)],
    ids=["compiled", "auto-eager", "recalibrated"],
)
def test_trains_and_checkpoints_every_epoch(fold, tmp_path: Path, run_eagerly, recalibrate) -> None:
    config = tiny_config(
        epochs=2, steps_per_epoch=2, run_eagerly=run_eagerly,
        batchnorm_recalibration_batches=recalibrate,
    )  # fmt: skip
    result = train_fold(fold, tmp_path, config=config)
    assert result.total_steps == 4 and result.epochs_completed == 2
    assert len(result.history["loss"]) == 2
    # a run that re-estimates batch norm afterwards does not validate the model it discards
    assert len(result.history.get("val_accuracy", [])) == (0 if recalibrate else 2)
    state = read_state(tmp_path / "ckpt")
    assert state is not None and state["epoch"] == 2 and state["optimizer_steps"] == 4
    assert [p.name for p in (tmp_path / "ckpt").glob("*.keras")] == ["epoch-0002.keras"]
    assert result.checkpoint_path == tmp_path / "ckpt" / "epoch-0002.keras"
    assert result.model.output_shape == (None, 2)
    assert state["optimizer_state"] is False  # the last epoch keeps the weights only
    assert result.model.run_eagerly is (run_eagerly is None)  # 4 steps: auto runs eagerly


def test_killed_mid_epoch_resumes_with_the_same_total_steps(fold, tmp_path: Path) -> None:
    config = tiny_config(epochs=3, steps_per_epoch=2)
    with pytest.raises(Killed):
        train_fold(fold, tmp_path, config=config, callbacks=[KillAt(epoch=1, batch=0)])
    state = read_state(tmp_path / "ckpt")
    assert state is not None and state["epoch"] == 1 and state["optimizer_steps"] == 2
    counter = CountSteps()
    result = train_fold(fold, tmp_path, config=config, callbacks=[counter])
    assert result.resumed_from_epoch == 1
    assert counter.steps == 2 * 2  # epochs 2 and 3 only
    assert result.total_steps == config.epochs * 2
    assert len(result.history["loss"]) == 3  # the killed attempt's epoch 1 is kept


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"image_size": 40}, "image_size"),
        ({"learning_rate": 1e-2}, r"'learning_rate': \('0.001', '0.01'\)"),
        ({"seed": 7}, "'seed'"),
        ({"weights": "imagenet"}, "'weights'"),
        ({"epochs": 1, "steps_per_epoch": 2}, "past the 1 epochs"),
    ],
)
def test_resume_refuses_other_settings(fold, tmp_path: Path, overrides: dict, match: str) -> None:
    train_fold(fold, tmp_path, config=tiny_config(epochs=2))
    with pytest.raises(CheckpointMismatchError, match=match):
        train_fold(fold, tmp_path, config=tiny_config(**{"epochs": 3, **overrides}))


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('{"epoch": 2, "checkp', "not valid JSON"),
        ("", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"checkpoint": "epoch-0001.keras"}', "needs an integer 'epoch'"),
        ('{"epoch": 1}', "needs an integer 'epoch' .* got epoch=1, checkpoint=None"),
    ],
)
def test_unreadable_state_names_its_file(tmp_path: Path, text: str, match: str) -> None:
    store = LocalStore(tmp_path / "lake")
    store.write_text("runs/r/checkpoints/vgg16/fold-1/state.json", text)
    with pytest.raises(CheckpointStateError, match=f"fold-1/state.json: {match}"):
        CheckpointMirror(store, "runs/r/checkpoints/vgg16/fold-1", tmp_path / "local").sync()
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "state.json").write_text(text)
    with pytest.raises(CheckpointStateError, match=f"ckpt/state.json: {match}"):
        read_state(tmp_path / "ckpt")


def test_finished_checkpoint_is_not_trained_again(fold, tmp_path: Path) -> None:
    first = train_fold(fold, tmp_path, config=tiny_config(epochs=1))
    counter = CountSteps()
    again = train_fold(fold, tmp_path, config=tiny_config(epochs=1), callbacks=[counter])
    assert counter.steps == 0 and again.total_steps == first.total_steps == 2
    images = np.random.default_rng(0).uniform(0, 1, (2, 32, 32, 1)).astype(np.float32)
    np.testing.assert_array_equal(again.model(images).numpy(), first.model(images).numpy())


@pytest.mark.parametrize(("field", "bad"), [("backbone", "resnet"), ("train", "empty")])
def test_train_model_rejects(fold, tmp_path: Path, field: str, bad: str) -> None:
    train_df = fold[1]
    backbone = bad if field == "backbone" else BACKBONE
    frame = train_df.iloc[:0] if field == "train" else train_df
    with pytest.raises(ValueError, match="valid:|no rows"):
        train_fold(fold, tmp_path, backbone, train_df=frame)


def test_mlflow_records_and_reloads_identically(
    fold, tmp_path: Path, mlflow_store: str, caplog: pytest.LogCaptureFixture
) -> None:
    root, train_df, val_df = fold
    config = tiny_config(epochs=2, steps_per_epoch=2)
    caplog.set_level(logging.INFO, logger="covidct.training.tracking")
    with mlflow.start_run() as run:
        result = train_fold(fold, tmp_path, config=config, mlflow_run=True)
    assert result.run_id == run.info.run_id and result.model_uri is not None
    client = mlflow.MlflowClient(mlflow_store)
    logged = client.get_run(run.info.run_id)
    params = logged.data.params
    for key, value in {
        "optimizer": "nadam",
        "learning_rate": "0.001",
        "loss": "categorical_crossentropy",
        "batch_size": "4",
        "epochs": "2",
        "steps_per_epoch": "2",
        "image_size": "32",
        "augment_horizontal_flip": "True",
        "augment_vertical_flip": "True",
        "augment_rotation_degrees": "0.0",  # cpu-smoke: Table 5's flips only
        "augment_zoom": "0.0",
        "augment_width_shift": "0.0",
        "augment_height_shift": "0.0",
        "profile": "cpu-smoke",
        "mixed_precision": "False",
        "backbone": BACKBONE,
        "intensity_mode": "hu-window",
    }.items():
        assert params[key] == value, key
    for metric in ("loss", "accuracy"):
        history = client.get_metric_history(run.info.run_id, metric)
        assert [point.step for point in history] == [1, 2]
    # cpu-smoke re-estimates batch norm after training: nothing validated the discarded model
    assert client.get_metric_history(run.info.run_id, "val_accuracy") == []
    assert {item.dataset.name for item in logged.inputs.dataset_inputs} == {
        f"{BACKBONE}-training",
        f"{BACKBONE}-validation",
    }
    # issue 33 item 3: a line per epoch in the task log; the epochs' metrics belong to the
    # logged model (MLflow 3 LoggedModel) and to the training dataset, which is its input
    epochs = [r.getMessage() for r in caplog.records if " epoch " in r.getMessage()]
    assert [line.split(":")[0] for line in epochs] == [
        f"{BACKBONE} epoch 1/2",
        f"{BACKBONE} epoch 2/2",
    ]
    assert "loss " in epochs[-1] and "accuracy " in epochs[-1]
    model = mlflow.get_logged_model(mlflow.models.get_model_info(result.model_uri).model_id)
    assert model.source_run_id == run.info.run_id and str(model.status).endswith("READY")
    linked = {(m.key, m.step) for m in model.metrics or []}
    assert {("loss", 1), ("loss", 2), ("accuracy", 2)} <= linked
    training_input = [m for m in model.metrics or [] if m.key == "loss"][0]
    assert training_input.dataset_name == f"{BACKBONE}-training"
    assert logged.inputs.model_inputs[0].model_id == model.model_id
    restored = mlflow.keras.load_model(result.model_uri)
    paths = list(val_df["path"])
    np.testing.assert_array_equal(
        predict_p_covid(restored, paths, image_root=root, config=config),
        predict_p_covid(result.model, paths, image_root=root, config=config),
    )
    signature = mlflow.models.get_model_info(result.model_uri).signature
    assert signature is not None and signature.inputs is not None
    pinned = Path(mlflow.pyfunc.get_model_dependencies(result.model_uri)).read_text().split()
    assert f"keras=={keras.__version__}" in pinned
    assert any(line.startswith(("tensorflow==", "tensorflow-cpu==")) for line in pinned), pinned


def test_no_active_run_logs_nothing(fold, tmp_path: Path, mlflow_store: str) -> None:
    result = train_fold(fold, tmp_path, config=tiny_config(epochs=1), mlflow_run=True)
    assert result.run_id is None and result.model_uri is None
    assert mlflow.search_runs(search_all_experiments=True).empty


# --------------------------------------------------------------------------- checkpoint mirror

PREFIX = "runs/r1/checkpoints/vgg16/fold-0"


def fake_checkpoint(directory: Path, epoch: int) -> bytes:
    """Write ``epoch-NNNN.keras`` (stand-in bytes) and ``state.json`` as EpochCheckpoint does."""
    directory.mkdir(parents=True, exist_ok=True)
    name, data = f"epoch-{epoch:04d}.keras", f"model after epoch {epoch}".encode()
    for old in directory.glob("epoch-*.keras"):
        old.unlink()
    (directory / name).write_bytes(data)
    state = {"epoch": epoch, "checkpoint": name, "optimizer_steps": 2 * epoch, "history": {}}
    (directory / "state.json").write_text(json.dumps(state))
    return data


def stored_names(store: ObjectStore) -> list[str]:
    return store.list_relative(PREFIX)


def test_push_keeps_only_the_last_epoch_and_records_its_sha256(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "lake")
    fake_checkpoint(tmp_path / "ckpt", 1)
    push_checkpoint(store, PREFIX, tmp_path / "ckpt")
    assert stored_names(store) == ["epoch-0001.keras", "state.json"]
    data = fake_checkpoint(tmp_path / "ckpt", 2)
    pushed = push_checkpoint(store, PREFIX, tmp_path / "ckpt")
    assert stored_names(store) == ["epoch-0002.keras", "state.json"]
    assert store.read_bytes(f"{PREFIX}/epoch-0002.keras") == data
    remote = read_remote_state(store, PREFIX)
    assert remote == pushed and remote["epoch"] == 2
    assert remote["checkpoint_sha256"] == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    ("local_epoch", "stored_epoch", "expected_epoch", "pulled"),
    [(None, 3, 3, True), (1, 3, 3, True), (3, 3, 3, False), (4, 3, 4, False), (2, None, 2, False)],
)
def test_pull_takes_the_stored_checkpoint_only_when_newer(
    tmp_path: Path,
    local_epoch: int | None,
    stored_epoch: int | None,
    expected_epoch: int,
    pulled: bool,
) -> None:
    store = LocalStore(tmp_path / "lake")
    if stored_epoch is not None:
        stored = fake_checkpoint(tmp_path / "elsewhere", stored_epoch)
        push_checkpoint(store, PREFIX, tmp_path / "elsewhere")
    local = fake_checkpoint(tmp_path / "ckpt", local_epoch) if local_epoch else None
    assert pull_checkpoint(store, PREFIX, tmp_path / "ckpt") == expected_epoch
    state = read_state(tmp_path / "ckpt")
    assert state is not None and state["epoch"] == expected_epoch
    files = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert files == [f"epoch-{expected_epoch:04d}.keras", "state.json"]
    content = (tmp_path / "ckpt" / f"epoch-{expected_epoch:04d}.keras").read_bytes()
    assert content == (stored if pulled else local)


def test_pull_refuses_a_corrupted_checkpoint(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "lake")
    fake_checkpoint(tmp_path / "elsewhere", 2)
    push_checkpoint(store, PREFIX, tmp_path / "elsewhere")
    store.write_bytes(f"{PREFIX}/epoch-0002.keras", b"truncated")
    with pytest.raises(IntegrityError, match="epoch-0002.keras: sha256"):
        pull_checkpoint(store, PREFIX, tmp_path / "ckpt")
    assert read_state(tmp_path / "ckpt") is None


def test_sync_pushes_a_local_checkpoint_the_store_lacks(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "lake")
    fake_checkpoint(tmp_path / "ckpt", 1)
    push_checkpoint(store, PREFIX, tmp_path / "ckpt")
    fake_checkpoint(tmp_path / "ckpt", 2)  # its upload failed: the lake is one epoch behind
    assert CheckpointMirror(store, PREFIX, tmp_path / "ckpt").sync() == 2
    assert (read_remote_state(store, PREFIX) or {})["epoch"] == 2


def test_failed_upload_is_logged_and_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the lake folder should be")
    fake_checkpoint(tmp_path / "ckpt", 1)
    mirror = CheckpointMirror(LocalStore(blocker), PREFIX, tmp_path / "ckpt")
    with pytest.raises(CheckpointSyncError, match="epoch 1: uploading .* failed"):
        mirror.on_epoch_end(0)
    assert "checkpoint upload to" in caplog.text


def test_training_mirrors_every_epoch_to_the_store(fold, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "lake")
    mirror = CheckpointMirror(store, PREFIX, tmp_path / "ckpt")
    train_fold(fold, tmp_path, config=tiny_config(epochs=2, steps_per_epoch=1), callbacks=[mirror])
    assert stored_names(store) == ["epoch-0002.keras", "state.json"]
    remote = read_remote_state(store, PREFIX)
    assert remote is not None and (remote["epoch"], remote["optimizer_steps"]) == (2, 2)
    local = (tmp_path / "ckpt" / "epoch-0002.keras").read_bytes()
    assert store.read_bytes(f"{PREFIX}/epoch-0002.keras") == local


# --------------------------------------------------------------------------- prediction


def test_predict_p_covid_matches_an_independent_forward_pass(fold) -> None:
    root, _train, val_df = fold
    config = tiny_config(image_size=40, transform=IntensityTransform(level_hu=-500, width_hu=1000))
    model = keras.Sequential(
        [
            keras.Input((40, 40, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    scores = predict_p_covid(model, list(val_df["path"]), image_root=root, config=config)
    stored = np.stack([tifffile.imread(root / path) for path in val_df["path"]]).astype(np.float64)
    low = -500 - 500 + 1024  # HU window -1000..0 in stored values
    inputs = np.clip((stored - low) / 1000, 0, 1)[..., None].astype(np.float32)
    expected = model(inputs).numpy()[:, 1]
    assert scores.dtype == np.float64 and scores.shape == (len(val_df),)
    np.testing.assert_allclose(scores, expected, rtol=1e-5)


class _TraceCounter(keras.layers.Layer):
    """Identity layer counting how often Python runs its ``call``: once per trace when compiled."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def call(self, inputs):
        self.calls += 1
        return inputs


def test_predict_traces_once_whatever_the_number_of_slices(fold) -> None:
    root, train_df, val_df = fold
    paths = list(train_df["path"]) + list(val_df["path"])  # more than a few batches of 4
    config = tiny_config(image_size=16)
    counter = _TraceCounter()
    model = keras.Sequential(
        [keras.Input((16, 16, 1)), counter, keras.layers.Flatten(), keras.layers.Dense(2)]
    )
    model.add(keras.layers.Softmax())
    whole = predict_p_covid(model, paths, image_root=root, config=config)
    traced = counter.calls
    for count in (5, 3, 7, 1):  # none a multiple of the batch size
        scores = predict_p_covid(model, paths[:count], image_root=root, config=config)
        assert scores.shape == (count,)
        np.testing.assert_allclose(scores, whole[:count], rtol=1e-6)
    assert counter.calls == traced  # a short last batch used to trace the network again


def test_predict_raw_transform_and_empty(fold) -> None:
    root, _train, val_df = fold
    config = tiny_config(image_size=40, transform=IntensityTransform(IntensityMode.RAW))
    model = keras.Sequential(
        [
            keras.Input((40, 40, 1)),
            keras.layers.GlobalMaxPooling2D(),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    assert predict_p_covid(model, [], image_root=root, config=config).shape == (0,)
    scores = predict_p_covid(model, list(val_df["path"]), image_root=root, config=config)
    assert ((scores >= 0) & (scores <= 1)).all()


# --------------------------------------------------------------------------- slow


@pytest.mark.slow
def test_gpu_fast_profile_runs_on_cpu_tiny(fold, tmp_path: Path) -> None:
    """Mixed precision, XLA, on-device augmentation and MirroredStrategy, at toy size."""
    root, train_df, val_df = fold
    config = TrainingConfig.from_profile(
        "gpu-fast", image_size=32, batch_size=4, epochs=2, steps_per_epoch=2
    )
    result = train_fold(fold, tmp_path, config=config)
    assert result.total_steps == 4
    assert result.model.name == BACKBONE
    assert all(layer.name != "device_augmentation" for layer in result.model.layers)
    assert result.model.get_layer("block1_conv1").compute_dtype == "bfloat16"
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    scores = predict_p_covid(result.model, list(val_df["path"]), image_root=root, config=config)
    assert scores.dtype == np.float64 and np.isfinite(scores).all()


LAKE_TRAIN_SCRIPT = """
import sys
from pathlib import Path
import pandas as pd
from covidct.lake.backends import open_store
from covidct.training import CheckpointMirror, TrainingConfig, train_model
root, ckpt, epochs, uri, prefix, endpoint = sys.argv[1:7]
mirror = CheckpointMirror(open_store(uri, endpoint_url=endpoint or None), prefix, Path(ckpt))
mirror.sync()
frame = pd.read_csv(Path(root) / "fold.csv")
config = TrainingConfig.from_profile(
    "cpu-smoke", image_size=32, batch_size=4, epochs=int(epochs), steps_per_epoch=2
)
result = train_model("vgg16", frame.iloc[:8], frame.iloc[8:], image_root=Path(root),
                     config=config, checkpoint_dir=Path(ckpt), mlflow_run=False,
                     callbacks=[mirror])
print("TOTAL_STEPS", result.total_steps, "RESUMED_FROM", result.resumed_from_epoch)
"""


@pytest.mark.s3
def test_sigkilled_training_resumes_on_another_worker_from_the_lake(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A real training process, SIGKILLed after its first epoch reached the S3 lake; the local
    checkpoints are lost with the worker; a retry in a fresh folder pulls the lake's checkpoint
    and ends with the step count of an uninterrupted run (epochs x steps per epoch). The same
    resume from a local folder is proven in-process (``Killed`` above); LocalStore and S3 share
    the store interface (tests/test_storage.py)."""
    from covidct.lake.backends import open_store

    server = request.getfixturevalue("s3_server")
    uri, endpoint = f"s3://{server.bucket}/kill-{tmp_path.name}", server.endpoint_url
    store = open_store(uri, endpoint_url=endpoint, session=server.session())
    env = {**os.environ, "AWS_ACCESS_KEY_ID": server.access_key,
           "AWS_SECRET_ACCESS_KEY": server.secret_key}  # fmt: skip
    root = tmp_path / "images"
    write_fold(root).to_csv(root / "fold.csv", index=False)
    script = tmp_path / "train.py"
    script.write_text(LAKE_TRAIN_SCRIPT)

    def command(worker: str, epochs: int) -> list[str]:
        worker_dir = str(tmp_path / worker)
        return [sys.executable, str(script), str(root), worker_dir, str(epochs), uri, PREFIX]

    with (tmp_path / "worker-1.log").open("wb") as log:
        first = subprocess.Popen(
            [*command("worker-1", 1000), endpoint], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 300
    while (read_remote_state(store, PREFIX) or {}).get("epoch", 0) < 1:
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.5)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    shutil.rmtree(tmp_path / "worker-1")  # the retry runs elsewhere: the local copy is gone
    done = int((read_remote_state(store, PREFIX) or {})["epoch"])
    retry = subprocess.run(
        [*command("worker-2", done + 1), endpoint], env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert retry.returncode == 0, retry.stderr[-3000:]
    assert f"TOTAL_STEPS {(done + 1) * 2} RESUMED_FROM {done}" in retry.stdout
    remote = read_remote_state(store, PREFIX) or {}
    assert (remote["epoch"], remote["optimizer_steps"]) == (done + 1, (done + 1) * 2)
    assert stored_names(store) == [f"epoch-{done + 1:04d}.keras", "state.json"]


# --------------------------------------------------------------------------- compiled training


def _small_model(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6, 6, 1))
    hidden = keras.layers.Conv2D(3, 3, activation="relu")(inputs)
    hidden = keras.layers.BatchNormalization()(hidden)
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(hidden))
    return keras.Model(inputs, outputs)


def test_nadam_matches_keras_nadam_step_for_step() -> None:
    from covidct.training import Nadam

    rng = np.random.default_rng(3)
    images = rng.normal(size=(8, 6, 6, 1)).astype("float32")
    targets = np.eye(2, dtype="float32")[rng.integers(0, 2, 8)]
    trained = []
    for optimizer in (keras.optimizers.Nadam(1e-2), Nadam(1e-2)):
        model = _small_model()
        model.compile(optimizer=optimizer, loss="categorical_crossentropy")
        for _ in range(5):
            model.train_on_batch(images, targets)
        trained.append(model.get_weights())
    for keras_weights, ours in zip(*trained, strict=True):
        np.testing.assert_allclose(ours, keras_weights, rtol=2e-5, atol=1e-6)
    initial = _small_model().get_weights()
    moved = [not np.allclose(w, w0) for w, w0 in zip(trained[1], initial, strict=True)]
    assert any(moved)


class CountCalls(keras.layers.Layer):
    """Identity layer counting how often its ``call`` runs (once per trace in a graph)."""

    calls = 0

    def call(self, inputs):
        CountCalls.calls += 1
        return inputs


def test_compile_model_traces_the_train_step_once() -> None:
    """Variables made inside the first trace make tf.function trace the train step twice."""
    from covidct.training import compile_model

    def traces_of_first_step(compile_with) -> int:
        keras.utils.set_random_seed(0)
        inputs = keras.Input((6, 6, 1))
        hidden = keras.layers.Flatten()(CountCalls()(inputs))
        model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(hidden))
        compile_with(model)
        CountCalls.calls = 0
        images = np.zeros((4, 6, 6, 1), "float32")
        model.train_on_batch(images, np.eye(2, dtype="float32")[[0, 1, 0, 1]])
        model.train_on_batch(images, np.eye(2, dtype="float32")[[1, 1, 0, 1]])
        return CountCalls.calls

    def keras_default(model: keras.Model) -> None:
        model.compile(optimizer="nadam", loss="categorical_crossentropy", metrics=["accuracy"])

    assert traces_of_first_step(keras_default) == 2  # what compile_model exists to avoid
    compiled = tiny_config(run_eagerly=False)
    assert traces_of_first_step(lambda model: compile_model(model, compiled, 1)) == 1


def test_batchnorm_momentum_and_zero_init_residual_on_resnet50() -> None:
    from covidct.models import get_backbone
    from covidct.training import set_batchnorm_momentum, zero_init_residual_branches

    model = get_backbone("resnet50").build((32, 32, 1), 2, None)
    assert set_batchnorm_momentum(model, 0.9) == 53  # every BN of ResNet50
    assert {layer.momentum for layer in model.layers if "bn" in layer.name} == {0.9}
    assert zero_init_residual_branches(model) == 16  # 3 + 4 + 6 + 3 bottleneck blocks
    assert not np.any(model.get_layer("conv4_block6_3_bn").gamma.numpy())
    assert np.all(model.get_layer("conv4_block6_2_bn").gamma.numpy() == 1.0)
    vgg = get_backbone("vgg16").build((32, 32, 1), 2, None)
    assert zero_init_residual_branches(vgg) == 0


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "eager"])
def test_recalibration_leaves_the_equal_weight_average_of_its_batches(compiled: bool) -> None:
    """PreciseBN: whatever the old statistics, afterwards each layer holds the mean of the
    batches' means and (biased) variances, each batch weighted equally; momentum restored."""
    from covidct.training import recalibrate_batchnorm

    inputs = keras.Input((4,))
    batch_norm = keras.layers.BatchNormalization(momentum=0.99)
    model = keras.Model(inputs, batch_norm(inputs))
    batch_norm.moving_mean.assign(np.full(4, 100.0, "float32"))  # stale statistics
    batch_norm.moving_variance.assign(np.full(4, 50.0, "float32"))
    rng = np.random.default_rng(3)
    batches = [rng.normal(loc, 1 + loc, (8, 4)).astype("float32") for loc in (0.0, 2.0, 5.0)]
    assert recalibrate_batchnorm(model, iter(batches + [batches[0] * 9]), 3, compiled=compiled) == 1
    np.testing.assert_allclose(
        batch_norm.moving_mean.numpy(), np.mean([b.mean(axis=0) for b in batches], axis=0),
        rtol=1e-5,
    )  # fmt: skip
    np.testing.assert_allclose(
        batch_norm.moving_variance.numpy(), np.mean([b.var(axis=0) for b in batches], axis=0),
        rtol=1e-4,
    )  # fmt: skip
    assert batch_norm.momentum == 0.99


def test_recalibration_never_outruns_training() -> None:
    from covidct.training import recalibration_batches

    assert recalibration_batches(tiny_config(epochs=1, steps_per_epoch=2), 2) == 2
    smoke = TrainingConfig.from_profile("cpu-smoke", epochs=1, steps_per_epoch=40)
    assert recalibration_batches(smoke, 40) == smoke.batchnorm_recalibration_batches == 10
    assert recalibration_batches(smoke, 4) == 4


def test_balanced_batches_draw_each_class_half_the_time(tmp_path: Path) -> None:
    from covidct.data import make_dataset

    frame = write_fold(tmp_path, count=24, size=8)
    labels = label_indices(frame).tolist()
    keep = [i for i, label in enumerate(labels) if label == 0 or i < 6]  # 3 COVID, 12 normal
    paths = [tmp_path / frame["path"][i] for i in keep]
    picked = [labels[i] for i in keep]
    dataset = make_dataset(
        paths, picked, image_size=8, batch_size=20, shuffle=True, repeat=True,
        balance_classes=True, seed=1,
    )  # fmt: skip
    targets = np.concatenate([batch[1].numpy() for batch in dataset.take(30)])
    covid_share = targets[:, 1].mean()
    assert abs(covid_share - 0.5) < 0.06, covid_share  # unbalanced: 3 / 15 = 0.2
    plain = make_dataset(paths, picked, image_size=8, batch_size=20, shuffle=True, repeat=True)
    plain_share = np.concatenate([b[1].numpy() for b in plain.take(30)])[:, 1].mean()
    assert abs(plain_share - 0.2) < 0.06


def test_serving_copy_has_no_optimizer_and_loads_without_covidct(tmp_path: Path) -> None:
    """The registered model loads in a process that never imported covidct (a server)."""
    from covidct.training import compile_model, serving_copy

    model = _small_model()
    compile_model(model, tiny_config(), replicas=1)
    images = np.random.default_rng(0).normal(size=(3, 6, 6, 1)).astype("float32")
    model.train_on_batch(images, np.eye(2, dtype="float32")[[0, 1, 1]])
    compiled_file, served_file = tmp_path / "compiled.keras", tmp_path / "served.keras"
    model.save(compiled_file)
    copy = serving_copy(model)
    assert getattr(copy, "optimizer", None) is None and not copy.compiled
    copy.save(served_file)
    np.save(tmp_path / "images.npy", images)
    script = (
        "import sys, numpy as np, keras\n"
        "model = keras.saving.load_model(sys.argv[1])\n"
        "np.save(sys.argv[2], model.predict(np.load(sys.argv[3]), verbose=0))\n"
    )
    out, inputs = tmp_path / "out.npy", tmp_path / "images.npy"
    command = [sys.executable, "-c", script, str(served_file), str(out), str(inputs)]
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    np.testing.assert_allclose(np.load(out), model.predict(images, verbose=0), rtol=1e-5)
    assert served_file.stat().st_size < compiled_file.stat().st_size
