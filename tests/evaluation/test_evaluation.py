"""Tests of covidct.evaluation: predictions files, patient-level diagnosis, both cross-fold
aggregations, the patient bootstrap and paired bootstrap, the CLI body and the pictures."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from benchmarks.bootstrap_speed import two_models as _two_models  # the benchmark's models
from covidct import evaluation
from covidct.evaluation import metrics
from covidct.evaluation.metrics import UndefinedMetricWarning

C, N = "covid", "normal"


def _slices(patient: str, label: str, scores: list[float], **extra: object) -> pd.DataFrame:
    frame = pd.DataFrame({"patient_id": patient, "y_true": label, "p_covid": scores})
    frame["slice_id"] = [f"{patient}/IM{i:05d}" for i in range(len(scores))]
    return frame.assign(**extra)


def _with_fractions(fractions: dict[str, tuple[str, int]], n_slices: int = 10) -> pd.DataFrame:
    """Patients whose fraction of slices predicted COVID is k / n_slices."""
    frames = [
        _slices(pid, label, [0.9] * k + [0.1] * (n_slices - k))
        for pid, (label, k) in fractions.items()
    ]
    return pd.concat(frames, ignore_index=True)


def _golden_frame(fold_shares: tuple[float, ...] = (0.1, 0.15, 0.2, 0.25, 0.3)) -> pd.DataFrame:
    """The seed's Table 11 ResNet152 confusion x 5, spread unevenly over 5 folds, 40-slice
    patients (one label per patient)."""
    cells = [(C, 0.9, 2182), (C, 0.1, 100), (N, 0.9, 3223), (N, 0.1, 36038)]
    frames = []
    for label, score, count in cells:
        sizes = np.floor(np.array(fold_shares) * count).astype(int)
        sizes[-1] = count - sizes[:-1].sum()
        for fold, size in enumerate(sizes, start=1):
            ids = [f"{label}-{score}-f{fold}-{i // 40}" for i in range(size)]
            slices = [f"IM{i % 40}" for i in range(size)]  # a file needs them: identical rows
            frames.append(pd.DataFrame({"patient_id": ids, "y_true": label, "p_covid": score,
                                        "fold": fold, "slice_id": slices}))  # fmt: skip
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------- reading


@pytest.mark.parametrize(
    ("csv", "message"),
    [
        ("patient_id,y_true\np1,covid\n", "missing column"),
        ("patient_id,y_true,p_covid\np1,pneumonia,0.3\n", "not a class label"),
        ("patient_id,y_true,p_covid\np1,covid,1.3\n", "outside"),
        ("patient_id,y_true,p_covid\np1,covid,0.3\np1,normal,0.2\n", "both labels"),
        ("patient_id,y_true,p_covid,selected\np1,covid,0.3,maybe\n", "not booleans"),
        ("patient_id,y_true,p_covid,split\np1,covid,0.3,train\n", "not val or test"),
        ("patient_id,y_true,p_covid\n", "no rows"),
        ("", "empty file"),
    ],
)
def test_invalid_predictions_files_are_named(tmp_path: Path, csv: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(csv)
    with pytest.raises(ValueError, match=message) as caught:
        evaluation.read_predictions(path)
    assert str(path) in str(caught.value)


def test_duplicate_slice_rows_are_named(tmp_path: Path) -> None:
    twice = pd.concat([_PATIENT, _PATIENT.iloc[[1, 0]]], ignore_index=True)
    with pytest.raises(ValueError, match="2 duplicate slice row") as caught:
        evaluation.validate_predictions(twice)
    assert "p1/IM00000" in str(caught.value) and "p1/IM00001" in str(caught.value)
    path = tmp_path / "twice.csv"
    twice.assign(fold=3).to_csv(path, index=False)
    with pytest.raises(ValueError, match="duplicate slice") as caught:
        evaluation.run_evaluate_predictions(path, as_json=False)
    assert str(path) in str(caught.value) and "3/p1/p1/IM00000" in str(caught.value)
    with pytest.raises(ValueError, match="predictions b: 2 duplicate slice"):
        evaluation.paired_bootstrap(_PATIENT, twice, "image_accuracy", n_boot=10)
    # the same slice scored by two folds' models is two diagnoses, not a duplicate
    by_fold = pd.concat([_PATIENT.assign(fold=1), _PATIENT.assign(fold=2)], ignore_index=True)
    assert len(evaluation.validate_predictions(by_fold)) == 10
    # without slice ids rows cannot be told apart: repeated scores are allowed
    assert len(evaluation.validate_predictions(twice.drop(columns="slice_id"))) == 7


def test_patient_in_validation_and_test_is_an_error() -> None:
    val = _with_fractions({"v1": (C, 5), "both": (C, 7), "v3": (N, 0), "v4": (N, 2)})
    test = _with_fractions({"both": (C, 4), "t2": (N, 1)})
    frame = pd.concat([val.assign(split="val"), test.assign(split="test")], ignore_index=True)
    with pytest.raises(ValueError, match=r"1 patient\(s\) in both val and test.*both"):
        evaluation.evaluate_predictions(frame, n_boot=0)
    with pytest.raises(ValueError, match="both val and test"):
        evaluation.validate_predictions(frame.assign(split=frame["split"].str.upper()))
    # across folds it is the cross-validation protocol: val in fold 1, test in fold 2
    folds = pd.concat(
        [val.assign(split="val", fold=1), test.assign(split="test", fold=2)], ignore_index=True
    )
    assert len(evaluation.validate_predictions(folds)) == 60
    with pytest.raises(ValueError, match=r"1 patient\(s\) in both val and test.*both"):
        evaluation.validate_predictions(folds.assign(fold=2))


def test_read_predictions_normalises_types(tmp_path: Path) -> None:
    path = tmp_path / "pred.csv"
    path.write_text("patient_id,y_true,p_covid,selected,extra\n7,1,0.8,True,a\n8,0,0.1,False,b\n")
    frame = evaluation.read_predictions(path)
    assert frame["y_true"].tolist() == [C, N]
    assert frame["patient_id"].tolist() == ["7", "8"]
    assert frame["selected"].dtype == bool and frame["extra"].tolist() == ["a", "b"]


# --------------------------------------------------------------------------- patient level

# one COVID patient: 5 slices, 3 selected of which 2 predicted COVID; 4 of 5 predicted overall
_PATIENT = _slices("p1", C, [0.9, 0.8, 0.2, 0.9, 0.9], selected=[True, True, True, False, False])


@pytest.mark.parametrize(
    ("use_selected", "threshold", "fraction", "predicted"),
    [
        (True, 0.5, 2 / 3, C),
        (True, 2 / 3, 2 / 3, N),  # must exceed the threshold, equal is not enough
        (True, 0.7, 2 / 3, N),
        (False, 0.7, 4 / 5, C),  # without the selection every slice counts
        (False, 0.8, 4 / 5, N),
    ],
)
def test_patient_rule(
    use_selected: bool, threshold: float, fraction: float, predicted: str
) -> None:
    frame = _PATIENT if use_selected else _PATIENT.drop(columns="selected")
    row = evaluation.patient_level(frame, threshold).iloc[0]
    assert row["covid_fraction"] == pytest.approx(fraction)
    assert row["y_pred"] == predicted and row["correct"] == (predicted == C)
    assert row["n_slices"] == 5 and row["n_selected"] == (3 if use_selected else 5)


def test_patient_without_selected_slices_falls_back_to_all() -> None:
    frame = _PATIENT.assign(selected=False)
    row = evaluation.patient_level(frame, 0.5).iloc[0]
    assert row["all_slices_used"] and row["covid_fraction"] == pytest.approx(0.8)


def test_patient_diagnosed_once_per_fold() -> None:
    frame = pd.concat([_PATIENT.assign(fold=1), _PATIENT.assign(fold=2, p_covid=0.1)])
    table = evaluation.patient_level(frame, 0.5)
    assert table[["fold", "patient_id", "y_pred"]].values.tolist() == [[1, "p1", C], [2, "p1", N]]


@pytest.mark.parametrize(
    ("frame", "mean"),
    [
        (_PATIENT, (0.9 + 0.8 + 0.2) / 3),  # the selected slices, as covid_fraction
        (_PATIENT.drop(columns="selected"), 3.7 / 5),
        (_PATIENT.assign(selected=False), 3.7 / 5),  # none selected: every slice
    ],
    ids=["selected", "no-column", "none-selected"],
)
def test_patient_mean_p_covid(frame: pd.DataFrame, mean: float) -> None:
    assert evaluation.patient_level(frame, 0.5).iloc[0]["mean_p_covid"] == pytest.approx(mean)


def test_patient_aucs_rank_patients_by_mean_p_covid() -> None:
    # no slice of c1 passes 0.5, so by COVID fraction c1 ties both normal patients (roc 0.75,
    # AP 0.75); by mean p_covid every COVID patient ranks above every normal one
    frame = pd.concat([
        _slices("c1", C, [0.45, 0.45, 0.4]), _slices("c2", C, [0.9, 0.8, 0.95]),
        _slices("n1", N, [0.1, 0.2, 0.1]), _slices("n2", N, [0.3, 0.3, 0.35]),
    ], ignore_index=True)  # fmt: skip
    patients = evaluation.patient_level(frame, 0.5)
    assert patients["covid_fraction"].tolist() == [0.0, 1.0, 0.0, 0.0]
    assert patients["y_pred"].tolist() == [N, C, N, N]  # the call still uses the fraction
    values = evaluation.patient_metrics(patients)
    assert values["roc_auc"] == 1.0 and values["pr_auc"] == 1.0
    assert values["accuracy"] == 0.75
    headline = evaluation.headline_metrics(frame, patient_threshold=0.5)
    assert headline["patient_roc_auc"] == headline["patient_pr_auc"] == 1.0
    for metric in ("patient_roc_auc", "patient_pr_auc"):
        result = evaluation.bootstrap_ci(frame, metric, n_boot=50, patient_threshold=0.5)
        assert result.point == 1.0 and result.low == result.high == 1.0
    result = evaluation.evaluate_predictions(frame, patient_threshold=0.5, n_boot=20)
    assert result.metrics["patient_roc_auc"] == 1.0
    assert result.intervals.loc["patient_roc_auc", "point"] == 1.0
    assert result.intervals.loc["patient_pr_auc", "point"] == 1.0


def test_threshold_column_is_used_and_must_be_constant() -> None:
    assert evaluation.patient_level(_PATIENT.assign(patient_threshold=0.7)).iloc[0]["y_pred"] == N
    assert evaluation.patient_level(_PATIENT.assign(patient_threshold=0.6)).iloc[0]["y_pred"] == C
    varying = _PATIENT.assign(patient_threshold=[0.1, 0.2, 0.3, 0.4, 0.5])
    with pytest.raises(ValueError, match="varies within patient"):
        evaluation.patient_level(varying)


@pytest.mark.parametrize(
    ("fractions", "expected"),
    [
        # covid 0.6 0.9 0.3 / normal 0.0 0.1 0.4: cuts 0.05 0.2 0.35 0.5 0.75 give balanced
        # accuracy 2/3, 5/6, 2/3, 5/6, 2/3; the tie goes to the lower cut
        ({"c1": (C, 6), "c2": (C, 9), "c3": (C, 3), "n1": (N, 0), "n2": (N, 1), "n3": (N, 4)}, 0.2),
        # separable: covid 0.5 0.7 / normal 0.0 0.2 -> the middle of the gap
        ({"c1": (C, 5), "c2": (C, 7), "n1": (N, 0), "n2": (N, 2)}, 0.35),
        # covid 1.0 0.8 / normal 0.3 1.0: cuts 0.15 0.55 0.9 give 1/2, 3/4, 1/2; a normal
        # patient with every slice called COVID cannot be helped
        ({"c1": (C, 10), "c2": (C, 8), "n1": (N, 3), "n2": (N, 10)}, 0.55),
    ],
)
def test_choose_patient_threshold(fractions: dict[str, tuple[str, int]], expected: float) -> None:
    assert evaluation.choose_patient_threshold(_with_fractions(fractions)) == pytest.approx(
        expected
    )


@pytest.mark.parametrize(
    "fractions",
    [{"c1": (C, 6), "c2": (C, 2)}, {"c1": (C, 0), "n1": (N, 0)}],
    ids=["one-class", "no-spread"],
)
def test_choose_patient_threshold_degenerate(fractions: dict[str, tuple[str, int]]) -> None:
    with pytest.warns(UndefinedMetricWarning, match="cannot separate"):
        threshold = evaluation.choose_patient_threshold(_with_fractions(fractions))
    assert threshold == evaluation.DEFAULT_PATIENT_THRESHOLD


def test_patient_report_lists_correct_and_wrong_ids() -> None:
    frame = _with_fractions({"c1": (C, 9), "c2": (C, 1), "n1": (N, 0), "n2": (N, 8), "n3": (N, 2)})
    report = evaluation.patient_report(evaluation.patient_level(frame, 0.5))
    rows = {row["y_true"]: row for row in report.to_dict("records")}
    assert rows[C]["correct_ids"] == ["c1"] and rows[C]["wrong_ids"] == ["c2"]
    assert rows[N]["correct_ids"] == ["n1", "n3"] and rows[N]["wrong_ids"] == ["n2"]
    assert rows[N]["n_patients"] == 3 and rows[N]["n_wrong"] == 1


# --------------------------------------------------------------------------- aggregations


def test_pooled_and_fold_mean_differ_as_computed_by_hand() -> None:
    # fold 1: tp 1, fp 1, tn 1 -> covid precision 1/2; fold 2: tp 3, tn 1 -> precision 1
    # pooled precision 4/5; fold mean 3/4, sd sqrt(2 * 0.25**2) = 0.3536
    fold1 = pd.concat([_slices("a", C, [0.9]), _slices("b", N, [0.8]), _slices("c", N, [0.1])])
    fold2 = pd.concat([_slices("d", C, [0.9, 0.7, 0.6]), _slices("e", N, [0.2])])
    frame = pd.concat([fold1.assign(fold=1), fold2.assign(fold=2)], ignore_index=True)
    result = evaluation.evaluate_predictions(frame, patient_threshold=0.5, n_boot=0)
    assert result.metrics["image_covid_precision"] == pytest.approx(0.8)
    row = result.fold_summary.loc["image_covid_precision"]
    assert row["mean"] == pytest.approx(0.75) and row["sd"] == pytest.approx(math.sqrt(0.125))
    assert result.per_fold.loc[1, "image_covid_precision"] == pytest.approx(0.5)
    assert result.image_confusion.to_numpy().tolist() == [[2, 1], [0, 4]]


def test_golden_values_through_a_predictions_file(tmp_path: Path) -> None:
    path = tmp_path / "golden.csv"
    _golden_frame().to_csv(path, index=False)
    report = json.loads(evaluation.run_evaluate_predictions(path, as_json=True))
    pooled = report["image"]["pooled"]
    assert round(100 * pooled["accuracy"], 2) == 92.00
    assert round(100 * pooled["covid_sensitivity"], 2) == 95.62
    assert round(100 * pooled["covid_specificity"], 2) == 91.79
    assert round(100 * pooled["covid_precision"], 2) == 40.37
    assert round(100 * pooled["normal_precision"], 2) == 99.72
    counts = report["image"]["confusion"]["counts"]
    assert counts == {N: {N: 36038, C: 3223}, C: {N: 100, C: 2182}}
    assert report["folds"] == ["1", "2", "3", "4", "5"] and report["n_images"] == 41543
    low, high = report["image"]["ci"]["covid_sensitivity"]
    assert low < pooled["covid_sensitivity"] < high


def test_golden_fold_mean_matches_per_fold_metrics() -> None:
    frame = _golden_frame()
    result = evaluation.evaluate_predictions(frame, n_boot=0)
    per_fold = [
        metrics.compute_metrics(group["y_true"], group["p_covid"])["covid_precision"]
        for _, group in frame.groupby("fold")
    ]
    summary = result.summary("image").loc["covid_precision"]
    assert summary["fold_mean"] == pytest.approx(np.mean(per_fold))
    assert summary["fold_sd"] == pytest.approx(np.std(per_fold, ddof=1))
    assert summary["pooled"] == pytest.approx(2182 / 5405)


def test_text_report_shows_both_aggregations_and_patients(tmp_path: Path) -> None:
    frame = pd.concat([
        _with_fractions({"c1": (C, 9), "c2": (C, 1), "n1": (N, 0), "n2": (N, 6)}).assign(fold=1),
        _with_fractions({"c3": (C, 7), "n3": (N, 0), "n4": (N, 1)}).assign(fold=2),
    ])  # fmt: skip
    path = tmp_path / "pred.csv"
    frame.to_csv(path, index=False)
    text = evaluation.run_evaluate_predictions(path, as_json=False)
    for needle in ("IMAGE LEVEL", "PATIENT LEVEL", "pooled", "fold mean ± sd", "Table 8", "c2, ",
                   "covid_sensitivity", "support"):  # fmt: skip
        assert needle.rstrip(", ") in text, needle
    assert re.search(r"fold 1 covid +2 patients, +1 correct, +1 wrong: c2\n", text)
    assert re.search(r"fold 2 normal +2 patients, +2 correct, +0 wrong: -\n", text)


def test_validation_rows_choose_the_threshold_per_fold() -> None:
    val1 = _with_fractions({"v1": (C, 5), "v2": (C, 7), "v3": (N, 0), "v4": (N, 2)})  # 0.35
    val2 = _with_fractions({"w1": (C, 9), "w2": (C, 8), "w3": (N, 1), "w4": (N, 6)})  # 0.7
    test = _with_fractions({"t1": (C, 4), "t2": (N, 1)})
    frame = pd.concat([
        val1.assign(fold=1, split="val"), val2.assign(fold=2, split="val"),
        test.assign(fold=1, split="test"), test.assign(fold=2, split="test"),
    ])  # fmt: skip
    result = evaluation.evaluate_predictions(frame, n_boot=0)
    assert result.patient_thresholds == pytest.approx({"1": 0.35, "2": 0.7})
    assert result.threshold_source == evaluation.ThresholdSource.VALIDATION
    assert result.n_images == 40 and set(result.patients["patient_id"]) == {"t1", "t2"}
    diagnosis = result.patients.set_index(["fold", "patient_id"])["y_pred"]
    assert diagnosis[(1, "t1")] == C and diagnosis[(2, "t1")] == N


def test_headline_metrics_names_used_by_the_pipeline_and_gate() -> None:
    frame = _with_fractions({"c1": (C, 9), "c2": (C, 1), "n1": (N, 0), "n2": (N, 6)})
    values = evaluation.headline_metrics(frame, patient_threshold=0.5)
    for key in ("image_accuracy", "image_covid_sensitivity", "image_covid_specificity",
                "image_covid_precision", "image_normal_precision", "image_balanced_accuracy",
                "image_roc_auc", "image_pr_auc", "patient_balanced_accuracy", "patient_accuracy",
                "image_tp", "patient_n"):  # fmt: skip
        assert key in values, key
    assert values["patient_accuracy"] == 0.5 and values["image_accuracy"] == pytest.approx(0.6)


# --------------------------------------------------------------------------- bootstrap


def _cohort(n_covid: int, n_normal: int, seed: int, n_slices: int = 20) -> pd.DataFrame:
    """Patients with correlated slices: each patient has its own score level."""
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n_covid + n_normal):
        label = C if i < n_covid else N
        level = rng.normal(0.62 if label == C else 0.4, 0.15)
        scores = np.clip(level + rng.normal(0, 0.05, n_slices), 0, 1)
        frames.append(_slices(f"p{seed}-{i}", label, list(scores)))
    return pd.concat(frames, ignore_index=True)


@pytest.mark.parametrize(
    "metric",
    ["image_accuracy", "image_covid_sensitivity", "image_roc_auc", "image_pr_auc",
     "patient_balanced_accuracy", "mcc"],
)  # fmt: skip
def test_interval_contains_the_point_estimate(metric: str) -> None:
    frame = _cohort(20, 60, seed=1)
    result = evaluation.bootstrap_ci(frame, metric, n_boot=500, patient_threshold=0.5)
    assert result.low <= result.point <= result.high
    expected = evaluation.headline_metrics(frame, patient_threshold=0.5)[result.metric]
    assert result.point == pytest.approx(expected)
    assert result.n_valid == 500 and result.distribution.shape == (500,)


@pytest.mark.parametrize("metric", ["image_accuracy", "image_roc_auc"])
def test_interval_narrows_with_more_patients(metric: str) -> None:
    small = _cohort(10, 30, seed=2)
    large = pd.concat(
        [small.assign(patient_id=small["patient_id"] + f"-copy{k}") for k in range(4)]
    )
    width = {
        name: evaluation.bootstrap_ci(frame, metric, n_boot=400).high
        - evaluation.bootstrap_ci(frame, metric, n_boot=400).low
        for name, frame in (("small", small), ("large", large))
    }
    assert width["large"] < 0.7 * width["small"]  # ~1/2 expected for 4x the patients


def test_patient_resampling_keeps_a_patients_slices_together() -> None:
    # 40 patients of 30 slices; each patient's slices are all right or all wrong.
    n_patients, n_slices = 40, 30
    right = np.arange(n_patients) % 4 != 0
    frames = []
    for i in range(n_patients):
        label = C if i < 10 else N
        correct_score, wrong_score = (0.9, 0.1) if label == C else (0.1, 0.9)
        score = correct_score if right[i] else wrong_score
        frames.append(_slices(f"p{i}", label, [score] * n_slices))
    frame = pd.concat(frames, ignore_index=True)
    by_patient = evaluation.bootstrap_ci(frame, "image_accuracy", n_boot=300)
    # a resample draws whole patients, so accuracy is always (patients right) / 40
    scaled = by_patient.distribution * n_patients
    assert np.allclose(scaled, np.round(scaled))
    # resampling slices instead (each slice its own unit) ignores the correlation
    by_slice = evaluation.bootstrap_ci(
        frame.assign(patient_id=frame["slice_id"]), "image_accuracy", n_boot=300
    )
    assert by_patient.point == by_slice.point == pytest.approx(0.75)
    assert (by_patient.high - by_patient.low) > 3 * (by_slice.high - by_slice.low)
    assert not np.allclose(
        by_slice.distribution * n_patients, np.round(by_slice.distribution * n_patients)
    )


def test_bootstrap_is_deterministic_per_seed() -> None:
    frame = _cohort(8, 20, seed=3)
    first = evaluation.bootstrap_ci(frame, "image_roc_auc", n_boot=200, seed=7)
    again = evaluation.bootstrap_ci(frame, "image_roc_auc", n_boot=200, seed=7)
    other = evaluation.bootstrap_ci(frame, "image_roc_auc", n_boot=200, seed=8)
    assert np.array_equal(first.distribution, again.distribution)
    assert not np.array_equal(first.distribution, other.distribution)


@pytest.mark.parametrize(("stratify", "all_valid"), [(True, True), (False, False)])
def test_stratified_resamples_always_hold_both_classes(stratify: bool, all_valid: bool) -> None:
    frame = _cohort(1, 30, seed=4)
    result = evaluation.bootstrap_ci(
        frame, "image_covid_sensitivity", n_boot=300, stratify=stratify
    )
    assert (result.n_valid == 300) == all_valid


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metric": "youden"}, "valid metrics"),
        ({"metric": "patient_youden"}, "valid metrics"),
        ({"metric": "image_accuracy", "n_boot": 0}, "n_boot"),
        ({"metric": "image_accuracy", "level": 1.0}, "level"),
    ],
)
def test_bootstrap_rejects_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        evaluation.bootstrap_ci(_cohort(3, 3, seed=5), **kwargs)


# --------------------------------------------------------------------------- paired bootstrap


def test_paired_bootstrap_of_a_model_with_itself_is_zero() -> None:
    good, _ = _two_models(60, 10)
    result = evaluation.paired_bootstrap(good, good, "image_roc_auc", n_boot=200)
    assert result.difference == result.low == result.high == 0.0


@pytest.mark.parametrize(
    "metric", ["image_roc_auc", "image_balanced_accuracy", "patient_roc_auc", "image_pr_auc"]
)
def test_paired_bootstrap_finds_the_better_model(metric: str) -> None:
    good, worse = _two_models()
    result = evaluation.paired_bootstrap(good, worse, metric, patient_thresholds=(0.5, 0.5))
    assert result.low > 0 and result.low <= result.difference <= result.high
    assert result.difference == pytest.approx(result.point_a - result.point_b)
    mirror = evaluation.paired_bootstrap(worse, good, metric, patient_thresholds=(0.5, 0.5))
    assert mirror.difference == pytest.approx(-result.difference)
    assert (mirror.low, mirror.high) == pytest.approx((-result.high, -result.low))
    assert result.as_tuple() == (result.difference, result.low, result.high)


@pytest.mark.parametrize(
    "metric", ["image_roc_auc", "image_pr_auc", "patient_balanced_accuracy", "image_mcc"]
)
def test_paired_bootstrap_at_the_gates_scale_repeats_itself(metric: str) -> None:
    """1,000 resamples of 12,000 slices, as the gate runs them (their speed:
    ``benchmarks/bootstrap_speed.py``)."""
    good, worse = _two_models(300, 40)  # 12,000 slices each
    good, worse = good.assign(patient_threshold=0.5), worse.assign(patient_threshold=0.5)
    result = evaluation.paired_bootstrap(good, worse, metric, n_boot=1000, seed=3)
    again = evaluation.paired_bootstrap(good, worse, metric, n_boot=1000, seed=3)
    assert np.array_equal(result.distribution, again.distribution)
    other = evaluation.paired_bootstrap(good, worse, metric, n_boot=1000, seed=4)
    assert not np.array_equal(result.distribution, other.distribution)
    assert result.n_boot == 1000 and result.n_patients == 300


def test_the_bootstrap_benchmark_prints_seconds_per_metric() -> None:
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "bootstrap_speed.py"
    args = ["--patients", "20", "--slices", "4", "--n-boot", "50", "--repeats", "1"]
    done = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    timed = re.findall(r"^  (\w+) +median +([\d.]+) s +best +([\d.]+) s$", done.stdout, re.M)
    assert [name for name, _, _ in timed] == [
        "image_roc_auc", "image_pr_auc", "patient_balanced_accuracy", "image_mcc"
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f[f["patient_id"] != "p3"], "1 only in a"),
        (lambda f: f.assign(y_true=np.where(f["patient_id"] == "p0", N, f["y_true"])), "labelled"),
        (lambda f: f.assign(slice_id=f["slice_id"] + 1), "slice"),
    ],
    ids=["missing-patient", "relabelled", "other-slices"],
)
def test_paired_bootstrap_needs_the_same_test_set(change, message: str) -> None:
    good, worse = _two_models(20, 5)
    with pytest.raises(ValueError, match=message):
        evaluation.paired_bootstrap(good, change(worse), "image_accuracy", n_boot=10)


# --------------------------------------------------------------------------- pictures


def _png_ok(figure: Figure, path: Path) -> bool:
    figure.savefig(path)
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5_000


def test_confusion_matrix_picture(tmp_path: Path) -> None:
    frame = _golden_frame()
    figure = evaluation.plot_confusion_matrix(frame)
    texts = [t.get_text() for t in figure.axes[0].texts]
    assert "36,038\n91.8%" in texts and "2,182\n95.6%" in texts
    assert figure.axes[0].get_xlabel() == "predicted class"
    assert [t.get_text() for t in figure.axes[0].get_yticklabels()] == [N, C]
    assert _png_ok(figure, tmp_path / "cm.png")
    matrix = metrics.confusion(frame["y_true"], np.where(frame["p_covid"] > 0.5, C, N))
    again = evaluation.plot_confusion_matrix(matrix)
    assert [t.get_text() for t in again.axes[0].texts] == texts


def test_roc_and_pr_pictures(tmp_path: Path) -> None:
    good, _ = _two_models(60, 10)
    frame = pd.concat(
        [good.assign(fold=k, patient_id=good["patient_id"] + f"-{k}") for k in (1, 2, 3)]
    )
    roc = evaluation.plot_roc_curves(frame)
    roc_axes = [axes for axes in roc.axes if axes.get_title().startswith("ROC")]
    assert len(roc_axes) == 2
    for axes in roc_axes:
        labels = [line.get_label() for line in axes.get_lines()]
        assert sum(label.startswith("fold") for label in labels) == 3
        assert any(label.startswith("mean of 3 folds") for label in labels)
    assert _png_ok(roc, tmp_path / "roc.png")
    pr = evaluation.plot_pr_curve(frame)
    labels = [line.get_label() for line in pr.axes[0].get_lines()]
    assert any(label.startswith("pooled (AP") for label in labels)
    assert any(label.startswith("prevalence 0.2") for label in labels)
    assert _png_ok(pr, tmp_path / "pr.png")
    # issue 33: the legend covered the curves; it sits beside the axes, inside the picture
    pr.canvas.draw()
    legend = pr.axes[0].get_legend().get_window_extent()
    assert not legend.overlaps(pr.axes[0].get_window_extent())
    assert pr.bbox.contains(legend.x1 - 1, legend.y0 + 1)
