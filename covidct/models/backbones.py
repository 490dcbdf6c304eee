"""Backbone registry: every classifier of the seed and of the COVID-CTset paper, Keras 3.

Each entry of :data:`BACKBONES` is a :class:`BackboneSpec` whose ``build(input_shape,
num_classes=2, weights=None)`` returns an uncompiled functional ``keras.Model`` mapping float32
(B, H, W, C) slices to float32 softmax probabilities (B, num_classes), index 1 = COVID
(:data:`covidct.schema.CLASS_NAMES`). The backbone's layers are built inline (``input_tensor``),
so layer names such as ``conv5_block3_out`` are reachable with ``model.get_layer``.

Heads:

- InceptionV3, VGG16, VGG19, ResNet50, Xception, ResNet152: the Keras Applications backbone
  without its top, global average pooling, ``Dense(num_classes, softmax)``. This is exactly
  Keras's own top for ResNet/Inception/Xception; for VGG it replaces the two 4096-unit layers
  (which tie the network to 224x224) by the pooling, so any input size works.
- ``resnet152_lstm`` (the seed's hybrid): the slice's rows (H time steps of W values) through
  ``LSTM(2048, return_sequences=True)`` and ``LSTM(2048)``; ResNet152 features average-pooled with
  a 2x2 window (16x16 -> the 8x8 grid for a 512x512 input; ``padding="same"`` so small inputs
  work), flattened; both concatenated; ``Dense(num_classes, softmax)``. For (512, 512, 1) this
  counts 113,173,250 parameters, 151,424 non-trainable (the seed's figures).
- ``resnet50v2_fpn`` (Rahimzadeh, Attar & Sakhaei 2021, doi:10.1016/j.bspc.2021.102588; code
  mr7495/COVID-CT-Code, ``COVID_Train&Validation.ipynb``): ResNet50V2 features C3 =
  ``conv4_block1_preact_relu`` (stride 16), C4 = ``conv5_block1_preact_relu`` and C5 =
  ``post_relu`` (stride 32); a 256-channel pyramid after RetinaNet's, except that the top-down
  merge *concatenates* the upsampled map with the 1x1-reduced one (their code, although their
  comment says element-wise) and the P3/P4 3x3 convolutions are unpadded; P6 = 3x3/2 conv on C5,
  P7 = ReLU + 3x3/2 conv on P6. Each of P3..P7 is flattened, dropped out (0.5) and classified by
  ``Dense(2, relu)``; the five outputs are concatenated and classified by ``Dense(2, softmax)``
  (dense initialisers N(0, 0.001) as theirs). Upsampling is nearest-neighbour to the target's
  size, as keras-retinanet's ``UpsampleLike``. Smallest input: 96x96 (P4 needs C4 >= 3x3).

One-channel input (:class:`ChannelAdaptation`): by default the backbone is built for one channel
(its first convolution has one input channel; ImageNet filters are summed over colour, ``sum``).
``random`` keeps that layer randomly initialised (what the COVID-CTset authors did:
``load_weights(..., skip_mismatch=True)``); ``replicate`` copies the slice into three channels
and keeps the three-colour first convolution.

Weights: ``None`` (random; tests and the demo), ``"imagenet"`` read from a
:class:`WeightsCache` (a local folder, or an object store such as ``s3://bucket/prefix`` whose
file is copied into a local folder first) under ``spec.imagenet_file`` (the Keras Applications
"notop" file name; nothing is ever downloaded from the internet), or a Path: a Keras
Applications-style backbone file (``.h5``), or a whole-model weights file of this same
architecture (``.weights.h5`` / ``.keras``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd

import covidct.keras_backend  # noqa: F401  (no TensorFlow under JAX)
from covidct.config import parse_enum
from covidct.models.weights import ChannelAdaptation, WeightsCacheLike, load_weights

logger = logging.getLogger(__name__)

InputShape = tuple[int, int, int]
Weights = str | Path | None

FPN_FEATURE_SIZE = 256
FPN_LAYERS: tuple[str, str, str] = (
    "conv4_block1_preact_relu",
    "conv5_block1_preact_relu",
    "post_relu",
)
LSTM_UNITS = 2048


ApplicationFn = Callable[..., keras.Model]


@dataclass(frozen=True)
class BackboneSpec:
    """One registry entry.

    ``application``: the Keras Applications constructor of the convolutional trunk;
    ``imagenet_file``: its ImageNet "notop" weights file name in a cache directory;
    ``min_size``: smallest square input side the model builds for; ``head``: ``pool``,
    ``lstm`` or ``fpn``.
    """

    name: str
    application: ApplicationFn
    imagenet_file: str
    min_size: int
    head: str = "pool"

    def build(
        self,
        input_shape: InputShape,
        num_classes: int = 2,
        weights: Weights = None,
        *,
        weights_cache: WeightsCacheLike = None,
        channel_adaptation: ChannelAdaptation | str = ChannelAdaptation.SUM,
    ) -> keras.Model:
        """Build the model for float32 (B, *input_shape) inputs -> (B, num_classes) softmax.

        ``weights_cache``: where ``weights="imagenet"`` is read (see :class:`WeightsCache`).
        Raises ValueError for an input smaller than ``min_size`` or with other than 1 or 3
        channels, or ``weights="imagenet"`` without ``weights_cache``; FileNotFoundError
        when the weights file is missing; IntegrityError when a remote copy fails its checks.
        """
        adaptation = parse_enum(ChannelAdaptation, str(channel_adaptation), "channel adaptation")
        _check_input_shape(self, input_shape)
        inputs = keras.Input(input_shape, name="slice")
        trunk_input = _adapt_channels(inputs, adaptation)
        trunk = self.application(include_top=False, weights=None, input_tensor=trunk_input)
        outputs = _HEADS[self.head](inputs, trunk, num_classes)
        model = keras.Model(inputs, outputs, name=self.name)
        if weights is not None:
            load_weights(model, self, weights, weights_cache, adaptation)
        return model


def _check_input_shape(spec: BackboneSpec, input_shape: InputShape) -> None:
    if len(input_shape) != 3 or input_shape[2] not in (1, 3):
        raise ValueError(f"{spec.name}: input_shape must be (H, W, 1 or 3), got {input_shape}")
    if min(input_shape[:2]) < spec.min_size:
        raise ValueError(
            f"{spec.name}: input {input_shape[0]}x{input_shape[1]} is smaller than the "
            f"backbone's minimum {spec.min_size}x{spec.min_size}"
        )


def _adapt_channels(inputs: keras.KerasTensor, adaptation: ChannelAdaptation) -> keras.KerasTensor:
    if adaptation is ChannelAdaptation.REPLICATE and inputs.shape[-1] == 1:
        return keras.layers.Concatenate(axis=-1, name="replicate_rgb")([inputs] * 3)
    return inputs


def _softmax(features: keras.KerasTensor, num_classes: int, name: str) -> keras.KerasTensor:
    # float32 output even under a mixed-precision policy (keras mixed precision guide).
    return keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name=name)(
        features
    )


def _pool_head(
    inputs: keras.KerasTensor, trunk: keras.Model, num_classes: int
) -> keras.KerasTensor:
    pooled = keras.layers.GlobalAveragePooling2D(name="avg_pool")(trunk.output)
    return _softmax(pooled, num_classes, "predictions")


def _lstm_head(
    inputs: keras.KerasTensor, trunk: keras.Model, num_classes: int
) -> keras.KerasTensor:
    """The seed's ResNet152-LSTM: rows of the slice through two LSTMs + pooled CNN features."""
    height, width, channels = inputs.shape[1:]
    rows = keras.layers.Reshape((height, width * channels), name="slice_rows")(inputs)
    sequence = keras.layers.LSTM(LSTM_UNITS, return_sequences=True, name="lstm_1")(rows)
    sequence = keras.layers.LSTM(LSTM_UNITS, name="lstm_2")(sequence)
    pooled = keras.layers.AveragePooling2D(pool_size=2, padding="same", name="avg_pool_2x2")(
        trunk.output
    )
    features = keras.layers.Flatten(name="cnn_features")(pooled)
    merged = keras.layers.Concatenate(name="lstm_cnn_concat")([sequence, features])
    return _softmax(merged, num_classes, "predictions")


