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

import json
import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve, roc_curve

from covidct.evaluation.metrics import (
    DEFAULT_THRESHOLD,
    NEGATIVE_CLASS,
    PREDICTED_AXIS,
    TRUE_AXIS,
    ClusteredPredictions,
    Metric,
    UndefinedMetricWarning,
    check_scores,
    classification_metrics,
    cluster_predictions,
    confusion,
    encode_labels,
    predict_labels,
    score_metrics,
    weighted_metrics,
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
# Metrics printed as fractions rather than percent.
_FRACTION_METRICS = frozenset({Metric.MCC, Metric.ROC_AUC, Metric.PR_AUC})


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

    Raises FileNotFoundError if absent; ValueError naming the file on a schema violation.
    """
    path = Path(path)
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        expected = ", ".join(REQUIRED_COLUMNS)
        raise ValueError(f"{path}: empty file; expected columns {expected}") from None
    return validate_predictions(frame, source=str(path))


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
        return np.full(len(index), _check_threshold(threshold, "patient threshold"))
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
        _check_threshold(value, PATIENT_THRESHOLD)
    return values


def _check_threshold(value: float, name: str) -> float:
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


# --------------------------------------------------------------------------- metric tables


def image_metrics(
    df: pd.DataFrame, *, slice_threshold: float = DEFAULT_THRESHOLD
) -> dict[str, float]:
    """Image-level metrics (:func:`covidct.evaluation.metrics.classification_metrics`) of every
    row."""
    scores = df[P_COVID].to_numpy(dtype=np.float64)
    return classification_metrics(df[Y_TRUE], predict_labels(scores, slice_threshold), scores)


def patient_metrics(patients: pd.DataFrame) -> dict[str, float]:
    """Patient-level metrics of a :func:`patient_level` table: counts and rates from the call
    ``y_pred`` (``covid_fraction > threshold``), ROC and PR AUCs from ``mean_p_covid``."""
    return classification_metrics(patients[Y_TRUE], patients["y_pred"], patients["mean_p_covid"])


def headline_metrics(
    predictions: pd.DataFrame,
    *,
    patient_threshold: float | None = None,
    slice_threshold: float = DEFAULT_THRESHOLD,
) -> dict[str, float]:
    """Every metric of one predictions table, keys ``image_<metric>`` and ``patient_<metric>``.

    Fractions (not percent), NaN where undefined; counts as ``image_tp`` ... ``patient_n``.
    ``patient_threshold`` None uses the ``patient_threshold`` column (else 0.5, warned).
    """
    frame = validate_predictions(predictions)
    patients = patient_level(frame, patient_threshold, slice_threshold=slice_threshold)
    image = image_metrics(frame, slice_threshold=slice_threshold)
    return _prefixed(Unit.IMAGE, image) | _prefixed(Unit.PATIENT, patient_metrics(patients))


def _prefixed(unit: Unit, values: Mapping[str, float]) -> dict[str, float]:
    return {f"{unit.value}_{key}": float(value) for key, value in values.items()}


def fold_metrics(
    predictions: pd.DataFrame,
    *,
    patient_threshold: float | None = None,
    slice_threshold: float = DEFAULT_THRESHOLD,
) -> pd.DataFrame:
    """Per-fold :func:`headline_metrics`: index ``fold`` (``all`` without a fold column)."""
    frame = _with_fold(validate_predictions(predictions))
    rows = {
        fold: headline_metrics(
            group, patient_threshold=patient_threshold, slice_threshold=slice_threshold
        )
        for fold, group in frame.groupby(FOLD, sort=True)
    }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis(FOLD)


def summarize_folds(per_fold: pd.DataFrame) -> pd.DataFrame:
    """Mean and sample standard deviation (ddof 1) over folds of each metric column.

    Returns index ``metric``, columns ``mean, sd, n_folds`` (folds where the metric is defined;
    NaN folds are skipped; sd is NaN with fewer than two).
    """
    summary = pd.DataFrame(
        {"mean": per_fold.mean(), "sd": per_fold.std(ddof=1), "n_folds": per_fold.count()}
    )
    return summary.rename_axis("metric")


def _with_fold(frame: pd.DataFrame) -> pd.DataFrame:
    return frame if FOLD in frame.columns else frame.assign(**{FOLD: ALL_FOLDS})


# --------------------------------------------------------------------------- bootstrap


@dataclass(frozen=True)
class BootstrapResult:
    """Percentile bootstrap interval of one metric, resampling patients.

    ``distribution``: the metric in each resample (float64 (n_boot,), NaN where undefined);
    ``n_valid`` resamples are finite and define ``low``/``high``.
    """

    metric: str
    point: float
    low: float
    high: float
    level: float
    n_boot: int
    n_valid: int
    n_patients: int
    seed: int
    distribution: np.ndarray = field(repr=False, compare=False)


@dataclass(frozen=True)
class PairedBootstrapResult:
    """Paired bootstrap of ``metric(a) - metric(b)`` over the same resampled patients.

    ``fraction_positive``: share of finite resamples where a beats b.
    """

    metric: str
    point_a: float
    point_b: float
    difference: float
    low: float
    high: float
    level: float
    n_boot: int
    n_valid: int
    n_patients: int
    seed: int
    fraction_positive: float
    distribution: np.ndarray = field(repr=False, compare=False)

    def as_tuple(self) -> tuple[float, float, float]:
        """``(difference, low, high)``, the shape ``covidct.promotion.gate.PairedBootstrap``
        returns."""
        return self.difference, self.low, self.high


def bootstrap_weights(
    strata: np.ndarray, *, n_boot: int, seed: int, stratify: bool = True
) -> np.ndarray:
    """Resample counts of each patient: float64 (n_boot, n_patients), rows sum to n_patients.

    ``strata``: label of each patient. Stratified, each resample draws as many patients of each
    label as the data hold (pROC's default for ROC intervals; Carpenter & Bithell 2000), so a
    resample always holds both classes. Deterministic for a seed (numpy PCG64).
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    rng = np.random.default_rng(seed)
    strata = np.asarray(strata)
    groups = (
        [np.flatnonzero(strata == s) for s in np.unique(strata)]
        if stratify
        else [np.arange(len(strata))]
    )
    weights = np.zeros((n_boot, len(strata)))
    for members in groups:
        draws = rng.multinomial(len(members), np.full(len(members), 1 / len(members)), n_boot)
        weights[:, members] = draws
    return weights


@dataclass(frozen=True)
class _Patients:
    ids: pd.Index
    strata: np.ndarray


def _patients_of(frame: pd.DataFrame) -> _Patients:
    labels = frame.groupby(PATIENT_ID, sort=True)[Y_TRUE].first()
    return _Patients(labels.index, encode_labels(labels))


def _clustered(
    frame: pd.DataFrame,
    unit: Unit,
    patients: _Patients,
    *,
    patient_threshold: float | None,
    slice_threshold: float,
) -> ClusteredPredictions:
    if unit == Unit.IMAGE:
        rows, scores = frame, frame[P_COVID].to_numpy(dtype=np.float64)
        predicted = predict_labels(scores, slice_threshold)
    else:
        rows = patient_level(frame, patient_threshold, slice_threshold=slice_threshold)
        scores, predicted = rows["mean_p_covid"].to_numpy(), encode_labels(rows["y_pred"])
    cluster = patients.ids.get_indexer(pd.Index(rows[PATIENT_ID]))
    truth = encode_labels(rows[Y_TRUE])
    return cluster_predictions(truth, predicted, scores, cluster, len(patients.ids))


def _interval(distribution: np.ndarray, level: float) -> tuple[float, float, int]:
    finite = distribution[np.isfinite(distribution)]
    if finite.size == 0:
        return math.nan, math.nan, 0
    low, high = np.quantile(finite, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high), int(finite.size)


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")


def bootstrap_ci(
    df: pd.DataFrame,
    metric: str,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    patient_threshold: float | None = None,
    slice_threshold: float = DEFAULT_THRESHOLD,
    stratify: bool = True,
) -> BootstrapResult:
    """Percentile bootstrap CI of ``metric`` resampling patients (a patient's slices together).

    ``metric``: ``image_<m>`` / ``patient_<m>`` or a bare :class:`Metric` (image level).
    Patient-level thresholds stay fixed (chosen on validation, not on the test set). Raises
    ValueError on an unknown metric, a bad table, ``n_boot < 1`` or ``level`` outside (0, 1).
    """
    unit, name = parse_metric_key(metric)
    _check_level(level)
    frame = validate_predictions(df)
    patients = _patients_of(frame)
    data = _clustered(
        frame, unit, patients, patient_threshold=patient_threshold, slice_threshold=slice_threshold
    )
    point = float(weighted_metrics(data, np.ones((1, data.n_clusters)), [name])[name][0])
    weights = bootstrap_weights(patients.strata, n_boot=n_boot, seed=seed, stratify=stratify)
    distribution = weighted_metrics(data, weights, [name])[name]
    low, high, n_valid = _interval(distribution, level)
    return BootstrapResult(
        metric_key(unit, name), point, low, high, level, n_boot, n_valid, len(patients.ids), seed,
        distribution,
    )  # fmt: skip


def paired_bootstrap(
    df_a: pd.DataFrame,
    df_b: pd.DataFrame,
    metric: str,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    patient_thresholds: tuple[float | None, float | None] = (None, None),
    slice_threshold: float = DEFAULT_THRESHOLD,
    stratify: bool = True,
) -> PairedBootstrapResult:
    """Paired bootstrap of ``metric(a) - metric(b)``: both models on the same resampled patients.

    ``df_a``, ``df_b``: predictions of two models on the same test set (same patients and
    labels; same slices when both carry ``slice_id``). ``patient_thresholds``: each model's
    patient threshold (None: its ``patient_threshold`` column). Vectorised: 1,000 resamples of
    300 patients x 40 slices take well under a second. Raises ValueError if the test sets differ.
    """
    unit, name = parse_metric_key(metric)
    _check_level(level)
    frame_a = validate_predictions(df_a, source="predictions a")
    frame_b = validate_predictions(df_b, source="predictions b")
    patients = _same_test_set(frame_a, frame_b)
    datas = [
        _clustered(f, unit, patients, patient_threshold=t, slice_threshold=slice_threshold)
        for f, t in zip((frame_a, frame_b), patient_thresholds, strict=True)
    ]
    ones = np.ones((1, len(patients.ids)))
    point_a, point_b = (float(weighted_metrics(d, ones, [name])[name][0]) for d in datas)
    weights = bootstrap_weights(patients.strata, n_boot=n_boot, seed=seed, stratify=stratify)
    dist_a, dist_b = (weighted_metrics(d, weights, [name])[name] for d in datas)
    difference = dist_a - dist_b
    low, high, n_valid = _interval(difference, level)
    finite = difference[np.isfinite(difference)]
    positive = float((finite > 0).mean()) if finite.size else math.nan
    return PairedBootstrapResult(
        metric_key(unit, name), point_a, point_b, point_a - point_b, low, high, level, n_boot,
        n_valid, len(patients.ids), seed, positive, difference,
    )  # fmt: skip


def _same_test_set(frame_a: pd.DataFrame, frame_b: pd.DataFrame) -> _Patients:
    patients_a, patients_b = _patients_of(frame_a), _patients_of(frame_b)
    only_a = patients_a.ids.difference(patients_b.ids)
    only_b = patients_b.ids.difference(patients_a.ids)
    if len(only_a) or len(only_b):
        raise ValueError(
            f"paired bootstrap needs the same test patients: {len(only_a)} only in a "
            f"({', '.join(only_a[:5])}), {len(only_b)} only in b ({', '.join(only_b[:5])})"
        )
    relabelled = patients_a.ids[patients_a.strata != patients_b.strata]
    if len(relabelled):
        raise ValueError(f"patients labelled differently in a and b: {', '.join(relabelled[:5])}")
    if SLICE_ID in frame_a.columns and SLICE_ID in frame_b.columns:
        _check_same_slices(frame_a, frame_b)
    return patients_a


def _check_same_slices(frame_a: pd.DataFrame, frame_b: pd.DataFrame) -> None:
    keys = [
        c for c in (FOLD, PATIENT_ID, SLICE_ID) if c in frame_a.columns and c in frame_b.columns
    ]
    rows_a = frame_a[keys].astype(str).value_counts()
    rows_b = frame_b[keys].astype(str).value_counts()
    differ = rows_a.sub(rows_b, fill_value=0)
    differ = differ[differ != 0]
    if len(differ):
        shown = ", ".join("/".join(key) for key in differ.index[:5])
        raise ValueError(f"paired bootstrap: {len(differ)} slice(s) not in both tables ({shown})")


# --------------------------------------------------------------------------- full evaluation


@dataclass(frozen=True)
class EvaluationResult:
    """Everything :func:`evaluate_predictions` reports (all values fractions, not percent).

    ``metrics``: pooled metrics over all folds, keys ``image_<m>`` / ``patient_<m>``.
    ``per_fold``: index fold, the same keys. ``fold_summary``: index metric key, columns
    ``mean, sd, n_folds``. ``intervals``: index metric key (headline metrics), columns
    ``point, low, high, n_valid``. ``patients``: :func:`patient_level`; ``patient_report``:
    :func:`patient_report`. Confusions are labelled (rows true, columns predicted).
    """

    metrics: dict[str, float]
    image_confusion: pd.DataFrame
    patient_confusion: pd.DataFrame
    per_fold: pd.DataFrame
    fold_summary: pd.DataFrame
    intervals: pd.DataFrame
    patients: pd.DataFrame
    patient_report: pd.DataFrame
    patient_thresholds: dict[str, float]
    threshold_source: ThresholdSource
    n_images: int
    n_boot: int
    level: float
    seed: int

    def summary(self, unit: Unit | str) -> pd.DataFrame:
        """Headline metrics of one unit: index metric, columns ``pooled, ci_low, ci_high,
        fold_mean, fold_sd`` (the two aggregations side by side)."""
        keys = [metric_key(unit, metric) for metric in HEADLINE]
        table = pd.DataFrame(
            {
                "pooled": [self.metrics[key] for key in keys],
                "ci_low": self.intervals["low"].reindex(keys).to_numpy(),
                "ci_high": self.intervals["high"].reindex(keys).to_numpy(),
                "fold_mean": self.fold_summary["mean"].reindex(keys).to_numpy(),
                "fold_sd": self.fold_summary["sd"].reindex(keys).to_numpy(),
            },
            index=pd.Index([m.value for m in HEADLINE], name="metric"),
        )
        return table

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (NaN as None)."""
        out: dict[str, Any] = {
            "n_images": self.n_images,
            "n_patients": int(self.patients[PATIENT_ID].nunique()),
            "n_patient_diagnoses": len(self.patients),
            "folds": [str(f) for f in self.per_fold.index],
            "patient_thresholds": self.patient_thresholds,
            "threshold_source": self.threshold_source.value,
            "bootstrap": {"n_boot": self.n_boot, "level": self.level, "seed": self.seed,
                          "resampling": "patients, stratified by label", "interval": "percentile"},
        }  # fmt: skip
        for unit, matrix in (
            (Unit.IMAGE, self.image_confusion),
            (Unit.PATIENT, self.patient_confusion),
        ):
            out[unit.value] = self._unit_dict(unit, matrix)
        out["per_fold"] = json.loads(
            self.per_fold.reset_index().astype({FOLD: str}).to_json(orient="records")
        )
        out[Unit.PATIENT.value]["report"] = json.loads(
            self.patient_report.astype({"y_true": str}).to_json(orient="records")
        )
        return _json_safe(out)

    def _unit_dict(self, unit: Unit, matrix: pd.DataFrame) -> dict[str, Any]:
        prefix = f"{unit.value}_"
        pooled = {k[len(prefix) :]: v for k, v in self.metrics.items() if k.startswith(prefix)}
        summary = self.summary(unit)
        return {
            "pooled": pooled,
            "ci": {m: [row.ci_low, row.ci_high] for m, row in summary.iterrows()},
            "fold_mean": summary["fold_mean"].to_dict(),
            "fold_sd": summary["fold_sd"].to_dict(),
            "confusion": {
                "rows": TRUE_AXIS, "columns": PREDICTED_AXIS, "counts": matrix.to_dict("index")
            },
        }  # fmt: skip


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _resolve_thresholds(
    frame: pd.DataFrame, patient_threshold: float | None, slice_threshold: float
) -> tuple[pd.DataFrame, dict[str, float], ThresholdSource]:
    """Return the test rows with a per-fold ``patient_threshold`` column, and its source."""
    frame = _with_fold(frame)
    has_val = SPLIT in frame.columns and bool((frame[SPLIT] == VAL_SPLIT).any())
    test = frame[frame[SPLIT] != VAL_SPLIT] if SPLIT in frame.columns else frame
    if test.empty:
        raise ValueError("predictions: no test rows (every row is split=val)")
    folds = sorted(test[FOLD].unique(), key=str)
    if patient_threshold is not None:
        chosen = dict.fromkeys(folds, _check_threshold(patient_threshold, "patient threshold"))
        source = ThresholdSource.ARGUMENT
    elif has_val:
        chosen = {f: _threshold_from_val(frame, f, slice_threshold) for f in folds}
        source = ThresholdSource.VALIDATION
    elif PATIENT_THRESHOLD in frame.columns:
        return test, _stored_thresholds(test), ThresholdSource.COLUMN
    else:
        logger.warning(
            "no validation rows or patient threshold; using %s", DEFAULT_PATIENT_THRESHOLD
        )
        chosen, source = dict.fromkeys(folds, DEFAULT_PATIENT_THRESHOLD), ThresholdSource.DEFAULT
    test = test.assign(**{PATIENT_THRESHOLD: test[FOLD].map(chosen).astype(np.float64)})
    return test, {str(f): float(t) for f, t in chosen.items()}, source


def _threshold_from_val(frame: pd.DataFrame, fold: Any, slice_threshold: float) -> float:
    val = frame[(frame[SPLIT] == VAL_SPLIT) & (frame[FOLD] == fold)]
    if val.empty:
        logger.warning(
            "fold %s has no validation rows; patient threshold %s", fold, DEFAULT_PATIENT_THRESHOLD
        )
        return DEFAULT_PATIENT_THRESHOLD
    return choose_patient_threshold(
        val.drop(columns=[PATIENT_THRESHOLD], errors="ignore"), slice_threshold=slice_threshold
    )


def _stored_thresholds(test: pd.DataFrame) -> dict[str, float]:
    values = test.groupby(FOLD, sort=True)[PATIENT_THRESHOLD].agg(["min", "max"])
    return {
        str(fold): float(row["min"]) if row["min"] == row["max"] else math.nan
        for fold, row in values.iterrows()
    }


def _headline_intervals(
    frame: pd.DataFrame, *, n_boot: int, seed: int, level: float, slice_threshold: float
) -> pd.DataFrame:
    keys = [metric_key(unit, m) for unit in Unit for m in HEADLINE]
    columns = ["point", "low", "high", "n_valid"]
    if n_boot == 0:
        return pd.DataFrame(math.nan, index=pd.Index(keys, name="metric"), columns=columns)
    patients = _patients_of(frame)
    weights = bootstrap_weights(patients.strata, n_boot=n_boot, seed=seed)
    rows = {}
    for unit in Unit:
        data = _clustered(
            frame, unit, patients, patient_threshold=None, slice_threshold=slice_threshold
        )
        points = weighted_metrics(data, np.ones((1, data.n_clusters)), HEADLINE)
        for metric, distribution in weighted_metrics(data, weights, HEADLINE).items():
            low, high, n_valid = _interval(distribution, level)
            rows[metric_key(unit, metric)] = (float(points[metric][0]), low, high, n_valid)
    return (
        pd.DataFrame.from_dict(rows, orient="index", columns=columns)
        .reindex(keys)
        .rename_axis("metric")
    )


def evaluate_predictions(
    df: pd.DataFrame,
    *,
    patient_threshold: float | None = None,
    slice_threshold: float = DEFAULT_THRESHOLD,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> EvaluationResult:
    """Evaluate a predictions table: image and patient level, per fold and pooled, with CIs.

    Patient threshold, first found of: ``patient_threshold``; chosen per fold on the ``split ==
    val`` rows; the ``patient_threshold`` column; 0.5 (warned). ``val`` rows are never
    evaluated. ``n_boot`` 0 skips the intervals. Raises ValueError on an invalid table.
    """
    _check_level(level)
    frame, thresholds, source = _resolve_thresholds(
        validate_predictions(df), patient_threshold, slice_threshold
    )
    patients = patient_level(frame, slice_threshold=slice_threshold)
    image = image_metrics(frame, slice_threshold=slice_threshold)
    patient = patient_metrics(patients)
    per_fold = fold_metrics(frame, slice_threshold=slice_threshold)
    scores = frame[P_COVID].to_numpy()
    return EvaluationResult(
        metrics=_prefixed(Unit.IMAGE, image) | _prefixed(Unit.PATIENT, patient),
        image_confusion=confusion(frame[Y_TRUE], predict_labels(scores, slice_threshold)),
        patient_confusion=confusion(patients[Y_TRUE], patients["y_pred"]),
        per_fold=per_fold,
        fold_summary=summarize_folds(per_fold),
        intervals=_headline_intervals(
            frame, n_boot=n_boot, seed=seed, level=level, slice_threshold=slice_threshold
        ),
        patients=patients,
        patient_report=patient_report(patients),
        patient_thresholds=thresholds,
        threshold_source=source,
        n_images=len(frame),
        n_boot=n_boot,
        level=level,
        seed=seed,
    )


# --------------------------------------------------------------------------- text / CLI


def _cell(metric: str, value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"{value:.4f}" if Metric(metric) in _FRACTION_METRICS else f"{100 * value:.2f}%"


def _unit_text(result: EvaluationResult, unit: Unit) -> list[str]:
    summary = result.summary(unit)
    pct = int(round(100 * result.level))
    lines = [f"{'metric':<20}{'pooled':>10}  {f'{pct}% CI (patients)':<22}{'fold mean ± sd':>20}"]
    for name, row in summary.iterrows():
        metric = str(name)
        ci = f"[{_cell(metric, row.ci_low)}, {_cell(metric, row.ci_high)}]"
        spread = "n/a" if not math.isfinite(row.fold_sd) else _cell(metric, row.fold_sd).rstrip("%")
        fold = f"{_cell(metric, row.fold_mean)} ± {spread}"
        lines.append(f"{metric:<20}{_cell(metric, row.pooled):>10}  {ci:<22}{fold:>20}")
    return lines


def _confusion_text(matrix: pd.DataFrame, what: str) -> list[str]:
    lines = [f"confusion ({what}; rows true, columns predicted; pooled over folds):"]
    lines.append(f"{'':>12}" + "".join(f"{c:>12}" for c in matrix.columns) + f"{'support':>12}")
    for name, row in matrix.iterrows():
        lines.append(f"{name:>12}" + "".join(f"{v:>12,}" for v in row) + f"{row.sum():>12,}")
    return lines


def _report_text(report: pd.DataFrame) -> list[str]:
    lines = ["patients (the seed's Table 8: correct and wrong diagnoses per fold and class):"]
    for row in report.to_dict("records"):
        where = f"fold {row[FOLD]} " if FOLD in row else ""
        wrong = ", ".join(row["wrong_ids"]) or "-"
        lines.append(
            f"  {where}{row[Y_TRUE]:<7} {row['n_patients']:>4} patients, "
            f"{row['n_correct']:>4} correct, {row['n_wrong']:>3} wrong: {wrong}"
        )
    return lines


def format_text(result: EvaluationResult) -> str:
    """Plain-text report: both units, both aggregations, CIs, confusions, Table 8 patients."""
    thresholds = ", ".join(f"fold {f}: {t:.4f}" for f, t in result.patient_thresholds.items())
    n_patients = result.patients[PATIENT_ID].nunique()
    lines = [
        f"{result.n_images:,} images, {n_patients:,} patients, {len(result.per_fold)} fold(s) "
        f"({', '.join(map(str, result.per_fold.index))})",
        "pooled = metrics of the summed confusion matrix; fold mean ± sd = per-fold metrics "
        f"averaged (sd ddof 1); CI: {result.n_boot} patient resamples stratified by label, "
        f"seed {result.seed}",
        "",
        "IMAGE LEVEL (slice predicted COVID when p_covid > 0.5)",
        *_unit_text(result, Unit.IMAGE),
        *_confusion_text(result.image_confusion, "images"),
        "",
        "PATIENT LEVEL (COVID when the fraction of selected slices predicted COVID exceeds the "
        f"threshold; threshold from {result.threshold_source.value}: {thresholds}; AUCs rank "
        "patients by the mean p_covid of those slices)",
        *_unit_text(result, Unit.PATIENT),
        *_confusion_text(result.patient_confusion, "patient diagnoses"),
        *_report_text(result.patient_report),
    ]
    return "\n".join(lines) + "\n"


def run_evaluate_predictions(pred_csv: Path, as_json: bool) -> str:
    """Body of ``covidct evaluate-predictions PRED.csv [--json]``: the report as text or JSON.

    Raises FileNotFoundError / ValueError (naming the file) on unreadable or invalid input.
    """
    result = evaluate_predictions(read_predictions(Path(pred_csv)))
    if as_json:
        return json.dumps(result.to_dict(), indent=2, allow_nan=False) + "\n"
    return format_text(result)


# --------------------------------------------------------------------------- pictures


def _new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _is_confusion(frame: pd.DataFrame) -> bool:
    return list(frame.index) == list(CLASS_NAMES) and list(frame.columns) == list(CLASS_NAMES)


def plot_confusion_matrix(
    data: pd.DataFrame, *, title: str = "", slice_threshold: float = DEFAULT_THRESHOLD
) -> Figure:
    """Confusion-matrix heatmap (Agg Figure): counts and row percentages, labelled axes.

    ``data``: a predictions table (image level) or a :func:`covidct.evaluation.metrics.confusion`
    matrix.
    """
    if _is_confusion(data):
        matrix = data
    else:
        frame = validate_predictions(data)
        labels = predict_labels(frame[P_COVID].to_numpy(), slice_threshold)
        matrix = confusion(frame[Y_TRUE], labels)
    counts = matrix.to_numpy()
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    figure = _new_figure(4.6, 4.0)
    axes = figure.add_subplot()
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    for (row, col), count in np.ndenumerate(counts):
        color = "white" if shares[row, col] > 0.5 else "black"
        text = f"{count:,}\n{100 * shares[row, col]:.1f}%"
        axes.text(col, row, text, ha="center", va="center", color=color)
    axes.set_xticks(range(len(matrix.columns)), labels=list(matrix.columns))
    axes.set_yticks(range(len(matrix.index)), labels=list(matrix.index))
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(title or "confusion matrix (row %)")
    figure.colorbar(image, ax=axes, label="share of true class")
    return figure


def _fold_groups(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    if FOLD not in frame.columns:
        return [(ALL_FOLDS, frame)]
    return [(str(fold), group) for fold, group in frame.groupby(FOLD, sort=True)]


def _two_classes(name: str, truth: np.ndarray) -> bool:
    if truth.all() or not truth.any():
        logger.warning("fold %s has one class only; its curve is skipped", name)
        return False
    return True


def plot_roc_curves(predictions: pd.DataFrame, *, title: str = "") -> Figure:
    """ROC curves per class (COVID: score p_covid; normal: 1 - p_covid), one per fold, and their
    vertical mean ± sd on a common false-positive-rate grid. Returns an Agg Figure."""
    frame = validate_predictions(predictions)
    figure = _new_figure(10.0, 4.6)
    grid = np.linspace(0.0, 1.0, 201)
    for axes, positive in zip(figure.subplots(1, 2), (POSITIVE_CLASS, NEGATIVE_CLASS), strict=True):
        curves = []
        for name, group in _fold_groups(frame):
            truth = (group[Y_TRUE] == positive).to_numpy()
            if not _two_classes(name, truth):
                continue
            score = group[P_COVID].to_numpy()
            score = score if positive == POSITIVE_CLASS else 1.0 - score
            fpr, tpr, _ = roc_curve(truth, score)
            auc = float(np.trapezoid(tpr, fpr))
            axes.plot(fpr, tpr, lw=1, alpha=0.6, label=f"fold {name} (AUC {auc:.3f})")
            curves.append(np.interp(grid, fpr, tpr))
        _mean_curve(axes, grid, curves)
        axes.plot([0, 1], [0, 1], ls=":", color="grey", lw=1)
        axes.set(
            xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.01)
        )
        axes.set_title(f"ROC, positive class {positive}")
        axes.legend(loc="lower right", fontsize="small")
    figure.suptitle(title or "ROC curves per class and fold")
    return figure


def _mean_curve(axes: Any, grid: np.ndarray, curves: Sequence[np.ndarray]) -> None:
    if len(curves) < 2:
        return
    stack = np.vstack(curves)
    mean, sd = stack.mean(axis=0), stack.std(axis=0, ddof=1)
    mean[0] = 0.0
    auc = float(np.trapezoid(mean, grid))
    axes.plot(grid, mean, color="black", lw=2, label=f"mean of {len(curves)} folds (AUC {auc:.3f})")
    axes.fill_between(
        grid,
        np.clip(mean - sd, 0, 1),
        np.clip(mean + sd, 0, 1),
        color="grey",
        alpha=0.2,
        label="± 1 sd",
    )


def plot_pr_curve(predictions: pd.DataFrame, *, title: str = "") -> Figure:
    """Precision-recall curve for COVID (per fold and pooled), with the prevalence baseline.
    Returns an Agg Figure."""
    frame = validate_predictions(predictions)
    figure = _new_figure(5.6, 4.6)
    axes = figure.add_subplot()
    groups = _fold_groups(frame)
    if len(groups) > 1:
        groups.append(("pooled", frame))
    for name, group in groups:
        truth = (group[Y_TRUE] == POSITIVE_CLASS).to_numpy()
        if not _two_classes(name, truth):
            continue
        precision, recall, _ = precision_recall_curve(truth, group[P_COVID].to_numpy())
        ap = score_metrics(group[Y_TRUE], group[P_COVID])[Metric.PR_AUC]
        style = (
            {"color": "black", "lw": 2}
            if name in ("pooled", ALL_FOLDS)
            else {"lw": 1, "alpha": 0.6}
        )
        label = name if name in ("pooled", ALL_FOLDS) else f"fold {name}"
        axes.step(recall, precision, where="post", label=f"{label} (AP {ap:.3f})", **style)
    prevalence = float((frame[Y_TRUE] == POSITIVE_CLASS).mean())
    axes.axhline(prevalence, ls=":", color="grey", lw=1, label=f"prevalence {prevalence:.3f}")
    axes.set(
        xlabel="recall (COVID sensitivity)", ylabel="precision (COVID)", xlim=(0, 1), ylim=(0, 1.01)
    )
    axes.set_title(title or "precision-recall, positive class covid")
    axes.legend(loc="lower left", fontsize="small")
    return figure
