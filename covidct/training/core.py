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
  the final weights (:func:`recalibrate_batchnorm`, up to 20 batches); residual branches that start
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
once per step). ``benchmarks/cpu_train.py`` measures both.

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

import json
import logging
import math
import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field, fields, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from covidct.config import parse_enum
from covidct.data import (
    AugmentConfig,
    DeviceAugmentation,
    IntensityTransform,
    make_dataset,
)
from covidct.lake.storage import IntegrityError, ObjectStore, atomic_write, folder, sha256_hex
from covidct.models import (
    BACKBONES,
    ChannelAdaptation,
    WeightsCache,
    get_backbone,
    parameter_counts,
)
from covidct.schema import CLASS_NAMES, LABEL_TO_CLASS, POSITIVE_CLASS

logger = logging.getLogger(__name__)

STATE_FILE = "state.json"
CHECKPOINT_GLOB = "epoch-*.keras"
AUGMENT_LAYER = "device_augmentation"
PATH_COLUMN = "path"
LABEL_COLUMN = "label"


class Profile(StrEnum):
    """Training profile (see module docstring)."""

    PAPER = "paper"
    GPU_FAST = "gpu-fast"
    CPU_SMOKE = "cpu-smoke"


class LearningRateRule(StrEnum):
    """``constant``: the configured rate; ``linear``: rate x global batch / reference batch."""

    CONSTANT = "constant"
    LINEAR = "linear"


@dataclass(frozen=True)
class TrainingConfig:
    """Everything a training run needs besides the data. Build with :meth:`from_profile`.

    ``batch_size`` is per replica; ``learning_rate`` is the rate at ``reference_batch_size``
    images per step (see :class:`LearningRateRule`); ``steps_per_epoch`` None means
    ceil(``images_per_epoch`` / global batch). ``image_size``: square input side in pixels.
    ``validation_steps`` None validates on the whole validation set every epoch.
    ``weights``: None (random), ``"imagenet"`` (read from ``weights_cache``, see
    :class:`covidct.models.WeightsCache`) or a weights file path. ``batchnorm_momentum``: the
    moving-statistics momentum of every BatchNormalization layer (None keeps Keras's 0.99).
    ``balance_classes``: training batches draw COVID and normal slices with equal probability
    (:func:`covidct.data.make_dataset`); validation and test sets are never rebalanced.
    ``zero_init_residual``: with random weights, every ResNet residual block's last
    batch-normalisation scale starts at 0 (:func:`zero_init_residual_branches`).
    ``run_eagerly``: True runs every step eagerly, False compiles the train step, None decides
    per run (:meth:`eager`: eager below :data:`COMPILE_MIN_STEPS` steps in all).
    ``batchnorm_recalibration_batches``: after training, re-estimate every BatchNormalization
    layer's moving statistics over this many un-augmented training batches with the final
    weights, at most as many as the run's training steps (:func:`recalibrate_batchnorm`;
    0: keep what training accumulated).
    ``graph_optimizer``: False skips TensorFlow's graph optimiser (Grappler) for the graphs this
    run traces (:func:`graph_optimizer_policy`).
    """

    profile: Profile
    epochs: int
    steps_per_epoch: int | None
    batch_size: int
    image_size: int
    learning_rate: float = 1e-4
    learning_rate_rule: LearningRateRule = LearningRateRule.CONSTANT
    reference_batch_size: int = 10
    images_per_epoch: int = 1000
    optimizer: str = "nadam"
    loss: str = "categorical_crossentropy"
    augment: AugmentConfig | None = field(default_factory=AugmentConfig)
    augment_on_device: bool = False
    mixed_precision: bool = False
    jit_compile: bool = False
    run_eagerly: bool | None = False
    distribute: bool = False
    transform: IntensityTransform = field(default_factory=IntensityTransform)
    channel_adaptation: ChannelAdaptation = ChannelAdaptation.SUM
    weights: str | None = None
    weights_cache: WeightsCache | None = None
    validation_steps: int | None = None
    batchnorm_momentum: float | None = None
    balance_classes: bool = False
    zero_init_residual: bool = False
    batchnorm_recalibration_batches: int = 0
    graph_optimizer: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "image_size", "reference_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1 or None, got {self.steps_per_epoch}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.batchnorm_recalibration_batches < 0:
            raise ValueError("batchnorm_recalibration_batches must be >= 0")
        if self.batchnorm_momentum is not None and not 0 <= self.batchnorm_momentum < 1:
            raise ValueError(f"batchnorm_momentum must be in [0, 1), got {self.batchnorm_momentum}")

    @classmethod
    def from_profile(cls, profile: Profile | str, **overrides: Any) -> TrainingConfig:
        """The profile's settings with ``overrides`` (field names) applied.

        Raises ValueError for an unknown profile or an unknown override name.
        """
        base = _PROFILES[parse_enum(Profile, str(profile), "profile")]
        unknown = set(overrides) - {item.name for item in fields(cls)}
        if unknown:
            raise ValueError(f"unknown TrainingConfig fields {sorted(unknown)}")
        return replace(base, **overrides)

    def eager(self, replicas: int) -> bool:
        """Whether the train step runs eagerly (``run_eagerly``; None: fewer than
        :data:`COMPILE_MIN_STEPS` steps in all, where tracing costs more than it saves)."""
        if self.run_eagerly is None:
            return self.epochs * self.effective_steps_per_epoch(replicas) < COMPILE_MIN_STEPS
        return self.run_eagerly

    def global_batch_size(self, replicas: int) -> int:
        """Images per optimizer step over all ``replicas``."""
        return self.batch_size * replicas

    def effective_learning_rate(self, replicas: int) -> float:
        """The rate the optimizer uses, after :class:`LearningRateRule`."""
        if self.learning_rate_rule is LearningRateRule.LINEAR:
            return self.learning_rate * self.global_batch_size(replicas) / self.reference_batch_size
        return self.learning_rate

    def effective_steps_per_epoch(self, replicas: int) -> int:
        """Optimizer steps per epoch."""
        if self.steps_per_epoch is not None:
            return self.steps_per_epoch
        return math.ceil(self.images_per_epoch / self.global_batch_size(replicas))

    def to_params(self) -> dict[str, str]:
        """Every setting as flat strings (MLflow params); augmentation and transform expanded."""
        params: dict[str, str] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "augment":
                params.update(value.to_params() if value else {"augment": "none"})
            elif item.name == "transform":
                params.update(value.to_params())
            else:
                params[item.name] = str(value)
        return params


