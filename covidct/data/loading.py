"""Input pipeline: 16-bit CT slices from TIFF files to float32 model inputs, on any Keras backend.

Slices are Negin-style TIFFs (docs/architecture.md, "The Negin-style batch contract"): single page,
2-D, uint16 DICOM stored values with HU = value - 1024 (:data:`covidct.schema.HU_OFFSET`). They are
read by :func:`covidct.batch.slices.read_slice` (tifffile, never an 8-bit image loader), cast to
float32
with all 16 bits kept, passed through a documented :class:`IntensityTransform`, resized if asked,
cached once in memory (or in a file cache) and then batched, augmented (the seed's Table 5
augmentation, :class:`AugmentConfig`) and prefetched.

:func:`covidct.data.pipelines.make_dataset` has two implementations with the same batches:
``tf.data`` (:mod:`covidct.data.tfdata`, the default under the TensorFlow backend) and a NumPy
pipeline fed through ``keras.utils.PyDataset`` worker threads (:mod:`covidct.data.host`, every
other backend: it imports no TensorFlow). This module imports neither TensorFlow nor a backend.

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

    def apply(self, stored: Any) -> np.ndarray:
        """Map stored values (a NumPy array or list, any shape, any numeric dtype) to float32
        model inputs of the same shape. Inside a ``tf.data`` graph use
        :func:`covidct.data.tfdata.apply_transform` (the same maps in TensorFlow ops); a tensor
        here raises TypeError naming it.
        """
        if not isinstance(stored, np.ndarray | list | tuple | np.generic):
            raise TypeError(
                f"IntensityTransform.apply takes NumPy values, got {type(stored).__name__}; "
                "for a TensorFlow tensor use covidct.data.tfdata.apply_transform"
            )
        values = np.asarray(stored, dtype=np.float32)
        if self.mode is IntensityMode.RAW:
            return values
        if self.mode is IntensityMode.SLICE_MAX:
            return values / np.float32(max(float(values.max(initial=0.0)), 1.0))
        low = np.float32(self.level_hu - self.width_hu / 2.0 + HU_OFFSET)
        return np.clip((values - low) / np.float32(self.width_hu), 0.0, 1.0)

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
