"""Batch drift: how far a newly landed (validated) batch lies from the curated reference data.

Three families of measures, each with a configured limit (:class:`covidct.config.DriftSettings`):

1. ``hu_wasserstein``: the 1-D Wasserstein (earth mover's) distance, in Hounsfield units, between
   the pooled per-pixel HU distributions of the batch and of the reference, with a permutation
   p-value over *patients* (slices of one patient are not independent, so patients are the unit
   that is exchanged). It drifts when the distance exceeds its limit **and** p < ``alpha``: a
   large distance from a handful of patients may be chance, and with thousands of slices a
   clinically meaningless distance is always "significant".
2. ``slice_<stat>``: for each per-slice statistic the manifest records (``mean``, ``p01``,
   ``p99``, ``border_mean`` in HU; ``dark_pixels`` as a count), the share of the batch's slices
   outside the reference's central range (its ``stat_quantiles``, default 1st-99th percentile,
   widened by ``stat_tolerance_hu`` for HU statistics). Without drift about 2% fall outside; it
   drifts above ``stat_outside_share_limit``.
3. ``unseen_<field>``: acquisition metadata (``source``, ``thickness_mm`` from
   ``Patient_details.csv``, ``kernel`` from ``batch.json`` when recorded): the share of the
   batch's slices whose value never occurs in the reference. Unknown values are not compared.

Sampling (what keeps it fast): at most ``max_slices_per_patient`` slices per patient and
``max_reference_patients`` reference patients are read, both drawn with a NumPy generator seeded
by ``seed`` (the same inputs always give the same report). Every pixel of a read slice is used:
stored values are counted into 1-HU bins over [-1024, 3071] HU (stored values 0..4095; higher
values, metal, land in the last bin) with ``numpy.bincount``, so the pooled distribution is a
histogram and the Wasserstein distance on it is exact: W1 = sum over bins of |F_a - F_b| x 1 HU
(Ramdas, Garcia Trillos & Cuturi 2017, "On Wasserstein two-sample testing", eq. 1 in 1-D). Each
permutation re-sums patient histograms (one matrix product for a chunk of permutations), so 999
permutations of 100 patients take well under a second. The p-value is (1 + #{permuted >=
observed}) / (1 + permutations) (Phipson & Smyth 2010).

A batch that drifts is still accepted: drift raises a ``batch_drift`` alert (:func:`drift_alert`)
naming the measures, it does not quarantine.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from covidct import schema
from covidct.alerts import Alert, AlertKind, Severity
from covidct.config import DriftSettings
from covidct.io import read_batch_info, read_patient_details, read_slice

#: Stored values counted (HU = value - 1024): -1024 .. 3071 HU in 1-HU bins.
N_BINS = 4096
#: Per-slice manifest statistics compared; all but ``dark_pixels`` are stored values (-> HU).
SLICE_STATS: tuple[str, ...] = ("mean", "p01", "p99", "border_mean", "dark_pixels")
_HU_STATS = frozenset({"mean", "p01", "p99", "border_mean"})
#: Acquisition fields compared as categories.
ACQUISITION_FIELDS: tuple[str, ...] = ("source", "thickness_mm", "kernel")
_PERMUTATION_CHUNK = 128


@dataclass(frozen=True)
class DriftMeasure:
    """One measure of one batch against the reference.

    ``value`` and ``limit`` in ``unit`` (``HU`` or ``share``); ``drifted``: ``value > limit``
    (and ``p_value < alpha`` where a p-value is given). ``detail``: one human line.
    """

    name: str
    value: float
    limit: float
    unit: str
    drifted: bool
    p_value: float | None = None
    detail: str = ""


@dataclass(frozen=True)
class DriftReport:
    """Every measure of a batch; ``drifted`` when any measure did."""

    batch_id: str
    measures: tuple[DriftMeasure, ...]
    reference_patients: int
    reference_slices: int
    batch_patients: int
    batch_slices: int

    @property
    def drifted(self) -> bool:
        """True when at least one measure drifted."""
        return any(m.drifted for m in self.measures)

    @property
    def drifted_measures(self) -> list[str]:
        """Names of the measures that drifted, in report order."""
        return [m.name for m in self.measures if m.drifted]

    def measure(self, name: str) -> DriftMeasure:
        """The measure called ``name``; KeyError naming the known ones otherwise."""
        for item in self.measures:
            if item.name == name:
                return item
        raise KeyError(f"no drift measure {name!r}; known: {[m.name for m in self.measures]}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe view (NaN becomes None)."""
        record = asdict(self)
        record["drifted"] = self.drifted
        record["drifted_measures"] = self.drifted_measures
        for item in record["measures"]:
            for key in ("value", "p_value"):
                if isinstance(item[key], float) and math.isnan(item[key]):
                    item[key] = None
        return record