#: ``run_eagerly=None`` compiles runs of at least this many optimizer steps. Measured with
#: benchmarks/cpu_train.py on 2 cores (ResNet152, 64 px, batch 16): the trace costs 53 s and an
#: eager step 10.7 s against 1.45 s compiled, so compiling pays from about 6 steps; 12 leaves
#: a margin for smaller batches and models. A 2-step test run is cheaper eagerly.
COMPILE_MIN_STEPS = 12

#: ``cpu-smoke``'s augmentation: Table 5's horizontal and vertical flips, without its rotation,
#: zoom and shifts, which a run of a few dozen steps cannot learn through (module docstring).
SHORT_RUN_AUGMENT = AugmentConfig(rotation_degrees=0.0, zoom=0.0, width_shift=0.0, height_shift=0.0)

_PROFILES: dict[Profile, TrainingConfig] = {
    Profile.PAPER: TrainingConfig(
        Profile.PAPER, epochs=100, steps_per_epoch=100, batch_size=10, image_size=512
    ),
    Profile.GPU_FAST: TrainingConfig(
        Profile.GPU_FAST,
        epochs=100,
        steps_per_epoch=None,
        batch_size=32,
        image_size=512,
        learning_rate_rule=LearningRateRule.LINEAR,
        augment_on_device=True,
        mixed_precision=True,
        jit_compile=True,
        distribute=True,
    ),
    Profile.CPU_SMOKE: TrainingConfig(
        Profile.CPU_SMOKE,
        epochs=2,
        steps_per_epoch=3,
        batch_size=16,
        image_size=64,
        learning_rate=1e-3,
        batchnorm_momentum=0.9,
        balance_classes=True,
        zero_init_residual=True,
        batchnorm_recalibration_batches=20,
        run_eagerly=None,
        augment=SHORT_RUN_AUGMENT,
        graph_optimizer=False,
    ),
}


@dataclass(frozen=True, eq=False)
class TrainResult:
    """Outcome of :func:`train_model`.

    ``model``: the inference model (no augmentation layer), float32 (B, S, S, 1) ->
    float32 (B, 2) softmax. ``history``: per-epoch metrics over all attempts, keyed by Keras
    metric name. ``total_steps``: optimizer iterations at the end (= epochs x steps per epoch).
    ``model_uri``/``run_id``: the MLflow logged model and run, None when nothing was logged.
    """

    backbone: str
    model: keras.Model
    history: dict[str, list[float]]
    epochs_completed: int
    total_steps: int
    resumed_from_epoch: int
    checkpoint_path: Path
    global_batch_size: int
    learning_rate: float
    steps_per_epoch: int
    wall_seconds: float
    run_id: str | None = None
    model_uri: str | None = None


# --------------------------------------------------------------------------- labels and data


def label_indices(frame: pd.DataFrame) -> np.ndarray:
    """``label`` column (Positive/Negative) -> int64 class indices (1 = COVID, CLASS_NAMES).

    Raises ValueError naming the first row's path whose label is unknown, or missing columns.
    """
    missing = {PATH_COLUMN, LABEL_COLUMN} - set(frame.columns)
    if missing:
        raise ValueError(f"fold frame lacks columns {sorted(missing)}; has {list(frame.columns)}")
    classes = frame[LABEL_COLUMN].astype(str).map(LABEL_TO_CLASS)
    unknown = classes.isna()
    if unknown.any():
        row = frame[unknown].iloc[0]
        raise ValueError(
            f"{row[PATH_COLUMN]}: label {row[LABEL_COLUMN]!r} not in {sorted(LABEL_TO_CLASS)}"
        )
    return classes.map(CLASS_NAMES.index).to_numpy(dtype=np.int64)


def _paths(frame: pd.DataFrame, image_root: Path) -> list[Path]:
    return [Path(image_root) / str(path) for path in frame[PATH_COLUMN]]