def _upsample_like(source: keras.KerasTensor, target: keras.KerasTensor, name: str):
    """Nearest-neighbour resize of ``source`` to ``target``'s static spatial size."""
    size = tuple(target.shape[1:3])
    if tuple(source.shape[1:3]) == size:
        return source
    factor = (size[0] // source.shape[1], size[1] // source.shape[2])
    if (source.shape[1] * factor[0], source.shape[2] * factor[1]) == size:
        return keras.layers.UpSampling2D(factor, interpolation="nearest", name=name)(source)
    return keras.layers.Resizing(*size, interpolation="nearest", name=name)(source)


def _conv(features: int, kernel: int, name: str, strides: int = 1, padding: str = "same"):
    return keras.layers.Conv2D(features, kernel, strides=strides, padding=padding, name=name)


def _fpn_pyramid(trunk: keras.Model) -> list[keras.KerasTensor]:
    """P3..P7 of the COVID-CTset authors' pyramid (see module docstring)."""
    c3, c4, c5 = (trunk.get_layer(name).output for name in FPN_LAYERS)
    size = FPN_FEATURE_SIZE
    p5 = _conv(size, 1, "C5_reduced")(c5)
    p5_up = _upsample_like(p5, c4, "P5_upsampled")
    p5 = _conv(size, 3, "P5")(p5)
    p4 = _conv(size, 1, "C4_reduced")(c4)
    p4 = keras.layers.Concatenate(axis=3, name="P4_merged")([p5_up, p4])
    p4_up = _upsample_like(p4, c3, "P4_upsampled")
    p4 = _conv(size, 3, "P4", padding="valid")(p4)
    p3 = _conv(size, 1, "C3_reduced")(c3)
    p3 = keras.layers.Concatenate(axis=3, name="P3_merged")([p4_up, p3])
    p3 = _conv(size, 3, "P3", padding="valid")(p3)
    p6 = _conv(size, 3, "P6", strides=2)(c5)
    p7 = keras.layers.Activation("relu", name="C6_relu")(p6)
    p7 = _conv(size, 3, "P7", strides=2)(p7)
    return [p3, p4, p5, p6, p7]


def _fpn_head(inputs: keras.KerasTensor, trunk: keras.Model, num_classes: int):
    initializer = keras.initializers.RandomNormal(mean=0.0, stddev=0.001)
    level_predictions = []
    for level, pyramid_map in enumerate(_fpn_pyramid(trunk), start=3):
        flat = keras.layers.Flatten(name=f"P{level}_flatten")(pyramid_map)
        dropped = keras.layers.Dropout(0.5, name=f"P{level}_dropout")(flat)
        level_predictions.append(
            keras.layers.Dense(
                num_classes, activation="relu", kernel_initializer=initializer, name=f"P{level}_cls"
            )(dropped)
        )
    merged = keras.layers.Concatenate(axis=1, name="pyramid_concat")(level_predictions)
    return keras.layers.Dense(
        num_classes,
        activation="softmax",
        kernel_initializer=initializer,
        dtype="float32",
        name="predictions",
    )(merged)


_HEADS = {"pool": _pool_head, "lstm": _lstm_head, "fpn": _fpn_head}

_APPS = keras.applications
BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        BackboneSpec(
            "inceptionv3",
            _APPS.InceptionV3,
            "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
            75,
        ),
        BackboneSpec("vgg16", _APPS.VGG16, "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", 32),
        BackboneSpec("vgg19", _APPS.VGG19, "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5", 32),
        BackboneSpec(
            "resnet50", _APPS.ResNet50, "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", 32
        ),
        BackboneSpec(
            "xception", _APPS.Xception, "xception_weights_tf_dim_ordering_tf_kernels_notop.h5", 71
        ),
        BackboneSpec(
            "resnet152",
            _APPS.ResNet152,
            "resnet152_weights_tf_dim_ordering_tf_kernels_notop.h5",
            32,
        ),
        BackboneSpec(
            "resnet152_lstm",
            _APPS.ResNet152,
            "resnet152_weights_tf_dim_ordering_tf_kernels_notop.h5",
            32,
            head="lstm",
        ),
        BackboneSpec(
            "resnet50v2_fpn",
            _APPS.ResNet50V2,
            "resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
            96,
            head="fpn",
        ),
    )
}


