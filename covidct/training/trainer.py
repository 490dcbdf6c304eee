"""Training: the seed's Table 5 as profiles, resumable per-epoch checkpoints, MLflow records.

Profiles (:class:`Profile`, :meth:`TrainingConfig.from_profile`):

- ``paper``: Table 5 of the seed exactly: Nadam, learning rate 1e-4, batch 10, categorical
  cross-entropy, 100 epochs x 100 steps, horizontal and vertical flips, rotation 0-360 degrees,
  zoom 5%, width and height shift 5%, 512x512 input; float32, no XLA, one device.
- ``gpu-fast``: the same model, loss, optimizer, augmentation and images per epoch (1,000), with
  mixed precision (``mixed_bfloat16``: no loss scaling needed), XLA (``jit_compile=True``), the
  augmentation inside the compiled step on the device (:class:`covidct.data.DeviceAugmentation`),
  ``tf.distribute.MirroredStrategy`` over all visible GPUs and 32 images per replica. Learning
  rate rule: linear scaling (Goyal et al. 2017, "Accurate, Large Minibatch SGD"): lr = 1e-4 x
  global batch / 10; steps per epoch = ceil(1000 / global batch).
- ``cpu-smoke``: a CPU run of a few dozen steps from random weights that still learns:
  64x64, batch 16, 2 epochs x 3 steps by default (the demo asks for more), compiled like the
  others, Nadam and loss as ``paper``, augmentation flips only (:data:`SHORT_RUN_AUGMENT`).
  Why every such model used to predict one
  class: inference uses the batch-normalisation moving statistics, and after a few dozen steps
  they are still mostly their initial values (momentum 0.99) or, at 0.9, an average over
  weights that have since moved; the errors compound through 50-150 layers and every slice
  gets the same score. So: momentum 0.9 and, after training, the statistics re-estimated with
  the final weights (:func:`recalibrate_batchnorm`, up to 10 batches); residual branches that start
  as the identity (:func:`zero_init_residual_branches`); learning rate 1e-3 (1e-4 is Table 5's
  rate for 10,000 steps); and training batches half COVID on average (``balance_classes``; the
  unbalanced data otherwise teach the prior first). Validation and test sets stay unbalanced.
  Two more causes, measured with ResNet50 at 64 px, 120 steps, on synthetic patients (image ROC
  AUC on 80 held-out patients): Table 5's full augmentation (0-360 degree rotation, zoom, shifts)
  leaves nothing learned in a short run (training accuracy 0.50, test AUC 0.47), flips alone
  0.74; and with few patients the network learns the patients, not the disease (40 training
  patients: training AUC 1.00, test AUC 0.58; 160 patients with the same number of slices:
  test AUC 0.73), so the demo synthesises many patients with few slices each.
  No validation during ``fit``: it would score the model before its batch-norm statistics are
  re-estimated, a model that is not kept (its figures mislead, and it cost 10 s per ResNet152
  fold in the demo); the pipeline's evaluate task scores the validation patients with the final
  model and logs ``val_*`` metrics.

Compiled training (every profile): the train step is one ``tf.function`` graph, traced once per
model. Two things made tracing ResNet152 cost 80-200 s on 2 cores, and both are fixed here:
Keras's TensorFlow trainer creates the optimizer and metric variables lazily inside the first
trace when no distribution strategy is set, and ``tf.function`` then traces the whole step a
second time (:func:`compile_model` builds them first); and Keras's Nadam recomputes its ~20
step-dependent scalars for every one of ResNet152's 622 variables (:class:`Nadam` computes them
once per step). ``benchmarks/cpu_train.py`` measures both. In one process (``airflow dags
test``), the pipeline's train step keeps the compiled model for the backbone's next fold
(``reuse_compiled``, :mod:`covidct.training.warm`): reset, it trains to the weights a fresh
build gives, without a second build or trace.

Under bf16 mixed precision the first convolution sees bf16 inputs (8 significant bits); the
``paper`` profile keeps float32 end to end.

Resuming (:func:`train_model`): after every epoch but the last the compiled training model
(weights and optimizer state) is written to ``checkpoint_dir/epoch-NNNN.keras``, after the last
the weights only (:class:`EpochCheckpoint`), and ``state.json`` records the epoch, history and
steps; a retried call with the same directory continues from there, so a run
killed and retried ends with exactly ``epochs x steps_per_epoch`` optimizer steps.
:class:`CheckpointMirror` keeps that directory's last epoch in an object store (the run's
folder in the lake) and pulls it back before a retry, so the retry may run on another machine.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd

from covidct.data.pipelines import make_dataset
from covidct.keras_backend import set_random_seed, to_numpy
from covidct.models.backbones import BACKBONES, get_backbone
from covidct.schema import CLASS_NAMES, POSITIVE_CLASS
from covidct.training import warm
from covidct.training.checkpoints import (
    EpochCheckpoint,
    check_resumable,
    read_state,
    restore_checkpoint,
    run_identity,
)
from covidct.training.datasets import (
    eval_dataset,
    label_indices,
    slice_paths,
    train_dataset,
)
from covidct.training.optimization import (
    distribution_strategy,
    graph_optimizer_policy,
    inference_model,
    new_training_model,
    precision_policy,
    recalibrate_batchnorm,
)
from covidct.training.profiles import TrainingConfig, TrainResult
from covidct.training.tracking import (
    EpochLogLine,
    MlflowEpochMetrics,
    log_backend,
    log_keras_model,
    log_run_setup,
    mlflow_active,
    start_logged_model,
)

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- training


@dataclass
class _Session:
    """Mutable state of one ``train_model`` call (internal)."""

    backbone: str
    config: TrainingConfig
    checkpoint_dir: Path
    replicas: int
    training_model: keras.Model
    resumed_from: int
    history: dict[str, list[float]]
    warm: warm.WarmModel | None = None

    @property
    def batch(self) -> int:
        return self.config.global_batch_size(self.replicas)

    @property
    def steps(self) -> int:
        return self.config.effective_steps_per_epoch(self.replicas)

    @property
    def identity(self) -> dict[str, Any]:
        return run_identity(self.backbone, self.config, self.steps, self.batch)

    @property
    def model(self) -> keras.Model:
        return inference_model(self.training_model, self.backbone)

    def derived_params(self, train_images: int, validation_images: int) -> dict[str, Any]:
        return {
            "replicas": self.replicas,
            "global_batch_size": self.batch,
            "effective_learning_rate": self.config.effective_learning_rate(self.replicas),
            "effective_steps_per_epoch": self.steps,
            "train_images": train_images,
            "validation_images": validation_images,
        }


def _open_session(
    backbone: str, config: TrainingConfig, checkpoint_dir: Path, reuse: bool
) -> _Session:
    """Build a new training model (or, with ``reuse``, take the kept one of the same backbone
    and settings, reset: :mod:`covidct.training.warm`), or restore the one ``checkpoint_dir``
    holds."""
    strategy = distribution_strategy(config)
    replicas = strategy.num_replicas_in_sync
    identity = run_identity(
        backbone,
        config,
        config.effective_steps_per_epoch(replicas),
        config.global_batch_size(replicas),
    )
    state = read_state(checkpoint_dir)
    key = warm.warm_key(backbone, config.to_params(), replicas)
    kept = warm.take_warm_model(key) if reuse and state is None else None
    with precision_policy(config.mixed_precision), strategy.scope():
        if kept is not None:
            training_model = kept.model
        elif state is None:
            training_model = new_training_model(backbone, config, replicas)
            kept = warm.WarmModel.of(key, training_model) if reuse else None
        else:
            check_resumable(state, identity, config.epochs, checkpoint_dir)
            training_model = restore_checkpoint(checkpoint_dir, state, config, replicas)
    return _Session(
        backbone=backbone,
        config=config,
        checkpoint_dir=checkpoint_dir,
        replicas=replicas,
        training_model=training_model,
        resumed_from=int(state["epoch"]) if state else 0,
        history=dict(state["history"]) if state else {},
        warm=kept,
    )


def train_model(
    backbone: str,
    train_df: pd.DataFrame,
    val_df: pd.DataFrame,
    *,
    image_root: Path,
    config: TrainingConfig,
    checkpoint_dir: Path,
    mlflow_run: bool = True,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    log_datasets: bool = True,
    reuse_compiled: bool = False,
) -> TrainResult:
    """Train ``backbone`` on one fold, resuming from ``checkpoint_dir`` when it holds a state.

    ``train_df``/``val_df``: columns ``path`` (TIFF path relative to ``image_root``) and
    ``label`` (``Positive``/``Negative``). Checkpoints every epoch (see module docstring). When
    ``mlflow_run`` and an MLflow run is active, logs every setting as params, the folds as
    inputs (``log_datasets``; contexts ``training``/``validation``), per-epoch metrics (the
    epochs of an earlier killed attempt too) and the final model with a signature
    (``mlflow_run`` with no active run logs a warning and nothing else). ``callbacks`` run
    after the checkpoint callback. ``reuse_compiled``: keep the compiled model in this process
    after success and start from it, reset, when it is asked for again with the same backbone
    and settings (:mod:`covidct.training.warm`: no second build and trace; same weights as a
    fresh build); the returned ``model`` is then valid only until that next call. Raises
    ValueError for an unknown backbone, an empty
    training frame, an unknown label, or a checkpoint made with other settings.
    """
    started = time.perf_counter()
    get_backbone(backbone)
    if train_df.empty:
        raise ValueError(f"{backbone}: the training frame has no rows")
    checkpoint_dir = Path(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    logging_on = mlflow_active(mlflow_run)
    set_random_seed(config.seed)
    with graph_optimizer_policy(config.graph_optimizer):
        session = _open_session(backbone, config, checkpoint_dir, reuse_compiled)
        if logging_on:
            frames = {"training": train_df, "validation": val_df} if log_datasets else {}
            log_run_setup(session, frames, session.derived_params(len(train_df), len(val_df)))
        model_id = start_logged_model(backbone) if logging_on else None
        if session.resumed_from < config.epochs:
            chosen = _callbacks(session, logging_on, callbacks, model_id)
            _fit(session, (train_df, val_df), image_root, chosen)
        if recalibration_batches(config, session.steps):
            _recalibrate(session, train_df, image_root)
        uri = None
        if logging_on:
            example = _example_batch(val_df, train_df, image_root, config)
            uri = log_keras_model(session.model, backbone, example, model_id=model_id)
        log_backend(backbone, logging_on)
    if session.warm is not None:
        warm.keep_warm_model(session.warm)
    return _result(session, time.perf_counter() - started, uri if logging_on else None)


def _callbacks(
    session: _Session,
    logging_on: bool,
    extra: Sequence[keras.callbacks.Callback],
    model_id: str | None = None,
) -> list[keras.callbacks.Callback]:
    chosen: list[keras.callbacks.Callback] = [
        EpochCheckpoint(
            session.checkpoint_dir, session.identity, session.history, session.config.epochs
        ),
        EpochLogLine(session.backbone, session.config.epochs),  # a line per epoch: the task log
    ]
    if logging_on:
        chosen.append(MlflowEpochMetrics(model_id))
    return chosen + list(extra)


def _fit(
    session: _Session,
    frames: tuple[pd.DataFrame, pd.DataFrame],
    image_root: Path,
    callbacks: list[keras.callbacks.Callback],
) -> None:
    train_df, val_df = frames
    config = session.config
    train = train_dataset(train_df, image_root, config, session.batch, session.resumed_from)
    validation = None
    # a profile that re-estimates batch-norm statistics after training (cpu-smoke) would
    # validate, during fit, a model it does not keep: its figures would not be real
    if not val_df.empty and not recalibration_batches(config, session.steps):
        labels = label_indices(val_df).tolist()
        paths = slice_paths(val_df, image_root)
        validation = eval_dataset(paths, labels, config, session.batch, cache=True)
    session.training_model.fit(
        train,
        epochs=config.epochs,
        initial_epoch=session.resumed_from,
        steps_per_epoch=session.steps,
        validation_data=validation,
        validation_steps=config.validation_steps,
        callbacks=callbacks,
        shuffle=False,  # the dataset is shuffled already
        verbose=0,
    )


def recalibration_batches(config: TrainingConfig, steps_per_epoch: int) -> int:
    """Batches :func:`recalibrate_batchnorm` runs after training: the profile's number, but
    never more forward passes than the run made training steps (a 2-step test run pays 2)."""
    return min(config.batchnorm_recalibration_batches, config.epochs * steps_per_epoch)


def _recalibrate(session: _Session, train_df: pd.DataFrame, image_root: Path) -> None:
    """:func:`recalibrate_batchnorm` over shuffled, un-augmented training slices."""
    config = session.config
    images = make_dataset(
        slice_paths(train_df, image_root),
        label_indices(train_df).tolist(),
        image_size=config.image_size,
        batch_size=session.batch,
        shuffle=True,
        seed=config.seed,
        transform=config.transform,
        repeat=True,
    )
    started, count = time.perf_counter(), recalibration_batches(config, session.steps)
    compiled = not config.eager(session.replicas)
    if session.warm is not None:
        layers = session.warm.recalibrator(session.model, compiled=compiled)(images, count)
    else:
        layers = recalibrate_batchnorm(session.model, images, count, compiled=compiled)
    logger.info(
        "%s: batch-norm statistics of %d layers re-estimated over %d batches in %.1f s",
        session.backbone, layers, count, time.perf_counter() - started,
    )  # fmt: skip


def _result(session: _Session, wall_seconds: float, model_uri: str | None) -> TrainResult:
    state = read_state(session.checkpoint_dir) or {"epoch": 0}
    return TrainResult(
        backbone=session.backbone,
        model=session.model,
        history=session.history,
        epochs_completed=int(state["epoch"]),
        total_steps=int(session.training_model.optimizer.iterations.numpy()),
        resumed_from_epoch=session.resumed_from,
        checkpoint_path=_latest_checkpoint(session.checkpoint_dir),
        global_batch_size=session.batch,
        learning_rate=session.config.effective_learning_rate(session.replicas),
        steps_per_epoch=session.steps,
        wall_seconds=wall_seconds,
        run_id=_active_run_id() if model_uri else None,
        model_uri=model_uri,
    )


def _latest_checkpoint(checkpoint_dir: Path) -> Path:
    state = read_state(checkpoint_dir)
    return checkpoint_dir / str(state["checkpoint"]) if state else checkpoint_dir


def _active_run_id() -> str | None:
    import mlflow

    run = mlflow.active_run()
    return run.info.run_id if run else None


def _example_batch(
    val_df: pd.DataFrame, train_df: pd.DataFrame, image_root: Path, config: TrainingConfig
) -> np.ndarray:
    frame = (val_df if not val_df.empty else train_df).head(2)
    dataset = eval_dataset(slice_paths(frame, image_root), [0] * len(frame), config, len(frame))
    return to_numpy(next(iter(dataset))[0])


# --------------------------------------------------------------------------- prediction


def predict_p_covid(
    model: keras.Model,
    paths: Sequence[str | Path],
    *,
    image_root: Path,
    config: TrainingConfig,
    eager: bool = False,
) -> np.ndarray:
    """P(COVID) per slice: float64 array (n,), the softmax column of class index 1.

    ``paths``: TIFFs relative to ``image_root`` (absolute paths are used as they are). Uses the
    config's image size and intensity transform, no augmentation. ``eager``: call the model op
    by op instead of tracing its predict function; for a handful of slices (the serving check's
    probe set) tracing costs far more than it saves (ResNet152 on 2 cores: about 20 s).
    """
    if len(paths) == 0:
        return np.zeros(0, dtype=np.float64)
    files = [Path(image_root) / str(path) for path in paths]
    # Every batch full (the last slice repeated, its extra scores dropped): Keras traces its
    # predict function once per input shape, and a smaller last batch traced the whole network
    # again (5-7 s for ResNet152 on 2 cores, twice per evaluation: validation and test).
    padded = files + files[-1:] * (-len(files) % config.batch_size)
    dataset = eval_dataset(padded, [0] * len(padded), config, config.batch_size)
    if eager:
        scores = np.concatenate([to_numpy(model(batch, training=False)) for batch, _ in dataset])
    else:
        with graph_optimizer_policy(config.graph_optimizer):
            scores = model.predict(dataset, verbose=0)  # the targets are ignored
    probabilities = np.asarray(scores, dtype=np.float64)[: len(files)]
    return probabilities[:, CLASS_NAMES.index(POSITIVE_CLASS)]


def available_backbones() -> list[str]:
    """Registry names, in registry order."""
    return list(BACKBONES)
