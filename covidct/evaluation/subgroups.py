"""Performance by subgroup of the intended population: sex, age band, series, thickness, source.

For one predictions table (:mod:`covidct.evaluation`'s schema, one row per slice) and a patient
roster (:func:`patient_roster`, from ``Patient_details.csv``), :func:`subgroup_table` reports
image- and patient-level COVID sensitivity, COVID specificity and balanced accuracy in every
subgroup, each with the percentile patient bootstrap of :func:`covidct.evaluation.bootstrap_ci`
(stratified by label, a patient's slices move together). No second bootstrap exists here.

Axes (:data:`AXES`) and what a subgroup holds:

* ``sex``: ``SEX`` of ``Patient_details.csv`` (``M``/``F`` as published; empty: ``unknown``).
* ``age_band``: ``AGE`` (a DICOM Age String, e.g. ``053Y``; PS3.5 value representation AS) cut at
  ``GateSettings.age_band_edges``, default (40, 60): ``<40``, ``40-59``, ``60+``. Why: age is the
  strongest patient factor of COVID-19 severity, and WHO's risk communication names people aged
  60 and over (WHO, "COVID-19: vulnerable and high risk groups", 2020); 40 splits the younger
  rest in two. COVID-CTset's 377 patients fall 179 / 157 / 41 into these bands (21 / 47 / 27
  COVID), so no band is empty and finer bands would be mostly below the minimum size.
* ``series``: the breath-hold series folder of the slice (``SR_2``..``SR_4``): slice-level, so a
  patient with two series is in both subgroups with the slices of each; its patient-level
  diagnosis in a series subgroup uses that series' slices only.
* ``slice_thickness``: the series' folder thickness from ``Patient_details.csv``, e.g.
  ``1.5 mm`` (slice-level like ``series``).
* ``source``: the batch source (the ``<source>/`` prefix of ``patient_id``; scanner and kernel).

Values that are not known are the subgroup ``unknown``, reported like any other. Subgroups with
fewer than ``min_patients`` patients are kept and flagged ``below_min_size``: their intervals are
wide, not hidden. Only ``test`` rows are evaluated when the table has a ``split`` column.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from covidct import schema
from covidct.batch.contract import batch_source, read_patient_details
from covidct.config import Settings
from covidct.evaluation import (
    P_COVID,
    PATIENT_ID,
    SPLIT,
    TEST_SPLIT,
    Y_TRUE,
    Unit,
    bootstrap_ci,
    metric_key,
    validate_predictions,
)
from covidct.evaluation.metrics import Metric

logger = logging.getLogger(__name__)

#: Subgroup axes, in report order; each is also the predictions column :func:`annotate` adds.
AXES: tuple[str, ...] = ("sex", "age_band", "series", "slice_thickness", "source")
#: The level of a value that is not known.
UNKNOWN = "unknown"
#: The row of the whole table (axis and subgroup both ``all``), reported first for reference.
ALL = "all"
#: Metrics of the subgroup table.
SUBGROUP_METRICS: tuple[Metric, ...] = (
    Metric.COVID_SENSITIVITY,
    Metric.COVID_SPECIFICITY,
    Metric.BALANCED_ACCURACY,
)
DEFAULT_AGE_BAND_EDGES: tuple[int, ...] = (40, 60)
DEFAULT_MIN_PATIENTS = 20
#: Columns of :func:`subgroup_table`, in order.
TABLE_COLUMNS: tuple[str, ...] = (
    "axis",
    "subgroup",
    "unit",
    "metric",
    "point",
    "low",
    "high",
    "level",
    "n_valid",
    "n_patients",
    "n_covid_patients",
    "n_normal_patients",
    "n_images",
    "below_min_size",
)
#: Columns of :func:`patient_roster`.
ROSTER_COLUMNS: tuple[str, ...] = (
    PATIENT_ID,
    "source",
    "sex",
    "age_years",
    "series",
    "thickness_mm",
)

_AGE = re.compile(r"^\s*(\d{1,3})\s*([DWMY]?)\s*$", re.IGNORECASE)
_AGE_UNIT_YEARS = {"D": 1 / 365.25, "W": 7 / 365.25, "M": 1 / 12, "Y": 1.0, "": 1.0}


def parse_age(value: object, *, patient: str = "?") -> float:
    """Age in years (float) of a ``Patient_details.csv`` ``AGE`` cell; NaN when empty.

    Accepts a DICOM Age String (``053Y``, ``006M``, ``012W``, ``030D``) or a bare number of
    years. Raises ValueError naming the patient and the accepted forms otherwise.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return math.nan
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value)
    match = _AGE.match(str(value))
    if not match:
        raise ValueError(
            f"patient {patient}: AGE {value!r} is neither a DICOM age string (nnnY, nnnM, nnnW, "
            "nnnD) nor a number of years"
        )
    return int(match.group(1)) * _AGE_UNIT_YEARS[match.group(2).upper()]


