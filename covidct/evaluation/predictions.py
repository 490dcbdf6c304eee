"""Evaluation from stored predictions: image and patient level, per fold and pooled, with CIs.

Input is a predictions table (CSV or DataFrame), one row per slice:

==================== ======== ==============================================================
column               required meaning
==================== ======== ==============================================================
``patient_id``       yes      the patient (grouping key, e.g. ``negin/patient1``)
``y_true``           yes      ``covid`` or ``normal`` (or 0/1, 1 = COVID)
``p_covid``          yes      the model's p(COVID) in [0, 1]
``fold``             no       cross-validation fold of the model that scored the row
``slice_id``         no       slice identifier (file name); pairs two models' rows; unique per
                              ([fold,] [split,] patient)
``selected``         no       bool, open-lung slice kept by the COVID-CTset selection
``split``            no       ``val`` or ``test``; ``val`` rows only choose the patient threshold;
                              a patient is never in both (within a fold)
``patient_threshold`` no      patient decision threshold (constant per fold and patient)
==================== ======== ==============================================================

Image level: every (test) row is one image, predicted COVID when ``p_covid > 0.5``.
Patient level (COVID-CTset work, Rahimzadeh et al. 2021): a patient is COVID when the fraction of
its *selected* slices predicted COVID exceeds a threshold chosen on the validation split
(:func:`choose_patient_threshold`); without a ``selected`` column every slice counts.
Patient ROC and PR AUCs rank patients by ``mean_p_covid``, the mean p_covid over the same slices
(a continuous score; the thresholded fraction would tie most patients). A patient scored in
several folds is diagnosed once per (fold, patient).

Across folds two aggregations are reported, labelled: ``pooled`` (metrics of the summed
confusion matrix, equal to those of the average confusion matrix) and ``fold mean ± sd``.
Uncertainty: percentile bootstrap over patients (all of a patient's slices move together),
stratified by the patient's label; :func:`paired_bootstrap` resamples the same patients for two
models. See ``docs/metrics.md``.
"""

from __future__ import annotations

import logging
import math
import warnings
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from covidct.evaluation.metrics import (
    DEFAULT_THRESHOLD,
    NEGATIVE_CLASS,
    Metric,
    UndefinedMetricWarning,
    check_scores,
    encode_labels,
)
from covidct.schema import CLASS_NAMES, POSITIVE_CLASS

logger = logging.getLogger(__name__)

PATIENT_ID = "patient_id"
Y_TRUE = "y_true"
P_COVID = "p_covid"
FOLD = "fold"
SLICE_ID = "slice_id"
SELECTED = "selected"
SPLIT = "split"
PATIENT_THRESHOLD = "patient_threshold"
REQUIRED_COLUMNS: tuple[str, ...] = (PATIENT_ID, Y_TRUE, P_COVID)
OPTIONAL_COLUMNS: tuple[str, ...] = (FOLD, SLICE_ID, SELECTED, SPLIT, PATIENT_THRESHOLD)
VAL_SPLIT = "val"
TEST_SPLIT = "test"
#: Fold label used when a predictions table has no ``fold`` column.
ALL_FOLDS = "all"
#: Patient threshold used when none is given, chosen, or stored (a warning is logged).
DEFAULT_PATIENT_THRESHOLD = 0.5
#: Metrics reported with confidence intervals, at image and at patient level.
HEADLINE: tuple[Metric, ...] = (
    Metric.ACCURACY,
    Metric.COVID_SENSITIVITY,
    Metric.COVID_SPECIFICITY,
    Metric.COVID_PRECISION,
    Metric.NORMAL_PRECISION,
    Metric.BALANCED_ACCURACY,
    Metric.COVID_F1,
    Metric.MCC,
    Metric.ROC_AUC,
    Metric.PR_AUC,
)
#: Metrics printed as fractions rather than percent.
FRACTION_METRICS = frozenset({Metric.MCC, Metric.ROC_AUC, Metric.PR_AUC})


class Unit(StrEnum):
    """Unit of evaluation: one image (slice) or one patient diagnosis."""

    IMAGE = "image"
    PATIENT = "patient"

    @classmethod
    def _missing_(cls, value: object) -> Unit:
        valid = ", ".join(member.value for member in cls)
        raise ValueError(f"unknown unit {value!r}; valid units: {valid}")


