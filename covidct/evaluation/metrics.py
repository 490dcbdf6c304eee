"""Classification metrics for the two-class COVID / normal problem: one code path for every number.

The positive class is COVID by the explicit mapping in :mod:`covidct.schema`
(``CLASS_NAMES = ("normal", "covid")``, index 1 = COVID), never by alphabetical order.

Per class ``c`` (one-vs-rest: ``TP_c`` = images of class ``c`` predicted ``c``, ``FN_c`` = images of
class ``c`` predicted otherwise, ``FP_c`` = other images predicted ``c``, ``TN_c`` = the rest), the
seed's equations, numbered in the order issue 6 lists them:

1. accuracy_c    = (TP_c + TN_c) / (TP_c + TN_c + FP_c + FN_c)
2. specificity_c = TN_c / (TN_c + FP_c)
3. sensitivity_c = TP_c / (TP_c + FN_c)
4. precision_c   = TP_c / (TP_c + FP_c)
5. overall accuracy = correctly classified images / all images

With two classes eq. 1 equals eq. 5 for both classes, and the normal class's sensitivity is the
COVID class's specificity (and vice versa). Besides: balanced accuracy (mean of the two
sensitivities; Brodersen et al. 2010), F1 per class (harmonic mean of precision and sensitivity),
Matthews correlation (Matthews 1975), ROC AUC (Mann-Whitney statistic, ties count one half;
Hanley & McNeil 1982) and PR AUC as average precision (the step-wise sum used by scikit-learn's
``average_precision_score``), both from scores, never from thresholded labels.

Undefined values (a 0/0 ratio, AUC with one class only) are NaN; :func:`compute_metrics` warns
with :class:`UndefinedMetricWarning` when it returns one.

The weighted engine (:func:`cluster_predictions`, :func:`weighted_metrics`) evaluates every metric
for many weight vectors over clusters (patients) at once; the bootstrap in
:mod:`covidct.evaluation` uses it, and so does the point estimate, with unit weights.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from covidct.schema import CLASS_NAMES, LABEL_TO_CLASS, POSITIVE_CLASS, ClassName

#: Index of each class in model outputs and confusion matrices (schema order, COVID = 1).
CLASS_INDEX: dict[str, int] = {name: index for index, name in enumerate(CLASS_NAMES)}
POSITIVE_INDEX: int = CLASS_INDEX[POSITIVE_CLASS]
NEGATIVE_CLASS: str = ClassName.NORMAL.value
#: Default decision threshold on p(COVID): ``p > 0.5`` is the argmax of a (normal, covid) softmax.
DEFAULT_THRESHOLD: float = 0.5
#: Axis names of confusion matrices.
TRUE_AXIS = "true"
PREDICTED_AXIS = "predicted"
# Rows of rough chunks of resamples evaluated at once by the score metrics (memory bound).
_CHUNK_CELLS = 4_000_000


class UndefinedMetricWarning(UserWarning):
    """A metric is undefined for the data given (e.g. AUC with one class only); it is NaN."""


class Metric(StrEnum):
    """Names of the rate metrics (keys of :func:`compute_metrics`, without a unit prefix)."""

    ACCURACY = "accuracy"
    COVID_ACCURACY = "covid_accuracy"
    NORMAL_ACCURACY = "normal_accuracy"
    COVID_SENSITIVITY = "covid_sensitivity"
    NORMAL_SENSITIVITY = "normal_sensitivity"
    COVID_SPECIFICITY = "covid_specificity"
    NORMAL_SPECIFICITY = "normal_specificity"
    COVID_PRECISION = "covid_precision"
    NORMAL_PRECISION = "normal_precision"
    COVID_F1 = "covid_f1"
    NORMAL_F1 = "normal_f1"
    BALANCED_ACCURACY = "balanced_accuracy"
    MCC = "mcc"
    ROC_AUC = "roc_auc"
    PR_AUC = "pr_auc"

    @classmethod
    def _missing_(cls, value: object) -> Metric:
        valid = ", ".join(member.value for member in cls)
        raise ValueError(f"unknown metric {value!r}; valid metrics: {valid}")


#: Metrics computed from scores (the others come from the confusion counts).
SCORE_METRICS: frozenset[Metric] = frozenset({Metric.ROC_AUC, Metric.PR_AUC})
#: Count keys also returned by :func:`compute_metrics` (COVID is the positive class).
COUNT_KEYS: tuple[str, ...] = ("tp", "fn", "fp", "tn", "n_covid", "n_normal", "n")


# --------------------------------------------------------------------------- inputs


def encode_labels(values: Iterable[Any], *, name: str = "y_true") -> np.ndarray:
    """Map class labels to class indices (int8 array (n,), 0 = normal, 1 = COVID).

    Accepts the class names ``"covid"`` / ``"normal"`` (any case), the roster labels
    ``"Positive"`` / ``"Negative"``, booleans, or the numbers 0 / 1 (1 = COVID).
    Raises ValueError naming up to five offending values and the valid ones.
    """
    series = pd.Series(list(values) if not hasattr(values, "__len__") else values)
    series = series.reset_index(drop=True)
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        numeric = series.astype("float64")
        bad = series[~numeric.isin([0.0, 1.0])]
        _raise_bad_labels(bad, name)
        return numeric.to_numpy().astype(np.int8)
    lookup = {**CLASS_INDEX, **{k.lower(): CLASS_INDEX[v] for k, v in LABEL_TO_CLASS.items()}}
    mapped = series.astype("string").str.strip().str.lower().map(lookup)
    _raise_bad_labels(series[mapped.isna()], name)
    return mapped.to_numpy().astype(np.int8)


def _raise_bad_labels(bad: pd.Series, name: str) -> None:
    if bad.empty:
        return
    shown = ", ".join(f"row {i}: {v!r}" for i, v in bad.head(5).items())
    raise ValueError(
        f"{name}: {len(bad)} value(s) are not a class label ({shown}); valid: "
        f"{', '.join(CLASS_NAMES)} (or 0/1 with 1 = {POSITIVE_CLASS})"
    )


def check_scores(values: Iterable[Any], *, name: str = "y_score") -> np.ndarray:
    """Return scores as a float64 array (n,) of p(COVID) in [0, 1].

    Raises ValueError if a score is missing, not finite or outside [0, 1] (first five named).
    """
    scores = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"), dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(scores) | (scores < 0.0) | (scores > 1.0))
    if bad.size:
        shown = ", ".join(f"row {i}: {scores[i]!r}" for i in bad[:5])
        raise ValueError(
            f"{name}: {bad.size} score(s) missing or outside [0, 1] ({shown}); expected p(COVID)"
        )
    return scores


def predict_labels(y_score: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Class indices (int8 (n,)) from p(COVID): COVID when ``p > threshold`` (0.5 = argmax)."""
    return (np.asarray(y_score, dtype=np.float64) > threshold).astype(np.int8)


