"""``load_logged_model``: a model kept from an earlier step receives the next file's weights
and predicts exactly as a fresh load of that file (covidct/training/loaded.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import keras
import mlflow
import numpy as np
import pytest

from covidct.promotion.deployable import ensemble_model
from covidct.training import loaded

SLICES = np.random.default_rng(0).normal(size=(6, 16, 16, 1)).astype("float32")


@pytest.fixture(autouse=True)
def nothing_kept() -> Iterator[None]:
    loaded.release_loaded_models()
    yield
    loaded.release_loaded_models()


def fold_model(seed: int) -> keras.Model:
    """A small conv / batch-norm classifier; ``seed`` gives other weights and statistics. Layers
    are named, as a backbone's are: the same architecture saves the same configuration."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((16, 16, 1), name="slices")
    hidden = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    hidden = keras.layers.BatchNormalization(name="bn")(hidden)
    hidden = keras.layers.GlobalAveragePooling2D(name="pool")(hidden)
    outputs = keras.layers.Dense(2, activation="softmax", name="head")(hidden)
    model = keras.Model(inputs, outputs, name="fold")
    bn = model.layers[2]
    bn.moving_mean.assign(np.full(4, 0.1 * seed, "float32"))  # not only trainable weights
    bn.moving_variance.assign(np.full(4, 1.0 + seed, "float32"))
    return model


def logged(model: keras.Model, where: Path) -> Path:
    # the layout mlflow.keras.log_model writes (requirements given: no inference subprocess)
    mlflow.keras.save_model(model, str(where), pip_requirements=["keras"])
    return where


def fresh(where: Path) -> np.ndarray:
    return np.asarray(mlflow.keras.load_model(str(where)).predict(SLICES, verbose=0))


def test_the_next_step_reuses_the_network_and_predicts_as_a_fresh_load(tmp_path: Path) -> None:
    first = logged(fold_model(1), tmp_path / "fold-1")
    second = logged(fold_model(2), tmp_path / "fold-2")
    model = loaded.load_logged_model(first)
    np.testing.assert_array_equal(model.predict(SLICES, verbose=0), fresh(first))
    loaded.return_loaded_models()  # the step ends

    again = loaded.load_logged_model(second)

    assert again is model
    expected = fresh(second)
    assert not np.allclose(expected, fresh(first))  # the files differ: the weights moved
    np.testing.assert_array_equal(again.predict(SLICES, verbose=0), expected)


def test_one_step_gets_one_model_per_load(tmp_path: Path) -> None:
    first = logged(fold_model(1), tmp_path / "fold-1")
    second = logged(fold_model(2), tmp_path / "fold-2")
    a, b = loaded.load_logged_model(first), loaded.load_logged_model(second)
    assert a is not b
    np.testing.assert_array_equal(a.predict(SLICES, verbose=0), fresh(first))
    np.testing.assert_array_equal(b.predict(SLICES, verbose=0), fresh(second))


def test_a_changed_network_is_not_handed_out(tmp_path: Path) -> None:
    first = logged(fold_model(1), tmp_path / "fold-1")
    model = loaded.load_logged_model(first)
    model.name = "renamed"  # what ensemble_model does to its members
    loaded.return_loaded_models()
    assert loaded.load_logged_model(first) is not model


def test_an_offered_ensemble_is_loaded_back_and_its_members_stay_in_it(tmp_path: Path) -> None:
    folds = [logged(fold_model(seed), tmp_path / f"fold-{seed}") for seed in (1, 2)]
    members = [loaded.load_logged_model(path) for path in folds]
    ensemble = ensemble_model(members, name="tiny_ensemble")
    registered = logged(ensemble, tmp_path / "registered")
    loaded.offer_loaded_model(ensemble, owns=members)

    scored = loaded.load_logged_model(registered)

    assert scored is ensemble
    np.testing.assert_array_equal(scored.predict(SLICES, verbose=0), fresh(registered))
    loaded.return_loaded_models()
    assert all(loaded.load_logged_model(path) not in members for path in folds)


def test_without_a_kept_model_every_load_builds(tmp_path: Path) -> None:
    """The control: a released step leaves nothing to reuse."""
    first = logged(fold_model(1), tmp_path / "fold-1")
    model = loaded.load_logged_model(first)
    loaded.release_loaded_models()
    assert not loaded.holds_loaded_models()
    assert loaded.load_logged_model(first) is not model