class ThresholdSource(StrEnum):
    """Where the patient-level threshold of an evaluation came from."""

    ARGUMENT = "argument"
    VALIDATION = "validation split"
    COLUMN = "patient_threshold column"
    DEFAULT = "default (no validation split)"


def metric_key(unit: Unit | str, metric: Metric | str) -> str:
    """Qualified metric name, e.g. ``patient_balanced_accuracy``."""
    return f"{Unit(unit).value}_{Metric(metric).value}"


def parse_metric_key(name: str) -> tuple[Unit, Metric]:
    """Split ``image_<metric>`` / ``patient_<metric>`` (a bare metric means image level).

    Raises ValueError listing the valid metric names.
    """
    for unit in Unit:
        prefix = f"{unit.value}_"
        if name.startswith(prefix):
            return unit, Metric(name[len(prefix) :])
    return Unit.IMAGE, Metric(name)


# --------------------------------------------------------------------------- reading


def read_predictions(path: Path) -> pd.DataFrame:
    """Read and validate a predictions CSV (schema in the module docstring).

    Raises FileNotFoundError if absent; ValueError naming the file on a schema violation, or
    when rows without a ``slice_id`` are identical in every column (a file cannot tell two
    slices from one row written twice, which would count twice: :func:`check_no_identical_rows`).
    """
    path = Path(path)
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        expected = ", ".join(REQUIRED_COLUMNS)
        raise ValueError(f"{path}: empty file; expected columns {expected}") from None
    checked = validate_predictions(frame, source=str(path))
    check_no_identical_rows(checked, source=str(path))
    return checked


def check_no_identical_rows(frame: pd.DataFrame, *, source: str = "predictions") -> None:
    """Raise ValueError naming ``source`` and the number of duplicated rows when rows without a
    ``slice_id`` (no such column, or an empty one) are identical in every column.

    Such rows cannot be told apart from one row written twice, and each would count as a slice.
    Rows with a slice id are checked by :func:`validate_predictions` (one row per ``([fold,]
    [split,] patient_id, slice_id)``). Applied to predictions files (:func:`read_predictions`);
    frames built in memory may repeat rows on purpose.
    """
    unnamed = frame[frame[SLICE_ID].isna()] if SLICE_ID in frame.columns else frame
    repeated = int(unnamed.duplicated(keep="first").sum())
    if repeated:
        raise ValueError(
            f"{source}: {repeated} duplicated row(s), identical in every column with no "
            f"{SLICE_ID} to tell them apart (each would count as one more slice); add a "
            f"{SLICE_ID} column or remove the duplicates"
        )


def validate_predictions(frame: pd.DataFrame, *, source: str = "predictions") -> pd.DataFrame:
    """Return a normalised copy: ``y_true`` as class names, ``p_covid`` float64, ``patient_id``
    str, ``selected`` bool; extra columns are kept.

    Raises ValueError naming ``source`` if a required column is missing, there are no rows, a
    label, score or ``selected`` value is invalid, a patient has both labels, two rows share
    a ``([fold,] [split,] patient_id, slice_id)`` key (when there is a ``slice_id`` column;
    rows without a slice id are not compared), or a patient has both ``val`` and ``test`` rows
    (within one fold when there is a ``fold`` column). Every reader of predictions (the
    evaluation, both bootstraps, the CLI) passes here.
    """
    missing = [column for column in REQUIRED_COLUMNS if column not in frame.columns]
    if missing:
        raise ValueError(
            f"{source}: missing column(s) {', '.join(missing)}; required "
            f"{', '.join(REQUIRED_COLUMNS)}, optional {', '.join(OPTIONAL_COLUMNS)}"
        )
    if frame.empty:
        raise ValueError(f"{source}: no rows")
    out = frame.reset_index(drop=True).copy()
    try:
        out[Y_TRUE] = np.asarray(CLASS_NAMES, dtype=object)[encode_labels(out[Y_TRUE])]
        out[P_COVID] = check_scores(out[P_COVID], name=P_COVID)
        out[PATIENT_ID] = _patient_ids(out[PATIENT_ID])
        if SELECTED in out.columns:
            out[SELECTED] = _as_bool(out[SELECTED])
        if SPLIT in out.columns:
            out[SPLIT] = _splits(out[SPLIT])
        _check_one_label_per_patient(out)
        _check_no_duplicate_slices(out)
        _check_val_test_disjoint(out)
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None
    return out


