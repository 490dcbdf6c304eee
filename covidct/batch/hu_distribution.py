"""Pooled pixel Hounsfield-unit distributions of CT slices, per patient, and their comparison.

Used by :mod:`covidct.batch.drift`. Stored values (HU = value - 1024) are counted into 1-HU bins
over
[-1024, 3071] HU (stored 0..4095; higher values, metal, land in the last bin) with
``numpy.bincount``: every pixel of a read slice counts, and the 1-D Wasserstein distance between
two such histograms is exact for the binned distributions, W1 = sum over bins of |F_a - F_b| x
1 HU (Ramdas, Garcia Trillos & Cuturi 2017, "On Wasserstein two-sample testing", 1-D case).
Which slices are read is a deterministic, seeded sample (:func:`sample_slices`). The
permutation test exchanges whole patients (their slices are not independent) and re-sums patient
histograms with one matrix product per chunk of permutations; its p-value is (1 + #{permuted >=
observed}) / (1 + permutations) (Phipson & Smyth 2010).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from covidct.batch.slices import read_slice

#: Stored values counted (HU = value - 1024): -1024 .. 3071 HU in 1-HU bins.
N_BINS = 4096
_PERMUTATION_CHUNK = 128


@dataclass(frozen=True)
class PatientHistograms:
    """Per-patient HU histograms: ``counts`` int64 (patients, N_BINS), bin i = HU i - 1024."""

    patient_keys: tuple[str, ...]
    counts: np.ndarray
    slices: int


def sample_slices(
    manifest: pd.DataFrame,
    *,
    max_slices_per_patient: int,
    max_patients: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """The readable slices drawn for the HU comparison (deterministic for a ``seed``).

    ``manifest``: columns ``patient_key`` and ``path`` (``read_error`` rows with a value are
    dropped). Patients sorted by key, at most ``max_patients`` drawn; then at most
    ``max_slices_per_patient`` slices of each, drawn without replacement. Raises ValueError
    when a column is missing or a limit is below 1.
    """
    missing = {"patient_key", "path"} - set(manifest.columns)
    if missing:
        raise ValueError(f"manifest lacks column(s) {sorted(missing)}")
    if max_slices_per_patient < 1 or (max_patients is not None and max_patients < 1):
        raise ValueError("max_slices_per_patient and max_patients must be >= 1")
    readable = readable_slices(manifest)
    rng = np.random.default_rng(seed)
    patients = sorted(readable["patient_key"].astype(str).unique())
    if max_patients is not None and len(patients) > max_patients:
        patients = sorted(rng.choice(patients, size=max_patients, replace=False).tolist())
    chosen = []
    for key in patients:
        rows = readable[readable["patient_key"].astype(str) == key].sort_values("path")
        if len(rows) > max_slices_per_patient:
            picks = np.sort(rng.choice(len(rows), size=max_slices_per_patient, replace=False))
            rows = rows.iloc[picks]
        chosen.append(rows)
    if not chosen:
        return readable.iloc[:0]
    return pd.concat(chosen, ignore_index=True)


def patient_histograms(slices: pd.DataFrame, image_root: Path) -> PatientHistograms:
    """Count every pixel of each slice (``image_root / path``) into per-patient 1-HU bins.

    Raises :class:`covidct.batch.slices.SliceReadError` (naming the file) for an unreadable slice.
    """
    keys = sorted(slices["patient_key"].astype(str).unique())
    index = {key: row for row, key in enumerate(keys)}
    counts = np.zeros((len(keys), N_BINS), dtype=np.int64)
    for key, path in zip(slices["patient_key"].astype(str), slices["path"], strict=True):
        pixels = read_slice(Path(image_root) / str(path), expected_shape=None)
        counts[index[key]] += np.bincount(np.minimum(pixels.ravel(), N_BINS - 1), minlength=N_BINS)
    return PatientHistograms(tuple(keys), counts, len(slices))


def wasserstein_hu(a: np.ndarray, b: np.ndarray) -> float:
    """1-D Wasserstein distance in HU between two histograms on the 1-HU grid (any counts > 0).

    ``a``, ``b``: (N_BINS,) or (k, N_BINS) counts; returns a float (or (k,) array). Exact for
    the binned distributions: sum |CDF_a - CDF_b| x 1 HU.
    """
    cdf_a = np.cumsum(a, axis=-1) / np.sum(a, axis=-1, keepdims=True)
    cdf_b = np.cumsum(b, axis=-1) / np.sum(b, axis=-1, keepdims=True)
    return np.abs(cdf_a - cdf_b).sum(axis=-1)  # type: ignore[no-any-return]


def permutation_p_value(
    reference: PatientHistograms, batch: PatientHistograms, *, permutations: int, seed: int
) -> tuple[float, float]:
    """(observed W1 in HU, permutation p-value), exchanging whole patients between the groups.

    Raises ValueError when either side has no patient.
    """
    if not reference.patient_keys or not batch.patient_keys:
        raise ValueError("the HU comparison needs slices on both sides")
    counts = np.concatenate([reference.counts, batch.counts]).astype(np.float64)
    total = counts.sum(axis=0)
    observed = float(wasserstein_hu(batch.counts.sum(axis=0), reference.counts.sum(axis=0)))
    n_all, n_batch = len(counts), len(batch.patient_keys)
    rng = np.random.default_rng(seed)
    exceed = 0
    for start in range(0, permutations, _PERMUTATION_CHUNK):
        size = min(_PERMUTATION_CHUNK, permutations - start)
        masks = np.zeros((size, n_all))
        for row in range(size):
            masks[row, rng.choice(n_all, size=n_batch, replace=False)] = 1.0
        grouped = masks @ counts
        rest = total - grouped
        valid = (grouped.sum(axis=1) > 0) & (rest.sum(axis=1) > 0)
        distances = np.full(size, -np.inf)
        distances[valid] = wasserstein_hu(grouped[valid], rest[valid])
        exceed += int((distances >= observed - 1e-9).sum())
    return observed, (1 + exceed) / (1 + permutations)


def readable_slices(manifest: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``manifest`` without a ``read_error`` (all rows when it has no such column)."""
    if "read_error" in manifest.columns:
        return manifest[manifest["read_error"].isna()]
    return manifest
