"""The NumPy host input pipeline: :func:`covidct.data.make_dataset` without TensorFlow.

Used under every Keras backend but TensorFlow (JAX, PyTorch), and under TensorFlow when asked
(``pipeline="numpy"``, ``COVIDCT_PIPELINE=numpy``). :class:`SliceDataset` is a
``keras.utils.PyDataset``: Keras's fit and predict read it through worker threads with a queue of
prepared batches (prefetch), and iterating it yields the same (images, targets) pairs.

Per slice: :func:`covidct.data.read_slice` (tifffile, uint16), the intensity transform in NumPy,
area resizing (:func:`area_resize`, the box filter of ``tf.image.resize(method="area")``), kept
in memory after the first read. Per batch: the seed's Table 5 augmentation as one affine warp per
image (:func:`numpy_affine_warp`, the NumPy twin of :func:`covidct.data.augment.affine_warp`,
parameters drawn by :func:`numpy_random_affine` from a generator seeded by (seed, batch index)).
Every batch is a pure function of its index, so worker threads may build batches in any order.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from covidct.data.augment import AugmentConfig
from covidct.data.loading import IntensityTransform, one_hot_labels, read_slice
from covidct.schema import CLASS_NAMES

logger = logging.getLogger(__name__)


def area_weights(size_in: int, size_out: int) -> np.ndarray:
    """float32 (size_out, size_in): the share of each input pixel in each output pixel.

    Output pixel i averages the input interval [i s, (i + 1) s), s = size_in / size_out, each
    input pixel weighted by its overlap with it (rows sum to 1): TensorFlow's ``ResizeArea``.
    """
    scale = size_in / size_out
    low = np.arange(size_out, dtype=np.float64)[:, None] * scale
    pixels = np.arange(size_in, dtype=np.float64)[None, :]
    overlap = np.minimum(low + scale, pixels + 1.0) - np.maximum(low, pixels)
    return (np.clip(overlap, 0.0, None) / scale).astype(np.float32)


def area_resize(image: np.ndarray, size: int) -> np.ndarray:
    """Area-resize a float32 (H, W, C) image to (size, size, C); the image itself when square
    of that size already. Equals ``tf.image.resize(image, (size, size), method="area")`` to
    float rounding (tested)."""
    height, width = image.shape[:2]
    if height == size and width == size:
        return image
    if height % size == 0 and width % size == 0:  # whole blocks: their means (4x faster)
        blocks = image.reshape(size, height // size, size, width // size, image.shape[2])
        return blocks.mean(axis=(1, 3), dtype=np.float32)
    rows, columns = area_weights(height, size), area_weights(width, size)
    return np.einsum("sh,hwc,tw->stc", rows, image, columns, optimize=True).astype(np.float32)


def numpy_random_affine(
    rng: np.random.Generator, batch: int, height: int, width: int, config: AugmentConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Draw (matrices float32 (B, 2, 2), shifts float32 (B, 2)) for :func:`numpy_affine_warp`.

    The distribution of :func:`covidct.data.augment.random_affine`: rotation(angle) @
    diag(zoom_x, zoom_y) @ diag(flip_x, flip_y), angle uniform in [0, rotation_degrees), zooms in
    [1 - zoom, 1 + zoom], each enabled flip -1 with probability 0.5; shifts uniform in
    +-(width_shift x W, height_shift x H) pixels.
    """
    angle = rng.uniform(0.0, math.radians(config.rotation_degrees), batch)
    zoom = rng.uniform(1.0 - config.zoom, 1.0 + config.zoom, (batch, 2))
    enabled = np.array([config.horizontal_flip, config.vertical_flip])
    flips = np.where((rng.uniform(0.0, 1.0, (batch, 2)) < 0.5) & enabled, -1.0, 1.0)
    scale = zoom * flips
    cos, sin = np.cos(angle), np.sin(angle)
    matrices = np.stack(
        [
            np.stack([cos * scale[:, 0], -sin * scale[:, 1]], axis=-1),
            np.stack([sin * scale[:, 0], cos * scale[:, 1]], axis=-1),
        ],
        axis=1,
    )
    limits = np.array([config.width_shift * width, config.height_shift * height])
    shifts = rng.uniform(-1.0, 1.0, (batch, 2)) * limits
    return matrices.astype(np.float32), shifts.astype(np.float32)