def get_backbone(name: str) -> BackboneSpec:
    """Registry lookup; raise ValueError listing the valid names for an unknown one."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; valid: {', '.join(BACKBONES)}") from None


def build_model(
    name: str,
    input_shape: InputShape,
    num_classes: int = 2,
    weights: Weights = None,
    *,
    weights_cache: WeightsCacheLike = None,
    channel_adaptation: ChannelAdaptation | str = ChannelAdaptation.SUM,
) -> keras.Model:
    """Build registry model ``name`` (see :meth:`BackboneSpec.build`); unknown -> ValueError."""
    return get_backbone(name).build(
        input_shape,
        num_classes,
        weights,
        weights_cache=weights_cache,
        channel_adaptation=channel_adaptation,
    )


# --------------------------------------------------------------------------- listing


def parameter_counts(model: keras.Model) -> tuple[int, int]:
    """(total, non-trainable) parameter counts, as ``model.summary()`` reports them."""
    non_trainable = int(sum(np.prod(weight.shape) for weight in model.non_trainable_weights))
    trainable = int(sum(np.prod(weight.shape) for weight in model.trainable_weights))
    return trainable + non_trainable, non_trainable


def list_models(input_shape: InputShape, names: list[str] | None = None) -> pd.DataFrame:
    """One row per registry model: ``name``, ``total_params``, ``non_trainable_params``, ``note``
    and ``imagenet_file`` (the "notop" file ``weights="imagenet"`` reads from the weights cache).

    Models whose minimum input is larger than ``input_shape`` get counts of -1 and a ``note``.
    Builds every model (random weights): ~1 minute on 2 CPU cores at 512x512.
    """
    rows = []
    for name in names or list(BACKBONES):
        spec = BACKBONES[name]
        if min(input_shape[:2]) < spec.min_size:
            note = f"needs at least {spec.min_size}x{spec.min_size}"
            rows.append((name, -1, -1, note, spec.imagenet_file))
            continue
        model = spec.build(input_shape)
        rows.append((name, *parameter_counts(model), "", spec.imagenet_file))
        del model
    columns = ["name", "total_params", "non_trainable_params", "note", "imagenet_file"]
    return pd.DataFrame(rows, columns=columns)


def run_models_command(input_shape: InputShape) -> str:
    """The table printed by ``covidct models --input-shape H,W,C`` (thousands separated)."""
    table = list_models(input_shape)
    formatted = table.assign(
        total_params=table["total_params"].map(lambda count: f"{count:,}" if count >= 0 else "-"),
        non_trainable_params=table["non_trainable_params"].map(
            lambda count: f"{count:,}" if count >= 0 else "-"
        ),
    )
    header = f"input shape {input_shape[0]}x{input_shape[1]}x{input_shape[2]}\n"
    return header + formatted.to_string(index=False)
