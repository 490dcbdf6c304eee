"""Input pipeline: 16-bit CT slices from TIFF files to float32 model inputs.

Slices are Negin-style TIFFs (docs/architecture.md, "The Negin-style batch contract"): single page,
2-D, uint16 DICOM stored values with HU = value - 1024 (:data:`covidct.schema.HU_OFFSET`). They are
read by :func:`covidct.batch.slices.read_slice` (tifffile, never an 8-bit image loader), cast to
float32
with all 16 bits kept, passed through a documented :class:`IntensityTransform`, resized if asked,
cached once in memory (or in a file cache) and then batched, augmented (the seed's Table 5
augmentation, :class:`AugmentConfig`) and prefetched.

Augmentation is one random affine warp per image (flips, rotation, zoom, shift). On the host
(``tf.data``) it runs TensorFlow's ``ImageProjectiveTransformV3`` kernel
(:func:`projective_warp`); inside an XLA-compiled train step on the device
(:class:`covidct.data.augment.DeviceAugmentation`) it runs
:func:`covidct.data.augment.affine_warp`, the
same bilinear warp written with ``keras.ops`` gathers (any backend), because
``ImageProjectiveTransformV3`` has no XLA kernel; tests hold the two equal.
Pixels mapped from outside the slice take the slice's minimum value (air), and bilinear
interpolation is a convex combination, so augmented values always stay inside the range of the
input slice (no wrap-around).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np
import tensorflow as tf

from covidct.batch.slices import read_slice as read_negin_slice
from covidct.config import parse_enum
from covidct.data.augment import (
    AugmentConfig as AugmentConfig,
    DeviceAugmentation as DeviceAugmentation,
    affine_warp,
)
from covidct.schema import CLASS_NAMES, HU_OFFSET

logger = logging.getLogger(__name__)

AUTOTUNE = tf.data.AUTOTUNE


class IntensityMode(StrEnum):
    """How uint16 stored values become float32 model inputs.

    - ``raw``: the stored values themselves as float32 (0..65535; CT ~0..5000). This is what the
      COVID-CTset authors fed their networks: their evaluation reads slices with
      ``cv2.imread(path, cv2.IMREAD_UNCHANGED)`` and predicts on the unscaled values, and their
      Keras image generator has no ``rescale`` (mr7495/COVID-CT-Code,
      ``COVID_Train&Validation.ipynb``). Dividing by the slice maximum appears in their dataset
      README only as a way to *view* the images.
    - ``slice-max``: value / max(slice), in [0, 1] (the README's viewing rule).
    - ``hu-window``: HU = value - 1024, clipped to [level - width/2, level + width/2] and mapped
      linearly to [0, 1].
    """

    RAW = "raw"
    SLICE_MAX = "slice-max"
    HU_WINDOW = "hu-window"


@dataclass(frozen=True)
class IntensityTransform:
    """uint16 stored values -> float32 model input, keeping all 16 bits.

    ``level_hu`` and ``width_hu`` (Hounsfield units) apply to ``hu-window`` only; the default is a
    lung window (level -600 HU, width 1500 HU: -1350..150 HU). float32 represents every uint16
    integer exactly, so no level is lost before the scaling.
    Raises ValueError for an unknown ``mode`` (listing the valid ones) or a non-positive
    ``width_hu``.
    """

    mode: IntensityMode = IntensityMode.HU_WINDOW
    level_hu: float = -600.0
    width_hu: float = 1500.0

    def __post_init__(self) -> None:
        mode = parse_enum(IntensityMode, str(self.mode), "intensity mode")
        object.__setattr__(self, "mode", mode)
        if not self.width_hu > 0:
            raise ValueError(f"width_hu must be > 0 HU, got {self.width_hu}")

    def apply(self, stored: tf.Tensor) -> tf.Tensor:
        """Map stored values (any shape, any numeric dtype) to float32 model inputs."""
        values = tf.cast(stored, tf.float32)
        if self.mode is IntensityMode.RAW:
            return values
        if self.mode is IntensityMode.SLICE_MAX:
            return values / tf.maximum(tf.reduce_max(values), 1.0)
        low = self.level_hu - self.width_hu / 2.0 + HU_OFFSET
        return tf.clip_by_value((values - low) / self.width_hu, 0.0, 1.0)

    def output_range(self) -> tuple[float, float]:
        """The closed interval the transformed values lie in."""
        return (0.0, 65535.0) if self.mode is IntensityMode.RAW else (0.0, 1.0)

    def to_params(self) -> dict[str, str]:
        """Flat string parameters for MLflow (``intensity_*``)."""
        return {f"intensity_{key}": str(value) for key, value in asdict(self).items()}


# --------------------------------------------------------------------------- decoding


def read_slice(path: Path) -> np.ndarray:
    """Read one TIFF slice through :func:`covidct.batch.slices.read_slice`, the one slice reader.

    Returns a native-endian uint16 array (H, W) of any 2-D shape, DICOM stored values,
    HU = value - 1024. Raises :class:`covidct.batch.slices.SliceReadError` (a ValueError naming
    the file
    and the reason) when the file is missing, not a readable TIFF, has more than one page,
    declares a decompression bomb, or is not a 2-D uint16 image.
    """
    return read_negin_slice(path, expected_shape=None)


def _read_slice_tf(path: tf.Tensor) -> tf.Tensor:
    def read(raw_path: bytes) -> np.ndarray:
        return read_slice(Path(raw_path.decode()))

    image = tf.numpy_function(read, [path], tf.uint16, stateful=False)
    return tf.ensure_shape(image, [None, None])


def _decode(path: tf.Tensor, image_size: int | None, transform: IntensityTransform) -> tf.Tensor:
    """Path -> float32 (image_size, image_size, 1) (native size when ``image_size`` is None)."""
    image = transform.apply(_read_slice_tf(path))[..., tf.newaxis]
    if image_size is None:
        return image
    native = tf.reduce_all(tf.shape(image)[:2] == image_size)
    resized = tf.cond(
        native,
        lambda: image,
        lambda: tf.image.resize(image, (image_size, image_size), method="area"),
    )
    return tf.ensure_shape(resized, [image_size, image_size, 1])


def one_hot_labels(labels: Sequence[int]) -> np.ndarray:
    """Class indices (0 normal, 1 COVID; :data:`CLASS_NAMES`) -> float32 one-hot (n, 2).

    Raises ValueError naming the first index outside [0, len(CLASS_NAMES)).
    """
    indices = np.asarray(labels, dtype=np.int64).reshape(-1)
    bad = np.flatnonzero((indices < 0) | (indices >= len(CLASS_NAMES)))
    if bad.size:
        raise ValueError(
            f"label {indices[bad[0]]} at position {bad[0]} is not a class index of {CLASS_NAMES}"
        )
    return np.eye(len(CLASS_NAMES), dtype=np.float32)[indices]


# --------------------------------------------------------------------------- augmentation


def random_affine_parameters(
    seed: tf.Tensor, batch: tf.Tensor, height: tf.Tensor, width: tf.Tensor, config: AugmentConfig
) -> tuple[tf.Tensor, tf.Tensor]:
    """Draw (matrices (B, 2, 2), shifts (B, 2)) for :func:`affine_warp` from a stateless seed.

    ``seed``: int32/int64 tensor of shape (2,); four Philox streams are derived from it. The draw
    is reproducible on one device kind, but XLA's Philox differs from the CPU kernel's.
    Matrix = rotation(angle) @ diag(zoom_x, zoom_y) @ diag(flip_x, flip_y), flips being -1 with
    probability 0.5 when enabled.
    """
    base = tf.cast(seed, tf.int64)

    def uniform(index: int, low: float, high: float, count: int = 1) -> tf.Tensor:
        stream = tf.stack([base[0], base[1] * 8 + index])
        return tf.random.stateless_uniform([batch, count], stream, low, high, alg="philox")

    angle = uniform(0, 0.0, math.radians(config.rotation_degrees))[:, 0]
    zoom = uniform(1, 1.0 - config.zoom, 1.0 + config.zoom, 2)
    enabled = tf.constant([config.horizontal_flip, config.vertical_flip])
    flips = tf.where((uniform(2, 0.0, 1.0, 2) < 0.5) & enabled, -1.0, 1.0)
    scale = zoom * flips
    cos, sin = tf.cos(angle), tf.sin(angle)
    matrices = tf.stack(
        [
            tf.stack([cos * scale[:, 0], -sin * scale[:, 1]], axis=-1),
            tf.stack([sin * scale[:, 0], cos * scale[:, 1]], axis=-1),
        ],
        axis=1,
    )
    extent = tf.cast(tf.stack([width, height]), tf.float32)
    limits = tf.constant([config.width_shift, config.height_shift], tf.float32) * extent
    shifts = (uniform(3, -1.0, 1.0, 2)) * limits
    return matrices, shifts


def projective_warp(images: tf.Tensor, matrices: tf.Tensor, shifts: tf.Tensor) -> tf.Tensor:
    """:func:`affine_warp` through TensorFlow's ``ImageProjectiveTransformV3`` kernel.

    Same arguments, same result (to float rounding), ~3.7x faster on CPU at 512x512, but no
    XLA kernel: used by the host (``tf.data``) path. The per-image minimum fill is obtained by
    warping ``image - min`` with fill 0 and adding ``min`` back; the result is clipped to the
    input's [min, max] against rounding.
    """
    dtype = images.dtype
    images = tf.cast(images, tf.float32)
    shape = tf.shape(images)
    height, width = shape[1], shape[2]
    centre = tf.stack([tf.cast(width - 1, tf.float32), tf.cast(height - 1, tf.float32)]) / 2.0
    m = tf.cast(matrices, tf.float32)
    offset = centre - tf.linalg.matvec(m, centre) + tf.cast(shifts, tf.float32)
    zeros = tf.zeros_like(offset)
    transforms = tf.concat([m[:, 0, :], offset[:, 0:1], m[:, 1, :], offset[:, 1:2], zeros], 1)
    low = tf.reduce_min(images, axis=[1, 2, 3], keepdims=True)
    high = tf.reduce_max(images, axis=[1, 2, 3], keepdims=True)
    warped = tf.raw_ops.ImageProjectiveTransformV3(
        images=images - low,
        transforms=transforms,
        output_shape=tf.stack([height, width]),
        fill_value=tf.constant(0.0),
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )
    return tf.cast(tf.clip_by_value(warped + low, low, high), dtype)


def augment_batch(
    images: tf.Tensor, seed: tf.Tensor, config: AugmentConfig, *, xla: bool = False
) -> tf.Tensor:
    """Table 5 augmentation of float (B, H, W, C) images, deterministic for a (2,) int seed.

    Output has the input's shape and dtype; each image's values stay within its [min, max].
    ``xla=True`` uses :func:`affine_warp` (compiles under XLA), else :func:`projective_warp`.
    """
    shape = tf.shape(images)
    matrices, shifts = random_affine_parameters(seed, shape[0], shape[1], shape[2], config)
    warp = affine_warp if xla else projective_warp
    return warp(images, matrices, shifts)


# --------------------------------------------------------------------------- datasets


def make_dataset(
    paths: Sequence[Path],
    labels: Sequence[int],
    *,
    image_size: int | None,
    batch_size: int,
    augment: AugmentConfig | None = None,
    shuffle: bool = False,
    seed: int = 0,
    cache: bool | Path = True,
    transform: IntensityTransform | None = None,
    repeat: bool = False,
    drop_remainder: bool = False,
    balance_classes: bool = False,
) -> tf.data.Dataset:
    """TIFF slices and class indices -> batches of (float32 (B, S, S, 1), one-hot float32 (B, 2)).

    ``paths``: TIFF files (2-D uint16, stored values). ``labels``: class indices (0 normal,
    1 COVID). ``image_size`` S: square side after area resizing (None keeps the native size,
    which must then be equal for all slices to batch). Decoding, the intensity ``transform``
    (default :class:`IntensityTransform`) and resizing run once per slice in a parallel map and
    are cached (``cache=True`` in memory, a Path for a file cache, False for none), so later
    epochs never decode a TIFF again. Then: shuffle (whole set, reshuffled every epoch),
    ``repeat`` (infinite), batch, ``augment`` (:func:`augment_batch`, stateless seeds derived
    from ``seed``), prefetch. ``balance_classes`` (needs ``shuffle`` and ``repeat``) draws every
    image from each class with equal probability (each class shuffled and repeated on its own),
    so a batch is half COVID on average whatever the class ratio of ``labels``.
    (With one class only it logs a warning and shuffles as usual.) Raises ValueError if lengths
    differ, a label is not a class, or ``balance_classes`` is asked without ``shuffle`` and
    ``repeat``.
    A file that cannot be read fails the iteration with an error naming the file.
    """
    if len(paths) != len(labels):
        raise ValueError(f"{len(paths)} paths but {len(labels)} labels")
    transform = transform or IntensityTransform()
    targets = one_hot_labels(labels)
    dataset = tf.data.Dataset.from_tensor_slices(([str(path) for path in paths], targets))
    dataset = dataset.map(
        lambda path, target: (_decode(path, image_size, transform), target),
        num_parallel_calls=AUTOTUNE,
        deterministic=True,
    )
    dataset = _cache(dataset, cache)
    if balance_classes:
        dataset = _balanced(dataset, labels, shuffle=shuffle, repeat=repeat, seed=seed)
    else:
        if shuffle:
            dataset = dataset.shuffle(max(len(paths), 1), seed=seed, reshuffle_each_iteration=True)
        if repeat:
            dataset = dataset.repeat()
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    if augment is not None:
        dataset = _augmented(dataset, augment, seed)
    return dataset.prefetch(AUTOTUNE)


def _balanced(
    dataset: tf.data.Dataset, labels: Sequence[int], *, shuffle: bool, repeat: bool, seed: int
) -> tf.data.Dataset:
    """Equal-probability draws from each class of ``dataset`` (infinite; see make_dataset)."""
    if not (shuffle and repeat):
        raise ValueError("balance_classes needs shuffle=True and repeat=True")
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(CLASS_NAMES))
    if (counts == 0).any():
        logger.warning("balance_classes: class counts %s; drawing without balancing", counts)
        return dataset.shuffle(int(counts.sum()), seed=seed, reshuffle_each_iteration=True).repeat()
    per_class = [
        dataset.filter(lambda _image, target, index=index: tf.argmax(target) == index)
        .shuffle(int(count), seed=seed + index, reshuffle_each_iteration=True)
        .repeat()
        for index, count in enumerate(counts)
    ]
    weights = [1.0 / len(per_class)] * len(per_class)
    return tf.data.Dataset.sample_from_datasets(per_class, weights=weights, seed=seed)


def _cache(dataset: tf.data.Dataset, cache: bool | Path) -> tf.data.Dataset:
    if cache is False:
        return dataset
    if cache is True:
        return dataset.cache()
    Path(cache).parent.mkdir(parents=True, exist_ok=True)
    return dataset.cache(str(cache))


def _augmented(dataset: tf.data.Dataset, augment: AugmentConfig, seed: int) -> tf.data.Dataset:
    seeds = tf.data.Dataset.random(seed=seed).batch(2, drop_remainder=True)
    paired = tf.data.Dataset.zip((dataset, seeds))
    return paired.map(
        lambda batch, batch_seed: (augment_batch(batch[0], batch_seed, augment), batch[1]),
        num_parallel_calls=AUTOTUNE,
        deterministic=True,
    )