# --------------------------------------------------------------------------- confusion


def confusion_counts(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """2x2 int64 counts, rows true, columns predicted, both in ``CLASS_NAMES`` order."""
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} rows but y_pred has {len(y_pred)}")
    codes = np.asarray(y_true, dtype=np.int64) * 2 + np.asarray(y_pred, dtype=np.int64)
    return np.bincount(codes, minlength=4).reshape(2, 2)


def confusion(y_true: Iterable[Any], y_pred: Iterable[Any]) -> pd.DataFrame:
    """Labelled confusion matrix: rows true class, columns predicted class (int64 counts).

    Both axes are ``CLASS_NAMES`` in schema order (normal, covid); each row sums to that class's
    support. Labels as in :func:`encode_labels`. Raises ValueError on unknown labels or lengths.
    """
    counts = confusion_counts(encode_labels(y_true), encode_labels(y_pred, name="y_pred"))
    return confusion_frame(counts)


def confusion_frame(counts: np.ndarray) -> pd.DataFrame:
    """Wrap 2x2 counts (rows true, columns predicted, schema order) in a labelled DataFrame."""
    frame = pd.DataFrame(
        np.asarray(counts, dtype=np.int64),
        index=pd.Index(CLASS_NAMES, name=TRUE_AXIS),
        columns=pd.Index(CLASS_NAMES, name=PREDICTED_AXIS),
    )
    return frame


