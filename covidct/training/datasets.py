"""The training table (``path``, ``label`` per slice) as class indices and as the datasets of a
run (``tf.data`` under TensorFlow, the NumPy ``PyDataset`` otherwise:
:func:`covidct.data.make_dataset`): shuffled, rebalanced and augmented for training; in order
for evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from covidct.data.pipelines import make_dataset
from covidct.schema import CLASS_NAMES, LABEL_TO_CLASS
from covidct.training.profiles import TrainingConfig

PATH_COLUMN = "path"


LABEL_COLUMN = "label"


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


def slice_paths(frame: pd.DataFrame, image_root: Path) -> list[Path]:
    """The file of each row of ``frame``: ``image_root / path``."""
    return [Path(image_root) / str(path) for path in frame[PATH_COLUMN]]


def train_dataset(
    frame: pd.DataFrame, image_root: Path, config: TrainingConfig, global_batch: int, epoch: int
) -> Any:
    """The training input of one epoch: shuffled (seed + ``epoch``), augmented on the host
    unless on the device, repeated, in full batches of ``global_batch``."""
    return make_dataset(
        slice_paths(frame, image_root),
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


def eval_dataset(
    paths: Sequence[Path],
    labels: Sequence[int],
    config: TrainingConfig,
    batch: int,
    cache: bool = False,
) -> Any:
    """The evaluation input of ``paths`` and ``labels``: in order, unaugmented, batches of
    ``batch`` (the last may be short), cached in memory with ``cache``."""
    return make_dataset(
        paths,
        labels,
        image_size=config.image_size,
        batch_size=batch,
        transform=config.transform,
        cache=cache,
    )
