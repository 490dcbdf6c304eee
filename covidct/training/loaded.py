"""Logged models loaded in one process, kept between steps to receive the next file's weights.

``airflow dags test`` (``make demo``) runs every task in one process, and its steps load the same
architecture again and again: each fold's evaluation, the k-fold ensemble's members, then the
registered ensemble that was built a moment earlier. Rebuilding a network from its saved
configuration is single-threaded Python: a ResNet152 fold model took 9.4-13.1 s to load on
2 cores, and reading the same file's weights into a kept model of that architecture 3.7 s.
:func:`load_logged_model` hands out a model kept from an earlier load (or offered with
:func:`offer_loaded_model`) when its configuration equals the one saved in the file, and reads
the file's weights into it with Keras's own ``load_weights``, which raises on any mismatch; the
model predicts exactly as a fresh load of the file (``tests/training/test_loaded.py``).
Otherwise it loads the file as MLflow does.

Lending is per step: a model handed out is the caller's until :func:`return_loaded_models`
(``releases_models(keep_loaded=True)`` at the end of the step), so two loads in one step
(an ensemble's members) get two models. :func:`release_loaded_models` drops everything. A
worker runs one task per process, so there nothing is kept for a next step.
"""

from __future__ import annotations

import json
import logging
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

logger = logging.getLogger(__name__)

# the weights inside a Keras 3 .keras archive
_WEIGHTS_MEMBER = "model.weights.h5"

# models kept between steps at most (ResNet152: about 230 MB each)
_MAX_KEPT = 3


@dataclass
class _Kept:
    config: dict[str, Any]
    model: keras.Model


_idle: list[_Kept] = []
_lent: list[_Kept] = []


def saved_config(keras_file: Path) -> dict[str, Any]:
    """The architecture in a Keras 3 ``.keras`` file: its model's ``config`` (``config.json``,
    nothing built) without the ``shared_object_id`` markers, which hold memory addresses of the
    saving process (a dtype policy shared by layers). Raises FileNotFoundError for a missing
    file, ``zipfile.BadZipFile`` for one that is not an archive, KeyError when it holds no
    ``config.json``."""
    with zipfile.ZipFile(keras_file) as archive:
        return _without_object_ids(json.loads(archive.read("config.json"))["config"])


def _config_of(model: keras.Model) -> dict[str, Any]:
    # through JSON, as the saved file has it (tuples become lists)
    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(model)["config"]))
    return _without_object_ids(serialized)


def _without_object_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_object_ids(v) for k, v in value.items() if k != "shared_object_id"}
    if isinstance(value, list):
        return [_without_object_ids(item) for item in value]
    return value


def load_logged_model(model_uri: str | Path) -> keras.Model:
    """Load a logged Keras model (an MLflow model URI or local MLflow model folder).

    A kept model with the same saved configuration receives the file's weights; otherwise
    ``mlflow.keras.load_model``. The model is lent to the caller until the step ends (see the
    module docstring). Raises what ``mlflow.keras.load_model`` raises for a missing or unreadable
    model, and ValueError from ``load_weights`` if the weights do not fit.
    """
    import mlflow

    from covidct.training.tracking import register_custom_objects

    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=str(model_uri)))
    keras_file = local / "data" / "model.keras"
    config = saved_config(keras_file) if keras_file.is_file() else None
    match = next((k for k in _idle if config is not None and k.config == config), None)
    if match is not None and _config_of(match.model) == config:
        _idle.remove(match)
        _load_weights(match.model, keras_file)
        logger.info("loaded the weights of %s into a kept model of the same architecture", local)
    else:
        register_custom_objects()
        model = mlflow.keras.load_model(str(local))
        match = _Kept(config=config or _config_of(model), model=model)
    _lent.append(match)
    return match.model


def _load_weights(model: keras.Model, keras_file: Path) -> None:
    # Keras reads the weights inside a .keras archive through the zip member, seeking in it:
    # 51 s for ResNet152 on 2 cores, against 3.7 s for the same file extracted first
    with tempfile.TemporaryDirectory(prefix="covidct-weights-") as folder:
        with zipfile.ZipFile(keras_file) as archive:
            weights = Path(archive.extract(_WEIGHTS_MEMBER, folder))
        model.load_weights(weights)


def offer_loaded_model(model: keras.Model, *, owns: Sequence[keras.Model] = ()) -> None:
    """Keep ``model`` (built in this step and done with, e.g. an ensemble just logged) for the
    next load of a file saved from it, in this step or a later one. ``owns``: lent models that
    are now layers of ``model``; they are no longer handed out on their own."""
    global _lent
    _lent = [k for k in _lent if not any(k.model is part for part in owns)]
    _idle.insert(0, _Kept(config=_config_of(model), model=model))


def return_loaded_models() -> None:
    """End of a step: the models lent in it may be handed out again (the newest kept)."""
    global _idle, _lent
    _idle, _lent = ([*reversed(_lent), *_idle])[:_MAX_KEPT], []


def release_loaded_models() -> None:
    """Drop every kept and lent model."""
    _idle.clear()
    _lent.clear()


def holds_loaded_models() -> bool:
    """Whether any model is kept or lent."""
    return bool(_idle or _lent)
