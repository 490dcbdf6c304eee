"""What one training run is: :class:`TrainingConfig` (backbone, image size, schedule, batch size,
augmentation, precision), the named profiles it is built from (:class:`Profile`: ``paper``,
``cpu-smoke``, ...; their schedules in :data:`covidct.training.spec.PROFILE_SCHEDULES`) and
:class:`TrainResult`, what a finished run hands back. A run's :class:`TrainingSpec` becomes its
config in one place, :meth:`TrainingConfig.from_spec`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

import keras

from covidct.config import parse_enum
from covidct.data.augment import AugmentConfig
from covidct.data.loading import IntensityTransform
from covidct.models.weights import ChannelAdaptation, WeightsCache
from covidct.training.spec import PROFILE_SCHEDULES, Profile, TrainingSpec


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

    @classmethod
    def from_spec(cls, spec: TrainingSpec, **extra: Any) -> TrainingConfig:
        """The config of a run's :class:`~covidct.training.spec.TrainingSpec`: its profile's
        settings with the spec's epochs, steps per epoch, image size, batch size and weights,
        plus ``extra`` (fields the spec does not carry, e.g. ``weights_cache``). The one place
        a spec becomes a config."""
        values = spec.to_dict()
        return cls.from_profile(values.pop("profile"), **values, **extra)

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
    Profile.PAPER: TrainingConfig(Profile.PAPER, **asdict(PROFILE_SCHEDULES[Profile.PAPER])),
    Profile.GPU_FAST: TrainingConfig(
        Profile.GPU_FAST,
        **asdict(PROFILE_SCHEDULES[Profile.GPU_FAST]),
        learning_rate_rule=LearningRateRule.LINEAR,
        augment_on_device=True,
        mixed_precision=True,
        jit_compile=True,
        distribute=True,
    ),
    Profile.CPU_SMOKE: TrainingConfig(
        Profile.CPU_SMOKE,
        **asdict(PROFILE_SCHEDULES[Profile.CPU_SMOKE]),
        learning_rate=1e-3,
        batchnorm_momentum=0.9,
        balance_classes=True,
        zero_init_residual=True,
        # 10 batches of 16: about one pass over a demo fold's 166 training slices (PreciseBN
        # averages equally over them); in the demo, 20 took 18.6-20.6 s per ResNet152 fold
        # and 10 took 15.8-18.3 s (the trace of the forward pass is most of either)
        batchnorm_recalibration_batches=10,
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