def age_band_labels(edges: Sequence[int] = DEFAULT_AGE_BAND_EDGES) -> tuple[str, ...]:
    """Labels of the bands cut at ``edges`` (strictly increasing years): (40, 60) gives
    ``<40``, ``40-59``, ``60+``. Raises ValueError on unsorted or empty edges."""
    edges = [int(edge) for edge in edges]
    if not edges or any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
        raise ValueError(f"age_band_edges must be strictly increasing years, got {edges}")
    middle = [f"{a}-{b - 1}" for a, b in zip(edges, edges[1:], strict=False)]
    return (f"<{edges[0]}", *middle, f"{edges[-1]}+")


def age_band(age_years: float, edges: Sequence[int] = DEFAULT_AGE_BAND_EDGES) -> str:
    """The band label of an age in years (:func:`age_band_labels`); ``unknown`` for NaN."""
    if math.isnan(age_years):
        return UNKNOWN
    labels = age_band_labels(edges)
    return labels[int(np.searchsorted(np.asarray(edges, dtype=float), age_years, side="right"))]


def patient_roster(details: pd.DataFrame, source: str = schema.DEFAULT_SOURCE) -> pd.DataFrame:
    """The subgroup attributes of one batch's patients, one row per (patient, series).

    ``details``: a ``Patient_details.csv`` table as
    :func:`covidct.batch.contract.read_patient_details`
    returns it; ``source``: the batch's source (``batch.json``). Returns :data:`ROSTER_COLUMNS`:
    ``patient_id`` (the grouping key ``<source>/<Patient ID>``), ``source``, ``sex`` (str,
    ``unknown`` when empty), ``age_years`` (float64, NaN when empty), ``series`` (``SR_2``..),
    ``thickness_mm`` (float64, NaN when unknown). Concatenate the rosters of several batches.
    Raises ValueError naming the patient on an unreadable ``AGE``.
    """
    rows = []
    for record in details.to_dict("records"):
        patient = str(record[schema.PATIENT_COLUMN])
        sex = record.get("SEX")
        sex = UNKNOWN if pd.isna(sex) or not str(sex).strip() else str(sex).strip().upper()
        age = parse_age(record.get("AGE"), patient=patient)
        for series in schema.SERIES:
            thickness = record.get(f"{series} Folder thickness(mm)")
            rows.append(
                {
                    PATIENT_ID: schema.patient_key(source, patient),
                    "source": source,
                    "sex": sex,
                    "age_years": age,
                    "series": series,
                    "thickness_mm": math.nan if pd.isna(thickness) else float(thickness),
                }
            )
    return pd.DataFrame(rows, columns=list(ROSTER_COLUMNS)).astype(
        {"age_years": "float64", "thickness_mm": "float64"}
    )


def batch_roster(batch_dir: str | Path) -> pd.DataFrame:
    """:func:`patient_roster` of a Negin-style batch folder: its ``Patient_details.csv`` and the
    source of its ``batch.json`` (``schema.DEFAULT_SOURCE`` without one).

    Raises PatientDetailsError (a ValueError) naming the file when it is missing or malformed.
    """
    batch_dir = Path(batch_dir)
    source = (
        batch_source(batch_dir)
        if (batch_dir / schema.BATCH_INFO).is_file()
        else schema.DEFAULT_SOURCE
    )
    return patient_roster(read_patient_details(batch_dir / schema.PATIENT_DETAILS), source)


