"""Percentile bootstrap over patients: all of a patient's slices move together, strata are the
patients' labels. :func:`bootstrap_ci` gives one model's interval; :func:`paired_bootstrap`
resamples the same patients for two models on the same test slices (the promotion gate's
comparison). See ``docs/metrics.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from covidct.evaluation.metrics import (
    DEFAULT_THRESHOLD,
    ClusteredPredictions,
    cluster_predictions,
    encode_labels,
    predict_labels,
    weighted_metrics,
)
from covidct.evaluation.predictions import (
    FOLD,
    P_COVID,
    PATIENT_ID,
    SLICE_ID,
    Y_TRUE,
    Unit,
    metric_key,
    parse_metric_key,
    patient_level,
    validate_predictions,
)

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
class PatientStrata:
    """The patients of a predictions table (``ids``, sorted) and each one's label as an int
    stratum (``strata``, int64, aligned with ``ids``): what the bootstrap resamples."""

    ids: pd.Index
    strata: np.ndarray


def patient_strata(frame: pd.DataFrame) -> PatientStrata:
    """:class:`PatientStrata` of a predictions table (one label per patient: its first row's
    ``y_true``)."""
    labels = frame.groupby(PATIENT_ID, sort=True)[Y_TRUE].first()
    return PatientStrata(labels.index, encode_labels(labels))


def clustered_for_bootstrap(
    frame: pd.DataFrame,
    unit: Unit,
    patients: PatientStrata,
    *,
    patient_threshold: float | None,
    slice_threshold: float,
) -> ClusteredPredictions:
    """Predictions of ``frame`` at ``unit`` (image: one row a slice; patient: one row a
    patient, by :func:`covidct.evaluation.predictions.patient_level`) with each row's patient
    cluster index into ``patients.ids``, ready for the clustered bootstrap."""
    if unit == Unit.IMAGE:
        rows, scores = frame, frame[P_COVID].to_numpy(dtype=np.float64)
        predicted = predict_labels(scores, slice_threshold)
    else:
        rows = patient_level(frame, patient_threshold, slice_threshold=slice_threshold)
        scores, predicted = rows["mean_p_covid"].to_numpy(), encode_labels(rows["y_pred"])
    cluster = patients.ids.get_indexer(pd.Index(rows[PATIENT_ID]))
    truth = encode_labels(rows[Y_TRUE])
    return cluster_predictions(truth, predicted, scores, cluster, len(patients.ids))


def percentile_interval(distribution: np.ndarray, level: float) -> tuple[float, float, int]:
    """``(low, high, n)``: the central ``level`` percentile interval of the finite values of a
    bootstrap distribution and how many there were; ``(nan, nan, 0)`` when none is finite."""
    finite = distribution[np.isfinite(distribution)]
    if finite.size == 0:
        return math.nan, math.nan, 0
    low, high = np.quantile(finite, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high), int(finite.size)


def check_level(level: float) -> None:
    """Raise ValueError unless the interval ``level`` is in (0, 1)."""
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
    check_level(level)
    frame = validate_predictions(df)
    patients = patient_strata(frame)
    data = clustered_for_bootstrap(
        frame, unit, patients, patient_threshold=patient_threshold, slice_threshold=slice_threshold
    )
    point = float(weighted_metrics(data, np.ones((1, data.n_clusters)), [name])[name][0])
    weights = bootstrap_weights(patients.strata, n_boot=n_boot, seed=seed, stratify=stratify)
    distribution = weighted_metrics(data, weights, [name])[name]
    low, high, n_valid = percentile_interval(distribution, level)
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
    300 patients x 40 slices took 0.06-0.24 s per metric (medians) on 2 cores
    (``benchmarks/bootstrap_speed.py``). Raises ValueError if the test sets differ.
    """
    unit, name = parse_metric_key(metric)
    check_level(level)
    frame_a = validate_predictions(df_a, source="predictions a")
    frame_b = validate_predictions(df_b, source="predictions b")
    patients = _same_test_set(frame_a, frame_b)
    datas = [
        clustered_for_bootstrap(
            f, unit, patients, patient_threshold=t, slice_threshold=slice_threshold
        )
        for f, t in zip((frame_a, frame_b), patient_thresholds, strict=True)
    ]
    ones = np.ones((1, len(patients.ids)))
    point_a, point_b = (float(weighted_metrics(d, ones, [name])[name][0]) for d in datas)
    weights = bootstrap_weights(patients.strata, n_boot=n_boot, seed=seed, stratify=stratify)
    dist_a, dist_b = (weighted_metrics(d, weights, [name])[name] for d in datas)
    difference = dist_a - dist_b
    low, high, n_valid = percentile_interval(difference, level)
    finite = difference[np.isfinite(difference)]
    positive = float((finite > 0).mean()) if finite.size else math.nan
    return PairedBootstrapResult(
        metric_key(unit, name), point_a, point_b, point_a - point_b, low, high, level, n_boot,
        n_valid, len(patients.ids), seed, positive, difference,
    )  # fmt: skip


def _same_test_set(frame_a: pd.DataFrame, frame_b: pd.DataFrame) -> PatientStrata:
    patients_a, patients_b = patient_strata(frame_a), patient_strata(frame_b)
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
