"""Ground truth of a synthetic batch (:mod:`covidct.batch.synth`), written beside the batch,
never inside it: ``patients.csv``, ``slices.csv``, ``masks.npz`` (packed per-slice lesion and
look-alike masks) and ``truth.json``; and their readers.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from covidct.batch.phantom import SIZE, ellipse_mask
from covidct.safe_csv import write_csv

TRUTH_SUFFIX = ".truth"
PATIENTS_CSV, SLICES_CSV, MASKS_NPZ, TRUTH_JSON = (
    "patients.csv",
    "slices.csv",
    "masks.npz",
    "truth.json",
)


@dataclass
class TruthCollector:
    """Truth rows and masks collected while writing."""

    patients: list[dict[str, object]] = field(default_factory=list)
    slices: list[dict[str, object]] = field(default_factory=list)
    masks: dict[str, np.ndarray] = field(default_factory=dict)  # key -> packed bits


def default_truth_dir(out_dir: str | Path) -> Path:
    """Where :func:`write_synthetic_batch` writes the truth of ``out_dir`` by default: the
    sibling folder ``<out_dir>.truth`` (e.g. ``inbox/synth-a`` -> ``inbox/synth-a.truth``)."""
    out_dir = Path(out_dir)
    return out_dir.with_name(out_dir.name + TRUTH_SUFFIX)


def _write_masks(path: Path, masks: dict[str, np.ndarray]) -> None:
    """A NumPy ``.npz`` (zip of ``.npy``) with fixed time stamps: the same masks, the same bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for key in sorted(masks):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, masks[key], allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())


def write_truth(truth_dir: Path, truth: TruthCollector, about: dict[str, Any]) -> None:
    """Write the collected truth into ``truth_dir`` (created): the patient and slice tables
    and the lesion masks, with ``about`` (the batch's generation settings). Raises OSError."""
    truth_dir.mkdir(parents=True, exist_ok=True)
    patients = pd.DataFrame(truth.patients, columns=PATIENT_TRUTH_COLUMNS)
    write_csv(patients, truth_dir / PATIENTS_CSV)  # every CSV we write: covidct.safe_csv
    slices = pd.DataFrame(truth.slices, columns=SLICE_TRUTH_COLUMNS)
    write_csv(slices, truth_dir / SLICES_CSV)
    _write_masks(truth_dir / MASKS_NPZ, truth.masks)
    text = json.dumps(about, indent=2, sort_keys=True, ensure_ascii=True, allow_nan=False)
    (truth_dir / TRUTH_JSON).write_text(text + "\n", encoding="utf-8")


#: Columns of ``patients.csv`` (see :func:`read_truth`).
PATIENT_TRUTH_COLUMNS: tuple[str, ...] = (
    "patient_id",
    "label",
    "severity_band",
    "target_percent",
    "whole_lung_percent",
    "involvement_percent",
    "bilateral",
    "findings",
    "lookalikes",
    "lesions",
)
#: Columns of ``slices.csv`` (see :func:`read_truth`).
SLICE_TRUTH_COLUMNS: tuple[str, ...] = (
    "path",
    "patient_id",
    "series",
    "open_lung",
    "z_mm",
    "lung_pixels",
    "lesion_pixels",
    "involvement",
    "lookalike_pixels",
    "lung_ellipses",
)