def _train_dataset(
    frame: pd.DataFrame, image_root: Path, config: TrainingConfig, global_batch: int, epoch: int
) -> tf.data.Dataset:
    return make_dataset(
        _paths(frame, image_root),
        label_indices(frame).tolist(),
        image_size=config.image_size,
        batch_size=global_batch,
        augment=None if config.augment_on_device else config.augment,
        shuffle=True,
        seed=config.seed + epoch,
        transform=config.transform,
        repeat=True,
        drop_remainder=True,
        balance_classes=config.balance_classes,
    )


def _eval_dataset(
    paths: Sequence[Path],
    labels: Sequence[int],
    config: TrainingConfig,
    batch: int,
    cache: bool = False,
) -> tf.data.Dataset:
    return make_dataset(
        paths,
        labels,
        image_size=config.image_size,
        batch_size=batch,
        transform=config.transform,
        cache=cache,
    )


# --------------------------------------------------------------------------- model set-up


@contextmanager
def precision_policy(mixed: bool) -> Iterator[None]:
    """Set Keras's global dtype policy to ``mixed_bfloat16`` (or float32) and restore it."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16" if mixed else "float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


@contextmanager
def graph_optimizer_policy(enabled: bool) -> Iterator[None]:
    """Run TensorFlow's graph optimiser (Grappler) on graphs first run inside, or skip it.

    Measured on 2 cores with :func:`new_training_model` (ResNet152, 64 px, batch 16, random
    data; ``benchmarks/cpu_train.py --grappler`` repeats it): the first compiled step took
    28.6 s with Grappler and 18.1 s without, and later steps were no faster with it (1.09 s
    against 0.99 s), so ``cpu-smoke`` skips it. The setting is global to the process; it is
    applied when a traced function first runs and restored on exit.
    """
    options = tf.config.optimizer
    previous = bool(options.get_experimental_options().get("disable_meta_optimizer", False))
    options.set_experimental_options({"disable_meta_optimizer": not enabled})
    try:
        yield
    finally:
        options.set_experimental_options({"disable_meta_optimizer": previous})


def distribution_strategy(config: TrainingConfig) -> tf.distribute.Strategy:
    """MirroredStrategy over all visible GPUs when ``config.distribute``, else the default."""
    if config.distribute:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def new_training_model(backbone: str, config: TrainingConfig, replicas: int) -> keras.Model:
    """Build and compile the model to fit (call inside the strategy scope and dtype policy).

    With ``augment_on_device`` the backbone is wrapped behind a :class:`DeviceAugmentation`
    layer named ``device_augmentation``; :func:`inference_model` unwraps it.
    """
    model = get_backbone(backbone).build(
        (config.image_size, config.image_size, 1),
        len(CLASS_NAMES),
        config.weights,
        weights_cache=config.weights_cache,
        channel_adaptation=config.channel_adaptation,
    )
    if config.batchnorm_momentum is not None:
        set_batchnorm_momentum(model, config.batchnorm_momentum)
    if config.zero_init_residual and config.weights is None:
        zero_init_residual_branches(model)
    if config.augment_on_device and config.augment is not None:
        inputs = keras.Input(model.input_shape[1:], name="slice")
        augmented = DeviceAugmentation(asdict(config.augment), seed=config.seed, name=AUGMENT_LAYER)
        model = keras.Model(inputs, model(augmented(inputs)), name=f"{backbone}_training")
    compile_model(model, config, replicas)
    return model


def set_batchnorm_momentum(model: keras.Model, momentum: float) -> int:
    """Set the moving-statistics momentum of every BatchNormalization layer, nested ones too.

    Returns how many layers were changed. Inference uses the moving mean and variance: with
    Keras's 0.99, after n steps a fraction 0.99**n of them is still the initial (0, 1) (37%
    after 100 steps); 0.9 leaves 0.9**100 < 3e-5. A faster momentum alone does not stop the
    one-class collapse of a short run (the averages still lag moving weights): see
    :func:`recalibrate_batchnorm`.
    """
    changed = 0
    for layer in _all_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = float(momentum)
            changed += 1
    return changed


#: Keras Applications' name of a ResNet (v1) bottleneck block's last batch normalisation.
RESIDUAL_LAST_BN = re.compile(r"conv\d+_block\d+_3_bn$")


def zero_init_residual_branches(model: keras.Model) -> int:
    """Set gamma = 0 in the last BatchNormalization of every ResNet bottleneck block.

    Goyal et al. 2017 ("Accurate, Large Minibatch SGD", section 5.1): each residual block then
    starts as the identity, so a randomly initialised ResNet152 trains at first like a shallow
    network instead of passing its input through 50 random blocks. Layers are found by Keras
    Applications' names (``conv4_block7_3_bn``); models without them (VGG, Inception, Xception,
    ResNet50V2) are unchanged. Returns how many layers were set.
    """
    changed = 0
    for layer in _all_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization) and RESIDUAL_LAST_BN.search(
            layer.name
        ):
            layer.gamma.assign(keras.ops.zeros_like(layer.gamma))
            changed += 1
    return changed


def recalibrate_batchnorm(
    model: keras.Model, batches: Iterable[Any], count: int, *, compiled: bool = True
) -> int:
    """Re-estimate every BatchNormalization layer's moving mean and variance (PreciseBN).

    Wu & Johnson 2021 ("Rethinking 'Batch' in BatchNorm", section 3): the moving statistics are
    an average over the *past* weights; after a short run at a high learning rate they lag the
    final weights, inference-mode outputs differ from the training-mode ones at every layer and
    the differences compound through a deep network until every slice gets the same class.
    This runs ``count`` forward passes in training mode (no gradient, no weight changes) over
    ``batches`` (float32 (B, S, S, 1) images, or (images, targets) pairs) and leaves in each
    layer the equal-weight average of the ``count`` batches' means and (biased) variances, as
    PreciseBN does: at the i-th batch (0-based) the momentum is i / (i + 1), so the first batch
    replaces the old statistics outright and nothing of them remains. The momentum is one
    variable read by every layer, so ``compiled`` traces the forward pass once; ``compiled``
    False runs the passes eagerly (cheaper for a model traced for nothing else). Returns how
    many layers were recalibrated; the layers' own momentum is restored.
    """
    batch_norm = keras.layers.BatchNormalization
    layers = [layer for layer in _all_layers(model) if isinstance(layer, batch_norm)]
    if not layers or count < 1:
        return 0
    momenta = [layer.momentum for layer in layers]
    momentum = tf.Variable(0.0, trainable=False, dtype=tf.float32, name="precise_bn_momentum")
    for layer in layers:
        layer.momentum = momentum

    def forward(images: Any) -> Any:
        return model(images, training=True)

    if compiled:
        forward = tf.function(forward, reduce_retracing=True)
    try:
        for index, batch in enumerate(batches):
            if index >= count:
                break
            momentum.assign(index / (index + 1))
            forward(batch[0] if isinstance(batch, tuple) else batch)
    finally:
        for layer, old in zip(layers, momenta, strict=True):
            layer.momentum = old
    return len(layers)


def _all_layers(model: keras.Model) -> Iterator[keras.layers.Layer]:
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


@keras.saving.register_keras_serializable(package="covidct")
class Nadam(keras.optimizers.Nadam):
    """Keras's Nadam (Dozat 2016, "Incorporating Nesterov momentum into Adam"), same update,
    with the step-dependent scalars computed once per step instead of once per variable.

    Keras computes ``u_t``, ``u_{t+1}``, the momentum-schedule product and ``beta_2**t`` (about
    20 scalar ops) inside ``update_step``, for every variable: for ResNet152's 622 variables
    this class builds 26,541 graph ops in its train step against Keras's 44,553 (measured at
    64 px), which cut the first compiled step from 93 s to 58 s on 2 CPU cores. Per
    variable this keeps ``m <- m + (g - m)(1 - beta_1)``, ``v <- v + (g**2 - v)(1 - beta_2)`` and
    ``w <- w - (a m + b g) / (sqrt(c v) + epsilon)`` with ``a = lr u_{t+1} / (1 - prod_{t+1})``,
    ``b = lr (1 - u_t) / (1 - prod_t)``, ``c = 1 / (1 - beta_2**t)``: Keras's ``m_hat`` and
    ``v_hat`` with the learning rate folded in (equal to Keras's result up to rounding; tested).
    """

    def _backend_update_step(self, grads: Any, variables: Any, learning_rate: Any) -> None:
        self._step_coefficients: dict[str, tuple[Any, Any, Any]] = {}
        super()._backend_update_step(grads, variables, learning_rate)

    def _coefficients(self, dtype: Any, learning_rate: Any) -> tuple[Any, Any, Any]:
        key = str(dtype)
        if key not in self._step_coefficients:
            ops = keras.ops
            lr = ops.cast(learning_rate, dtype)
            step = ops.cast(self.iterations + 1, dtype)
            decay = ops.cast(0.96, dtype)
            beta_1, beta_2 = ops.cast(self.beta_1, dtype), ops.cast(self.beta_2, dtype)
            u_t = beta_1 * (1.0 - 0.5 * ops.power(decay, step))
            u_next = beta_1 * (1.0 - 0.5 * ops.power(decay, step + 1.0))
            product = ops.cast(self._u_product, dtype)  # already includes u_t
            self._step_coefficients[key] = (
                lr * u_next / (1.0 - product * u_next),
                lr * (1.0 - u_t) / (1.0 - product),
                1.0 / (1.0 - ops.power(beta_2, step)),
            )
        return self._step_coefficients[key]

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        """One variable's update with this step's shared coefficients."""
        ops = keras.ops
        gradient = ops.cast(gradient, variable.dtype)
        a, b, c = self._coefficients(variable.dtype, learning_rate)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1.0 - self.beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v), 1.0 - self.beta_2))
        step = ops.add(ops.multiply(a, m), ops.multiply(b, gradient))
        denominator = ops.add(ops.sqrt(ops.multiply(c, v)), self.epsilon)
        self.assign_sub(variable, ops.divide(step, denominator))


def compile_model(model: keras.Model, config: TrainingConfig, replicas: int) -> None:
    """Compile with Nadam at the effective learning rate, categorical cross-entropy, accuracy.

    The optimizer's and the metric's variables are created here, before the first step: Keras's
    TensorFlow trainer otherwise creates them inside the first trace, and ``tf.function`` traces
    the whole train step a second time.
    """
    model.compile(
        optimizer=Nadam(learning_rate=config.effective_learning_rate(replicas)),
        loss=config.loss,
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        jit_compile=config.jit_compile,
        run_eagerly=config.eager(replicas),
    )
    model.optimizer.build(model.trainable_variables)


def inference_model(training_model: keras.Model, backbone: str) -> keras.Model:
    """The backbone model inside ``training_model`` (itself when there is no augmentation)."""
    names = {layer.name for layer in training_model.layers}
    return training_model.get_layer(backbone) if AUGMENT_LAYER in names else training_model


# --------------------------------------------------------------------------- checkpoints


def read_state(checkpoint_dir: Path) -> dict[str, Any] | None:
    """The last completed epoch's state (``state.json``), or None when there is none.

    Raises CheckpointStateError (a ValueError) naming the file when it is not a JSON object
    with an integer ``epoch`` and a string ``checkpoint``.
    """
    path = Path(checkpoint_dir) / STATE_FILE
    if not path.is_file():
        return None
    return parse_state(path.read_text(), str(path))


class CheckpointStateError(ValueError):
    """A ``state.json`` that cannot be read: delete it (and its checkpoint) to start again."""


def parse_state(text: str, where: str) -> dict[str, Any]:
    """Parse a ``state.json`` read from ``where`` (a path or URI, for the message)."""
    try:
        state = json.loads(text)
    except json.JSONDecodeError as error:
        raise CheckpointStateError(
            f"{where}: not valid JSON ({error}); delete it and its checkpoint to start again"
        ) from error
    if not isinstance(state, dict):
        raise CheckpointStateError(f"{where}: expected a JSON object, got {type(state).__name__}")
    epoch, name = state.get("epoch"), state.get("checkpoint")
    if not isinstance(epoch, int) or epoch < 1 or not isinstance(name, str) or not name:
        raise CheckpointStateError(
            f"{where}: needs an integer 'epoch' >= 1 and a 'checkpoint' file name, got "
            f"epoch={epoch!r}, checkpoint={name!r}; delete it and its checkpoint to start again"
        )
    return state


def _write_json_atomically(path: Path, payload: Mapping[str, Any]) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(payload, indent=2))
    os.replace(temporary, path)


#: ``state.json`` key: False when the checkpoint file holds weights only (the last epoch).
OPTIMIZER_STATE = "optimizer_state"


class EpochCheckpoint(keras.callbacks.Callback):
    """Save the model and ``state.json`` after every epoch; keep only the latest file.

    Epochs before ``final_epoch`` save the compiled model with its optimizer state (Nadam: 3x
    the weights), which a resumed run needs to continue with the same moments and step count;
    the final epoch saves the weights only (:func:`serving_copy`): nothing is left to train,
    and a retry only needs the model (``state.json`` records ``optimizer_steps`` and
    ``optimizer_state: false``). The model file is written first and renamed into place, then
    the state is replaced atomically, so a kill at any moment leaves a consistent pair.
    """

    def __init__(
        self, directory: Path, identity: Mapping[str, Any], history: dict, final_epoch: int
    ) -> None:
        super().__init__()
        self.directory = Path(directory)
        self.identity = dict(identity)
        self.history = history
        self.final_epoch = final_epoch

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        name = f"epoch-{epoch + 1:04d}.keras"
        partial = self.directory / f"partial-{name}"
        with_optimizer = epoch + 1 < self.final_epoch
        (self.model if with_optimizer else serving_copy(self.model)).save(partial)
        os.replace(partial, self.directory / name)
        state = {
            **self.identity,
            "epoch": epoch + 1,
            "checkpoint": name,
            "optimizer_steps": int(self.model.optimizer.iterations.numpy()),
            OPTIMIZER_STATE: with_optimizer,
            "history": self.history,
        }
        _write_json_atomically(self.directory / STATE_FILE, state)
        for old in [*self.directory.glob(CHECKPOINT_GLOB), *self.directory.glob("partial-*")]:
            if old.name != name:
                old.unlink()
        logger.info("checkpoint %s (epoch %d)", self.directory / name, epoch + 1)


#: TrainingConfig settings that may change between a checkpoint and its resumption: more
#: epochs extend a run; where the weights cache lives, eager mode and how much of the validation
#: set is scored do not change what is trained.
RESUME_MAY_CHANGE = frozenset({"epochs", "weights_cache", "run_eagerly", "validation_steps"})


class CheckpointMismatchError(ValueError):
    """A checkpoint cannot continue the requested training (other settings, or past its end)."""


def _identity(backbone: str, config: TrainingConfig, steps: int, batch: int) -> dict[str, Any]:
    settings = {
        key: value for key, value in config.to_params().items() if key not in RESUME_MAY_CHANGE
    }
    return {
        "backbone": backbone,
        "profile": config.profile.value,
        "image_size": config.image_size,
        "steps_per_epoch": steps,
        "global_batch_size": batch,
        "settings": settings,
    }


def _check_resumable(
    state: Mapping[str, Any], identity: Mapping[str, Any], epochs: int, where: Path
) -> None:
    """Raise CheckpointMismatchError unless ``state`` can continue the requested training.

    Compares the identity (backbone, profile, image size, steps, global batch, and every
    TrainingConfig setting but :data:`RESUME_MAY_CHANGE`), listing each difference; checkpoints
    written before ``settings`` was recorded are compared on the rest. A checkpoint already past
    ``epochs`` is refused too.
    """
    different: dict[str, Any] = {}
    for key, value in identity.items():
        if key == "settings" and key not in state:
            continue
        stored = state.get(key)
        if isinstance(value, Mapping) and isinstance(stored, Mapping):
            keys = sorted(set(value) | set(stored))
            pairs = {name: (stored.get(name), value.get(name)) for name in keys}
            different.update({name: pair for name, pair in pairs.items() if pair[0] != pair[1]})
        elif stored != value:
            different[key] = (stored, value)
    if different:
        raise CheckpointMismatchError(
            f"{where}: checkpoint was made with other settings (stored, requested): {different}; "
            "delete the checkpoint (and its mirrored copy) or train under another run"
        )
    if int(state["epoch"]) > epochs:
        raise CheckpointMismatchError(
            f"{where}: checkpoint is at epoch {state['epoch']}, past the {epochs} epochs asked for"
        )


def _restore(
    checkpoint_dir: Path, state: Mapping[str, Any], config: TrainingConfig, replicas: int
) -> keras.Model:
    """Load the checkpoint ``state`` names; a weights-only one (the last epoch) is compiled anew
    with its optimizer step count restored (extending a finished run restarts Nadam's moments).
    """
    path = Path(checkpoint_dir) / str(state["checkpoint"])
    if not path.is_file():
        raise FileNotFoundError(f"{checkpoint_dir}/{STATE_FILE} names {path}, which is missing")
    logger.info("resuming from %s (epoch %s)", path, state["epoch"])
    model = keras.saving.load_model(path, compile=True)
    if state.get(OPTIMIZER_STATE, True) is False or getattr(model, "optimizer", None) is None:
        compile_model(model, config, replicas)
        model.optimizer.iterations.assign(int(state.get("optimizer_steps", 0)))
    return model


# --------------------------------------------------------------------------- checkpoint mirror

#: Key added to the mirrored ``state.json``: hex sha256 of the checkpoint file it names.
CHECKPOINT_SHA256 = "checkpoint_sha256"


class CheckpointSyncError(RuntimeError):
    """Uploading a checkpoint to the object store failed (training stops; the task retries)."""


def push_checkpoint(store: ObjectStore, prefix: str, local_dir: Path) -> dict[str, Any]:
    """Upload the latest checkpoint of ``local_dir`` to folder ``prefix`` of ``store``.

    Order: the ``epoch-NNNN.keras`` file, then ``state.json`` (the local state plus
    ``checkpoint_sha256``), then deletion of every other ``epoch-*.keras`` object under
    ``prefix``: a reader never sees a state naming a missing file, and one epoch is kept.
    Returns the uploaded state. Raises FileNotFoundError when ``local_dir`` has no state or
    lacks the file it names; the store's errors propagate.
    """
    state = read_state(local_dir)
    if state is None:
        raise FileNotFoundError(f"{local_dir} has no {STATE_FILE} to upload")
    base, name = folder(prefix), str(state["checkpoint"])
    data = (Path(local_dir) / name).read_bytes()
    store.write_bytes(base + name, data)
    mirrored = {**state, CHECKPOINT_SHA256: sha256_hex(data)}
    store.write_text(base + STATE_FILE, json.dumps(mirrored, indent=2))
    keep = base + name
    store.delete_many(
        key for key in store.list(base + "epoch-") if key.endswith(".keras") and key != keep
    )
    logger.info("checkpoint epoch %s uploaded to %s", state["epoch"], store.uri(keep))
    return mirrored


def read_remote_state(store: ObjectStore, prefix: str) -> dict[str, Any] | None:
    """The ``state.json`` under folder ``prefix`` of ``store``, or None when there is none."""
    key = folder(prefix) + STATE_FILE
    if not store.exists(key):
        return None
    return parse_state(store.read_text(key), store.uri(key))


def pull_checkpoint(store: ObjectStore, prefix: str, local_dir: Path) -> int:
    """Copy the checkpoint under ``prefix`` into ``local_dir`` when it is newer than the local one.

    Newer: a higher ``epoch`` than ``local_dir``'s ``state.json`` (or no local state). The file
    is checked against the state's ``checkpoint_sha256`` and written before the state, and
    older local ``epoch-*.keras`` files are removed. Returns the epoch ``local_dir`` now holds
    (0: none). Raises IntegrityError on a sha256 mismatch, FileNotFoundError when the state
    names a missing object.
    """
    local = read_state(local_dir)
    local_epoch = int(local["epoch"]) if local else 0
    remote = read_remote_state(store, prefix)
    if remote is None or int(remote["epoch"]) <= local_epoch:
        return local_epoch
    name = str(remote["checkpoint"])
    data = store.read_bytes(folder(prefix) + name)
    expected = remote.get(CHECKPOINT_SHA256)
    if expected is not None and sha256_hex(data) != expected:
        raise IntegrityError(
            f"{store.uri(folder(prefix) + name)}: sha256 {sha256_hex(data)} != {expected} "
            f"recorded in its {STATE_FILE}"
        )
    local_dir = Path(local_dir)
    local_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(local_dir / name, data)
    _write_json_atomically(local_dir / STATE_FILE, remote)
    for old in local_dir.glob(CHECKPOINT_GLOB):
        if old.name != name:
            old.unlink()
    logger.info("checkpoint epoch %s pulled from %s", remote["epoch"], store.uri(folder(prefix)))
    return int(remote["epoch"])


class CheckpointMirror(keras.callbacks.Callback):
    """Keep a copy of :class:`EpochCheckpoint`'s directory in an object store (the run's lake).

    Pass it in ``train_model(callbacks=...)`` (it runs after the local checkpoint) and call
    :meth:`pull` before training, so a task retried on another worker resumes from the last
    uploaded epoch. An upload failure is logged and raised as :class:`CheckpointSyncError`,
    which stops training: the task fails and its retry resumes from the last good upload.
    """

    def __init__(self, store: ObjectStore, prefix: str, local_dir: Path) -> None:
        super().__init__()
        self.store = store
        self.prefix = folder(prefix)
        self.local_dir = Path(local_dir)

    def pull(self) -> int:
        """See :func:`pull_checkpoint`; returns the epoch the local directory now holds."""
        return pull_checkpoint(self.store, self.prefix, self.local_dir)

    def sync(self) -> int:
        """Pull a newer stored checkpoint, or push a newer local one (an earlier failed upload).

        Returns the epoch both sides now hold (0: none).
        """
        epoch = self.pull()
        remote = read_remote_state(self.store, self.prefix)
        if epoch > (int(remote["epoch"]) if remote else 0):
            push_checkpoint(self.store, self.prefix, self.local_dir)
        return epoch

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        try:
            push_checkpoint(self.store, self.prefix, self.local_dir)
        except Exception as error:
            where = self.store.uri(self.prefix)
            logger.exception("epoch %d: checkpoint upload to %s failed", epoch + 1, where)
            raise CheckpointSyncError(
                f"epoch {epoch + 1}: uploading {self.local_dir} to {where} failed: {error}"
            ) from error


# --------------------------------------------------------------------------- MLflow


class MlflowEpochMetrics(keras.callbacks.Callback):
    """Log each epoch's Keras metrics to the active MLflow run, step = epoch number (1-based)."""

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        import mlflow

        metrics = {key: float(value) for key, value in (logs or {}).items()}
        mlflow.log_metrics(metrics, step=epoch + 1)


def _mlflow_active(requested: bool) -> bool:
    if not requested:
        return False
    import mlflow

    if mlflow.active_run() is None:
        logger.warning("mlflow_run=True but no MLflow run is active: nothing is logged")
        return False
    return True


def _log_run_setup(
    session: _Session, frames: Mapping[str, pd.DataFrame], derived: Mapping[str, Any]
) -> None:
    """Params (every setting), tag, fold inputs, and the history of earlier attempts."""
    import mlflow
    from mlflow.data.pandas_dataset import from_pandas

    total, non_trainable = parameter_counts(session.model)
    size = session.config.image_size
    params = {
        **session.config.to_params(),
        "backbone": session.backbone,
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


def log_keras_model(model: keras.Model, name: str, example: np.ndarray) -> str:
    """Log ``model``'s :func:`serving_copy` (Keras 3 format, no optimizer state) with a signature
    inferred from ``example``; return its URI.

    No ``input_example`` (MLflow 3.17 + Keras 3 crash on it; shared/reference/pitfalls.md).
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
        pip_requirements=serving_requirements(),
    )  # fmt: skip
    return str(info.model_uri)


def serving_requirements() -> list[str]:
    """The registered model's pip requirements: the Keras and TensorFlow that trained it, pinned.

    Given to MLflow so it does not infer them: its inference loads the saved model again in a
    new Python process to see what it imports, for every model logged (TensorFlow and the whole
    network: 34 CPU-seconds for the topology test's two 32-px VGG16 models, sampled with ps).
    """
    from importlib import metadata

    pinned = []
    for distribution in ("keras", "tensorflow", "tensorflow-cpu"):
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

    @property
    def batch(self) -> int:
        return self.config.global_batch_size(self.replicas)

    @property
    def steps(self) -> int:
        return self.config.effective_steps_per_epoch(self.replicas)

    @property
    def identity(self) -> dict[str, Any]:
        return _identity(self.backbone, self.config, self.steps, self.batch)

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


def _open_session(backbone: str, config: TrainingConfig, checkpoint_dir: Path) -> _Session:
    """Build a new training model, or restore the one ``checkpoint_dir`` holds."""
    strategy = distribution_strategy(config)
    replicas = strategy.num_replicas_in_sync
    identity = _identity(
        backbone,
        config,
        config.effective_steps_per_epoch(replicas),
        config.global_batch_size(replicas),
    )
    state = read_state(checkpoint_dir)
    with precision_policy(config.mixed_precision), strategy.scope():
        if state is None:
            training_model = new_training_model(backbone, config, replicas)
        else:
            _check_resumable(state, identity, config.epochs, checkpoint_dir)
            training_model = _restore(checkpoint_dir, state, config, replicas)
    return _Session(
        backbone=backbone,
        config=config,
        checkpoint_dir=checkpoint_dir,
        replicas=replicas,
        training_model=training_model,
        resumed_from=int(state["epoch"]) if state else 0,
        history=dict(state["history"]) if state else {},
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
) -> TrainResult:
    """Train ``backbone`` on one fold, resuming from ``checkpoint_dir`` when it holds a state.

    ``train_df``/``val_df``: columns ``path`` (TIFF path relative to ``image_root``) and
    ``label`` (``Positive``/``Negative``). Checkpoints every epoch (see module docstring). When
    ``mlflow_run`` and an MLflow run is active, logs every setting as params, the folds as
    inputs (``log_datasets``; contexts ``training``/``validation``), per-epoch metrics (the
    epochs of an earlier killed attempt too) and the final model with a signature
    (``mlflow_run`` with no active run logs a warning and nothing else). ``callbacks`` run
    after the checkpoint callback. Raises ValueError for an unknown backbone, an empty
    training frame, an unknown label, or a checkpoint made with other settings.
    """
    started = time.perf_counter()
    get_backbone(backbone)
    if train_df.empty:
        raise ValueError(f"{backbone}: the training frame has no rows")
    checkpoint_dir = Path(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    logging_on = _mlflow_active(mlflow_run)
    keras.utils.set_random_seed(config.seed)
    with graph_optimizer_policy(config.graph_optimizer):
        session = _open_session(backbone, config, checkpoint_dir)
        if logging_on:
            frames = {"training": train_df, "validation": val_df} if log_datasets else {}
            _log_run_setup(session, frames, session.derived_params(len(train_df), len(val_df)))
        if session.resumed_from < config.epochs:
            chosen = _callbacks(session, logging_on, callbacks)
            _fit(session, (train_df, val_df), image_root, chosen)
        if recalibration_batches(config, session.steps):
            _recalibrate(session, train_df, image_root)
        uri = None
        if logging_on:
            example = _example_batch(val_df, train_df, image_root, config)
            uri = log_keras_model(session.model, backbone, example)
    return _result(session, time.perf_counter() - started, uri if logging_on else None)


def _callbacks(
    session: _Session, logging_on: bool, extra: Sequence[keras.callbacks.Callback]
) -> list[keras.callbacks.Callback]:
    chosen: list[keras.callbacks.Callback] = [
        EpochCheckpoint(
            session.checkpoint_dir, session.identity, session.history, session.config.epochs
        )
    ]
    if logging_on:
        chosen.append(MlflowEpochMetrics())
    return chosen + list(extra)


def _fit(
    session: _Session,
    frames: tuple[pd.DataFrame, pd.DataFrame],
    image_root: Path,
    callbacks: list[keras.callbacks.Callback],
) -> None:
    train_df, val_df = frames
    config = session.config
    train = _train_dataset(train_df, image_root, config, session.batch, session.resumed_from)
    validation = None
    # a profile that re-estimates batch-norm statistics after training (cpu-smoke) would
    # validate, during fit, a model it does not keep: its figures would not be real
    if not val_df.empty and not recalibration_batches(config, session.steps):
        labels = label_indices(val_df).tolist()
        paths = _paths(val_df, image_root)
        validation = _eval_dataset(paths, labels, config, session.batch, cache=True)
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
        _paths(train_df, image_root),
        label_indices(train_df).tolist(),
        image_size=config.image_size,
        batch_size=session.batch,
        shuffle=True,
        seed=config.seed,
        transform=config.transform,
        repeat=True,
    )
    started, count = time.perf_counter(), recalibration_batches(config, session.steps)
    layers = recalibrate_batchnorm(
        session.model, images, count, compiled=not config.eager(session.replicas)
    )
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
    dataset = _eval_dataset(_paths(frame, image_root), [0] * len(frame), config, len(frame))
    return next(iter(dataset))[0].numpy()


# --------------------------------------------------------------------------- prediction


def predict_p_covid(
    model: keras.Model,
    paths: Sequence[str | Path],
    *,
    image_root: Path,
    config: TrainingConfig,
) -> np.ndarray:
    """P(COVID) per slice: float64 array (n,), the softmax column of class index 1.

    ``paths``: TIFFs relative to ``image_root`` (absolute paths are used as they are). Uses the
    config's image size and intensity transform, no augmentation.
    """
    if len(paths) == 0:
        return np.zeros(0, dtype=np.float64)
    files = [Path(image_root) / str(path) for path in paths]
    # Every batch full (the last slice repeated, its extra scores dropped): Keras traces its
    # predict function once per input shape, and a smaller last batch traced the whole network
    # again (5-7 s for ResNet152 on 2 cores, twice per evaluation: validation and test).
    padded = files + files[-1:] * (-len(files) % config.batch_size)
    dataset = _eval_dataset(padded, [0] * len(padded), config, config.batch_size)
    images = dataset.map(lambda image, _target: image)
    with graph_optimizer_policy(config.graph_optimizer):
        scores = model.predict(images, verbose=0)
    probabilities = np.asarray(scores, dtype=np.float64)[: len(files)]
    return probabilities[:, CLASS_NAMES.index(POSITIVE_CLASS)]


def available_backbones() -> list[str]:
    """Registry names, in registry order."""
    return list(BACKBONES)
