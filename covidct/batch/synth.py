"""Synthetic Negin-style batches shaped like the real COVID-CTset roster.

Patients are real ids sampled from the roster (``covidct.batch.roster``), with their labels, sex
and age (so subgroup tables by sex and age band have members); each patient gets the SR folders
it has in ``all.csv``, with as many open-lung slices per folder as ``all.csv`` lists for it
(distinct images), plus 1-3 closed-lung slices at each end of every sequence, the slices the
selection algorithm (``covidct.data.selection``) must reject. Pixels are CT-like, in Negin values
(uint16, HU = value - 1024), on a 512x512 grid:

* air outside the body, about -1000 HU (value ~24);
* a body ellipse: subcutaneous fat ring (~-100 HU) around soft tissue (~40 HU);
* two lungs of parenchyma (~-850 HU) with vessels (small discs, ~40 HU), scaled by a lung
  "openness" that is 0.92-1 on open slices and 0-0.3 on the closed ends;
* spine (cancellous ~700 HU, cortex ~1400 HU), sternum (~900 HU) and ribs (~1000-1500 HU);
* ground-glass opacities (Gaussian blobs reaching -500 to -300 HU) in the lungs of every
  open-lung slice of a Positive patient;
* Gaussian noise (sd 12 HU).

Nothing here is medical data: it exercises the pipeline (validation, selection, training) at
real scale and shape. The same arguments always give the same bytes (one NumPy generator per
patient, seeded from ``(seed, patient index)``; no time stamps anywhere).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from covidct import schema
from covidct.batch.contract import UNKNOWN_THICKNESS, write_batch_info, write_patient_details
from covidct.batch.roster import load_default_roster, series_counts
from covidct.batch.slices import slice_name, write_slice

logger = logging.getLogger(__name__)

SIZE = schema.SLICE_SHAPE[0]
#: HU values of the phantom's tissues.
AIR_HU, FAT_HU, SOFT_HU, LUNG_HU = -1000.0, -100.0, 40.0, -850.0
VESSEL_HU, CANCELLOUS_HU, CORTEX_HU, STERNUM_HU = 40.0, 700.0, 1400.0, 900.0
NOISE_SD_HU = 12.0
#: Lung openness of open-lung and of closed-lung slices.
OPEN_RANGE, CLOSED_MAX = (0.92, 1.0), 0.3
MIN_SLICES_PER_SERIES = 3  # closed, open, closed


@dataclass(frozen=True)
class SynthSeries:
    """One written sequence: ``open_lung[i]`` is True for IM{i+1} with open lungs."""

    name: str
    open_lung: tuple[bool, ...]

    @property
    def slices(self) -> int:
        """Number of slices written."""
        return len(self.open_lung)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON view."""
        return {"name": self.name, "slices": self.slices, "open_lung": list(self.open_lung)}


