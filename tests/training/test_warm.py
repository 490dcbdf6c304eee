"""``train_model(reuse_compiled=True)``: a backbone's next fold starts from the kept compiled
model, reset, and ends with exactly the weights a fresh build gives (covidct/training/warm.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from covidct.models.backbones import BACKBONES, BackboneSpec
from covidct.training import Profile, TrainingConfig, train_model, warm
from tests.training.test_training import write_fold

TINY = "tiny-bn"


def tiny_trunk(include_top: bool, weights: None, input_tensor: keras.KerasTensor) -> keras.Model:
    """Two conv / batch-norm blocks and a dropout: every kind of state a backbone carries
    (weights, moving statistics, a seed generator), at a size that builds in a second."""
    hidden = input_tensor
    for filters in (8, 16):
        hidden = keras.layers.Conv2D(filters, 3, strides=2, padding="same")(hidden)
        hidden = keras.layers.BatchNormalization()(hidden)
        hidden = keras.layers.Activation("relu")(hidden)
    hidden = keras.layers.SpatialDropout2D(0.3)(hidden)
    return keras.Model(input_tensor, hidden)


@pytest.fixture(autouse=True)
def tiny_backbone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(BACKBONES, TINY, BackboneSpec(TINY, tiny_trunk, "none.h5", 16))
    warm.release_warm_model()
    yield
    warm.release_warm_model()


@pytest.fixture
def folds(tmp_path: Path) -> tuple[Path, list[pd.DataFrame]]:
    root = tmp_path / "images"
    frame = write_fold(root, count=16)
    return root, [frame.iloc[:8].reset_index(drop=True), frame.iloc[8:].reset_index(drop=True)]


def config(recalibrate: int) -> TrainingConfig:
    return TrainingConfig.from_profile(
        Profile.CPU_SMOKE, image_size=32, batch_size=4, epochs=1, steps_per_epoch=3,
        run_eagerly=False, batchnorm_recalibration_batches=recalibrate,
    )  # fmt: skip


def train(
    backbone: str, root: Path, frame: pd.DataFrame, where: Path, recalibrate: int, reuse: bool
):
    return train_model(
        backbone, frame, frame.iloc[:0], image_root=root, config=config(recalibrate),
        checkpoint_dir=where, mlflow_run=False, reuse_compiled=reuse,
    )  # fmt: skip


def weights(model: keras.Model) -> list[np.ndarray]:
    return [np.array(v.numpy(), copy=True) for v in model.variables]


@pytest.mark.parametrize("recalibrate", [0, 2], ids=["moving-statistics", "re-estimated"])
def test_the_next_fold_on_a_kept_model_ends_as_on_a_fresh_one(
    folds, tmp_path: Path, recalibrate: int
) -> None:
    """Weights, batch-norm statistics, dropout seeds and optimizer moments all reset, or fold
    2's weights differ from a fresh build's (a leftover moment, statistic or seed changes them)."""
    root, (first, second) = folds
    fresh = weights(train(TINY, root, second, tmp_path / "fresh", recalibrate, reuse=False).model)
    assert warm._kept is None  # nothing is kept without reuse_compiled
    one = train(TINY, root, first, tmp_path / "one", recalibrate, reuse=True)
    kept = warm._kept
    assert kept is not None
    two = train(TINY, root, second, tmp_path / "two", recalibrate, reuse=True)
    assert two.model is one.model  # the same network, not built again
    assert two.total_steps == 3  # the optimizer's step count restarted
    for ours, theirs in zip(weights(two.model), fresh, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    if recalibrate:  # the re-estimation's traced forward pass is kept with the model
        assert warm._kept is kept and kept.precise_bn is not None


def test_other_settings_or_backbone_build_anew_and_drop_the_kept_model(
    folds, tmp_path: Path
) -> None:
    root, (first, second) = folds
    one = train(TINY, root, first, tmp_path / "one", 0, reuse=True)
    other = train(TINY, root, second, tmp_path / "two", 2, reuse=True)  # other settings
    assert other.model is not one.model
    assert warm._kept is not None and warm._kept.model is other.model
    assert warm.take_warm_model("another key") is None and warm._kept is None