def cells_from_confusion(counts: np.ndarray | pd.DataFrame) -> tuple[float, float, float, float]:
    """``(tp, fn, fp, tn)`` with COVID positive, from a 2x2 (rows true, columns predicted) matrix.

    A DataFrame is read by its labels (so any row/column order works); an array in schema order.
    """
    if isinstance(counts, pd.DataFrame):
        counts = counts.loc[list(CLASS_NAMES), list(CLASS_NAMES)].to_numpy()
    matrix = np.asarray(counts, dtype=np.float64)
    pos, neg = POSITIVE_INDEX, 1 - POSITIVE_INDEX
    return matrix[pos, pos], matrix[pos, neg], matrix[neg, pos], matrix[neg, neg]


# --------------------------------------------------------------------------- rates from counts


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Elementwise ratio, NaN where the denominator is 0."""
    out = np.full(np.shape(denominator), np.nan)
    np.divide(numerator, denominator, out=out, where=np.asarray(denominator) != 0)
    return out


def rates_from_counts(
    tp: np.ndarray, fn: np.ndarray, fp: np.ndarray, tn: np.ndarray
) -> dict[Metric, np.ndarray]:
    """Every count-based metric (equations 1-5, F1, balanced accuracy, MCC) for arrays of cells.

    ``tp, fn, fp, tn``: float arrays of one shape (COVID positive); results have that shape and
    are NaN where undefined (0/0). MCC is NaN (not 0, as in scikit-learn) when a margin is 0.
    """
    tp, fn, fp, tn = (np.asarray(x, dtype=np.float64) for x in (tp, fn, fp, tn))
    total = tp + fn + fp + tn
    covid_sens, normal_sens = _ratio(tp, tp + fn), _ratio(tn, tn + fp)
    covid_prec, normal_prec = _ratio(tp, tp + fp), _ratio(tn, tn + fn)
    accuracy = _ratio(tp + tn, total)
    margins = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
    return {
        Metric.ACCURACY: accuracy,
        Metric.COVID_ACCURACY: accuracy,
        Metric.NORMAL_ACCURACY: accuracy,
        Metric.COVID_SENSITIVITY: covid_sens,
        Metric.NORMAL_SENSITIVITY: normal_sens,
        Metric.COVID_SPECIFICITY: normal_sens,
        Metric.NORMAL_SPECIFICITY: covid_sens,
        Metric.COVID_PRECISION: covid_prec,
        Metric.NORMAL_PRECISION: normal_prec,
        Metric.COVID_F1: _ratio(2 * tp, 2 * tp + fp + fn),
        Metric.NORMAL_F1: _ratio(2 * tn, 2 * tn + fn + fp),
        Metric.BALANCED_ACCURACY: (covid_sens + normal_sens) / 2,
        Metric.MCC: _ratio(tp * tn - fp * fn, np.sqrt(margins)),
    }


def metrics_from_confusion(counts: np.ndarray | pd.DataFrame) -> dict[str, float]:
    """Count-based metrics and counts of one 2x2 confusion matrix (rows true, columns predicted).

    Returns fractions (not percent) keyed by :class:`Metric` value, plus :data:`COUNT_KEYS`.
    Score metrics (AUCs) are absent: they need scores.
    """
    tp, fn, fp, tn = cells_from_confusion(counts)
    rates = rates_from_counts(*(np.array([x]) for x in (tp, fn, fp, tn)))
    result = {metric.value: float(values[0]) for metric, values in rates.items()}
    counts_out = {"tp": tp, "fn": fn, "fp": fp, "tn": tn}
    counts_out |= {"n_covid": tp + fn, "n_normal": fp + tn, "n": tp + fn + fp + tn}
    return result | {key: float(value) for key, value in counts_out.items()}


# --------------------------------------------------------------------------- weighted engine


@dataclass(frozen=True)
class ClusteredPredictions:
    """Predictions summarised per cluster, for evaluation under cluster weights.

    ``cells``: float64 (n_clusters, 4), the confusion cells ``tp, fn, fp, tn`` (COVID positive)
    of each cluster's units. ``positives`` / ``negatives``: sparse (n_groups, n_clusters) counts
    of COVID / normal units per score group, ascending; a group is one distinct score holding a
    positive, or a run of consecutive distinct scores holding negatives only (merging such runs
    changes neither AUC nor average precision). ``pair_wins``: float64 (n_pos_clusters,
    n_neg_clusters) Mann-Whitney wins between the positives of one cluster and the negatives of
    another (ties one half), or None when that matrix would be too large; ``pos_clusters`` /
    ``neg_clusters`` index its rows / columns.
    """

    cells: np.ndarray
    positives: sparse.csr_matrix
    negatives: sparse.csr_matrix
    pair_wins: np.ndarray | None
    pos_clusters: np.ndarray
    neg_clusters: np.ndarray

    @property
    def n_clusters(self) -> int:
        """Number of clusters (columns of the weight matrices)."""
        return int(self.cells.shape[0])


# Largest (positive clusters x negative clusters) pair matrix kept for the bilinear ROC AUC.
_MAX_PAIR_CELLS = 250_000


def cluster_predictions(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    y_score: np.ndarray,
    cluster: np.ndarray,
    n_clusters: int,
) -> ClusteredPredictions:
    """Summarise units per cluster.

    ``y_true``, ``y_pred``: class indices (n,); ``y_score``: p(COVID) (n,); ``cluster``: int
    array (n,) in ``[0, n_clusters)`` (e.g. the patient of each slice).
    """
    truth = np.asarray(y_true, dtype=np.int64)
    pred = np.asarray(y_pred, dtype=np.int64)
    cluster = np.asarray(cluster, dtype=np.int64)
    scores = np.asarray(y_score, dtype=np.float64)
    # cell order tp, fn, fp, tn with COVID (1) positive: code = 2 * (1 - true) + (1 - pred)
    codes = 2 * (1 - truth) + (1 - pred)
    cells = np.bincount(cluster * 4 + codes, minlength=n_clusters * 4).reshape(n_clusters, 4)
    group = _score_groups(truth, scores)
    shape = (int(group.max(initial=-1)) + 1, n_clusters)

    def by_group(mask: np.ndarray) -> sparse.csr_matrix:
        ones = np.ones(int(mask.sum()))
        return sparse.csr_matrix((ones, (group[mask], cluster[mask])), shape=shape)

    pos_clusters = np.unique(cluster[truth == 1])
    neg_clusters = np.unique(cluster[truth == 0])
    wins = None
    if len(pos_clusters) * len(neg_clusters) <= _MAX_PAIR_CELLS:
        wins = _pair_wins(truth, scores, cluster, pos_clusters, neg_clusters)
    return ClusteredPredictions(
        cells.astype(np.float64),
        by_group(truth == 1),
        by_group(truth == 0),
        wins,
        pos_clusters,
        neg_clusters,
    )


def _score_groups(truth: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Ascending group index of each unit (distinct scores; negative-only runs merged)."""
    distinct, index = np.unique(scores, return_inverse=True)
    has_pos = np.bincount(index, weights=truth, minlength=len(distinct)) > 0
    starts = has_pos | np.concatenate([[True], has_pos[:-1]])
    return (np.cumsum(starts) - 1)[index]


