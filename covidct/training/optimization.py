"""The compiled step of a training run: precision and graph-optimizer policies, the distribution
strategy, the training model around a backbone (device augmentation in front), batch-norm
momentum, zero-initialised residual branches and recalibration, the fused :class:`Nadam` and
:func:`compile_model`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict
from typing import Any

import keras
import numpy as np

from covidct.data.augment import DeviceAugmentation
from covidct.keras_backend import JAX, backend_name, uses_tensorflow
from covidct.models.backbones import get_backbone
from covidct.schema import CLASS_NAMES
from covidct.training.profiles import TrainingConfig

AUGMENT_LAYER = "device_augmentation"


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
    applied when a traced function first runs and restored on exit. Other backends have no
    Grappler: there this does nothing (and imports no TensorFlow).
    """
    if not uses_tensorflow():
        yield
        return
    import tensorflow as tf

    options = tf.config.optimizer
    previous = bool(options.get_experimental_options().get("disable_meta_optimizer", False))
    options.set_experimental_options({"disable_meta_optimizer": not enabled})
    try:
        yield
    finally:
        options.set_experimental_options({"disable_meta_optimizer": previous})


class BackendStrategy:
    """The part of ``tf.distribute.Strategy`` training uses, for the other backends:
    ``num_replicas_in_sync`` and ``scope()`` (nothing to enter: a JAX data-parallel
    distribution is set for the whole process by :func:`distribution_strategy`)."""

    def __init__(self, replicas: int = 1) -> None:
        self.num_replicas_in_sync = replicas

    def scope(self) -> AbstractContextManager[None]:
        """A context that does nothing (the distribution, if any, is global)."""
        return nullcontext()


def distribution_strategy(config: TrainingConfig) -> Any:
    """How a run spreads over the accelerators: a ``tf.distribute`` strategy under TensorFlow
    (MirroredStrategy over all visible GPUs when ``config.distribute``, else the default), a
    :class:`BackendStrategy` otherwise. Under JAX with ``config.distribute`` and more than one
    device, Keras's ``DataParallel`` distribution is set for the process (batches split over
    the devices, one replica each)."""
    if uses_tensorflow():
        import tensorflow as tf

        if config.distribute:
            return tf.distribute.MirroredStrategy()
        return tf.distribute.get_strategy()
    if config.distribute and backend_name() == JAX:
        devices = keras.distribution.list_devices()
        if len(devices) > 1:
            keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
            return BackendStrategy(len(devices))
    return BackendStrategy(1)


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
            layer.gamma.assign(keras.ops.zeros(layer.gamma.shape, layer.gamma.dtype))
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
    many layers were recalibrated; the layers' own momentum is restored. To recalibrate the
    same model again without tracing again, keep a :class:`PreciseBatchNorm`.
    """
    return PreciseBatchNorm(model, compiled=compiled)(batches, count)


class PreciseBatchNorm:
    """:func:`recalibrate_batchnorm` for one model, its forward pass traced at most once
    (``tf.function`` under TensorFlow, ``jax.jit`` of ``stateless_call`` under JAX).

    ``model`` keeps its architecture for the life of this object (its weights may change
    between calls: a traced forward pass reads the current values). Calling it with
    ``(batches, count)`` recalibrates and returns the number of BatchNormalization layers.
    """

    def __init__(self, model: keras.Model, *, compiled: bool = True) -> None:
        batch_norm = keras.layers.BatchNormalization
        self.model = model
        self.layers = [layer for layer in _all_layers(model) if isinstance(layer, batch_norm)]
        self.compiled = compiled
        self.forward: Any = None
        if not uses_tensorflow():
            return
        import tensorflow as tf

        self.momentum = tf.Variable(
            0.0, trainable=False, dtype=tf.float32, name="precise_bn_momentum"
        )

        def forward(images: Any) -> Any:
            return model(images, training=True)

        self.forward = tf.function(forward, reduce_retracing=True) if compiled else forward

    def __call__(self, batches: Iterable[Any], count: int) -> int:
        if not self.layers or count < 1:
            return 0
        momenta = [layer.momentum for layer in self.layers]
        try:
            if uses_tensorflow():
                self._tensorflow(batches, count)
            else:
                self._stateless(batches, count)
        finally:
            for layer, old in zip(self.layers, momenta, strict=True):
                layer.momentum = old
        return len(self.layers)

    def _tensorflow(self, batches: Iterable[Any], count: int) -> None:
        for layer in self.layers:
            layer.momentum = self.momentum
        for index, batch in enumerate(batches):
            if index >= count:
                break
            self.momentum.assign(index / (index + 1))
            self.forward(batch[0] if isinstance(batch, tuple) else batch)

    def _stateless(self, batches: Iterable[Any], count: int) -> None:
        """JAX and PyTorch: each batch's own statistics (momentum 0 in a stateless forward pass
        in training mode, ``jax.jit``-compiled under JAX when ``compiled``), averaged with equal
        weights and assigned once: the same average the TensorFlow path accumulates."""
        for layer in self.layers:
            layer.momentum = 0.0
        model = self.model
        if self.forward is None:

            def forward(trainable: Any, non_trainable: Any, images: Any) -> Any:
                return model.stateless_call(trainable, non_trainable, images, training=True)[1]

            if self.compiled and backend_name() == JAX:
                import jax

                forward = jax.jit(forward)
            self.forward = forward
        position = {id(v): i for i, v in enumerate(model.non_trainable_variables)}
        watched = [v for layer in self.layers for v in (layer.moving_mean, layer.moving_variance)]
        indices = [position[id(v)] for v in watched]
        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]
        sums: list[np.ndarray] | None = None
        seen = 0
        for index, batch in enumerate(batches):
            if index >= count:
                break
            images = batch[0] if isinstance(batch, tuple) else batch
            updated = self.forward(trainable, non_trainable, images)
            values = [keras.ops.convert_to_numpy(updated[i]).astype(np.float64) for i in indices]
            sums = values if sums is None else [a + b for a, b in zip(sums, values, strict=True)]
            seen += 1
        if sums is None:
            return
        for variable, total in zip(watched, sums, strict=True):
            variable.assign((total / seen).astype(variable.dtype))


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
    the whole train step a second time; the other backends' trainers would take a batch from
    fit's data to build the metrics (a batch the training then skips).
    """
    model.compile(
        optimizer=Nadam(learning_rate=config.effective_learning_rate(replicas)),
        loss=config.loss,
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        # JAX compiles only through XLA: its trainer without jit_compile runs op by op
        jit_compile=config.jit_compile or backend_name() == JAX,
        run_eagerly=config.eager(replicas),
    )
    model.optimizer.build(model.trainable_variables)
    if not uses_tensorflow():
        # Keras's JAX and PyTorch trainers otherwise build the metrics from the first batch of
        # fit's iterator, which a PyDataset read by worker threads then skips: a fresh model
        # would start one batch later than a kept one (covidct.training.warm) and train to
        # other weights
        images = np.zeros((1, *model.input_shape[1:]), "float32")
        model._symbolic_build(
            data_batch=(images, np.zeros((1, *model.output_shape[1:]), "float32"))
        )


def inference_model(training_model: keras.Model, backbone: str) -> keras.Model:
    """The backbone model inside ``training_model`` (itself when there is no augmentation)."""
    names = {layer.name for layer in training_model.layers}
    return training_model.get_layer(backbone) if AUGMENT_LAYER in names else training_model
