"""One entry to the input pipelines: :func:`make_dataset` picks ``tf.data``
(:mod:`covidct.data.tfdata`, the default under the TensorFlow backend) or the NumPy
``keras.utils.PyDataset`` pipeline (:mod:`covidct.data.host`, every other backend; no TensorFlow
imported). Both build on :mod:`covidct.data.loading` (reading, intensity transform, labels), so
this module sits above the three of them and none imports it back.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from covidct.data.augment import AugmentConfig
from covidct.data.loading import IntensityTransform

#: The host pipelines :func:`make_dataset` can use.
PIPELINES = ("tf.data", "numpy")


def default_pipeline() -> str:
    """``"tf.data"`` under the TensorFlow backend, else ``"numpy"`` (imports no TensorFlow).

    ``COVIDCT_PIPELINE`` (``tf.data`` or ``numpy``) overrides it: under TensorFlow both work;
    under JAX or PyTorch only ``numpy`` does. Raises ValueError for another value.
    """
    chosen = os.environ.get("COVIDCT_PIPELINE", "").strip()
    if chosen:
        if chosen not in PIPELINES:
            raise ValueError(f"COVIDCT_PIPELINE={chosen!r}; expected one of {PIPELINES}")
        return chosen
    import keras

    return "tf.data" if keras.backend.backend() == "tensorflow" else "numpy"


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
    pipeline: str | None = None,
) -> Any:
    """TIFF slices and class indices -> batches of (float32 (B, S, S, 1), one-hot float32 (B, 2)).

    ``paths``: TIFF files (2-D uint16, stored values). ``labels``: class indices (0 normal,
    1 COVID). ``image_size`` S: square side after area resizing (None keeps the native size,
    which must then be equal for all slices to batch). Decoding, the intensity ``transform``
    (default :class:`IntensityTransform`) and resizing run once per slice in a parallel map and
    are cached (``cache=True`` in memory, a Path for a file cache, False for none), so later
    epochs never decode a TIFF again. Then: shuffle (whole set, reshuffled every epoch),
    ``repeat`` (infinite), batch, ``augment`` (one random affine warp per image, seeds derived
    from ``seed``), prefetch. ``balance_classes`` (needs ``shuffle`` and ``repeat``) draws every
    image from each class with equal probability (each class shuffled and repeated on its own),
    so a batch is half COVID on average whatever the class ratio of ``labels``.
    (With one class only it logs a warning and shuffles as usual.) Raises ValueError if lengths
    differ, a label is not a class, or ``balance_classes`` is asked without ``shuffle`` and
    ``repeat``.
    A file that cannot be read fails the iteration with an error naming the file.
    ``pipeline``: ``"tf.data"`` (a ``tf.data.Dataset``,
    :func:`covidct.data.tfdata.tf_dataset`) or ``"numpy"`` (a ``keras.utils.PyDataset`` of
    NumPy batches, :class:`covidct.data.host.SliceDataset`; no TensorFlow); None takes
    :func:`default_pipeline`. Both yield the same decoded, resized batches in the same order
    when not shuffled; shuffles and augmentation draws differ (each its own generator).
    """
    chosen = pipeline or default_pipeline()
    if chosen not in PIPELINES:
        raise ValueError(f"pipeline {chosen!r}; expected one of {PIPELINES}")
    arguments: dict[str, Any] = dict(
        image_size=image_size,
        batch_size=batch_size,
        augment=augment,
        shuffle=shuffle,
        seed=seed,
        cache=cache,
        transform=transform,
        repeat=repeat,
        drop_remainder=drop_remainder,
        balance_classes=balance_classes,
    )
    if chosen == "numpy":
        from covidct.data.host import SliceDataset

        return SliceDataset(paths, labels, **arguments)
    from covidct.data.tfdata import tf_dataset

    return tf_dataset(paths, labels, **arguments)
