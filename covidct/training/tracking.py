"""MLflow records of a training run: per-epoch metrics, the run's parameters and input datasets, and
the logged Keras model with its serving requirements (the custom classes registered so any
process can load it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from typing import Any, Protocol

import keras
import numpy as np
import pandas as pd

from covidct.data.augment import DeviceAugmentation
from covidct.keras_backend import backend_name, tensorflow_imported
from covidct.models.backbones import parameter_counts
from covidct.training.datasets import (
    LABEL_COLUMN,
)
from covidct.training.optimization import (
    Nadam,
)

logger = logging.getLogger(__name__)


class RunSession(Protocol):
    """What logging a run's setup reads of a training session (the trainer's, which stands
    above this module): the network, its config, the backbone, the epoch it resumed from and
    the history of earlier attempts."""

    @property
    def model(self) -> keras.Model: ...

    @property
    def config(self) -> Any: ...

    @property
    def backbone(self) -> str: ...

    @property
    def resumed_from(self) -> int: ...

    @property
    def history(self) -> Mapping[str, Sequence[float]]: ...


# --------------------------------------------------------------------------- MLflow


class EpochLogLine(keras.callbacks.Callback):
    """One log line per epoch (the task log): ``resnet50 epoch 2/5: loss 0.6931, accuracy
    0.5125, ... (12.3 s)``, every Keras metric of the epoch with 4 decimals; seconds of wall
    time since the epoch began."""

    def __init__(self, label: str, epochs: int) -> None:
        super().__init__()
        self.label, self.epochs, self._began = label, epochs, 0.0

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._began = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        figures = ", ".join(f"{key} {float(value):.4f}" for key, value in (logs or {}).items())
        took = time.perf_counter() - self._began
        logger.info(
            "%s epoch %d/%d: %s (%.1f s)", self.label, epoch + 1, self.epochs, figures, took
        )


class MlflowEpochMetrics(keras.callbacks.Callback):
    """Log each epoch's Keras metrics to the active MLflow run, step = epoch number (1-based).

    ``model_id``: the MLflow 3 ``LoggedModel`` the metrics belong to (:func:`start_logged_model`;
    the model logged at the end of training is that one), or None. The metrics are linked to the
    run's input datasets: ``val_*`` to the one logged with context ``validation``, the others to
    the ``training`` one (read from the run's inputs when training starts; none linked when the
    run has no such input).
    """

    def __init__(self, model_id: str | None = None) -> None:
        super().__init__()
        self.model_id = model_id
        self._datasets: dict[str, Any] = {}

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        self._datasets = run_datasets()

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        import mlflow

        metrics = {key: float(value) for key, value in (logs or {}).items()}
        for context, chosen in (
            ("training", {k: v for k, v in metrics.items() if not k.startswith("val_")}),
            ("validation", {k: v for k, v in metrics.items() if k.startswith("val_")}),
        ):
            if chosen:
                mlflow.log_metrics(
                    chosen, step=epoch + 1, model_id=self.model_id,
                    dataset=self._datasets.get(context),
                )  # fmt: skip


def run_datasets() -> dict[str, Any]:
    """``{context: mlflow.entities.Dataset}`` of the active MLflow run's inputs (the last one
    logged for each ``mlflow.data.context`` tag); empty without an active run."""
    import mlflow

    active = mlflow.active_run()
    if active is None:
        return {}
    inputs = mlflow.get_run(active.info.run_id).inputs
    found: dict[str, Any] = {}
    for item in getattr(inputs, "dataset_inputs", None) or []:
        tags = {tag.key: tag.value for tag in item.tags}
        found[tags.get("mlflow.data.context", "")] = item.dataset
    return found


def start_logged_model(name: str) -> str | None:
    """Create the MLflow 3 ``LoggedModel`` of the active run (status pending) and record the
    run's input datasets (the fold manifests) as its inputs, as one
    ``MlflowClient.log_inputs(run, datasets, models=[LoggedModelInput])``; return its id, None
    without an active run. :func:`log_keras_model` with this ``model_id`` finalises it, and
    :class:`MlflowEpochMetrics` logs the epochs against it."""
    import mlflow
    from mlflow.entities import DatasetInput, InputTag, LoggedModelInput
    from mlflow.tracking import MlflowClient

    active = mlflow.active_run()
    if active is None:
        return None
    model = mlflow.initialize_logged_model(name=name, source_run_id=active.info.run_id)
    inputs = [
        DatasetInput(dataset, [InputTag("mlflow.data.context", context)] if context else [])
        for context, dataset in run_datasets().items()
    ]
    MlflowClient().log_inputs(
        active.info.run_id, datasets=inputs or None, models=[LoggedModelInput(model.model_id)]
    )
    return str(model.model_id)


def mlflow_active(requested: bool) -> bool:
    """Whether to log to MLflow: ``requested`` and a run is active (a warning when requested
    without one)."""
    if not requested:
        return False
    import mlflow

    if mlflow.active_run() is None:
        logger.warning("mlflow_run=True but no MLflow run is active: nothing is logged")
        return False
    return True


def log_run_setup(
    session: RunSession, frames: Mapping[str, pd.DataFrame], derived: Mapping[str, Any]
) -> None:
    """Params (every setting), tag, fold inputs, and the history of earlier attempts."""
    import mlflow
    from mlflow.data.pandas_dataset import from_pandas

    total, non_trainable = parameter_counts(session.model)
    size = session.config.image_size
    params = {
        **session.config.to_params(),
        "backbone": session.backbone,
        "keras_backend": backend_name(),
        "input_shape": f"{size}x{size}x1",
        "total_params": str(total),
        "non_trainable_params": str(non_trainable),
        **{key: str(value) for key, value in derived.items()},
    }
    mlflow.log_params(params)
    mlflow.set_tag("resumed_from_epoch", str(session.resumed_from))
    for context, frame in frames.items():
        name = f"{session.backbone}-{context}"
        dataset = from_pandas(frame, name=name, targets=LABEL_COLUMN)
        mlflow.log_input(dataset, context=context)
    for key, values in session.history.items():  # epochs of an earlier, killed attempt
        for epoch, value in enumerate(values, start=1):
            mlflow.log_metric(key, value, step=epoch)


def log_backend(backbone: str, logging_on: bool) -> bool:
    """Log (and, with ``logging_on``, tag the active MLflow run with) the Keras backend and
    whether any TensorFlow module is loaded in this process after training ``backbone``.

    Tags ``keras_backend`` and ``tensorflow_imported`` (``"true"``/``"false"``); the log line
    ``Keras backend jax; TensorFlow imported: False`` is what ``infra/demo.sh`` checks under a
    backend other than TensorFlow. Returns whether TensorFlow is loaded.
    """
    loaded = tensorflow_imported()
    logger.info("%s: Keras backend %s; TensorFlow imported: %s", backbone, backend_name(), loaded)
    if logging_on:
        import mlflow

        mlflow.set_tags(
            {"keras_backend": backend_name(), "tensorflow_imported": str(loaded).lower()}
        )
    return loaded


def log_keras_model(
    model: keras.Model, name: str, example: np.ndarray, model_id: str | None = None
) -> str:
    """Log ``model``'s :func:`serving_copy` (Keras 3 format, no optimizer state) with a signature
    inferred from ``example``; return its URI. ``model_id``: the ``LoggedModel`` made by
    :func:`start_logged_model` to finalise (its epochs' metrics and datasets stay linked), or
    None for a new one.

    No ``input_example`` (MLflow 3.17 + Keras 3 crash on it).
    """
    import mlflow
    from mlflow.models import infer_signature

    # the output's shape and dtype are known: predicting here would trace a forward pass
    outputs = np.zeros((len(example), *model.output_shape[1:]), dtype=np.float32)
    signature = infer_signature(example, outputs)
    # an uncompiled model (the k-fold ensemble) has no optimizer state to leave out
    logged = serving_copy(model) if getattr(model, "optimizer", None) is not None else model
    info = mlflow.keras.log_model(
        logged, name=name, signature=signature,
        pip_requirements=serving_requirements(), model_id=model_id,
    )  # fmt: skip
    return str(info.model_uri)


def serving_requirements() -> list[str]:
    """The registered model's pip requirements: the Keras, TensorFlow and JAX of the training
    environment, pinned (the ``.keras`` file loads on either backend).

    Given to MLflow so it does not infer them: its inference loads the saved model again in a
    new Python process to see what it imports, for every model logged (TensorFlow and the whole
    network: 34 CPU-seconds for the topology test's two 32-px VGG16 models, sampled with ps).
    """
    from importlib import metadata

    pinned = []
    for distribution in ("keras", "tensorflow", "tensorflow-cpu", "jax", "jaxlib"):
        with suppress(metadata.PackageNotFoundError):
            pinned.append(f"{distribution}=={metadata.version(distribution)}")
    return pinned


def register_custom_objects() -> None:
    """Make this module's Keras classes loadable (importing it registers them; call it before
    ``mlflow.keras.load_model`` or ``keras.saving.load_model`` of a covidct model, so a model
    saved with :class:`Nadam` or the device augmentation layer loads in any process)."""
    for item in (Nadam, DeviceAugmentation):
        keras.saving.get_registered_name(item)


def serving_copy(model: keras.Model) -> keras.Model:
    """An uncompiled copy of ``model`` with the same weights: what is logged and registered.

    A compiled model is saved with its optimizer state (Nadam: two more tensors per weight, so
    the file is 3x the weights: 669 MB instead of 233 MB for ResNet152); nothing that loads
    the registered model trains it further, so that state is written only in the resumable
    per-epoch checkpoints. Predictions are identical (tested).
    """
    copy = model.__class__.from_config(model.get_config())  # uncompiled (clone_model compiles)
    copy.set_weights(model.get_weights())
    return copy
