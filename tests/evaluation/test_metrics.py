"""Tests of covidct.evaluation.metrics: hand-computed tiny cases, the seed's golden values,
scikit-learn as
an independent oracle, and the weighted engine the bootstrap relies on."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from sklearn import metrics as skm

from covidct.evaluation import metrics
from covidct.evaluation.metrics import Metric, UndefinedMetricWarning
from covidct.schema import CLASS_NAMES, POSITIVE_CLASS

C, N = "covid", "normal"


def _golden_predictions() -> tuple[list[str], list[float]]:
    """Predictions reproducing the seed's Table 11 ResNet152 average confusion, times 5."""
    cells = [(C, 0.9, 2182), (C, 0.1, 100), (N, 0.9, 3223), (N, 0.1, 36038)]
    y_true = [label for label, _, n in cells for _ in range(n)]
    y_score = [score for _, score, n in cells for _ in range(n)]
    return y_true, y_score


# --------------------------------------------------------------------------- golden


@pytest.mark.parametrize(
    ("key", "percent"),
    [
        ("accuracy", 92.00),
        ("covid_sensitivity", 95.62),
        ("covid_specificity", 91.79),
        ("covid_precision", 40.37),
        ("normal_precision", 99.72),
    ],
)
def test_golden_values_of_the_seed(key: str, percent: float) -> None:
    y_true, y_score = _golden_predictions()
    result = metrics.compute_metrics(y_true, y_score)
    assert round(100 * result[key], 2) == percent


def test_golden_confusion_is_labelled_and_rows_sum_to_support() -> None:
    y_true, y_score = _golden_predictions()
    y_pred = [C if s > 0.5 else N for s in y_score]
    matrix = metrics.confusion(y_true, y_pred)
    assert list(matrix.index) == list(CLASS_NAMES) and list(matrix.columns) == list(CLASS_NAMES)
    assert (matrix.index.name, matrix.columns.name) == ("true", "predicted")
    assert matrix.loc[C, C] == 2182 and matrix.loc[C, N] == 100
    assert matrix.loc[N, C] == 3223 and matrix.loc[N, N] == 36038
    assert matrix.sum(axis=1).to_dict() == {N: y_true.count(N), C: y_true.count(C)}


# --------------------------------------------------------------------------- hand-computed cases

