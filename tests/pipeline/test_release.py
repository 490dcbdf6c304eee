"""``releases_models``: a step's networks are gone when it returns or raises (``make demo`` runs
every step in one process; see covidct/pipeline/context.py)."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import numpy as np
import pytest

from covidct.pipeline.context import releases_models


def _predicting_model(refs: list[weakref.ref]) -> None:
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.predict(np.zeros((2, 4), dtype="float32"), verbose=0)  # traces: model <-> function
    refs.append(weakref.ref(model))


def test_a_step_leaves_no_network_behind() -> None:
    refs: list[weakref.ref] = []

    @releases_models
    def step() -> str:
        _predicting_model(refs)
        return "done"

    gc.disable()  # only the release may collect: a traced model is kept alive by a cycle
    try:
        assert step() == "done"
        assert refs[0]() is None
    finally:
        gc.enable()


def test_a_step_that_raises_releases_too() -> None:
    refs: list[weakref.ref] = []

    @releases_models
    def step() -> None:
        _predicting_model(refs)
        raise RuntimeError("training failed")

    gc.disable()
    try:
        with pytest.raises(RuntimeError, match="training failed"):
            step()
        assert refs[0]() is None
    finally:
        gc.enable()


def test_without_the_release_the_traced_network_outlives_its_step() -> None:
    """The control: what the release is for (a cycle only a full collection frees)."""
    refs: list[weakref.ref] = []
    gc.disable()
    try:
        _predicting_model(refs)
        assert refs[0]() is not None
    finally:
        gc.enable()
        gc.collect()


@pytest.mark.parametrize("keep", [False, True], ids=["evaluate-like", "train"])
def test_only_the_train_step_keeps_the_compiled_model_for_the_next_fold(keep: bool) -> None:
    import keras

    from covidct.training import warm

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    model.optimizer.build(model.trainable_variables)

    @releases_models(keep_compiled=keep)
    def step() -> None:
        warm.keep_warm_model(warm.WarmModel.of("key", model))

    try:
        step()
        assert (warm._kept is not None) is keep
    finally:
        warm.release_warm_model()


@pytest.mark.parametrize("keep", [False, True], ids=["train-like", "evaluate"])
def test_only_loading_steps_keep_their_loaded_models(keep: bool, tmp_path: Path) -> None:
    import keras
    import mlflow

    from covidct.training import loaded

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    mlflow.keras.save_model(model, str(tmp_path / "logged"), pip_requirements=["keras"])

    @releases_models(keep_loaded=keep)
    def step() -> None:
        loaded.load_logged_model(tmp_path / "logged")

    try:
        step()
        assert loaded.holds_loaded_models() is keep
    finally:
        loaded.release_loaded_models()
