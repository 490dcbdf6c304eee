"""Scoring a predictions table: image- and patient-level metrics per fold and pooled, the patient
threshold resolved (validation split, stored or default), the headline metrics with their
patient-clustered bootstrap intervals (:class:`EvaluationResult`), and the text report of
``covidct evaluate-predictions``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from covidct.evaluation.bootstrap import (
    bootstrap_weights,
    check_level,
    clustered_for_bootstrap,
    patient_strata,
    percentile_interval,
)
from covidct.evaluation.metrics import (
    DEFAULT_THRESHOLD,
    PREDICTED_AXIS,
    TRUE_AXIS,
    Metric,
    classification_metrics,
    confusion,
    predict_labels,
    weighted_metrics,
)
from covidct.evaluation.predictions import (
    ALL_FOLDS,
    DEFAULT_PATIENT_THRESHOLD,
    FOLD,
    FRACTION_METRICS,
    HEADLINE,
    P_COVID,
    PATIENT_ID,
    PATIENT_THRESHOLD,
    SPLIT,
    VAL_SPLIT,
    Y_TRUE,
    ThresholdSource,
    Unit,
    check_threshold,
    choose_patient_threshold,
    metric_key,
    patient_level,
    patient_report,
    read_predictions,
    validate_predictions,
)

logger = logging.getLogger(__name__)

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
        fold_mean, fold_sd, fold_n`` (the two aggregations side by side; ``fold_n`` the number of
        folds the mean averages: folds where the metric is undefined are skipped)."""
        keys = [metric_key(unit, metric) for metric in HEADLINE]
        table = pd.DataFrame(
            {
                "pooled": [self.metrics[key] for key in keys],
                "ci_low": self.intervals["low"].reindex(keys).to_numpy(),
                "ci_high": self.intervals["high"].reindex(keys).to_numpy(),
                "fold_mean": self.fold_summary["mean"].reindex(keys).to_numpy(),
                "fold_sd": self.fold_summary["sd"].reindex(keys).to_numpy(),
                "fold_n": self.fold_summary["n_folds"]
                .reindex(keys)
                .fillna(0)
                .astype(int)
                .to_numpy(),
            },
            index=pd.Index([m.value for m in HEADLINE], name="metric"),
        )
        return table

    def fewer_folds(self) -> dict[str, int]:
        """Headline metric keys whose fold mean averages fewer folds than the table has (the
        metric is undefined in the others, e.g. an AUC of a fold with one class), with the
        number of folds it averages."""
        n_folds = len(self.per_fold)
        return {
            metric_key(unit, str(metric)): int(n)
            for unit in Unit
            for metric, n in self.summary(unit)["fold_n"].items()
            if n < n_folds
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (NaN as None). Each unit's ``fold_n_folds`` gives the number of folds
        each ``fold_mean`` averages; ``fold_means_over_fewer_folds`` the metrics averaged over
        fewer folds than ``folds`` lists (:meth:`fewer_folds`)."""
        out: dict[str, Any] = {
            "n_images": self.n_images,
            "n_patients": int(self.patients[PATIENT_ID].nunique()),
            "n_patient_diagnoses": len(self.patients),
            "folds": [str(f) for f in self.per_fold.index],
            "fold_means_over_fewer_folds": self.fewer_folds(),
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
            "fold_n_folds": summary["fold_n"].to_dict(),
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
        chosen = dict.fromkeys(folds, check_threshold(patient_threshold, "patient threshold"))
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
    patients = patient_strata(frame)
    weights = bootstrap_weights(patients.strata, n_boot=n_boot, seed=seed)
    rows = {}
    for unit in Unit:
        data = clustered_for_bootstrap(
            frame, unit, patients, patient_threshold=None, slice_threshold=slice_threshold
        )
        points = weighted_metrics(data, np.ones((1, data.n_clusters)), HEADLINE)
        for metric, distribution in weighted_metrics(data, weights, HEADLINE).items():
            low, high, n_valid = percentile_interval(distribution, level)
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
    check_level(level)
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
    return f"{value:.4f}" if Metric(metric) in FRACTION_METRICS else f"{100 * value:.2f}%"


def _unit_text(result: EvaluationResult, unit: Unit) -> list[str]:
    summary = result.summary(unit)
    pct = int(round(100 * result.level))
    lines = [f"{'metric':<20}{'pooled':>10}  {f'{pct}% CI (patients)':<22}{'fold mean ± sd':>20}"]
    for name, row in summary.iterrows():
        metric = str(name)
        ci = f"[{_cell(metric, row.ci_low)}, {_cell(metric, row.ci_high)}]"
        spread = "n/a" if not math.isfinite(row.fold_sd) else _cell(metric, row.fold_sd).rstrip("%")
        fold = f"{_cell(metric, row.fold_mean)} ± {spread}"
        over = f"(mean over {_folds(int(row.fold_n))})"
        lines.append(f"{metric:<20}{_cell(metric, row.pooled):>10}  {ci:<22}{fold:>20} {over}")
    fewer = {k: n for k, n in result.fewer_folds().items() if k.startswith(f"{unit.value}_")}
    if fewer:
        shown = ", ".join(
            f"{key[len(unit.value) + 1 :]} over {_folds(n)}" for key, n in fewer.items()
        )
        lines.append(
            f"note: these fold means average fewer than the {_folds(len(result.per_fold))} "
            f"(undefined in the others): {shown}; they are not comparable with the others"
        )
    return lines


def _folds(n: int) -> str:
    return f"{n} fold" if n == 1 else f"{n} folds"


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
        "averaged over the folds where each is defined (sd ddof 1); CI: "
        f"{result.n_boot} patient resamples stratified by label, seed {result.seed}",
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