# y_true, y_score, expected (hand-computed; threshold 0.5, COVID positive)
HAND_CASES = [
    pytest.param(
        [C, C, N, N],
        [0.9, 0.2, 0.6, 0.1],
        # tp=1 fn=1 fp=1 tn=1; AUC: 3 of 4 (pos, neg) pairs ordered; AP = 1/2*1 + 1/2*2/3
        {"accuracy": 0.5, "covid_sensitivity": 0.5, "covid_specificity": 0.5,
         "covid_precision": 0.5, "normal_precision": 0.5, "mcc": 0.0, "covid_f1": 0.5,
         "roc_auc": 0.75, "pr_auc": 5 / 6, "tp": 1, "fn": 1, "fp": 1, "tn": 1},
        id="one-of-each-cell",
    ),
    pytest.param(
        [C, N, N, N],
        [0.8, 0.7, 0.2, 0.1],
        # tp=1 fn=0 fp=1 tn=2; MCC = (2-0)/sqrt(2*1*3*2) = 2/sqrt(12)
        {"accuracy": 0.75, "covid_sensitivity": 1.0, "covid_specificity": 2 / 3,
         "covid_precision": 0.5, "normal_precision": 1.0, "balanced_accuracy": 5 / 6,
         "mcc": 2 / math.sqrt(12), "covid_f1": 2 / 3, "normal_f1": 0.8,
         "roc_auc": 1.0, "pr_auc": 1.0},
        id="false-positive-only",
    ),
    pytest.param(
        [C, C, N, N],
        [0.5, 0.5, 0.5, 0.5],
        # p > 0.5 is COVID, so 0.5 ties go to normal (argmax order normal, covid); AUC of ties 1/2
        {"covid_sensitivity": 0.0, "covid_specificity": 1.0, "accuracy": 0.5,
         "normal_precision": 0.5, "roc_auc": 0.5, "pr_auc": 0.5, "tp": 0, "fn": 2},
        id="all-tied-at-threshold",
    ),
    pytest.param(
        [C, C, C, N],
        [0.1, 0.3, 0.6, 0.9],
        # tp=1 fn=2 fp=1 tn=0; every negative outranks every positive
        {"accuracy": 0.25, "covid_sensitivity": 1 / 3, "covid_specificity": 0.0,
         "covid_precision": 0.5, "normal_precision": 0.0, "roc_auc": 0.0,
         "pr_auc": (1 / 3) * (1 / 2) + (1 / 3) * (2 / 3) + (1 / 3) * (3 / 4)},
        id="inverted-ranking",
    ),
    pytest.param(
        [1, 0, 1, 0, 0],
        [0.7, 0.4, 0.4, 0.55, 0.2],
        # numeric labels, 1 = covid; tp=1 fn=1 fp=1 tn=2; AUC pairs: 0.7 beats 3, 0.4 beats 1
        # and ties 1 -> (3 + 1.5) / 6
        {"covid_sensitivity": 0.5, "covid_specificity": 2 / 3, "accuracy": 0.6,
         "roc_auc": 4.5 / 6, "covid_precision": 0.5},
        id="numeric-labels-with-a-tie",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("y_true", "y_score", "expected"), HAND_CASES)
def test_hand_computed_cases(y_true: list, y_score: list, expected: dict[str, float]) -> None:
    result = metrics.compute_metrics(y_true, y_score)
    for key, value in expected.items():
        assert result[key] == pytest.approx(value), key


@pytest.mark.parametrize(("y_true", "y_score", "expected"), HAND_CASES)
def test_two_class_identities(y_true: list, y_score: list, expected: dict[str, float]) -> None:
    """Eq. 1 per class equals eq. 5; normal's sensitivity is COVID's specificity and back."""
    result = metrics.compute_metrics(y_true, y_score)
    assert result["covid_accuracy"] == result["normal_accuracy"] == result["accuracy"]
    assert result["normal_sensitivity"] == result["covid_specificity"]
    assert result["normal_specificity"] == result["covid_sensitivity"]
    assert result["tp"] + result["fn"] == result["n_covid"]


@pytest.mark.parametrize(
    ("threshold", "tp", "fp"),
    [(0.0, 2, 2), (0.15, 2, 1), (0.5, 1, 1), (0.85, 1, 0), (0.95, 0, 0), (1.0, 0, 0)],
)
def test_threshold_moves_the_decision(threshold: float, tp: int, fp: int) -> None:
    result = metrics.compute_metrics([C, C, N, N], [0.9, 0.2, 0.6, 0.1], threshold=threshold)
    assert (result["tp"], result["fp"]) == (tp, fp)
    assert result["roc_auc"] == 0.75  # scores, not labels


# --------------------------------------------------------------------------- labels and inputs


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([C, N], [1, 0]),
        (["COVID", " Normal "], [1, 0]),
        (["Positive", "Negative"], [1, 0]),
        ([1, 0], [1, 0]),
        ([1.0, 0.0], [1, 0]),
        ([True, False], [1, 0]),
        ([], []),
    ],
)
def test_encode_labels(values: list, expected: list[int]) -> None:
    assert metrics.encode_labels(values).tolist() == expected


@pytest.mark.parametrize("values", [["covid", "pneumonia"], [0, 2], [0.5], ["1"], [None]])
def test_encode_labels_rejects_unknown_values(values: list) -> None:
    with pytest.raises(ValueError, match="valid: normal, covid"):
        metrics.encode_labels(values)


def test_positive_class_is_covid_whatever_the_label_order() -> None:
    """COVID is positive by the schema mapping, not by alphabetical or first-seen order."""
    assert CLASS_NAMES.index(POSITIVE_CLASS) == 1 and sorted(CLASS_NAMES)[0] == POSITIVE_CLASS
    forward = metrics.compute_metrics([N, C, C], [0.2, 0.9, 0.3])
    backward = metrics.compute_metrics([C, C, N], [0.3, 0.9, 0.2])
    assert forward == backward
    assert forward["covid_sensitivity"] == 0.5 and forward["covid_specificity"] == 1.0


@pytest.mark.parametrize("scores", [[0.2, 1.2], [0.2, -0.1], [0.2, float("nan")], [0.2, "x"]])
def test_scores_must_be_probabilities(scores: list) -> None:
    with pytest.raises(ValueError, match="outside"):
        metrics.compute_metrics([C, N], scores)


def test_length_mismatch_is_rejected() -> None:
    with pytest.raises(ValueError, match="3 rows"):
        metrics.confusion([C, N, C], [C, N])


def test_unknown_metric_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match="balanced_accuracy"):
        Metric("youden")


# --------------------------------------------------------------------------- degenerate cases


