"""CT selection algorithm of the COVID-CTset work: keep the slices where the lungs are open.

Source: Rahimzadeh, Attar, Sakhaei, "A fully automated deep learning-based network for detecting
COVID-19 from a new and large lung CT scan dataset", Biomedical Signal Processing and Control
2021 (doi:10.1016/j.bspc.2021.102588), and the authors' reference code
(github.com/mr7495/COVID-CT-Code, ``CT_selection_algorithm.py``).

Per sequence (one SR folder of one patient), for each slice in Negin values (HU = value - 1024):
count the pixels below 300 (``schema.DARK_THRESHOLD``; about -724 HU, i.e. air and aerated lung)
in rows 240-340 and columns 120-370 (``schema.DARK_ROWS`` / ``schema.DARK_COLS``, half-open as
the reference code's ``pixel[240:340, 120:370]``: 100 x 250 = 25,000 pixels). Keep the slices
whose count is strictly greater than ``(max - min) / 1.5`` of the sequence's counts.

On the threshold: the reference code computes ``threshold = (max_zero - min_zero) / 1.5`` and
keeps ``np.array(zero) > threshold``, which is also the issue's wording; it is *not*
``min + (max - min) / 1.5``. The two differ when the smallest count is far from zero (e.g. counts
100, 110, 130: this rule keeps all three, the other only 130). We follow the reference code.
Degenerate cases follow from the same formula: a constant sequence has threshold 0 and keeps
every slice with at least one dark pixel; an empty sequence keeps nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from covidct import schema
from covidct.batch.slices import read_slice

logger = logging.getLogger(__name__)

#: Divisor of the threshold ``(max - min) / 1.5`` (reference code, see module docstring).
THRESHOLD_DIVISOR: float = 1.5
SELECTION_COLUMNS: tuple[str, ...] = ("path", "position", "dark_pixels", "threshold", "keep")


def dark_pixel_count(slice_: np.ndarray) -> int:
    """Number of pixels below ``DARK_THRESHOLD`` in rows [240, 340), columns [120, 370).

    ``slice_``: 2-D array of Negin values (uint16 (512, 512) in practice; any numeric dtype).
    Raises ValueError when it is not 2-D or smaller than 340 rows x 370 columns.
    """
    array = np.asarray(slice_)
    rows, cols = schema.DARK_ROWS, schema.DARK_COLS
    if array.ndim != 2 or array.shape[0] < rows[1] or array.shape[1] < cols[1]:
        raise ValueError(
            f"expected a 2-D slice of at least {rows[1]}x{cols[1]} pixels, got shape {array.shape}"
        )
    window = array[rows[0] : rows[1], cols[0] : cols[1]]
    return int(np.count_nonzero(window < schema.DARK_THRESHOLD))


def selection_threshold(counts: Sequence[int]) -> float:
    """``(max(counts) - min(counts)) / 1.5``; NaN for an empty sequence."""
    if len(counts) == 0:
        return float("nan")
    values = np.asarray(counts, dtype=np.float64)
    return float((values.max() - values.min()) / THRESHOLD_DIVISOR)


def select_open_lung(counts: Sequence[int]) -> np.ndarray:
    """Boolean mask (len(counts),): True where the count exceeds ``(max - min) / 1.5``.

    ``counts``: dark-pixel counts of one sequence (list or 1-D array), any order. Raises
    ValueError on a negative or non-finite (NaN: unreadable slice) count, or a non-1-D input.
    """
    values = np.asarray(counts, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"counts must be 1-D, got shape {values.shape}")
    if values.size == 0:
        return np.zeros(0, dtype=bool)
    if not np.isfinite(values).all() or (values < 0).any():
        raise ValueError(f"counts must be finite and >= 0, got {values.tolist()[:10]}...")
    return values > selection_threshold(values.tolist())


def select_sequence(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Apply the selection to one sequence of Negin TIFF slices (one SR folder).

    Returns one row per path, in the given order, with :data:`SELECTION_COLUMNS`: ``path`` (str),
    ``position`` (int64, 0-based index in ``paths``), ``dark_pixels`` (int64), ``threshold``
    (float64, the sequence's ``(max - min) / 1.5``) and ``keep`` (bool). Raises
    covidct.batch.slices.SliceReadError when a slice cannot be read.
    """
    counts = [dark_pixel_count(read_slice(path)) for path in paths]
    frame = pd.DataFrame(
        {
            "path": pd.Series([str(path) for path in paths], dtype="str"),
            "position": np.arange(len(paths), dtype=np.int64),
            "dark_pixels": np.asarray(counts, dtype=np.int64),
            "threshold": np.full(len(paths), selection_threshold(counts), dtype=np.float64),
            "keep": select_open_lung(counts),
        }
    )
    return frame.loc[:, list(SELECTION_COLUMNS)]