def _pair_wins(
    truth: np.ndarray,
    scores: np.ndarray,
    cluster: np.ndarray,
    pos_clusters: np.ndarray,
    neg_clusters: np.ndarray,
) -> np.ndarray:
    """Wins of each positive cluster's units over each negative cluster's units (ties 1/2)."""
    pos = truth == 1
    pos_scores, pos_rows = scores[pos], np.searchsorted(pos_clusters, cluster[pos])
    order = np.lexsort((scores[~pos], cluster[~pos]))
    neg_scores, neg_cluster = scores[~pos][order], cluster[~pos][order]
    starts = np.searchsorted(neg_cluster, neg_clusters, side="left")
    ends = np.searchsorted(neg_cluster, neg_clusters, side="right")
    wins = np.zeros((len(pos_clusters), len(neg_clusters)))
    for column, (lo, hi) in enumerate(zip(starts, ends, strict=True)):
        block = neg_scores[lo:hi]
        below = np.searchsorted(block, pos_scores, side="left")
        tied = np.searchsorted(block, pos_scores, side="right") - below
        wins[:, column] = np.bincount(pos_rows, below + 0.5 * tied, minlength=len(pos_clusters))
    return wins


def weighted_metrics(
    data: ClusteredPredictions, weights: np.ndarray, metrics: Collection[Metric]
) -> dict[Metric, np.ndarray]:
    """Evaluate ``metrics`` for each row of ``weights`` (float (n_weights, n_clusters)).

    A row of cluster weights (e.g. bootstrap draw counts) weighs every unit of a cluster; with
    unit weights the result is the ordinary metric. Returns float64 arrays (n_weights,), NaN where
    undefined (AUCs: NaN unless both classes have positive weight).
    """
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if weights.shape[1] != data.n_clusters:
        raise ValueError(f"weights have {weights.shape[1]} columns, expected {data.n_clusters}")
    wanted = {Metric(m) for m in metrics}
    out: dict[Metric, np.ndarray] = {}
    if wanted - SCORE_METRICS:
        cells = weights @ data.cells
        rates = rates_from_counts(cells[:, 0], cells[:, 1], cells[:, 2], cells[:, 3])
        out |= {metric: rates[metric] for metric in wanted - SCORE_METRICS}
    if Metric.ROC_AUC in wanted:
        out[Metric.ROC_AUC] = _roc_auc(data, weights)
    if Metric.PR_AUC in wanted:
        out[Metric.PR_AUC] = _chunked(_average_precision, data, weights)
    return out


