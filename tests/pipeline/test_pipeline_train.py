"""pipeline.train on a real lake: ImageNet weights from an S3 cache, checkpoints in the lake."""

from __future__ import annotations

import hashlib
from pathlib import Path

import keras
import mlflow
import numpy as np
import pandas as pd
import pytest
import tifffile
from h5py import File

from covidct import pipeline
from covidct.config import Settings
from covidct.lake.backends import LocalStore, open_store
from covidct.lake.layout import LakeLayout
from covidct.models import BACKBONES, WeightsCache
from covidct.training import TrainingSpec, read_remote_state

RUN_ID = "manual__2026-12-01T00:00:00+00:00"


def write_lake_fold(lake: LocalStore, count: int = 12, size: int = 40) -> dict:
    """Slices under ``curated/batches/b1`` and a fold manifest (train 8, val 2, test 2)."""
    rng = np.random.default_rng(0)
    rows = []
    for index in range(count):
        positive = index % 2 == 1
        name = f"b1/patient{index}/SR_2/IM{index:05d}.tif"
        path = lake.root / pipeline.CURATED_BATCHES / name
        path.parent.mkdir(parents=True, exist_ok=True)
        stored = rng.normal(300 + 500 * positive, 80, (size, size)).clip(0, 4095)
        tifffile.imwrite(path, stored.astype(np.uint16))
        split = "train" if index < 8 else ("val" if index < 10 else "test")
        rows.append((name, "Positive" if positive else "Negative", split, f"p{index}"))
    frame = pd.DataFrame(rows, columns=["path", "label", "split", "patient_key"])
    key = LakeLayout.fold_manifest("v1", 0)
    (lake.root / key).parent.mkdir(parents=True)
    frame.to_parquet(lake.root / key, index=False)
    return {"fold": 0, "key": key, "digest": "d0", "dataset_version": "v1"}


def write_notop_file(path: Path) -> keras.Model:
    """A stand-in VGG16 ImageNet 'notop' file (random weights, Keras Applications layout)."""
    from keras.src.legacy.saving import legacy_h5_format

    reference = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    with File(path, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, reference)
    return reference


@pytest.mark.parametrize(
    ("train_params", "weights", "image_size"),
    [
        (TrainingSpec.of_profile("paper"), None, 512),
        (TrainingSpec.of_profile("cpu-smoke", weights="imagenet").to_dict(), "imagenet", 64),
        (TrainingSpec.of_profile("cpu-smoke", image_size=96).to_dict(), None, 96),
    ],
)
def test_training_config_of_the_spec_carries_weights_and_size(
    train_params: object, weights: str | None, image_size: int
) -> None:
    config = pipeline.training_config(train_params)  # type: ignore[arg-type]
    assert (config.weights, config.image_size) == (weights, image_size)


@pytest.mark.parametrize(
    ("train_params", "message"),
    [
        ({"profile": "cpu-smoke"}, "epochs: missing from the training spec"),  # no silent default
        ({}, "profile: missing from the training spec"),
    ],
)
def test_train_refuses_a_partial_spec_before_any_work(
    train_params: dict, message: str, tmp_path: Path
) -> None:
    settings = Settings.from_env({"COVIDCT_HOME": str(tmp_path)})
    with pytest.raises(ValueError, match=message):
        pipeline.train(settings, "vgg16", {"fold": 0}, train_params, RUN_ID)
    assert not (tmp_path / "mlflow.db").exists()  # refused before MLflow or the lake


def test_weights_cache_of_settings(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "COVIDCT_HOME": str(tmp_path),
            "COVIDCT_WEIGHTS_CACHE": "s3://models/imagenet",
            "COVIDCT_S3_ENDPOINT_URL": "http://127.0.0.1:9",
        }
    )
    assert pipeline.weights_cache(settings) == WeightsCache(
        "s3://models/imagenet", "http://127.0.0.1:9", tmp_path / "work" / "weights"
    )
    assert pipeline.checkpoint_prefix("manual__x:y", "vgg16", 3) == (
        "runs/manual__x_y/checkpoints/vgg16/fold-3"
    )


@pytest.mark.s3
def test_train_task_with_imagenet_weights_from_s3_checkpoints_in_the_lake(
    s3_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_mlflow_uris: None
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    cache_uri = f"s3://{s3_server.bucket}/weights-{tmp_path.name}"
    cache = open_store(cache_uri, endpoint_url=s3_server.endpoint_url)
    file_name = BACKBONES["vgg16"].imagenet_file
    reference = write_notop_file(tmp_path / file_name)
    data = (tmp_path / file_name).read_bytes()
    cache.write_bytes(file_name, data)
    cache.write_text(f"{file_name}.sha256", hashlib.sha256(data).hexdigest())
    (tmp_path / file_name).unlink()
    home = tmp_path / "home"
    settings = Settings.from_env(
        {
            "COVIDCT_HOME": str(home),
            "COVIDCT_WEIGHTS_CACHE": cache_uri,
            "COVIDCT_S3_ENDPOINT_URL": s3_server.endpoint_url,
        }
    )
    lake = LocalStore(home / "lake")
    fold_spec = write_lake_fold(lake)
    train_params = {
        "profile": "cpu-smoke",
        "epochs": 2,
        "steps_per_epoch": 1,
        "image_size": 32,
        "batch_size": 4,
        "weights": "imagenet",
    }
    trained = pipeline.train(settings, "vgg16", fold_spec, train_params, RUN_ID)
    params = mlflow.MlflowClient().get_run(trained["run_id"]).data.params
    model = mlflow.keras.load_model(trained["model_uri"])
    prefix = pipeline.checkpoint_prefix(RUN_ID, "vgg16", 0)
    assert trained["checkpoint_uri"] == lake.uri(prefix + "/")
    assert lake.list_relative(prefix) == ["epoch-0002.keras", "state.json"]
    assert (read_remote_state(lake, prefix) or {})["optimizer_steps"] == 2
    local_dir = home / "work" / "checkpoints" / pipeline.run_key_of(RUN_ID) / "vgg16" / "fold-0"
    assert local_dir.parent.is_dir() and not local_dir.exists()  # removed after success
    assert (params["weights"], params["weights_cache"]) == ("imagenet", cache_uri)
    # two Nadam steps at lr 1e-3 move each weight by about lr per step: the loaded,
    # colour-summed first kernel stays within 3e-3 (a random kernel differs by ~0.1)
    summed = reference.get_layer("block1_conv1").get_weights()[0].sum(axis=2, keepdims=True)
    kernel = model.get_layer("block1_conv1").get_weights()[0]
    np.testing.assert_allclose(kernel, summed, atol=3e-3)
    assert np.abs(summed).mean() > 0.05  # a random kernel would be far off