def read_truth(truth_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read the truth of a synthetic batch: ``(patients, slices)``.

    ``patients``, one row per patient in batch order: ``patient_id`` (str, as in the batch;
    ``<source>/<patient_id>`` is its grouping key), ``label`` (``Positive``/``Negative``),
    ``severity_band`` (``none``/``mild``/``moderate``/``severe`` for Positive patients, ``""`` for
    Negative ones; drawn, ``covidct.batch.lesions.BANDS``), ``target_percent`` (float64, the
    drawn percent of the whole lung involved), ``whole_lung_percent`` (float64, a coarse 3-D
    estimate of the percent the drawn lesions cover: near the target, below it when the lesion
    cap stopped it), ``involvement_percent`` (float64, measured: 100 x lesion pixels / lung pixels
    summed over the patient's written open-lung slices, which cut the lungs at only a few
    heights, so it can differ much from the target), ``bilateral`` (bool), ``findings`` and
    ``lookalikes`` (str, ``;``-joined names of ``covidct.batch.lesions.FINDINGS`` and
    ``LOOKALIKE_RATES`` present anywhere in the patient, ``""`` for none; not necessarily cut by
    a written slice), ``lesions`` (int64, lesions drawn).

    ``slices``, one row per written slice in writing order: ``path`` (str, relative to the batch,
    e.g. ``patient12/SR_2/IM00003.tif``), ``patient_id``, ``series`` (str), ``open_lung`` (bool),
    ``z_mm`` (float64, height in the lungs, NaN on closed-lung slices), ``lung_pixels``,
    ``lesion_pixels``, ``lookalike_pixels`` (int64, of the 512x512 slice), ``involvement``
    (float64, lesion_pixels / lung_pixels, 0 without lung), ``lung_ellipses`` (str, the two lung
    ellipses as ``row,col,radius_rows,radius_cols;...`` in pixels; :func:`read_lung_mask`).

    Raises FileNotFoundError when ``patients.csv`` or ``slices.csv`` is missing.
    """
    truth_dir = Path(truth_dir)
    text = {"keep_default_na": False, "dtype": str}
    patients = pd.read_csv(truth_dir / PATIENTS_CSV, **text)  # type: ignore[call-overload]
    slices = pd.read_csv(truth_dir / SLICES_CSV, **text)  # type: ignore[call-overload]
    for column in ("target_percent", "whole_lung_percent", "involvement_percent"):
        patients[column] = patients[column].astype("float64")
    patients["bilateral"] = patients["bilateral"] == "True"
    patients["lesions"] = patients["lesions"].astype("int64")
    slices["open_lung"] = slices["open_lung"] == "True"
    slices["z_mm"] = slices["z_mm"].replace("", "NaN").astype("float64")
    for column in ("lung_pixels", "lesion_pixels", "lookalike_pixels"):
        slices[column] = slices[column].astype("int64")
    slices["involvement"] = slices["involvement"].astype("float64")
    return patients, slices


def _read_mask(truth_dir: str | Path, path: str, kind: str) -> np.ndarray:
    truth_dir = Path(truth_dir)
    with np.load(truth_dir / MASKS_NPZ, allow_pickle=False) as masks:
        key = f"{kind}/{path}"
        if key in masks.files:
            return np.unpackbits(masks[key])[: SIZE * SIZE].reshape(SIZE, SIZE).astype(bool)
    listed = pd.read_csv(truth_dir / SLICES_CSV, usecols=["path"], dtype=str)["path"]
    if path not in set(listed):
        raise KeyError(f"{truth_dir}: no slice {path!r} in {SLICES_CSV}")
    return np.zeros((SIZE, SIZE), dtype=bool)


def read_lesion_mask(truth_dir: str | Path, path: str) -> np.ndarray:
    """The COVID-19 lesion mask of slice ``path`` (relative to the batch, as in ``slices.csv``):
    bool (512, 512), True on pixels where a lesion was drawn (inside the lungs only); all False
    for slices without lesions (Negative patients, closed-lung slices, slices missing them).

    Raises KeyError when ``path`` is not a slice of the batch, FileNotFoundError without truth.
    """
    return _read_mask(truth_dir, path, "lesion")


def read_lookalike_mask(truth_dir: str | Path, path: str) -> np.ndarray:
    """Like :func:`read_lesion_mask` for the look-alikes (nodule, atelectasis, emphysema)."""
    return _read_mask(truth_dir, path, "lookalike")


def read_lung_mask(truth_dir: str | Path, path: str) -> np.ndarray:
    """The lungs of slice ``path``: bool (512, 512), exactly the region lesions were drawn in
    (``lung_pixels`` of ``slices.csv`` counts it). Raises KeyError for an unknown ``path``."""
    slices = pd.read_csv(Path(truth_dir) / SLICES_CSV, dtype=str, keep_default_na=False)
    found = slices.loc[slices["path"] == path, "lung_ellipses"]
    if found.empty:
        raise KeyError(f"{truth_dir}: no slice {path!r} in {SLICES_CSV}")
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    for ellipse in found.iloc[0].split(";"):
        row, col, radius_rows, radius_cols = (float(v) for v in ellipse.split(","))
        mask |= ellipse_mask((row, col), (radius_rows, radius_cols))
    return mask