def _class_totals(data: ClusteredPredictions, weights: np.ndarray) -> tuple[np.ndarray, ...]:
    """Weighted number of positive and negative units per weight row, zero where undefined."""
    total_pos = weights @ (data.cells[:, 0] + data.cells[:, 1])
    total_neg = weights @ (data.cells[:, 2] + data.cells[:, 3])
    defined = (total_pos > 0) & (total_neg > 0)
    return np.where(defined, total_pos, 0.0), np.where(defined, total_neg, 0.0)


def _roc_auc(data: ClusteredPredictions, weights: np.ndarray) -> np.ndarray:
    """ROC AUC per weight row: bilinear in the weights when the pair matrix is small."""
    if data.pair_wins is None:
        return _chunked(_roc_auc_by_groups, data, weights)
    total_pos, total_neg = _class_totals(data, weights)
    pos_w, neg_w = weights[:, data.pos_clusters], weights[:, data.neg_clusters]
    wins = ((pos_w @ data.pair_wins) * neg_w).sum(axis=1)
    return _ratio(wins, total_pos * total_neg)


def _chunked(function: Any, data: ClusteredPredictions, weights: np.ndarray) -> np.ndarray:
    """Apply a per-group score metric to memory-bounded chunks of weight rows."""
    chunk = max(1, _CHUNK_CELLS // max(data.positives.shape[0], 1))
    parts = [function(data, weights[i : i + chunk]) for i in range(0, len(weights), chunk)]
    return np.concatenate(parts)


def _roc_auc_by_groups(data: ClusteredPredictions, weights: np.ndarray) -> np.ndarray:
    """Mann-Whitney: each positive beats the negatives below its group, ties count one half."""
    positives = np.asarray(data.positives @ weights.T)  # (n_groups, n_weights), ascending
    negatives = np.asarray(data.negatives @ weights.T)
    below = np.cumsum(negatives, axis=0) - negatives
    wins = (positives * (below + 0.5 * negatives)).sum(axis=0)
    total_pos, total_neg = _class_totals(data, weights)
    return _ratio(wins, total_pos * total_neg)


def _average_precision(data: ClusteredPredictions, weights: np.ndarray) -> np.ndarray:
    """Thresholds at distinct scores, descending: sum of recall steps times precision."""
    positives = np.asarray(data.positives @ weights.T)[::-1]  # descending score
    negatives = np.asarray(data.negatives @ weights.T)[::-1]
    true_pos = np.cumsum(positives, axis=0)
    precision = _ratio(true_pos, true_pos + np.cumsum(negatives, axis=0))
    steps = np.nansum(positives * precision, axis=0)
    total_pos, _ = _class_totals(data, weights)
    return _ratio(steps, total_pos)


# --------------------------------------------------------------------------- public one-shot API


def classification_metrics(
    y_true: Iterable[Any], y_pred: Iterable[Any], y_score: Iterable[Any] | None = None
) -> dict[str, float]:
    """All metrics of predicted labels ``y_pred`` (and AUCs of ``y_score`` when given).

    ``y_true`` / ``y_pred``: labels as in :func:`encode_labels`; ``y_score``: p(COVID) in [0, 1].
    Returns fractions keyed by :class:`Metric` value plus :data:`COUNT_KEYS`; without scores the
    AUC keys are absent (never computed from labels). Warns :class:`UndefinedMetricWarning` when
    a value is NaN. Raises ValueError on bad labels, scores or lengths.
    """
    truth = encode_labels(y_true)
    pred = encode_labels(y_pred, name="y_pred")
    everything = metrics_from_confusion(confusion_counts(truth, pred))
    counts = {key: everything.pop(key) for key in COUNT_KEYS}
    if y_score is not None:
        everything |= score_metrics(truth, y_score)
    result = everything | counts
    _warn_undefined(result)
    return result


def score_metrics(y_true: Iterable[Any], y_score: Iterable[Any]) -> dict[str, float]:
    """ROC AUC and PR AUC (average precision) of p(COVID) scores, COVID positive; NaN (no
    warning) with one class only. Raises ValueError on bad labels, scores or lengths."""
    truth, scores = encode_labels(y_true), check_scores(y_score)
    if len(scores) != len(truth):
        raise ValueError(f"y_true has {len(truth)} rows but y_score has {len(scores)}")
    data = cluster_predictions(truth, truth, scores, np.zeros(len(truth), np.int64), 1)
    aucs = weighted_metrics(data, np.ones((1, 1)), SCORE_METRICS)
    return {metric.value: float(aucs[metric][0]) for metric in Metric if metric in aucs}


def compute_metrics(
    y_true: Iterable[Any], y_score: Iterable[Any], *, threshold: float = DEFAULT_THRESHOLD
) -> dict[str, float]:
    """Every metric of p(COVID) scores against true labels.

    ``y_true``: (n,) labels (``"covid"``/``"normal"``, or 0/1 with 1 = COVID). ``y_score``: (n,)
    p(COVID) in [0, 1]; an image is predicted COVID when ``score > threshold`` (0.5 reproduces the
    argmax of a (normal, covid) softmax). AUCs come from the scores. Returns fractions keyed by
    :class:`Metric` value plus the counts ``tp, fn, fp, tn, n_covid, n_normal, n`` (floats).
    Warns :class:`UndefinedMetricWarning` for NaN values (one class only, no prediction of a
    class). Raises ValueError on bad labels or scores, or a threshold outside [0, 1].
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    scores = check_scores(y_score)
    return classification_metrics(y_true, predict_labels(scores, threshold), scores)


def _warn_undefined(result: Mapping[str, float]) -> None:
    undefined = [key for key, value in result.items() if np.isnan(value)]
    if undefined:
        warnings.warn(
            f"undefined (NaN) for these data: {', '.join(undefined)} "
            f"(n_covid={result['n_covid']:.0f}, n_normal={result['n_normal']:.0f}, "
            f"predicted covid={result['tp'] + result['fp']:.0f})",
            UndefinedMetricWarning,
            stacklevel=3,
        )
