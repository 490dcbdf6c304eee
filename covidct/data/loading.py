"""Input pipeline: 16-bit CT slices from TIFF files to float32 model inputs, on any Keras backend.

Slices are Negin-style TIFFs (docs/architecture.md, "The Negin-style batch contract"): single page,
2-D, uint16 DICOM stored values with HU = value - 1024 (:data:`covidct.schema.HU_OFFSET`). They are
read by :func:`covidct.batch.slices.read_slice` (tifffile, never an 8-bit image loader), cast to
float32
with all 16 bits kept, passed through a documented :class:`IntensityTransform`, resized if asked,
cached once in memory (or in a file cache) and then batched, augmented (the seed's Table 5
augmentation, :class:`AugmentConfig`) and prefetched.

:func:`make_dataset` has two implementations with the same batches: ``tf.data``
(:mod:`covidct.data.tfdata`, the default under the TensorFlow backend) and a NumPy pipeline fed
through ``keras.utils.PyDataset`` worker threads (:mod:`covidct.data.host`, every other backend:
it imports no TensorFlow). This module imports neither TensorFlow nor a backend.

Augmentation is one random affine warp per image (flips, rotation, zoom, shift). On the host it
runs TensorFlow's ``ImageProjectiveTransformV3`` kernel (``tf.data``) or the NumPy twin of
:func:`covidct.data.augment.affine_warp`; inside an XLA-compiled train step on the device
(:class:`covidct.data.augment.DeviceAugmentation`) it runs
:func:`covidct.data.augment.affine_warp` in ``keras.ops`` (any backend); tests hold them equal.
Pixels mapped from outside the slice take the slice's minimum value (air), and bilinear
interpolation is a convex combination, so augmented values always stay inside the range of the
input slice (no wrap-around).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from covidct.batch.slices import read_slice as read_negin_slice
from covidct.config import parse_enum
from covidct.data.augment import AugmentConfig as AugmentConfig
from covidct.schema import CLASS_NAMES, HU_OFFSET

logger = logging.getLogger(__name__)

#: The host pipelines :func:`make_dataset` can use.
PIPELINES = ("tf.data", "numpy")


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

    def apply(self, stored: Any) -> Any:
        """Map stored values (any shape, any numeric dtype) to float32 model inputs.

        A NumPy array (or list) gives a NumPy float32 array; a TensorFlow tensor gives a
        TensorFlow tensor (:func:`covidct.data.tfdata.apply_transform`; TensorFlow is imported
        only then).
        """
        if isinstance(stored, np.ndarray | list | tuple | np.generic):
            values = np.asarray(stored, dtype=np.float32)
            if self.mode is IntensityMode.RAW:
                return values
            if self.mode is IntensityMode.SLICE_MAX:
                return values / np.float32(max(float(values.max(initial=0.0)), 1.0))
            low = np.float32(self.level_hu - self.width_hu / 2.0 + HU_OFFSET)
            return np.clip((values - low) / np.float32(self.width_hu), 0.0, 1.0)
        from covidct.data.tfdata import apply_transform

        return apply_transform(self, stored)

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


# --------------------------------------------------------------------------- datasets


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