@pytest.mark.parametrize(
    ("y_true", "undefined"),
    [
        ([C, C, C], {"covid_specificity", "roc_auc", "pr_auc", "balanced_accuracy", "mcc"}),
        ([N, N, N], {"covid_sensitivity", "roc_auc", "pr_auc", "balanced_accuracy", "mcc"}),
    ],
)
def test_one_class_only_warns_and_gives_nan(y_true: list[str], undefined: set[str]) -> None:
    with pytest.warns(UndefinedMetricWarning, match="roc_auc"):
        result = metrics.compute_metrics(y_true, [0.2, 0.6, 0.9])
    for key in undefined:
        assert math.isnan(result[key]), key
    assert result["accuracy"] == pytest.approx(sum(
        (label == C) == (score > 0.5) for label, score in zip(y_true, [0.2, 0.6, 0.9], strict=True)
    ) / 3)  # fmt: skip


def test_no_covid_prediction_makes_covid_precision_undefined() -> None:
    with pytest.warns(UndefinedMetricWarning, match="covid_precision"):
        result = metrics.compute_metrics([C, N], [0.3, 0.1])
    assert math.isnan(result["covid_precision"]) and result["roc_auc"] == 1.0


# --------------------------------------------------------------------------- sklearn as oracle


def _random_case(seed: int, n: int = 400, decimals: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    scores = np.clip(rng.normal(0.35 + 0.3 * y, 0.25), 0, 1).round(decimals)
    return y, scores


@pytest.mark.parametrize(("seed", "decimals"), [(0, 6), (1, 1), (2, 2), (3, 0)])
def test_agrees_with_scikit_learn(seed: int, decimals: int) -> None:
    y, scores = _random_case(seed, decimals=decimals)  # few decimals -> many ties
    result = metrics.compute_metrics(y, scores)
    pred = (scores > 0.5).astype(int)
    assert result["roc_auc"] == pytest.approx(skm.roc_auc_score(y, scores), abs=1e-12)
    assert result["pr_auc"] == pytest.approx(skm.average_precision_score(y, scores), abs=1e-12)
    assert result["mcc"] == pytest.approx(skm.matthews_corrcoef(y, pred), abs=1e-12)
    assert result["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert result["covid_f1"] == pytest.approx(skm.f1_score(y, pred))
    assert result["covid_precision"] == pytest.approx(skm.precision_score(y, pred))
    matrix = metrics.confusion(y, pred).to_numpy()
    assert (matrix == skm.confusion_matrix(y, pred, labels=[0, 1])).all()


@pytest.mark.parametrize("pair_matrix", [True, False])
@pytest.mark.parametrize(("seed", "n_clusters"), [(0, 7), (1, 40), (2, 3)])
def test_weighted_engine_equals_sample_weights(
    seed: int, n_clusters: int, pair_matrix: bool
) -> None:
    """Cluster weights act as integer sample weights on every unit of the cluster, on both ROC
    paths (bilinear pair matrix and score groups)."""
    y, scores = _random_case(seed, n=300, decimals=2)
    rng = np.random.default_rng(seed + 10)
    cluster = rng.integers(0, n_clusters, len(y))
    data = metrics.cluster_predictions(y, (scores > 0.5).astype(int), scores, cluster, n_clusters)
    if not pair_matrix:
        data = dataclasses.replace(data, pair_wins=None)
    weights = rng.integers(0, 4, (5, n_clusters)).astype(float)
    weights[0] = 1.0
    got = metrics.weighted_metrics(data, weights, list(Metric))
    for row, w in enumerate(weights):
        sample = w[cluster]
        keep = sample > 0
        if len(set(y[keep])) < 2:
            assert math.isnan(got[Metric.ROC_AUC][row])
            continue
        expected_auc = skm.roc_auc_score(y[keep], scores[keep], sample_weight=sample[keep])
        expected_ap = skm.average_precision_score(y[keep], scores[keep], sample_weight=sample[keep])
        assert got[Metric.ROC_AUC][row] == pytest.approx(expected_auc, abs=1e-12)
        assert got[Metric.PR_AUC][row] == pytest.approx(expected_ap, abs=1e-12)
        pred = (scores > 0.5).astype(int)
        expected_sens = skm.recall_score(y, pred, sample_weight=sample)
        assert got[Metric.COVID_SENSITIVITY][row] == pytest.approx(expected_sens)


def test_metrics_from_confusion_reads_labels_not_positions() -> None:
    y_true, y_score = _golden_predictions()
    y_pred = [C if s > 0.5 else N for s in y_score]
    matrix = metrics.confusion(y_true, y_pred)
    reordered = matrix.loc[[C, N], [C, N]]
    assert metrics.metrics_from_confusion(reordered) == metrics.metrics_from_confusion(matrix)
    from_scores = metrics.compute_metrics(y_true, y_score)
    from_matrix = metrics.metrics_from_confusion(matrix)
    assert all(from_matrix[key] == from_scores[key] for key in from_matrix)