def select_batch(batch_dir: str | Path) -> pd.DataFrame:
    """Apply the selection to every ``<patient>/<SR_n>/`` folder of a Negin-style batch.

    Slices are taken in file-name order (``IM00001.tif`` ...). Returns the
    :func:`select_sequence` columns plus ``patient_id`` and ``series`` first; empty (with those
    columns) when the batch has no slices. Raises covidct.batch.slices.SliceReadError on an
    unreadable slice.
    """
    frames = []
    for patient in sorted(p for p in Path(batch_dir).iterdir() if p.is_dir()):
        for series in schema.SERIES:
            paths = sorted((patient / series).glob("*.tif"))
            if paths:
                frame = select_sequence(paths)
                frame.insert(0, "series", series)
                frame.insert(0, "patient_id", patient.name)
                frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["patient_id", "series", *SELECTION_COLUMNS])
    return pd.concat(frames, ignore_index=True)


#: Column of the dataset manifest that marks the slices the selection keeps (bool).
SELECTED_COLUMN = "selected"
#: Manifest columns a sequence is identified by, and ordered by, for :func:`mark_selected`.
SEQUENCE_COLUMNS: tuple[str, ...] = ("patient_key", "series")


def mark_selected(manifest: pd.DataFrame) -> pd.Series:
    """Mark each manifest row that the COVID-CTset selection keeps (bool Series, same index).

    ``manifest``: per-slice rows with ``patient_key``, ``series``, ``instance`` (nullable int,
    may have gaps), ``path`` and ``dark_pixels`` (count of pixels below ``DARK_THRESHOLD`` in
    the selection window, :func:`dark_pixel_count`). Each (patient_key, series) sequence is
    ordered by instance then path and judged by :func:`select_open_lung` as one sequence. A row
    without a dark-pixel count (an image smaller than the window) is not selected, and its
    sequence is judged on the others.

    A batch whose sequences were already selected upstream (COVID-CTset's ``all.csv`` images,
    with gaps in their instance numbers) keeps every slice. A slice the rule kept has a count
    above ``(M - m0) / 1.5`` of its original sequence (max M, min m0). In any subset of kept
    slices (min m', max M' <= M) the new threshold ``(M' - m') / 1.5`` is below m' whenever
    ``m' > 0.4 M``, which holds when ``m0 < 0.4 M`` (the original sequence reached closed lung).
    tests/data/test_selection.py checks this on sequences shaped like the real roster.
    """
    selected = pd.Series(False, index=manifest.index, dtype=bool)
    if manifest.empty:
        return selected
    order = manifest.sort_values(["instance", "path"], kind="stable", na_position="last")
    for _, sequence in order.groupby(list(SEQUENCE_COLUMNS), sort=False, dropna=False):
        counts = pd.to_numeric(sequence["dark_pixels"], errors="coerce")
        known = counts.notna().to_numpy()
        if known.any():
            keep = select_open_lung(counts[known].astype(np.int64).tolist())
            selected.loc[sequence.index[known]] = keep
    return selected


def with_selection(manifest: pd.DataFrame) -> pd.DataFrame:
    """``manifest`` with :data:`SELECTED_COLUMN` (bool) set by :func:`mark_selected`."""
    out = manifest.copy()
    out[SELECTED_COLUMN] = mark_selected(manifest).to_numpy(dtype=bool)
    return out


def selected_only(manifest: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``manifest`` marked selected, index reset.

    Raises KeyError naming :data:`SELECTED_COLUMN` when the manifest was never marked (a dataset
    manifest written before selection became data: re-curate it).
    """
    if SELECTED_COLUMN not in manifest.columns:
        raise KeyError(
            f"manifest has no {SELECTED_COLUMN!r} column: it was curated before slice selection "
            "became part of the dataset manifest; run curate again"
        )
    return manifest[manifest[SELECTED_COLUMN].astype(bool)].reset_index(drop=True)