@dataclass(frozen=True)
class PatientHistograms:
    """Per-patient HU histograms: ``counts`` int64 (patients, N_BINS), bin i = HU i - 1024."""

    patient_keys: tuple[str, ...]
    counts: np.ndarray
    slices: int


# --------------------------------------------------------------------------- reading


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
    readable = manifest
    if "read_error" in manifest.columns:
        readable = manifest[manifest["read_error"].isna()]
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

    Raises :class:`covidct.io.SliceReadError` (naming the file) for an unreadable slice.
    """
    keys = sorted(slices["patient_key"].astype(str).unique())
    index = {key: row for row, key in enumerate(keys)}
    counts = np.zeros((len(keys), N_BINS), dtype=np.int64)
    for key, path in zip(slices["patient_key"].astype(str), slices["path"], strict=True):
        pixels = read_slice(Path(image_root) / str(path), expected_shape=None)
        counts[index[key]] += np.bincount(np.minimum(pixels.ravel(), N_BINS - 1), minlength=N_BINS)
    return PatientHistograms(tuple(keys), counts, len(slices))


def acquisition_frame(batch_dir: Path, manifest: pd.DataFrame) -> pd.DataFrame:
    """Per-slice acquisition categories of one batch folder: ``path``, ``source``,
    ``thickness_mm`` (text, from ``Patient_details.csv`` by patient and series; None when
    unknown) and ``kernel`` (``batch.json``'s optional ``"kernel"`` string; None when absent).
    """
    details = read_patient_details(Path(batch_dir) / schema.PATIENT_DETAILS)
    thickness: dict[tuple[str, str], str] = {}
    for _, row in details.iterrows():
        for series in schema.SERIES:
            value = row[f"{series} Folder thickness(mm)"]
            if not pd.isna(value):
                thickness[(str(row[schema.PATIENT_COLUMN]), series)] = f"{float(value):g}"
    kernel = read_batch_info(batch_dir).get("kernel")
    return pd.DataFrame(
        {
            "path": manifest["path"].astype(str),
            "source": manifest["source"].astype(str),
            "thickness_mm": [
                thickness.get((str(p), str(s)))
                for p, s in zip(manifest["patient_id"], manifest["series"], strict=True)
            ],
            "kernel": str(kernel) if isinstance(kernel, str) and kernel else None,
        }
    )


# --------------------------------------------------------------------------- measures


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


def slice_stat_measures(
    reference: pd.DataFrame, batch: pd.DataFrame, settings: DriftSettings
) -> list[DriftMeasure]:
    """One ``slice_<stat>`` measure per :data:`SLICE_STATS` column present on both sides."""
    low_q, high_q = settings.stat_quantiles
    measures = []
    for stat in SLICE_STATS:
        if stat not in reference.columns or stat not in batch.columns:
            continue
        ref = pd.to_numeric(reference[stat], errors="coerce").dropna().to_numpy(np.float64)
        new = pd.to_numeric(batch[stat], errors="coerce").dropna().to_numpy(np.float64)
        if ref.size == 0 or new.size == 0:
            continue
        offset = schema.HU_OFFSET if stat in _HU_STATS else 0
        low, high = np.quantile(ref, [low_q, high_q]) - offset
        if offset:
            low, high = low - settings.stat_tolerance_hu, high + settings.stat_tolerance_hu
        share = float(((new - offset < low) | (new - offset > high)).mean())
        unit = "HU" if offset else "pixels"
        measures.append(
            DriftMeasure(
                name=f"slice_{stat}",
                value=share,
                limit=settings.stat_outside_share_limit,
                unit="share",
                drifted=share > settings.stat_outside_share_limit,
                detail=(
                    f"{share:.1%} of {new.size} slices outside the reference's "
                    f"[{low:.1f}, {high:.1f}] {unit} (q{low_q:g}-q{high_q:g} of {ref.size})"
                ),
            )
        )
    return measures


def acquisition_measures(
    reference: pd.DataFrame, batch: pd.DataFrame, settings: DriftSettings
) -> list[DriftMeasure]:
    """One ``unseen_<field>`` measure per :data:`ACQUISITION_FIELDS` column known on both sides."""
    measures = []
    for name in ACQUISITION_FIELDS:
        if name not in reference.columns or name not in batch.columns:
            continue
        seen = set(reference[name].dropna().astype(str))
        values = batch[name].dropna().astype(str)
        if not seen or values.empty:
            continue
        unseen = values[~values.isin(seen)]
        share = float(len(unseen) / len(values))
        limit = settings.unseen_category_share_limit
        measures.append(
            DriftMeasure(
                name=f"unseen_{name}",
                value=share,
                limit=limit,
                unit="share",
                drifted=share > limit,
                detail=(
                    f"{name} values not in the reference: {sorted(set(unseen))}"
                    if len(unseen)
                    else f"every {name} value occurs in the reference"
                ),
            )
        )
    return measures


def batch_drift(
    batch_id: str,
    reference_manifest: pd.DataFrame,
    reference_root: Path,
    batch_manifest: pd.DataFrame,
    batch_root: Path,
    settings: DriftSettings,
    *,
    reference_acquisition: pd.DataFrame | None = None,
    batch_acquisition: pd.DataFrame | None = None,
) -> DriftReport:
    """Compare a validated batch with the curated reference; return every measure.

    ``*_manifest``: manifests (:mod:`covidct.manifest` columns; at least ``patient_key`` and
    ``path``, relative to ``*_root``). ``*_acquisition``: :func:`acquisition_frame` rows (or
    their concatenation over curated batches); without them no ``unseen_*`` measure is made,
    except ``unseen_source`` from the manifests' ``source`` column. Raises ValueError naming
    the batch when either side has no readable slice.
    """
    ref_slices = sample_slices(
        reference_manifest, max_slices_per_patient=settings.max_slices_per_patient,
        max_patients=settings.max_reference_patients, seed=settings.seed,
    )  # fmt: skip
    new_slices = sample_slices(
        batch_manifest, max_slices_per_patient=settings.max_slices_per_patient, seed=settings.seed
    )
    if ref_slices.empty or new_slices.empty:
        side = "reference" if ref_slices.empty else f"batch {batch_id}"
        raise ValueError(f"drift of batch {batch_id}: the {side} has no readable slice")
    reference = patient_histograms(ref_slices, reference_root)
    batch = patient_histograms(new_slices, batch_root)
    distance, p_value = permutation_p_value(
        reference, batch, permutations=settings.permutations, seed=settings.seed
    )
    hu = DriftMeasure(
        name="hu_wasserstein",
        value=distance,
        limit=settings.hu_wasserstein_limit,
        unit="HU",
        drifted=distance > settings.hu_wasserstein_limit and p_value < settings.alpha,
        p_value=p_value,
        detail=(
            f"W1 {distance:.1f} HU between pooled pixels of {batch.slices} batch and "
            f"{reference.slices} reference slices; p={p_value:.4f} over {settings.permutations} "
            f"patient permutations (alpha {settings.alpha:g})"
        ),
    )
    measures = [hu, *slice_stat_measures(_readable(reference_manifest), batch_manifest, settings)]
    ref_acq = reference_acquisition
    new_acq = batch_acquisition
    if ref_acq is None or new_acq is None:
        ref_acq, new_acq = reference_manifest[["source"]], batch_manifest[["source"]]
    measures += acquisition_measures(ref_acq, new_acq, settings)
    return DriftReport(
        batch_id=batch_id,
        measures=tuple(measures),
        reference_patients=len(reference.patient_keys),
        reference_slices=reference.slices,
        batch_patients=len(batch.patient_keys),
        batch_slices=batch.slices,
    )


def _readable(manifest: pd.DataFrame) -> pd.DataFrame:
    if "read_error" in manifest.columns:
        return manifest[manifest["read_error"].isna()]
    return manifest


def drift_alert(report: DriftReport, *, dag_id: str = "", run_id: str = "") -> Alert | None:
    """The ``batch_drift`` alert (WARNING) naming the drifted measures; None without drift."""
    if not report.drifted:
        return None
    names = ", ".join(report.drifted_measures)
    details: Mapping[str, Any] = {
        "batch_id": report.batch_id,
        "drifted_measures": report.drifted_measures,
        "measures": {
            m.name: {"value": m.value, "limit": m.limit, "p_value": m.p_value, "detail": m.detail}
            for m in report.measures
            if m.drifted
        },
    }
    return Alert(
        kind=AlertKind.BATCH_DRIFT,
        severity=Severity.WARNING,
        summary=f"batch {report.batch_id} accepted but drifted from the reference: {names}",
        details=details,
        dag_id=dag_id,
        run_id=run_id,
    )


def format_drift(report: DriftReport) -> str:
    """Plain-text table of the report, one measure per line."""
    lines = [
        f"batch {report.batch_id}: {'DRIFTED' if report.drifted else 'no drift'} "
        f"({report.batch_patients} patients / {report.batch_slices} slices vs reference "
        f"{report.reference_patients} / {report.reference_slices})"
    ]
    for m in report.measures:
        flag = "DRIFT" if m.drifted else "ok"
        lines.append(f"  {m.name:<20} {m.value:10.4f} limit {m.limit:g} {m.unit}  {flag}")
    return "\n".join(lines)