def _patient_ids(values: pd.Series) -> pd.Series:
    missing = values.isna()
    if missing.any():
        raise ValueError(f"{PATIENT_ID}: {int(missing.sum())} row(s) without a patient id")
    return values.astype(str)


def _as_bool(values: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(values):
        return values.astype(bool)
    text = values.astype("string").str.strip().str.lower()
    mapped = text.map(
        {"true": True, "1": True, "1.0": True, "false": False, "0": False, "0.0": False}
    )
    bad = values[mapped.isna()]
    if not bad.empty:
        shown = ", ".join(f"row {i}: {v!r}" for i, v in bad.head(5).items())
        raise ValueError(f"{SELECTED}: {len(bad)} value(s) are not booleans ({shown})")
    return mapped.astype(bool)


def _splits(values: pd.Series) -> pd.Series:
    text = values.astype("string").str.strip().str.lower()
    bad = values[~text.isin([VAL_SPLIT, TEST_SPLIT])]
    if not bad.empty:
        shown = ", ".join(f"row {i}: {v!r}" for i, v in bad.head(5).items())
        raise ValueError(f"{SPLIT}: {len(bad)} value(s) not {VAL_SPLIT} or {TEST_SPLIT} ({shown})")
    return text.astype(str)


def _check_one_label_per_patient(frame: pd.DataFrame) -> None:
    labels = frame.groupby(PATIENT_ID)[Y_TRUE].nunique()
    mixed = labels.index[labels > 1]
    if len(mixed):
        raise ValueError(
            f"{len(mixed)} patient(s) have both labels (labels are per patient): "
            f"{', '.join(map(str, mixed[:5]))}"
        )


def _key_text(key: Any) -> str:
    return "/".join(map(str, key)) if isinstance(key, tuple) else str(key)


def _check_no_duplicate_slices(frame: pd.DataFrame) -> None:
    if SLICE_ID not in frame.columns:
        return
    keys = [c for c in (FOLD, SPLIT, PATIENT_ID, SLICE_ID) if c in frame.columns]
    rows = frame.loc[frame[SLICE_ID].notna(), keys]
    repeated = rows.duplicated(keep="first")
    if repeated.any():
        named = rows[repeated].drop_duplicates()
        shown = ", ".join(_key_text(k) for k in named.head(5).itertuples(index=False, name=None))
        more = ", ..." if len(named) > 5 else ""
        raise ValueError(
            f"{int(repeated.sum())} duplicate slice row(s) (same {'/'.join(keys)} as an "
            f"earlier row): {shown}{more}"
        )


def _check_val_test_disjoint(frame: pd.DataFrame) -> None:
    if SPLIT not in frame.columns:
        return
    keys = [FOLD, PATIENT_ID] if FOLD in frame.columns else [PATIENT_ID]
    splits = frame.groupby(keys, sort=True)[SPLIT].nunique()
    both = splits.index[splits > 1]
    if len(both):
        where = f" of one fold ({'/'.join(keys)})" if FOLD in frame.columns else ""
        more = ", ..." if len(both) > 5 else ""
        raise ValueError(
            f"{len(both)} patient(s) in both {VAL_SPLIT} and {TEST_SPLIT}{where}: "
            f"{', '.join(_key_text(k) for k in both[:5])}{more}"
        )


# --------------------------------------------------------------------------- patient level


def _patient_keys(frame: pd.DataFrame) -> list[str]:
    return [FOLD, PATIENT_ID] if FOLD in frame.columns else [PATIENT_ID]


def patient_level(
    df: pd.DataFrame,
    threshold: float | None = None,
    *,
    slice_threshold: float = DEFAULT_THRESHOLD,
) -> pd.DataFrame:
    """Diagnose each patient (once per fold when ``fold`` is present).

    A slice is predicted COVID when ``p_covid > slice_threshold``. A patient's slices are its
    selected ones (all when there is no ``selected`` column; a patient with none selected falls
    back to all its slices, with a warning). ``covid_fraction`` is the fraction of those slices
    predicted COVID, and the patient is COVID when it is strictly greater than ``threshold``
    (None: the ``patient_threshold`` column, else 0.5 with a warning). ``mean_p_covid`` is the
    mean p_covid of the same slices: the continuous score that patient ROC and PR AUCs rank by
    (:func:`patient_metrics`, the bootstrap), since the fraction ties most patients.

    Returns one row per (fold,) patient, sorted: ``[fold,] patient_id, y_true, n_slices,
    n_selected, n_covid_slices, covid_fraction, mean_p_covid, threshold, y_pred, correct,
    all_slices_used``. Raises ValueError on an invalid table or threshold.
    """
    frame = validate_predictions(df)
    keys = _patient_keys(frame)
    flagged = frame[P_COVID].to_numpy() > slice_threshold
    used = frame[SELECTED].to_numpy() if SELECTED in frame.columns else np.ones(len(frame), bool)
    scores = frame[P_COVID].to_numpy(dtype=np.float64)
    work = frame[[*keys, Y_TRUE]].assign(
        n_slices=1, n_selected=used, _covid_used=flagged & used, _covid_all=flagged,
        _score_used=np.where(used, scores, 0.0), _score_all=scores,
    )  # fmt: skip
    grouped = work.groupby(keys, sort=True)
    sums = ["n_slices", "n_selected", "_covid_used", "_covid_all", "_score_used", "_score_all"]
    table = grouped[sums].sum()
    table.insert(0, Y_TRUE, grouped[Y_TRUE].first())
    fallback = (table["n_selected"] == 0).to_numpy()
    _warn_no_selected(table.index[fallback])
    n_used = np.where(fallback, table["n_slices"], table["n_selected"])
    table["n_covid_slices"] = np.where(fallback, table["_covid_all"], table["_covid_used"])
    table["covid_fraction"] = table["n_covid_slices"] / n_used
    table["mean_p_covid"] = np.where(fallback, table["_score_all"], table["_score_used"]) / n_used
    table["threshold"] = _patient_thresholds(frame, keys, threshold, table.index)
    covid = table["covid_fraction"].to_numpy() > table["threshold"].to_numpy()
    table["y_pred"] = np.where(covid, POSITIVE_CLASS, NEGATIVE_CLASS)
    table["correct"] = table["y_pred"] == table[Y_TRUE]
    table["all_slices_used"] = fallback
    return table.drop(columns=sums[2:]).reset_index()


def _warn_no_selected(patients: pd.Index) -> None:
    if len(patients):
        shown = ", ".join(map(str, patients[:5]))
        logger.warning(
            "%d patient(s) have no selected slice; using all their slices: %s", len(patients), shown
        )


def _patient_thresholds(
    frame: pd.DataFrame, keys: list[str], threshold: float | None, index: pd.Index
) -> np.ndarray:
    if threshold is not None:
        return np.full(len(index), check_threshold(threshold, "patient threshold"))
    if PATIENT_THRESHOLD not in frame.columns:
        logger.warning("no patient threshold given or stored; using %s", DEFAULT_PATIENT_THRESHOLD)
        return np.full(len(index), DEFAULT_PATIENT_THRESHOLD)
    grouped = frame.groupby(keys, sort=True)[PATIENT_THRESHOLD]
    varying = grouped.nunique(dropna=False)
    if (varying > 1).any():
        bad = ", ".join(map(str, varying.index[varying > 1][:5]))
        raise ValueError(f"{PATIENT_THRESHOLD} varies within patient(s) {bad}")
    values = grouped.first().reindex(index).to_numpy(dtype=np.float64)
    for value in np.unique(values):
        check_threshold(value, PATIENT_THRESHOLD)
    return values


def check_threshold(value: float, name: str) -> float:
    """``value`` as a float; raises ValueError naming ``name`` unless it is finite and in [0, 1]."""
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return float(value)


def choose_patient_threshold(
    val_df: pd.DataFrame, *, slice_threshold: float = DEFAULT_THRESHOLD
) -> float:
    """Choose the patient threshold on a validation split (one fold's validation predictions).

    Maximises patient-level balanced accuracy (equivalently Youden's J, Youden 1950) over the
    cut points halfway between consecutive distinct patient scores (0 included), so the rule
    ``fraction > t`` has the widest margin; ties go to the lowest threshold (favouring COVID
    sensitivity, as screening does). Returns 0.5 with an :class:`UndefinedMetricWarning` when
    the split lacks a class or every patient has the same score.
    """
    patients = patient_level(val_df, 0.0, slice_threshold=slice_threshold)
    truth = encode_labels(patients[Y_TRUE]).astype(bool)
    scores = patients["covid_fraction"].to_numpy()
    distinct = np.unique(np.concatenate([[0.0], scores]))
    if truth.all() or not truth.any() or len(distinct) < 2:
        warnings.warn(
            f"patient threshold: validation split cannot separate classes ({truth.sum()} covid, "
            f"{(~truth).sum()} normal patients, {len(distinct)} distinct scores); using "
            f"{DEFAULT_PATIENT_THRESHOLD}",
            UndefinedMetricWarning,
            stacklevel=2,
        )
        return DEFAULT_PATIENT_THRESHOLD
    cuts = (distinct[:-1] + distinct[1:]) / 2
    called = scores[None, :] > cuts[:, None]  # (n_cuts, n_patients)
    sensitivity = (called & truth).sum(axis=1) / truth.sum()
    specificity = (~called & ~truth).sum(axis=1) / (~truth).sum()
    balanced = (sensitivity + specificity) / 2
    best = int(np.argmax(balanced))  # first maximum = lowest threshold
    logger.info(
        "patient threshold %.4f (validation balanced accuracy %.4f)", cuts[best], balanced[best]
    )
    return float(cuts[best])


def patient_report(patients: pd.DataFrame) -> pd.DataFrame:
    """The seed's Table 8: per (fold,) true class, patients correctly and wrongly diagnosed.

    ``patients``: output of :func:`patient_level`. Returns rows ``[fold,] y_true, n_patients,
    n_correct, n_wrong, correct_ids, wrong_ids`` (ids as sorted lists of str).
    """
    keys = [FOLD, Y_TRUE] if FOLD in patients.columns else [Y_TRUE]
    rows = []
    for key, group in patients.groupby(keys, sort=True):
        labels = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
        right = sorted(group.loc[group["correct"], PATIENT_ID].astype(str))
        wrong = sorted(group.loc[~group["correct"], PATIENT_ID].astype(str))
        rows.append(
            labels
            | {"n_patients": len(group), "n_correct": len(right), "n_wrong": len(wrong)}
            | {"correct_ids": right, "wrong_ids": wrong}
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- outcome kinds


class Cell(StrEnum):
    """Confusion-matrix cell of one slice (positive class COVID, ``p_covid > threshold``)."""

    TRUE_POSITIVE = "TP"
    FALSE_NEGATIVE = "FN"
    FALSE_POSITIVE = "FP"
    TRUE_NEGATIVE = "TN"

    @classmethod
    def _missing_(cls, value: object) -> Cell:
        valid = ", ".join(member.value for member in cls)
        raise ValueError(f"unknown confusion cell {value!r}; valid: {valid}")

    @property
    def description(self) -> str:
        """Human wording, e.g. ``false positive (normal predicted covid)``."""
        return _CELL_WORDS[self]


_CELL_WORDS = {
    Cell.TRUE_POSITIVE: "true positive (covid predicted covid)",
    Cell.FALSE_NEGATIVE: "false negative (covid predicted normal)",
    Cell.FALSE_POSITIVE: "false positive (normal predicted covid)",
    Cell.TRUE_NEGATIVE: "true negative (normal predicted normal)",
}


def confusion_cells(predictions: pd.DataFrame, threshold: float = DEFAULT_THRESHOLD) -> pd.Series:
    """The :class:`Cell` value (``TP``/``FN``/``FP``/``TN``) of each row of a predictions table."""
    frame = validate_predictions(predictions)
    truth = (frame[Y_TRUE] == POSITIVE_CLASS).to_numpy()
    called = frame[P_COVID].to_numpy() > threshold
    cells = np.select(
        [truth & called, truth & ~called, ~truth & called],
        [Cell.TRUE_POSITIVE.value, Cell.FALSE_NEGATIVE.value, Cell.FALSE_POSITIVE.value],
        Cell.TRUE_NEGATIVE.value,
    )
    return pd.Series(cells, index=frame.index, name="cell")
