"""The seed's Table 5 augmentation on the accelerator, in ``keras.ops`` (any Keras 3 backend).

:class:`DeviceAugmentation` sits in front of a model so the augmentation runs inside the compiled
train step (XLA under TensorFlow with ``jit_compile``, and under JAX always), on whatever
accelerator the backend uses. It imports Keras only, never TensorFlow, so the same layer serves a
TensorFlow worker and a JAX one (``benchmarks/gpu_train.py`` runs it under JAX).

Table 5 (flips, 0-360 degree rotation, 5% zoom, 5% width and height shift) is one affine map per
image: ``rotation(angle) @ diag(zoom_x, zoom_y) @ diag(flip_x, flip_y)`` plus a shift, sampled
bilinearly. Neighbours outside the image take the image's minimum (air in CT), and bilinear
interpolation is a convex combination, so every output value lies within [min, max] of its input
image: no wrap-around, no values outside the intensity range. The host (``tf.data``) path in
:mod:`covidct.data` draws the same distribution with TensorFlow's stateless Philox streams.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import keras
from keras import ops

import covidct.keras_backend  # noqa: F401  (under JAX/PyTorch: no TensorFlow import)


@dataclass(frozen=True)
class AugmentConfig:
    """Random augmentation of the seed's Table 5 (defaults are Table 5's values).

    ``rotation_degrees`` = 360 draws an angle uniformly in [0, 360) degrees; ``zoom`` = 0.05 draws
    independent x and y scale factors in [0.95, 1.05]; ``width_shift``/``height_shift`` = 0.05
    shift by up to 5% of the width/height (the semantics of the Keras image generator used in the
    COVID-CTset authors' code). Flips each happen with probability 0.5.
    """

    horizontal_flip: bool = True
    vertical_flip: bool = True
    rotation_degrees: float = 360.0
    zoom: float = 0.05
    width_shift: float = 0.05
    height_shift: float = 0.05

    def to_params(self) -> dict[str, str]:
        """Flat string parameters for MLflow (``augment_*``)."""
        return {f"augment_{key}": str(value) for key, value in asdict(self).items()}


def affine_warp(images: Any, matrices: Any, shifts: Any) -> Any:
    """Warp a batch with one affine map per image, bilinear, filled with each image's minimum.

    ``images``: float (B, H, W, C) with static H and W. ``matrices``: float32 (B, 2, 2) mapping an
    output pixel's (x, y) offset from the image centre to the input offset; ``shifts``: float32
    (B, 2) input (x, y) translation in pixels. Output pixel (x, y) samples the input at
    ``M @ ((x, y) - c) + c + shift`` with c = ((W - 1) / 2, (H - 1) / 2). Neighbours outside the
    image take the image minimum, so every output value lies in [min, max] of its input image.
    Returns a tensor of the input's shape and dtype. Gathers and arithmetic only: compiles under
    XLA on every backend.
    """
    dtype = images.dtype
    images = ops.cast(images, "float32")
    height, width, channels = (int(size) for size in images.shape[1:])
    qx, qy = _source_coordinates(matrices, shifts, height, width)  # (B, H*W) each
    fill = ops.min(images, axis=(1, 2))[:, None, :]  # (B, 1, C)
    flat = ops.reshape(images, (-1, height * width, channels))
    x0, y0 = ops.floor(qx), ops.floor(qy)
    wx, wy = (qx - x0)[..., None], (qy - y0)[..., None]

    def corner(dx: float, dy: float) -> Any:
        return _gather_or_fill(flat, x0 + dx, y0 + dy, height, width, fill)

    top = corner(0.0, 0.0) * (1.0 - wx) + corner(1.0, 0.0) * wx
    bottom = corner(0.0, 1.0) * (1.0 - wx) + corner(1.0, 1.0) * wx
    warped = top * (1.0 - wy) + bottom * wy
    return ops.cast(ops.reshape(warped, (-1, height, width, channels)), dtype)


def _source_coordinates(matrices: Any, shifts: Any, height: int, width: int) -> tuple[Any, Any]:
    """Input (x, y) sampled by each output pixel, each float32 (B, H * W)."""
    ys, xs = ops.meshgrid(ops.arange(height), ops.arange(width), indexing="ij")
    centre_x, centre_y = (width - 1) / 2.0, (height - 1) / 2.0
    px = ops.reshape(ops.cast(xs, "float32"), (1, -1)) - centre_x
    py = ops.reshape(ops.cast(ys, "float32"), (1, -1)) - centre_y
    m = ops.cast(matrices, "float32")
    s = ops.cast(shifts, "float32")
    qx = m[:, 0, 0:1] * px + m[:, 0, 1:2] * py + centre_x + s[:, 0:1]
    qy = m[:, 1, 0:1] * px + m[:, 1, 1:2] * py + centre_y + s[:, 1:2]
    return qx, qy


def _gather_or_fill(flat: Any, x: Any, y: Any, height: int, width: int, fill: Any) -> Any:
    """Values of ``flat`` (B, H*W, C) at integer-valued (x, y) (B, H*W); outside -> ``fill``."""
    inside = (x >= 0) & (y >= 0) & (x <= width - 1) & (y <= height - 1)
    xi = ops.clip(ops.cast(x, "int32"), 0, width - 1)
    yi = ops.clip(ops.cast(y, "int32"), 0, height - 1)
    index = (yi * width + xi)[..., None]  # (B, H*W, 1), broadcast over channels
    values = ops.take_along_axis(flat, index, axis=1)
    return ops.where(inside[..., None], values, fill)


def random_affine(
    batch: Any, height: int, width: int, config: AugmentConfig, seed: Any
) -> tuple[Any, Any]:
    """Draw (matrices float32 (B, 2, 2), shifts float32 (B, 2)) for :func:`affine_warp`.

    ``seed``: a ``keras.random.SeedGenerator`` (advanced on each draw) or an int. The matrix is
    rotation(angle) @ diag(zoom_x, zoom_y) @ diag(flip_x, flip_y), a flip being -1 with
    probability 0.5 when enabled; shifts are uniform in +-(width_shift x W, height_shift x H)
    pixels (Table 5).
    """

    def uniform(low: float, high: float, count: int) -> Any:
        return keras.random.uniform((batch, count), low, high, dtype="float32", seed=seed)

    angle = uniform(0.0, math.radians(config.rotation_degrees), 1)[:, 0]
    zoom = uniform(1.0 - config.zoom, 1.0 + config.zoom, 2)
    enabled = ops.convert_to_tensor([config.horizontal_flip, config.vertical_flip])
    flips = ops.where((uniform(0.0, 1.0, 2) < 0.5) & enabled, -1.0, 1.0)
    scale = zoom * flips
    cos, sin = ops.cos(angle), ops.sin(angle)
    matrices = ops.stack(
        [
            ops.stack([cos * scale[:, 0], -sin * scale[:, 1]], axis=-1),
            ops.stack([sin * scale[:, 0], cos * scale[:, 1]], axis=-1),
        ],
        axis=1,
    )
    limits = ops.convert_to_tensor(
        [config.width_shift * width, config.height_shift * height], "float32"
    )
    shifts = uniform(-1.0, 1.0, 2) * limits
    return matrices, shifts


@keras.saving.register_keras_serializable(package="covidct")
class DeviceAugmentation(keras.layers.Layer):
    """Table 5 augmentation as a layer, applied only when ``training`` is true.

    Put in front of a model so the augmentation runs on the accelerator inside the compiled train
    step; identity at inference. Inputs float (B, H, W, C) with static H and W; computes in
    float32 whatever the global mixed-precision policy; output has the input's shape. Each image's
    values stay within its [min, max] (:func:`affine_warp`).
    """

    def __init__(
        self, config: dict[str, Any] | None = None, seed: int | None = None, **kwargs: Any
    ) -> None:
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.augment = AugmentConfig(**(config or {}))
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        if not training:
            return inputs
        height, width = int(inputs.shape[1]), int(inputs.shape[2])
        batch = ops.shape(inputs)[0]
        matrices, shifts = random_affine(batch, height, width, self.augment, self.seed_generator)
        return affine_warp(inputs, matrices, shifts)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "config": asdict(self.augment), "seed": self.seed}