@dataclass(frozen=True)
class SynthPatient:
    """One synthetic patient: a real roster id and label."""

    patient_id: str
    label: str
    series: tuple[SynthSeries, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON view."""
        return {
            "patient_id": self.patient_id,
            "label": self.label,
            "series": [series.to_dict() for series in self.series],
        }


@dataclass(frozen=True)
class SynthReport:
    """What :func:`write_synthetic_batch` wrote."""

    out_dir: str
    source: str
    seed: int
    patients: tuple[SynthPatient, ...]

    @property
    def slices_written(self) -> int:
        """Total TIFF slices written."""
        return sum(series.slices for patient in self.patients for series in patient.series)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON view (the ``synthetic`` section of ``batch.json`` plus out_dir)."""
        return {
            "out_dir": self.out_dir,
            "source": self.source,
            "seed": self.seed,
            "slices_written": self.slices_written,
            "patients": [patient.to_dict() for patient in self.patients],
        }


# --------------------------------------------------------------------------- sampling


def sample_patients(roster: pd.DataFrame, patients: int, rng: np.random.Generator) -> pd.DataFrame:
    """Pick ``patients`` distinct roster patients: columns patient_id, label.

    Classes keep the roster's proportion, with at least one of each when ``patients >= 2``.
    Raises ValueError when ``patients`` < 1 or exceeds the roster's patients (or its classes).
    """
    table = roster[["patient_id", "label"]].drop_duplicates().sort_values("patient_id")
    if patients < 1 or patients > len(table):
        raise ValueError(f"patients must be in 1..{len(table)}, got {patients}")
    positive = table[table["label"] == schema.Label.POSITIVE.value]
    negative = table[table["label"] == schema.Label.NEGATIVE.value]
    if patients == 1:
        return table.iloc[[int(rng.integers(len(table)))]].reset_index(drop=True)
    n_positive = round(patients * len(positive) / len(table))
    n_positive = min(max(n_positive, 1), patients - 1, len(positive))
    if patients - n_positive > len(negative):
        raise ValueError(
            f"roster has {len(negative)} Negative patients, {patients - n_positive} needed"
        )
    chosen = pd.concat(
        [
            positive.iloc[np.sort(rng.choice(len(positive), n_positive, replace=False))],
            negative.iloc[np.sort(rng.choice(len(negative), patients - n_positive, replace=False))],
        ]
    )
    return chosen.sort_values("patient_id").reset_index(drop=True)


def _plan_series(
    open_counts: list[int], rng: np.random.Generator, cap: int | None
) -> list[list[int]]:
    """Per series ``[closed_top, open, closed_bottom]`` slice counts, at most ``cap`` in all.

    Capping: drop the last series while fewer than 3 slices per series fit, then shorten the
    closed ends to one slice, then shrink the longest open run, one slice at a time.
    """
    plan = [[int(rng.integers(1, 4)), max(int(n), 1), int(rng.integers(1, 4))] for n in open_counts]
    if cap is None:
        return plan

    def excess() -> int:
        return sum(map(sum, plan)) - cap

    while len(plan) > 1 and MIN_SLICES_PER_SERIES * len(plan) > cap:
        plan.pop()
    for entry in plan:
        while excess() > 0 and (entry[0] > 1 or entry[2] > 1):
            entry[0 if entry[0] >= entry[2] else 2] -= 1
    while excess() > 0:
        max(plan, key=lambda entry: entry[1])[1] -= 1
    return plan


# --------------------------------------------------------------------------- drawing


@lru_cache(maxsize=1)
def _grid() -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    return rows, cols


def _ellipse_box(
    centre: tuple[float, float], radii: tuple[float, float]
) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """Bounding box (row slice, column slice) and mask of an axis-aligned ellipse; None if tiny."""
    (cy, cx), (ry, rx) = centre, radii
    if ry <= 0.5 or rx <= 0.5:
        return None
    rows_box = slice(max(int(cy - ry) - 1, 0), min(int(cy + ry) + 2, SIZE))
    cols_box = slice(max(int(cx - rx) - 1, 0), min(int(cx + rx) + 2, SIZE))
    rows, cols = _grid()
    inside = ((rows[rows_box, cols_box] - cy) / ry) ** 2 + (
        (cols[rows_box, cols_box] - cx) / rx
    ) ** 2
    return (rows_box, cols_box), inside <= 1.0


def _paint(
    image: np.ndarray,
    centre: tuple[float, float],
    radii: tuple[float, float],
    value: float,
    within: np.ndarray | None = None,
) -> None:
    """Set ``value`` inside an ellipse (and inside ``within`` when given), in place."""
    found = _ellipse_box(centre, radii)
    if found is None:
        return
    box, inside = found
    if within is not None:
        inside = inside & within[box]
    image[box][inside] = value


def _ellipse_mask(centre: tuple[float, float], radii: tuple[float, float]) -> np.ndarray:
    """Full-size boolean mask of an ellipse."""
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    found = _ellipse_box(centre, radii)
    if found is not None:
        mask[found[0]] = found[1]
    return mask


@dataclass(frozen=True)
class _Body:
    """Per-patient anatomy: the base HU image without lungs, and lung geometry."""

    base: np.ndarray  # float32 (512, 512) HU
    centre: tuple[float, float]
    radii: tuple[float, float]


def _draw_body(rng: np.random.Generator) -> _Body:
    cy, cx = 256.0 + rng.uniform(-6, 6), 256.0 + rng.uniform(-6, 6)
    ry, rx = rng.uniform(150, 172), rng.uniform(200, 225)
    fat = rng.uniform(8, 16)
    iy, ix = ry - fat, rx - fat  # inner (muscle and organ) ellipse
    base = np.full((SIZE, SIZE), AIR_HU, dtype=np.float32)
    _paint(base, (cy, cx), (ry, rx), FAT_HU)
    _paint(base, (cy, cx), (iy, ix), SOFT_HU)
    spine_y = cy + iy - 48
    _paint(base, (spine_y, cx), (26, 24), CORTEX_HU)
    _paint(base, (spine_y, cx), (20, 18), CANCELLOUS_HU)
    _paint(base, (cy - iy + 22, cx), (9, 16), STERNUM_HU)
    for degrees in (30, 55, 80, 105, 130):  # angle from the posterior midline, both sides
        theta = math.radians(degrees)
        for side in (-1.0, 1.0):
            centre = (cy + 0.9 * iy * math.cos(theta), cx + side * 0.9 * ix * math.sin(theta))
            _paint(base, centre, (6, 9), float(rng.uniform(1000, 1500)))
    return _Body(base=base, centre=(cy, cx), radii=(iy, ix))


def _lung_centres(body: _Body) -> list[tuple[float, float]]:
    (cy, cx), (_, rx) = body.centre, body.radii
    return [(cy - 8.0, cx - 0.45 * rx), (cy - 8.0, cx + 0.45 * rx)]


def _draw_vessels(hu: np.ndarray, lungs: np.ndarray, rng: np.random.Generator, count: int) -> None:
    """Vessels: small discs of soft-tissue density, clipped to the lungs."""
    rows, cols = np.nonzero(lungs)
    if len(rows) == 0:
        return
    for pick in rng.integers(len(rows), size=count):
        radius = float(rng.uniform(1.5, 3.5))
        _paint(hu, (float(rows[pick]), float(cols[pick])), (radius, radius), VESSEL_HU, lungs)


def _draw_opacities(hu: np.ndarray, lungs: np.ndarray, rng: np.random.Generator) -> None:
    """Ground-glass opacities: Gaussian blobs reaching -500..-300 HU, inside the lungs only."""
    rows, cols = np.nonzero(lungs)
    if len(rows) == 0:
        return
    grid_rows, grid_cols = _grid()
    for pick in rng.integers(len(rows), size=int(rng.integers(1, 4))):
        cy, cx = float(rows[pick]), float(cols[pick])
        sigma, peak = float(rng.uniform(6, 14)), float(rng.uniform(-500, -300))
        r0, r1 = max(int(cy - 3 * sigma), 0), min(int(cy + 3 * sigma) + 1, SIZE)
        c0, c1 = max(int(cx - 3 * sigma), 0), min(int(cx + 3 * sigma) + 1, SIZE)
        d2 = (grid_rows[r0:r1, c0:c1] - cy) ** 2 + (grid_cols[r0:r1, c0:c1] - cx) ** 2
        blob = LUNG_HU + (peak - LUNG_HU) * np.exp(-d2 / (2 * sigma**2))
        patch, inside = hu[r0:r1, c0:c1], lungs[r0:r1, c0:c1]
        patch[inside] = np.maximum(patch[inside], blob[inside])


def _draw_slice(body: _Body, openness: float, covid: bool, rng: np.random.Generator) -> np.ndarray:
    hu = body.base.copy()
    lungs = np.zeros(hu.shape, dtype=bool)
    ry, rx = body.radii
    for centre in _lung_centres(body):
        lungs |= _ellipse_mask(centre, (0.62 * ry * openness, 0.3 * rx * openness))
    hu[lungs] = LUNG_HU
    if lungs.any():
        _draw_vessels(hu, lungs, rng, count=int(30 * openness**2) + 1)
        if covid:
            _draw_opacities(hu, lungs, rng)
    hu += rng.standard_normal(hu.shape, dtype=np.float32) * np.float32(NOISE_SD_HU)
    values = np.rint(hu + np.float32(schema.HU_OFFSET))
    return np.clip(values, 0, np.iinfo(np.uint16).max).astype(np.uint16)


def _openness(n_top: int, n_open: int, n_bottom: int, rng: np.random.Generator) -> np.ndarray:
    top = np.linspace(0.0, CLOSED_MAX, n_top + 1)[:-1] if n_top else np.zeros(0)
    bottom = np.linspace(CLOSED_MAX, 0.0, n_bottom + 1)[1:] if n_bottom else np.zeros(0)
    bump = np.sin(np.pi * (np.arange(n_open) + 1) / (n_open + 1))
    low, high = OPEN_RANGE
    middle = low + (high - low) * bump + rng.uniform(-0.01, 0.0, n_open)
    return np.concatenate([top, np.clip(middle, low, high), bottom])


# --------------------------------------------------------------------------- writing


def _write_patient(
    batch_dir: Path,
    patient: pd.Series,
    counts: pd.DataFrame,
    rng: np.random.Generator,
    cap: int | None,
) -> SynthPatient:
    body = _draw_body(rng)
    covid = patient["label"] == schema.Label.POSITIVE.value
    written = []
    plan = _plan_series([int(n) for n in counts["slices"]], rng, cap)
    for name, (n_top, n_open, n_bottom) in zip(counts["series"], plan, strict=False):
        openness = _openness(n_top, n_open, n_bottom, rng)
        is_open = [n_top <= i < n_top + n_open for i in range(len(openness))]
        for index, (level, open_lung) in enumerate(zip(openness, is_open, strict=True), start=1):
            image = _draw_slice(body, float(level), covid and open_lung, rng)
            write_slice(batch_dir / patient["patient_id"] / name / slice_name(index), image)
        written.append(SynthSeries(name=str(name), open_lung=tuple(is_open)))
    return SynthPatient(str(patient["patient_id"]), str(patient["label"]), tuple(written))


def _details_row(
    patient: SynthPatient, thickness: dict[str, float], attributes: dict[str, object]
) -> dict[str, object]:
    row: dict[str, object] = {
        schema.PATIENT_COLUMN: patient.patient_id,
        schema.LABEL_COLUMN: patient.label,
        **attributes,
    }
    for series in patient.series:
        value = thickness.get(series.name, math.nan)
        row[f"{series.name} Folder thickness(mm)"] = (
            UNKNOWN_THICKNESS if math.isnan(value) else value
        )
    return row


def _attributes(roster: pd.DataFrame, patient_id: str) -> dict[str, object]:
    """The roster patient's ``SEX`` and ``AGE`` (empty where the roster has none)."""
    if not {"sex", "age"} <= set(roster.columns):
        return {}
    first = roster.loc[roster["patient_id"] == patient_id, ["sex", "age"]].iloc[0]
    return {"SEX": first["sex"], "AGE": first["age"]}


def _thickness(roster: pd.DataFrame, patient_id: str) -> dict[str, float]:
    rows = roster.loc[roster["patient_id"] == patient_id, ["series", "thickness_mm"]]
    return {str(s): float(t) for s, t in rows.drop_duplicates("series").itertuples(index=False)}


def write_synthetic_batch(
    out_dir: str | Path,
    *,
    patients: int,
    seed: int,
    roster: pd.DataFrame | None = None,
    source: str = "synth",
    max_slices_per_patient: int | None = None,
    roster_dir: str | Path | None = None,
) -> SynthReport:
    """Write a synthetic Negin-style batch of ``patients`` patients into ``out_dir``.

    ``roster``: a ``covidct.batch.roster.load_roster`` frame; default: loaded from ``roster_dir``
    (default ``../shared/data/covid-ctset`` beside the checkout). ``max_slices_per_patient``
    caps each patient's slices (SR_4 then SR_3 are dropped when fewer than 3 per series fit, then
    closed ends shorten to one slice, then the longest open runs shrink). Writes
    ``Patient_details.csv`` (id, label, the roster patient's SEX and AGE, the roster's thickness
    of each written series, ``N/A`` where the roster has none; Date, the day of a scan these
    pixels never came from, empty),
    ``batch.json`` (``source`` plus a ``synthetic`` section with seed and per-slice open-lung
    truth) and the TIFFs. Returns a SynthReport.

    Raises FileExistsError when ``out_dir`` is a non-empty folder, ValueError on ``patients``
    outside 1..roster size, a cap below 3, a negative seed or an empty source.
    """
    out_dir = Path(out_dir)
    if max_slices_per_patient is not None and max_slices_per_patient < MIN_SLICES_PER_SERIES:
        raise ValueError(f"max_slices_per_patient must be >= 3, got {max_slices_per_patient}")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise FileExistsError(f"output folder {out_dir} exists and is not an empty folder")
    if not source:
        raise ValueError("source must not be empty")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    roster = roster if roster is not None else load_default_roster(roster_dir)
    chosen = sample_patients(roster, patients, np.random.default_rng(seed))
    counts = series_counts(roster)
    written = []
    for index, (_, patient) in enumerate(chosen.iterrows()):
        rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
        mine = counts[counts["patient_id"] == patient["patient_id"]].sort_values("series")
        written.append(_write_patient(out_dir, patient, mine, rng, max_slices_per_patient))
    report = SynthReport(str(out_dir), source, seed, tuple(written))
    rows = [
        _details_row(p, _thickness(roster, p.patient_id), _attributes(roster, p.patient_id))
        for p in report.patients
    ]
    write_patient_details(out_dir / schema.PATIENT_DETAILS, rows)
    synthetic = {"generator": __name__, "seed": seed, "patients": [p.to_dict() for p in written]}
    write_batch_info(out_dir, {"source": source, "synthetic": synthetic})
    logger.info(
        "wrote %d synthetic slices of %d patients to %s", report.slices_written, patients, out_dir
    )
    return report