def roster_of(settings: Settings, store: Any, slices: pd.DataFrame) -> pd.DataFrame:
    """:func:`batch_roster` rows of the curated batches that ``slices`` come from (the first
    folder of their ``path`` column, under ``curated/batches/`` of the lake ``store``); a batch
    without a readable ``Patient_details.csv`` gives none (logged). Columns
    :data:`ROSTER_COLUMNS`."""
    from covidct.lake.access import materialize
    from covidct.lake.custody import CURATED_BATCHES

    root = materialize(store, CURATED_BATCHES, settings)
    frames = []
    for batch in sorted(set(slices["path"].astype(str).str.split("/").str[0])):
        try:
            frames.append(batch_roster(root / batch))
        except (ValueError, OSError) as error:
            logger.warning("batch %s: no subgroup roster (%s)", batch, error)
    if not frames:
        return pd.DataFrame(columns=list(ROSTER_COLUMNS))
    return pd.concat(frames, ignore_index=True)


def _thickness_label(value: float) -> str:
    return UNKNOWN if math.isnan(value) else f"{value:g} mm"


def _source_of(patient_id: str) -> str:
    return patient_id.split("/", 1)[0] if "/" in patient_id else UNKNOWN


def annotate(
    predictions: pd.DataFrame,
    roster: pd.DataFrame | None = None,
    *,
    age_band_edges: Sequence[int] = DEFAULT_AGE_BAND_EDGES,
) -> pd.DataFrame:
    """A validated copy of ``predictions`` with one column per axis of :data:`AXES` (str).

    ``series`` comes from the predictions' own ``series`` column (``covidct.pipeline`` writes
    it) and is ``unknown`` without one; ``sex``, ``age_band`` and ``slice_thickness`` from
    ``roster`` (:func:`patient_roster`; None: all ``unknown``); ``source`` from the roster, else
    from the ``<source>/`` prefix of ``patient_id``. Raises ValueError on an invalid table.
    """
    frame = validate_predictions(predictions)
    series = (
        frame["series"].astype("string").fillna(UNKNOWN).astype(str)
        if "series" in frame.columns
        else pd.Series(UNKNOWN, index=frame.index)
    )
    if roster is None or roster.empty:
        roster = pd.DataFrame(columns=list(ROSTER_COLUMNS))
    patients = roster.drop_duplicates(PATIENT_ID, keep="last").set_index(PATIENT_ID)
    ids = frame[PATIENT_ID]
    sex = ids.map(patients["sex"]).astype("string").fillna(UNKNOWN).astype(str)
    ages = ids.map(patients["age_years"]).astype("float64")
    source = ids.map(patients["source"]).astype("string")
    source = source.fillna(ids.map(_source_of)).astype(str)
    thickness = roster.drop_duplicates([PATIENT_ID, "series"], keep="last").set_index(
        [PATIENT_ID, "series"]
    )["thickness_mm"]
    keys = pd.MultiIndex.from_arrays([ids, series])
    mm = thickness.reindex(keys).to_numpy(dtype="float64")
    return frame.assign(
        sex=sex.to_numpy(),
        age_band=[age_band(a, age_band_edges) for a in ages],
        series=series.to_numpy(),
        slice_thickness=[_thickness_label(v) for v in mm],
        source=source.to_numpy(),
    )


def _level_order(axis: str, levels: Sequence[str], edges: Sequence[int]) -> list[str]:
    known = [level for level in levels if level != UNKNOWN]
    if axis == "age_band":
        order = age_band_labels(edges)
        known = [label for label in order if label in known]
    elif axis == "slice_thickness":
        known = sorted(known, key=lambda text: float(text.split()[0]))
    else:
        known = sorted(known)
    return known + ([UNKNOWN] if UNKNOWN in levels else [])


def iter_subgroups(
    annotated: pd.DataFrame,
    *,
    age_band_edges: Sequence[int] = DEFAULT_AGE_BAND_EDGES,
    include_all: bool = True,
) -> Iterator[tuple[str, str, pd.DataFrame]]:
    """Yield ``(axis, subgroup, rows)`` for every level of every axis of an :func:`annotate`d
    table, in report order (``("all", "all", every row)`` first when ``include_all``)."""
    if include_all:
        yield ALL, ALL, annotated
    for axis in AXES:
        levels = annotated[axis].astype(str)
        for level in _level_order(axis, list(levels.unique()), age_band_edges):
            yield axis, level, annotated.loc[levels == level]