def numpy_affine_warp(images: np.ndarray, matrices: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """:func:`covidct.data.augment.affine_warp` in NumPy: same arguments, same result.

    ``images`` float (B, H, W, C); ``matrices`` (B, 2, 2); ``shifts`` (B, 2) pixels. Output pixel
    (x, y) samples the input bilinearly at ``M @ ((x, y) - c) + c + shift``, c the image centre;
    neighbours outside the image take the image's minimum, so values stay in its [min, max].
    Returns float32 (B, H, W, C).
    """
    images = np.asarray(images, dtype=np.float32)
    batch, height, width, channels = images.shape
    ys, xs = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    px = xs.reshape(1, -1).astype(np.float32) - np.float32(cx)
    py = ys.reshape(1, -1).astype(np.float32) - np.float32(cy)
    m = np.asarray(matrices, dtype=np.float32)
    s = np.asarray(shifts, dtype=np.float32)
    qx = m[:, 0, 0:1] * px + m[:, 0, 1:2] * py + np.float32(cx) + s[:, 0:1]
    qy = m[:, 1, 0:1] * px + m[:, 1, 1:2] * py + np.float32(cy) + s[:, 1:2]
    flat = images.reshape(batch, height * width, channels)
    fill = images.min(axis=(1, 2))[:, None, :]
    x0, y0 = np.floor(qx), np.floor(qy)
    wx, wy = (qx - x0)[..., None], (qy - y0)[..., None]

    def corner(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        inside = (x >= 0) & (y >= 0) & (x <= width - 1) & (y <= height - 1)
        xi = np.clip(x, 0, width - 1).astype(np.int64)
        yi = np.clip(y, 0, height - 1).astype(np.int64)
        values = np.take_along_axis(flat, (yi * width + xi)[..., None], axis=1)
        return np.where(inside[..., None], values, fill)

    top = corner(x0, y0) * (1.0 - wx) + corner(x0 + 1.0, y0) * wx
    bottom = corner(x0, y0 + 1.0) * (1.0 - wx) + corner(x0 + 1.0, y0 + 1.0) * wx
    warped = top * (1.0 - wy) + bottom * wy
    return warped.reshape(batch, height, width, channels).astype(np.float32)


class SliceDataset(keras.utils.PyDataset):
    """TIFF slices -> batches of (float32 (B, S, S, 1) images, one-hot float32 (B, 2) targets).

    The arguments and the batches of :func:`covidct.data.make_dataset` (which documents them),
    as a ``keras.utils.PyDataset``: ``workers`` threads (default min(4, CPUs)) prepare up to
    ``max_queue_size`` batches ahead while the model steps. Finite unless ``repeat`` (then
    ``num_batches`` is None and fit needs ``steps_per_epoch``). Shuffling draws one permutation
    per pass from (seed, pass); ``balance_classes`` draws each slot's class with probability
    1/2 from (seed, batch) and walks each class's own reshuffled, repeated order. Raises
    ValueError as :func:`covidct.data.make_dataset`; a slice that cannot be read raises, when its
    batch is built, :class:`covidct.batch.slices.SliceReadError` naming the file.
    """

    def __init__(
        self,
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
        workers: int | None = None,
        max_queue_size: int = 8,
    ) -> None:
        if len(paths) != len(labels):
            raise ValueError(f"{len(paths)} paths but {len(labels)} labels")
        if balance_classes and not (shuffle and repeat):
            raise ValueError("balance_classes needs shuffle=True and repeat=True")
        threads = workers if workers is not None else min(4, os.cpu_count() or 1)
        super().__init__(workers=threads, use_multiprocessing=False, max_queue_size=max_queue_size)
        self.paths = [Path(path) for path in paths]
        self.targets = one_hot_labels(labels)
        self.classes = np.asarray(labels, dtype=np.int64).reshape(-1)
        self.image_size, self.batch_size = image_size, int(batch_size)
        self.augment, self.shuffle, self.seed = augment, shuffle, int(seed)
        self.transform = transform or IntensityTransform()
        self.repeat, self.drop_remainder = repeat, drop_remainder
        self.cache = cache
        self.balanced = balance_classes and self._all_classes_present()
        self.epoch = 0
        self._images: dict[int, np.ndarray] = {}
        self._class_draws: list[np.ndarray] = []  # per batch: the class of each slot
        self._class_before: list[np.ndarray] = []  # per batch: earlier draws of each class
        self._class_orders: dict[tuple[int, int], np.ndarray] = {}
        self._lock = threading.Lock()
        if isinstance(cache, Path) and Path(cache).is_file():
            stored = np.load(cache)
            self._images = {index: stored[index] for index in range(len(stored))}

    def _all_classes_present(self) -> bool:
        counts = np.bincount(self.classes, minlength=len(CLASS_NAMES))
        if (counts == 0).any():
            logger.warning("balance_classes: class counts %s; drawing without balancing", counts)
            return False
        return True

    # ------------------------------------------------------------------ order

    @property
    def num_batches(self) -> int | None:
        """Batches per pass; None when ``repeat`` (infinite)."""
        if self.repeat:
            return None
        count = len(self.paths)
        return count // self.batch_size if self.drop_remainder else -(-count // self.batch_size)

    def __len__(self) -> int:
        batches = self.num_batches
        if batches is None:
            raise TypeError("a repeated SliceDataset is infinite")
        return batches

    def _order(self, epoch: int) -> np.ndarray:
        count = len(self.paths)
        if not self.shuffle:
            return np.arange(count)
        return np.random.default_rng([self.seed, epoch]).permutation(count)

    def _stream(self, start: int, stop: int) -> np.ndarray:
        """Slice indices at stream positions [start, stop) (one pass, or repeated passes)."""
        count = len(self.paths)
        if not self.repeat:
            return self._order(self.epoch)[start : min(stop, count)]
        positions = np.arange(start, stop)
        passes = positions // count
        picked = np.empty(len(positions), dtype=np.int64)
        for one in np.unique(passes):
            mask = passes == one
            picked[mask] = self._order(int(one))[positions[mask] % count]
        return picked

    def _balanced_indices(self, index: int) -> np.ndarray:
        """The slices of batch ``index`` under ``balance_classes``."""
        classes = len(CLASS_NAMES)
        with self._lock:
            while len(self._class_draws) <= index:
                done = len(self._class_draws)
                before = (
                    self._class_before[-1] + np.bincount(self._class_draws[-1], minlength=classes)
                    if done
                    else np.zeros(classes, dtype=np.int64)
                )
                rng = np.random.default_rng([self.seed, done, 7])
                self._class_draws.append(rng.integers(0, classes, self.batch_size))
                self._class_before.append(before)
            draws, before = self._class_draws[index], self._class_before[index]
        picked = np.empty(self.batch_size, dtype=np.int64)
        for label in range(classes):
            members = np.flatnonzero(self.classes == label)
            slots = np.flatnonzero(draws == label)
            for slot, position in zip(slots, before[label] + np.arange(len(slots)), strict=True):
                one_pass, offset = divmod(int(position), len(members))
                picked[slot] = self._class_order(label, one_pass, members)[offset]
        return picked

    def _class_order(self, label: int, one_pass: int, members: np.ndarray) -> np.ndarray:
        key = (label, one_pass)
        order = self._class_orders.get(key)
        if order is None:
            rng = np.random.default_rng([self.seed + label, one_pass])
            order = self._class_orders[key] = rng.permutation(members)
        return order

    # ------------------------------------------------------------------ batches

    def image(self, index: int) -> np.ndarray:
        """Slice ``index`` decoded, transformed and resized: float32 (S, S, 1)."""
        kept = self._images.get(index)
        if kept is not None:
            return kept
        values = self.transform.apply(read_slice(self.paths[index]))[..., None]
        if self.image_size is not None:
            values = area_resize(values, self.image_size)
        if self.cache is not False:
            self._images[index] = values
            if isinstance(self.cache, Path) and len(self._images) == len(self.paths):
                self._write_cache(Path(self.cache))
        return values

    def _write_cache(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            np.save(handle, np.stack([self._images[i] for i in range(len(self.paths))]))

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if self.balanced:
            picked = self._balanced_indices(index)
        else:
            picked = self._stream(index * self.batch_size, (index + 1) * self.batch_size)
        if len(picked) == 0:
            raise IndexError(f"batch {index} is past the end ({self.num_batches} batches)")
        images = np.stack([self.image(int(i)) for i in picked])
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, self.epoch, index, 11])
            height, width = images.shape[1:3]
            matrices, shifts = numpy_random_affine(rng, len(picked), height, width, self.augment)
            images = numpy_affine_warp(images, matrices, shifts)
        return images, self.targets[picked]

    def on_epoch_end(self) -> None:
        """A finite shuffled dataset reshuffles for its next pass."""
        if not self.repeat:
            self.epoch += 1

    def __iter__(self) -> Any:
        batches = self.num_batches
        index = 0
        while batches is None or index < batches:
            yield self[index]
            index += 1
        self.on_epoch_end()


def bilinear_weights(size_in: int, size_out: int) -> np.ndarray:
    """float32 (size_out, size_in): bilinear interpolation with half-pixel centres.

    Output pixel i samples the input at (i + 0.5) size_in / size_out - 0.5, clamped to the edge
    pixels, without antialiasing: ``tf.image.resize(method="bilinear")``'s weights.
    """
    position = (np.arange(size_out, dtype=np.float64) + 0.5) * (size_in / size_out) - 0.5
    floor = np.floor(position)
    lerp = position - floor
    low = np.clip(floor, 0, size_in - 1).astype(np.int64)
    high = np.clip(np.ceil(position), 0, size_in - 1).astype(np.int64)
    weights = np.zeros((size_out, size_in), dtype=np.float64)
    rows = np.arange(size_out)
    np.add.at(weights, (rows, low), 1.0 - lerp)
    np.add.at(weights, (rows, high), lerp)
    return weights.astype(np.float32)


def resize_bilinear(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize float (..., H, W) maps to (..., size[0], size[1]) bilinearly (half-pixel centres,
    no antialiasing); equals ``tf.image.resize(method="bilinear")`` to float rounding. Returns
    float32."""
    values = np.asarray(images, dtype=np.float32)
    rows = bilinear_weights(values.shape[-2], int(size[0]))
    columns = bilinear_weights(values.shape[-1], int(size[1]))
    return np.einsum("sh,...hw,tw->...st", rows, values, columns, optimize=True).astype(np.float32)
