"""Synthetic Negin-style batches shaped like the real COVID-CTset roster, with COVID-19 lesions
drawn as the radiology literature describes them, look-alikes, scanners and ground truth.

Patients are real ids sampled from the roster (``covidct.batch.roster``), with their labels, sex
and age (so subgroup tables by sex and age band have members); each patient gets the SR folders
it has in ``all.csv``, with as many open-lung slices per folder as ``all.csv`` lists for it
(distinct images), plus 1-3 closed-lung slices at each end of every sequence, the slices the
selection algorithm (``covidct.data.selection``) must reject. Pixels are CT-like, in Negin values
(uint16, HU = value - 1024), on a 512x512 grid (about 0.75 mm per pixel, :data:`PIXEL_MM`):

* air outside the body, about -1000 HU (value ~24);
* a body ellipse: subcutaneous fat ring (~-100 HU) around soft tissue (~40 HU);
* two lungs of parenchyma (~-850 HU) with vessels (small discs, ~40 HU), scaled by a lung
  "openness" that is 0.92-1 on open slices and 0-0.3 on the closed ends;
* spine (cancellous ~700 HU, cortex ~1400 HU), sternum (~900 HU) and ribs (~1000-1500 HU);
* on open-lung slices, COVID-19 lesions (Positive patients) and look-alikes (every patient);
* the scanner's reconstruction kernel and noise (:class:`Scanner`).

**The patient in 3-D.** Each patient's lungs span :data:`LUNG_HEIGHT_MM` (250 mm, apex 0 to base
250) in z. Each sequence (SR_n) is a slab of contiguous slices ``thickness`` mm apart at a random
height (compressed to fit when its open slices would exceed the lung); the closed-lung ends lie
outside the lungs and carry no lesion. Lesions and look-alikes are 3-D ellipsoids (centre row,
column and z; in-plane radii and orientation; z half-extent) whose margins are roughened by one
smooth 3-D noise field per patient, so neighbouring slices show the same lesion growing and
shrinking; thicker slices step through it faster.

**COVID-19 lesions** (Positive patients; sources below, rates rounded where marked ~):

* Typical appearance (RSNA expert consensus, Simpson et al., Radiology: Cardiothoracic Imaging
  2020;2(2):e200152): peripheral, bilateral ground-glass opacities (GGO) with or without
  consolidation or visible intralobular lines (crazy paving); multifocal GGO of rounded
  morphology; reverse halo sign. The reverse halo is not drawn.
* Severity (percent of the whole lung involved, drawn per patient and written as a band):
  normal CT in 3 of 21 confirmed patients (14%; Chung et al., "CT Imaging Features of 2019 Novel
  Coronavirus (2019-nCoV)", Radiology 2020;295:202-207); Bernheim et al. (Radiology 2020,
  doi:10.1148/radiol.2020200463, 121 patients) found 20/36 (56%) of patients scanned 0-2 days
  after symptom onset had a normal CT, a reason not to draw every COVID slice abnormal. The
  others follow the MosMedData CT-1..CT-4 proportions (Morozov et al., medRxiv,
  doi:10.1101/2020.05.20.20100362, 1,110 studies: CT-0 254 (22.8%), CT-1 <25% of the lung 684
  (61.6%), CT-2 25-50% 125 (11.3%), CT-3 50-75% 45 (4.1%), CT-4 >75% 2 (0.2%)), i.e. of abnormal
  CTs ~80% CT-1, ~15% CT-2, ~5% CT-3, ~0.2% CT-4. Within CT-1 the percent is log-uniform on
  0.5-25% (a modelling choice: the source gives no finer split), within CT-2..4 uniform (CT-4
  capped at 90%). Bands (``lesions.BANDS``, the
  5% and 25% cut-offs are those of the lobe score of Chung et al. and Pan et al., "Time Course of
  Lung Changes at Chest CT during Recovery from COVID-19", Radiology 2020;295:715-721: 0 none,
  1 <5%, 2 5-25%, 3 26-49%, 4 50-75%, 5 >75% per lobe, total 0-25): ``none`` (normal CT),
  ``mild`` (<5%), ``moderate`` (5-25%), ``severe`` (>25%). So ~14% none, ~40% mild, ~28% moderate,
  ~17% severe of Positive patients. Lesions are added until a coarse 3-D estimate of their volume
  inside the lungs reaches the drawn percent (at most 60 lesions: about a sixth of the severe
  patients stop short of it; ``whole_lung_percent`` in the truth says where); sizes grow with
  severity (confluent lesions in severe disease), never to make a classifier's job easier.
* Findings, per abnormal patient, from Chung et al. (21 patients: GGO 57%, GGO with consolidation
  29% (6/21), bilateral 76%, peripheral 33%, rounded morphology 33% (7/21), crazy paving 19%
  (4/21), normal 14%; taken as shares of the 18 abnormal CTs: consolidation 6/18, rounded 7/18,
  crazy paving 4/18) and Shi et al. (Lancet Infect Dis 2020;20:425-434, 81 patients: bilateral
  79%, peripheral 54%, GGO 65%): bilateral in 79%, peripheral-predominant in 54% (the others mix
  subpleural and central patches), rounded multifocal GGO in 7/18, consolidation in 6/18 (the
  dense core of some lesions, -100..+50 HU), crazy paving in 4/18 (GGO crossed by a polygonal
  interlobular-septal network, 13-20 mm cells, +150..+250 HU). GGO lesions reach -700..-300 HU,
  with rough (ill-defined) margins. Pan et al. and Bernheim et al. describe consolidation and
  crazy paving growing more frequent with time after onset; time is not modelled.
* Where: only inside the lungs, mostly subpleural (patches elongated along the pleura, centred
  posterolaterally) and in the lower lungs (lesion heights drawn from Beta(2.2, 1.3) of the lung
  height, mean 0.63 towards the base): Salehi et al. (AJR 2020;215:87-93, a review of 919
  patients) describe bilateral multilobar GGO with a peripheral or posterior distribution, mainly
  in the lower lobes; Li & Xia (AJR 2020;214:1280-1286) describe the same typical pattern.

**Look-alikes** (every patient, Positive or Negative, independently; a model must not call them
COVID-19): a solitary solid nodule (0..60 HU, diameter log-uniform 4-20 mm) in 27% of patients
(~ the 27.3% of baseline low-dose CT screens with a nodule of 4 mm or more in the NLST, NEJM
2011;365:395-409; the Fleischner Society 2017 guidelines, MacMahon et al., Radiology
2017;284:228-243, grade solid nodules from 6 mm); dependent atelectasis (posterior basal
subpleural bands, -550..-150 HU, both lungs) in 20%; centrilobular emphysema (10-30 lucencies of
-990..-955 HU, 2-6 mm radius, upper lungs) in 15%. The atelectasis and emphysema rates are
modelling choices, not taken from a source. About half the patients carry none.

**Scanners** (:mod:`covidct.batch.scanners`): ``negin`` (default, the look of earlier releases:
12 HU white noise, no kernel filter, the roster's slice thicknesses), ``soft-thick``
(soft kernel: Gaussian blur sigma 1.2 px, 8 HU noise after the kernel, 8 mm slices) and
``sharp-thin`` (sharp lung kernel: unsharp mask, 25 HU noise, 1.5 mm slices). Their noise and
blur are illustrative, not measured on named scanners.

**Truth** is written beside the batch, never inside it (``<out_dir>.truth``,
:mod:`covidct.batch.synth_truth`): ``patients.csv``, ``slices.csv``, ``masks.npz`` and
``truth.json``; read with ``read_truth``, ``read_lesion_mask``, ``read_lookalike_mask`` and
``read_lung_mask`` (importable from here too). Modules: anatomy in :mod:`covidct.batch.phantom`,
lesions and look-alikes in :mod:`covidct.batch.lesions`, scanners in :mod:`covidct.batch.scanners`.

Nothing here is medical data: it exercises the pipeline (validation, selection, training) at
real scale and shape. The same arguments always give the same bytes (one NumPy generator per
patient, seeded from ``(seed, patient index)``; no time stamps anywhere, truth files included).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from covidct import schema
from covidct.batch.contract import UNKNOWN_THICKNESS, write_batch_info, write_patient_details
from covidct.batch.lesions import draw_slice, plan_patient
from covidct.batch.phantom import (
    LUNG_HEIGHT_MM,
    PIXEL_MM,
    SIZE,
    Anatomy,
    draw_body,
    lung_centres,
    lung_openness,
    lung_radii,
)
from covidct.batch.roster import load_default_roster, series_counts
from covidct.batch.scanners import SCANNERS, Scanner, ScannerProfile, parse_scanner
from covidct.batch.slices import slice_name, write_slice
from covidct.batch.synth_truth import (
    TruthCollector,
    default_truth_dir,
    read_lesion_mask as read_lesion_mask,
    read_lookalike_mask as read_lookalike_mask,
    read_lung_mask as read_lung_mask,
    read_truth as read_truth,
    write_truth,
)

logger = logging.getLogger(__name__)

#: Noise sd of the default scanner (``negin``), HU.
NOISE_SD_HU = SCANNERS[Scanner.NEGIN].noise_sd_hu
MIN_SLICES_PER_SERIES = 3  # closed, open, closed
#: Slice spacing (mm) used for the geometry of a series whose thickness the roster leaves empty.
FALLBACK_THICKNESS_MM = 6.0


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
    scanner: str = Scanner.NEGIN.value
    truth_dir: str = ""

    @property
    def slices_written(self) -> int:
        """Total TIFF slices written."""
        return sum(series.slices for patient in self.patients for series in patient.series)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON view (the ``synthetic`` section of ``batch.json`` plus out_dir, truth_dir)."""
        return {
            "out_dir": self.out_dir,
            "truth_dir": self.truth_dir,
            "source": self.source,
            "seed": self.seed,
            "scanner": self.scanner,
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


# --------------------------------------------------------------------------- writing


def _slab(n_open: int, thickness: float, rng: np.random.Generator) -> np.ndarray:
    """Heights (mm) of ``n_open`` contiguous open slices at a random place in the lungs."""
    spacing = min(thickness, LUNG_HEIGHT_MM / max(n_open, 1))
    span = spacing * n_open
    start = float(rng.uniform(0.0, max(LUNG_HEIGHT_MM - span, 0.0)))
    return start + spacing * (np.arange(n_open) + 0.5)


def _ellipses_text(body: Anatomy, openness: float) -> str:
    """The slice's two lung ellipses, ``row,col,radius_rows,radius_cols;...`` (exact floats)."""
    radii = lung_radii(body, openness)
    return ";".join(",".join(repr(float(v)) for v in (*c, *radii)) for c in lung_centres(body))


def _write_patient(
    batch_dir: Path,
    patient: pd.Series,
    counts: pd.DataFrame,
    rng: np.random.Generator,
    cap: int | None,
    thickness: dict[str, float],
    profile: ScannerProfile,
    truth: TruthCollector,
) -> SynthPatient:
    body = draw_body(rng)
    covid = patient["label"] == schema.Label.POSITIVE.value
    patient_id = str(patient["patient_id"])
    written = []
    plan = _plan_series([int(n) for n in counts["slices"]], rng, cap)
    design = plan_patient(body, covid, rng)
    lung_total = lesion_total = 0
    for name, (n_top, n_open, n_bottom) in zip(counts["series"], plan, strict=False):
        openness = lung_openness(n_top, n_open, n_bottom, rng)
        is_open = [n_top <= i < n_top + n_open for i in range(len(openness))]
        step = thickness.get(str(name), math.nan)
        heights = _slab(n_open, FALLBACK_THICKNESS_MM if math.isnan(step) else step, rng)
        for index, (level, open_lung) in enumerate(zip(openness, is_open, strict=True), start=1):
            z = float(heights[index - 1 - n_top]) if open_lung else None
            drawn = draw_slice(body, float(level), z, design, profile, rng)
            path = f"{patient_id}/{name}/{slice_name(index)}"
            write_slice(batch_dir / path, drawn.image)
            lungs, lesions = int(drawn.lungs.sum()), int(drawn.lesion.sum())
            if open_lung:
                lung_total, lesion_total = lung_total + lungs, lesion_total + lesions
            truth.slices.append(
                {
                    "path": path,
                    "patient_id": patient_id,
                    "series": str(name),
                    "open_lung": open_lung,
                    "z_mm": math.nan if z is None else round(z, 3),
                    "lung_pixels": lungs,
                    "lesion_pixels": lesions,
                    "involvement": round(lesions / lungs, 6) if lungs else 0.0,
                    "lookalike_pixels": int(drawn.lookalike.sum()),
                    "lung_ellipses": _ellipses_text(body, float(level)),
                }
            )
            for kind, mask in (("lesion", drawn.lesion), ("lookalike", drawn.lookalike)):
                if mask.any():
                    truth.masks[f"{kind}/{path}"] = np.packbits(mask.ravel())
        written.append(SynthSeries(name=str(name), open_lung=tuple(is_open)))
    truth.patients.append(
        {
            "patient_id": patient_id,
            "label": str(patient["label"]),
            "severity_band": design.band if covid else "",
            "target_percent": round(design.target_percent, 4),
            "whole_lung_percent": round(design.reached_percent, 4),
            "involvement_percent": round(100.0 * lesion_total / lung_total, 4)
            if lung_total
            else 0.0,
            "bilateral": design.bilateral,
            "findings": ";".join(design.findings()),
            "lookalikes": ";".join(design.lookalike_names()),
            "lesions": len(design.lesions),
        }
    )
    return SynthPatient(patient_id, str(patient["label"]), tuple(written))


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


def _series_thickness(
    roster: pd.DataFrame, patient_id: str, series: list[str], profile: ScannerProfile
) -> dict[str, float]:
    """Thickness (mm, NaN when unknown) of each series: the scanner's, else the roster's."""
    if profile.thickness_mm is not None:
        return {name: profile.thickness_mm for name in series}
    return _thickness(roster, patient_id)


def _check_truth_dir(out_dir: Path, truth_dir: Path) -> None:
    out, truth = out_dir.resolve(), truth_dir.resolve()
    if truth == out or out in truth.parents:
        raise ValueError(
            f"truth folder {truth_dir} must lie outside the batch {out_dir} (a batch holds only "
            f"{schema.PATIENT_DETAILS}, {schema.BATCH_INFO} and patient folders)"
        )
    if truth_dir.exists() and (not truth_dir.is_dir() or any(truth_dir.iterdir())):
        raise FileExistsError(f"truth folder {truth_dir} exists and is not an empty folder")


def write_synthetic_batch(
    out_dir: str | Path,
    *,
    patients: int,
    seed: int,
    roster: pd.DataFrame | None = None,
    source: str = "synth",
    max_slices_per_patient: int | None = None,
    roster_dir: str | Path | None = None,
    scanner: str | Scanner = Scanner.NEGIN,
    truth_dir: str | Path | None = None,
) -> SynthReport:
    """Write a synthetic Negin-style batch of ``patients`` patients into ``out_dir``, and its
    truth into ``truth_dir`` (default :func:`default_truth_dir`: ``<out_dir>.truth``).

    ``roster``: a ``covidct.batch.roster.load_roster`` frame; default: loaded from ``roster_dir``
    (default ``../shared/data/covid-ctset`` beside the checkout). ``max_slices_per_patient``
    caps each patient's slices (SR_4 then SR_3 are dropped when fewer than 3 per series fit, then
    closed ends shorten to one slice, then the longest open runs shrink). ``scanner``: a
    ``covidct.batch.scanners.Scanner`` or its name (``negin``, ``soft-thick``, ``sharp-thin``).

    The batch: ``Patient_details.csv`` (id, label, the roster patient's SEX and AGE, each written
    series' thickness in mm: the scanner's, or for ``negin`` the roster's, ``N/A`` where the
    roster has none; Date, the day of a scan these pixels never came from, empty), ``batch.json``
    (``source`` plus a ``synthetic`` section: generator, seed, scanner and per-slice open-lung
    truth) and the slices: ``<patient>/<SR_n>/IM00001.tif ...``, each a 512x512 uint16 TIFF of
    Negin stored values (HU = value - 1024), lesions and look-alikes as the module docstring
    describes. The truth folder: ``patients.csv``, ``slices.csv`` (:func:`read_truth`),
    ``masks.npz`` (packed lesion and look-alike masks; :func:`read_lesion_mask`,
    :func:`read_lookalike_mask`; lungs: :func:`read_lung_mask`) and ``truth.json`` (source,
    seed, scanner, geometry); masks are bool (512, 512), True inside the lungs only.
    Patient_details.csv and batch.json are written last, the truth folder after them.
    Returns a SynthReport (``truth_dir`` and ``scanner`` included).

    Raises FileExistsError when ``out_dir`` or the truth folder is a non-empty folder (checked
    before anything is written); ValueError on ``patients`` outside 1..roster size, a cap below 3,
    a negative seed, an empty source, an unknown scanner (the message lists the valid names) or a
    truth folder inside ``out_dir``.
    """
    out_dir = Path(out_dir)
    truth_path = Path(truth_dir) if truth_dir is not None else default_truth_dir(out_dir)
    if max_slices_per_patient is not None and max_slices_per_patient < MIN_SLICES_PER_SERIES:
        raise ValueError(f"max_slices_per_patient must be >= 3, got {max_slices_per_patient}")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise FileExistsError(f"output folder {out_dir} exists and is not an empty folder")
    if not source:
        raise ValueError("source must not be empty")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    scanner = parse_scanner(scanner)
    profile = SCANNERS[scanner]
    _check_truth_dir(out_dir, truth_path)
    roster = roster if roster is not None else load_default_roster(roster_dir)
    chosen = sample_patients(roster, patients, np.random.default_rng(seed))
    counts = series_counts(roster)
    written, thicknesses, truth = [], [], TruthCollector()
    for index, (_, patient) in enumerate(chosen.iterrows()):
        rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
        mine = counts[counts["patient_id"] == patient["patient_id"]].sort_values("series")
        thickness = _series_thickness(
            roster, str(patient["patient_id"]), [str(s) for s in mine["series"]], profile
        )
        thicknesses.append(thickness)
        written.append(
            _write_patient(
                out_dir, patient, mine, rng, max_slices_per_patient, thickness, profile, truth
            )
        )
    report = SynthReport(str(out_dir), source, seed, tuple(written), scanner.value, str(truth_path))
    rows = [
        _details_row(p, thickness, _attributes(roster, p.patient_id))
        for p, thickness in zip(report.patients, thicknesses, strict=True)
    ]
    write_patient_details(out_dir / schema.PATIENT_DETAILS, rows)
    synthetic = {
        "generator": __name__,
        "seed": seed,
        "scanner": scanner.value,
        "patients": [p.to_dict() for p in written],
    }
    write_batch_info(out_dir, {"source": source, "synthetic": synthetic})
    about = {
        "source": source,
        "seed": seed,
        "scanner": scanner.value,
        "pixel_mm": PIXEL_MM,
        "lung_height_mm": LUNG_HEIGHT_MM,
        "mask_shape": [SIZE, SIZE],
    }
    write_truth(truth_path, truth, about)
    logger.info(
        "wrote %d synthetic slices of %d patients to %s (truth: %s)",
        report.slices_written,
        patients,
        out_dir,
        truth_path,
    )
    return report