def patient_counts(rows: pd.DataFrame) -> dict[str, int]:
    """``n_patients``, ``n_covid_patients``, ``n_normal_patients`` and ``n_images`` of a table."""
    labels = rows.groupby(PATIENT_ID)[Y_TRUE].first()
    n_covid = int((labels == schema.POSITIVE_CLASS).sum())
    return {
        "n_patients": int(len(labels)),
        "n_covid_patients": n_covid,
        "n_normal_patients": int(len(labels)) - n_covid,
        "n_images": int(len(rows)),
    }


def evaluated_rows(predictions: pd.DataFrame) -> pd.DataFrame:
    """The evaluated rows: those of split ``test`` when there is a ``split`` column, else all."""
    if SPLIT in predictions.columns:
        return predictions.loc[predictions[SPLIT].astype(str) == TEST_SPLIT]
    return predictions


def subgroup_table(
    predictions: pd.DataFrame,
    roster: pd.DataFrame | None = None,
    *,
    min_patients: int = DEFAULT_MIN_PATIENTS,
    age_band_edges: Sequence[int] = DEFAULT_AGE_BAND_EDGES,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    patient_threshold: float | None = None,
) -> pd.DataFrame:
    """Subgroup performance with patient-bootstrap intervals: a tidy table.

    ``predictions``: one model's predictions (:mod:`covidct.evaluation` schema; a ``series``
    column when known); ``roster``: :func:`patient_roster` rows (None: sex, age and thickness
    ``unknown``). ``patient_threshold``: None uses the table's ``patient_threshold`` column.
    Every subgroup gets the same ``seed``; intervals are marginal (no multiplicity adjustment).

    Returns one row per (axis, subgroup, unit, metric), columns :data:`TABLE_COLUMNS`:
    ``axis`` (``all`` or one of :data:`AXES`), ``subgroup`` (the level, e.g. ``F``, ``60+``,
    ``SR_3``, ``1.5 mm``, ``negin``, ``unknown``), ``unit`` (``image``/``patient``), ``metric``
    (``covid_sensitivity``, ``covid_specificity``, ``balanced_accuracy``), ``point``, ``low``,
    ``high`` (fractions; NaN where undefined, e.g. sensitivity without COVID patients),
    ``level`` (0.95), ``n_valid`` (finite resamples), ``n_patients``, ``n_covid_patients``,
    ``n_normal_patients``, ``n_images`` (int), ``below_min_size`` (bool: ``n_patients <
    min_patients``). Raises ValueError on an invalid table or settings.
    """
    if min_patients < 1:
        raise ValueError(f"min_patients must be at least 1, got {min_patients}")
    annotated = evaluated_rows(annotate(predictions, roster, age_band_edges=age_band_edges))
    if annotated.empty:
        raise ValueError("subgroup table: no test rows to evaluate")
    rows = []
    for axis, subgroup, group in iter_subgroups(annotated, age_band_edges=age_band_edges):
        counts = patient_counts(group)
        for unit in (Unit.IMAGE, Unit.PATIENT):
            for metric in SUBGROUP_METRICS:
                result = bootstrap_ci(
                    group[[PATIENT_ID, Y_TRUE, P_COVID, *_extra(group)]],
                    metric_key(unit, metric),
                    n_boot=n_boot,
                    seed=seed,
                    level=level,
                    patient_threshold=patient_threshold,
                )
                rows.append(
                    {
                        "axis": axis,
                        "subgroup": subgroup,
                        "unit": unit.value,
                        "metric": metric.value,
                        "point": result.point,
                        "low": result.low,
                        "high": result.high,
                        "level": level,
                        "n_valid": result.n_valid,
                        **counts,
                        "below_min_size": counts["n_patients"] < min_patients,
                    }
                )
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


def _extra(group: pd.DataFrame) -> list[str]:
    """The optional evaluation columns a subgroup's rows carry into the bootstrap."""
    optional = ("fold", "slice_id", "selected", "patient_threshold")
    return [column for column in optional if column in group.columns]
