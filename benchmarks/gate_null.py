"""The gate's false-promotion rate and power, by simulation (issues 13 and 31).

Weekly runs are simulated on a roster shaped like COVID-CTset and pushed through the product's
own selection code and its one pure gate rule (:func:`covidct.promotion.rule.judge`):

1. Development: the 377 patients' development share (302: 76 COVID + 226 normal) gets the
   seed's k = 5 folds from :func:`covidct.data.folds.assign_folds`. Each backbone (ResNet152, the
   baseline, and 1 or 7 challengers) scores every fold's test patients; its patient threshold is
   chosen on its pooled out-of-fold predictions (a numpy copy of
   :func:`covidct.evaluation.choose_patient_threshold`, checked equal on every 10th run); per-fold
   metrics go to :func:`covidct.pipeline.leaderboard` and the candidate is
   :func:`covidct.pipeline.choose_candidate` by the gate's endpoint (image ROC AUC).
2. Sequestered: 75 or 300 new patients of the same population (19 or 76 COVID; sex 50/50, age
   bands 30/45/25%) are scored by the candidate, the baseline and, in the ``steady`` state, an
   equal champion (``first-run``: no champion, policy ``beat-baseline``).
3. The evidence the product gathers (``covidct.pipeline.gate_evidence``) is computed in numpy
   with the product's statistics (:mod:`covidct.promotion.stats`: the paired patient bootstrap of
   image ROC AUC on :func:`covidct.evaluation.bootstrap_weights` resamples, the studentized
   COVID-sensitivity tests and their margin, the subgroup harm tests; checked equal to the
   product's on tables in ``tests/promotion/test_gate_null.py``) and judged by
   :func:`covidct.promotion.rule.judge`.

A year: 52 weekly gates on a pool that starts at 75 patients and grows by 5 a week (the same
patients and the champion's scores on them stay); each week a retrained baseline and one
candidate, +10 points better than the champion in one week of eight (at random), equal
otherwise; and a year in which every candidate is equal (the complete null).

Data model. Slice ``j`` of patient ``i`` scored by backbone ``m`` has the logit
``(mu + shift_m) * (+1 if COVID else -1) + d_i + e_mi + eps_mij`` (``p_covid`` its sigmoid),
with ``d_i ~ N(0, sd_patient)`` shared by every backbone, ``e_mi ~ N(0, sd_model_patient)`` the
backbone's own error on the patient, repeated on all its slices, and ``eps_mij ~ N(0,
sd_slice)``. Defaults: mu 1.5, sd_patient 1.0, sd_model_patient 0.7, sd_slice 1.5, 30 slices
(patient balanced accuracy about 0.88, image ROC AUC about 0.86). A true gain of 5 or 10 points
is a shift calibrated so that the expected patient balanced accuracy, at a threshold chosen on
development data, is that much higher (Gauss-Hermite quadrature, averaged over simulated
development sets); it is about +0.05 and +0.11 of image ROC AUC.

``--json`` prints one JSON object: ``scenarios`` (patients, covid_patients, challengers, state,
true_gain, runs, promotion_rate (any promotion under the null, the better backbone's otherwise),
se, median_detectable_auc_gain), ``equivalent_refused_by_secondary_rules`` (steady state,
every candidate equal to the champion, ResNet152 included: the largest share refused by
COVID-sensitivity non-inferiority or subgroup harm over the scenarios, each in
``..._by_scenario``), ``promoted_optimism_points`` (recorded minus true
patient balanced accuracy of promoted better candidates, points; ``..._as_measured`` before the
selection correction) and ``year``.

    uv run python benchmarks/gate_null.py [--json] [--sims 120] [--years 30] [--seed 0]
        [--slices 30] [--workers 2] [--n-boot 500] [--calibration-reps 100]
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import multiprocessing
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from scipy import special, stats

from covidct import evaluation, pipeline
from covidct.config import FirstRunPolicy, GateSettings
from covidct.data.folds import assign_folds
from covidct.promotion import gate, rule, sensitivity, stats as gate_stats, subgroup_gate
from covidct.promotion.gate import GateVerdict
from covidct.schema import BASELINE_BACKBONE, ClassName, Label, patient_key

PRIMARY = "patient_balanced_accuracy"
#: The registry's backbones besides the baseline (``covidct.models.BACKBONES``, not imported
#: here: it loads TensorFlow). The first is the one challenger of the 1-challenger rows and the
#: truly better backbone of the power rows.
CHALLENGERS: tuple[str, ...] = (
    "resnet50", "inceptionv3", "resnet152_lstm", "resnet50v2_fpn", "vgg16", "vgg19", "xception",
)  # fmt: skip
N_COVID, N_NORMAL = 95, 282  # the COVID-CTset roster (Patient_details.csv)
#: every this many runs, the numpy thresholds are checked against the product's function
CHECK_EVERY = 10
#: sequestered pool sizes, true gains (patient balanced accuracy), gate states of the scenarios
SIZES: tuple[int, ...] = (75, 300)
GAINS: tuple[float, ...] = (0.0, 0.05, 0.10)
STATES: tuple[str, ...] = ("first-run", "steady")
#: simulated age bands of sequestered patients (sex is 50/50)
AGE_BANDS: tuple[str, ...] = ("<40", "40-59", "60+")
AGE_SHARES: tuple[float, ...] = (0.3, 0.45, 0.25)
Z95 = 1.959963984540054


@dataclass(frozen=True)
class ScoreModel:
    """Parameters of the slice logits (module docstring)."""

    mu: float = 1.5
    sd_patient: float = 1.0
    sd_model_patient: float = 0.7
    sd_slice: float = 1.5
    slices: int = 30


@dataclass(frozen=True, eq=False)
class Cohort:
    """The simulated roster: who is sequestered, which (fold, patient) units are out-of-fold.

    ``keys``/``covid``: every patient (sorted as created); ``sequestered``: their indices;
    ``unit_patient``/``unit_fold``: development out-of-fold test units, by fold then patient.
    """

    keys: np.ndarray
    covid: np.ndarray
    sequestered: np.ndarray
    unit_patient: np.ndarray
    unit_fold: np.ndarray
    k: int

    @property
    def development(self) -> np.ndarray:
        """Indices of the development patients."""
        return np.setdiff1d(np.arange(len(self.keys)), self.sequestered)


def make_cohort(
    *,
    n_covid: int = N_COVID,
    n_normal: int = N_NORMAL,
    share: float = 0.2,
    k: int = 5,
    slices: int = 30,
    seed: int = 0,
) -> Cohort:
    """Roster, stratified sequestered split and the product's k folds of the rest."""
    covid = np.r_[np.ones(n_covid, bool), np.zeros(n_normal, bool)]
    keys = np.array([patient_key("negin", f"patient{i + 1}") for i in range(len(covid))])
    rng = np.random.default_rng(seed)
    sequestered = np.sort(
        np.concatenate(
            [rng.choice(np.flatnonzero(covid == c), round(share * (covid == c).sum()), False)
             for c in (True, False)]
        )
    )  # fmt: skip
    development = np.setdiff1d(np.arange(len(keys)), sequestered)
    rows = np.repeat(development, slices)
    table = pd.DataFrame(
        {
            "filename": [f"IM{j:05d}.tif" for j in np.tile(np.arange(slices), len(development))],
            "patient_key": keys[rows],
            "label": np.where(covid[rows], Label.POSITIVE.value, Label.NEGATIVE.value),
        }
    )
    splits = assign_folds(table, k=k, seed=seed).splits
    tested = splits[splits["split"] == "test"].sort_values(["fold", "patient_key"])
    index = pd.Series(np.arange(len(keys)), index=keys)
    return Cohort(
        keys, covid, sequestered, index[tested["patient_key"]].to_numpy(),
        tested["fold"].to_numpy(np.int64), k,
    )  # fmt: skip


# --------------------------------------------------------------------------- numpy metrics


def choose_threshold(fraction: np.ndarray, truth: np.ndarray) -> float:
    """numpy copy of :func:`covidct.evaluation.choose_patient_threshold` on patient scores."""
    distinct = np.unique(np.concatenate([[0.0], fraction]))
    if truth.all() or not truth.any() or len(distinct) < 2:
        return evaluation.DEFAULT_PATIENT_THRESHOLD
    cuts = (distinct[:-1] + distinct[1:]) / 2
    called = fraction[None, :] > cuts[:, None]
    sensitivity = (called & truth).sum(axis=1) / truth.sum()
    specificity = (~called & ~truth).sum(axis=1) / (~truth).sum()
    return float(cuts[int(np.argmax((sensitivity + specificity) / 2))])


def balanced_accuracy(called: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Balanced accuracy along the last axis (``called``: predicted COVID)."""
    sensitivity = (called & truth).sum(axis=-1) / truth.sum()
    specificity = (~called & ~truth).sum(axis=-1) / (~truth).sum()
    return (sensitivity + specificity) / 2


def roc_auc(scores: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Mann-Whitney ROC AUC along the last axis (ties count one half)."""
    ranks = stats.rankdata(scores, axis=-1)
    n_pos, n_neg = truth.sum(), (~truth).sum()
    return (ranks[..., truth].sum(axis=-1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def fold_metrics(
    p_dev: np.ndarray, truth: np.ndarray, unit_fold: np.ndarray, thresholds: np.ndarray, k: int
) -> dict[str, np.ndarray]:
    """Per (backbone, fold): the leaderboard's ranking metrics, each (n_backbones, k)."""
    fraction = (p_dev > 0.5).sum(axis=-1) / p_dev.shape[-1]
    ba, auc = np.empty((len(p_dev), k)), np.empty((len(p_dev), k))
    for f in range(k):
        units = unit_fold == f + 1
        called = fraction[:, units] > thresholds[:, None]
        ba[:, f] = balanced_accuracy(called, truth[units])
        slices_truth = np.repeat(truth[units], p_dev.shape[-1])
        auc[:, f] = roc_auc(p_dev[:, units].reshape(len(p_dev), -1), slices_truth)
    return {PRIMARY: ba, "image_roc_auc": auc}


# --------------------------------------------------------------------------- one run


def predictions(
    patient_ids: Sequence[str], covid: np.ndarray, p: np.ndarray, threshold: float
) -> pd.DataFrame:
    """A prediction table (one row per slice) as the pipeline writes it."""
    n_patients, n_slices = p.shape
    return pd.DataFrame(
        {
            "patient_id": np.repeat(np.asarray(patient_ids, dtype=object), n_slices),
            "y_true": np.repeat(
                np.where(covid, ClassName.COVID.value, ClassName.NORMAL.value), n_slices
            ),
            "p_covid": p.ravel(),
            "slice_id": np.tile([f"IM{j:05d}" for j in range(n_slices)], n_patients),
            "selected": True,
            "patient_threshold": threshold,
        }
    )


# --------------------------------------------------------------------------- calibration


def population_balanced_accuracy(
    model: ScoreModel, shift: float, thresholds: np.ndarray, nodes: int = 121
) -> np.ndarray:
    """Expected patient balanced accuracy over the patient population at each threshold.

    A patient with latent ``a`` has Binomial(slices, Phi(a / sd_slice)) COVID slices; ``a`` is
    normal around ``+-(mu + shift)`` with sd ``hypot(sd_patient, sd_model_patient)``
    (Gauss-Hermite quadrature).
    """
    x, w = np.polynomial.hermite_e.hermegauss(nodes)
    w = w / w.sum()
    sd = math.hypot(model.sd_patient, model.sd_model_patient)
    counts = np.arange(model.slices + 1)
    called = counts[None, :] / model.slices > np.asarray(thresholds)[:, None]  # (t, c)

    def p_called(sign: float) -> np.ndarray:
        q = special.ndtr((sign * (model.mu + shift) + sd * x) / model.sd_slice)
        pmf = stats.binom.pmf(counts[None, :], model.slices, q[:, None])  # (node, c)
        return called.astype(float) @ (pmf.T @ w)

    return (p_called(1.0) + 1.0 - p_called(-1.0)) / 2


@dataclass(frozen=True)
class Calibration:
    """The shift that makes one backbone ``gain`` better in expected patient balanced accuracy."""

    shift: float
    base: float
    better: float
    reps: int


def calibrate_shift(
    cohort: Cohort, model: ScoreModel, gain: float = 0.05, *, reps: int = 200, seed: int = 0
) -> Calibration:
    """Bisect the ``mu`` shift; thresholds are chosen on simulated development sets (module doc)."""
    rng = np.random.default_rng([seed, 1_000_003])
    truth = cohort.covid[cohort.unit_patient]
    sign = np.where(truth, 1.0, -1.0)
    patient_part = (
        rng.normal(0.0, model.sd_patient, (reps, len(cohort.keys)))
        + rng.normal(0.0, model.sd_model_patient, (reps, len(cohort.keys)))
    )[:, cohort.unit_patient]
    slice_noise = rng.normal(0.0, model.sd_slice, (reps, len(truth), model.slices))

    def expected(shift: float) -> float:
        logits = ((model.mu + shift) * sign + patient_part)[..., None] + slice_noise
        fraction = (special.expit(logits) > 0.5).sum(axis=-1) / model.slices
        chosen = np.array([choose_threshold(row, truth) for row in fraction])
        return float(population_balanced_accuracy(model, shift, chosen).mean())

    base = expected(0.0)
    low, high = 0.0, 4.0
    for _ in range(30):
        middle = (low + high) / 2
        low, high = (middle, high) if expected(middle) < base + gain else (low, middle)
    shift = (low + high) / 2
    return Calibration(shift, base, expected(shift), reps)


# --------------------------------------------------------------------------- sequestered pool


@dataclass(frozen=True, eq=False)
class Pool:
    """Sequestered patients: ids (sorted as created), truth, shared difficulty, subgroups."""

    ids: np.ndarray
    covid: np.ndarray
    difficulty: np.ndarray
    sex: np.ndarray
    age_band: np.ndarray

    def head(self, n: int) -> Pool:
        """The first ``n`` patients (the pool as it was when it held ``n``)."""
        return Pool(*(getattr(self, f)[:n] for f in ("ids", "covid", "difficulty", "sex",
                                                     "age_band")))  # fmt: skip


def covid_patients(n: int) -> int:
    """COVID patients among ``n`` sequestered at the roster's prevalence (75 -> 19, 300 -> 76)."""
    return round(n * N_COVID / (N_COVID + N_NORMAL))


def make_pool(n: int, model: ScoreModel, rng: np.random.Generator) -> Pool:
    """``n`` new patients of the roster's population; every prefix keeps about its prevalence."""
    covid = np.zeros(n, bool)
    covid[np.floor(np.arange(covid_patients(n)) * n / max(covid_patients(n), 1)).astype(int)] = True
    return Pool(
        np.array([f"seq/p{i:05d}" for i in range(n)]), covid,
        rng.normal(0.0, model.sd_patient, n), np.where(rng.random(n) < 0.5, "F", "M"),
        rng.choice(np.array(AGE_BANDS), n, p=AGE_SHARES),
    )  # fmt: skip


def score_pool(pool: Pool, mu: float, model: ScoreModel, rng: np.random.Generator) -> np.ndarray:
    """One backbone's slice scores (n, slices) on the pool (its own patient errors and noise)."""
    latent = (
        mu * np.where(pool.covid, 1.0, -1.0)
        + pool.difficulty
        + rng.normal(0.0, model.sd_model_patient, len(pool.ids))
    )
    return special.expit(latent[:, None] + rng.normal(0.0, model.sd_slice, latent.shape + (
        model.slices,)))  # fmt: skip


def pair_wins(p: np.ndarray, covid: np.ndarray) -> np.ndarray:
    """Per (COVID patient, normal patient): slice pairs the COVID slice wins (ties one half)."""
    positives = p[covid]
    flat = positives.ravel()
    wins = np.empty((len(positives), int((~covid).sum())))
    for j, row in enumerate(np.sort(p[~covid], axis=1)):
        left, right = np.searchsorted(row, flat, "left"), np.searchsorted(row, flat, "right")
        wins[:, j] = (left + 0.5 * (right - left)).reshape(positives.shape).sum(axis=1)
    return wins


def image_auc(wins: np.ndarray, covid: np.ndarray, weights: np.ndarray, slices: int) -> np.ndarray:
    """Image ROC AUC per row of patient weights (the product's clustered Mann-Whitney)."""
    w_pos, w_neg = weights[:, covid], weights[:, ~covid]
    return ((w_pos @ wins) * w_neg).sum(axis=1) / (
        w_pos.sum(axis=1) * w_neg.sum(axis=1) * slices * slices
    )


def patient_ba(
    p: np.ndarray, threshold: float, covid: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """Patient balanced accuracy per row of patient weights (slice cut 0.5, the model's
    patient threshold on the fraction of COVID slices)."""
    called = (p > 0.5).mean(axis=1) > threshold
    sens = (weights[:, covid] @ called[covid]) / weights[:, covid].sum(axis=1)
    spec = (weights[:, ~covid] @ ~called[~covid]) / weights[:, ~covid].sum(axis=1)
    return (sens + spec) / 2


@dataclass(frozen=True)
class Scored:
    """One backbone on the pool: slice scores, its development threshold, its true mean shift."""

    name: str
    p: np.ndarray
    threshold: float
    mu: float


def gate_evidence(
    candidate: Scored,
    comparators: dict[str, Scored],
    pool: Pool,
    settings: GateSettings,
    *,
    has_champion: bool,
    model: ScoreModel,
) -> rule.GateEvidence:
    """The evidence the product gathers (``covidct.pipeline.gate_evidence``), in numpy: the
    paired patient bootstrap of image ROC AUC, the studentized COVID-sensitivity tests, the
    subgroup tests against the champion (sex, age band; the single source and series equal the
    whole set), the candidate's patient balanced accuracy and its bootstrap slope."""
    covid, slices = pool.covid, model.slices
    weights = _weights(covid.tobytes(), settings.n_boot, settings.seed)
    rows = np.vstack([np.ones(len(covid)), weights])
    ours_auc = image_auc(pair_wins(candidate.p, covid), covid, rows, slices)
    ours_ba = patient_ba(candidate.p, candidate.threshold, covid, rows)
    hits = {s.name: (s.p > 0.5).sum(axis=1) * covid for s in (candidate, *comparators.values())}
    totals = np.where(covid, slices, 0)
    n_covid = int(covid.sum())
    margin = sensitivity.noninferiority_margin(
        n_covid, floor=settings.sensitivity_margin, planning_sd=settings.sensitivity_planning_sd,
        alpha=settings.alpha,
    )  # fmt: skip
    found, slopes = [], {}
    for role, other in comparators.items():
        diff = ours_auc - image_auc(pair_wins(other.p, covid), covid, rows, slices)
        primary = gate_stats.primary_test(diff[0], diff[1:], len(covid), alpha=settings.alpha)
        sens = gate_stats.studentized_noninferiority(
            hits[candidate.name], hits[other.name], totals, weights, margin=margin,
            alpha=settings.alpha,
        )  # fmt: skip
        found.append(gate.ComparisonEvidence(
            role, other.name, settings.primary_metric, primary, sens, len(covid), n_covid
        ))  # fmt: skip
        x, y = diff[1:], ours_ba[1:]
        spread = float(np.var(x, ddof=1))
        slopes[role] = {PRIMARY: float(np.cov(x, y)[0, 1] / spread) if spread > 0 else 0.0}
    subgroups = None
    if "champion" in comparators:
        champion = comparators["champion"]
        subgroups = []
        for axis, values in (("sex", pool.sex), ("age_band", pool.age_band)):
            for level in np.unique(values):
                member = values == level
                n_in, c_in = int(member.sum()), int((member & covid).sum())
                whole = n_in == len(covid)
                test = None
                if (not whole and n_in >= settings.subgroup_min_patients
                        and c_in >= settings.subgroup_min_covid_patients):  # fmt: skip
                    test = gate_stats.studentized_noninferiority(
                        hits[candidate.name][member], hits[champion.name][member],
                        totals[member],
                        evaluation.bootstrap_weights(covid[member].astype(np.int8),
                                                     n_boot=settings.n_boot, seed=settings.seed),
                        margin=settings.subgroup_margin, alpha=settings.alpha,
                    )  # fmt: skip
                subgroups.append(subgroup_gate.SubgroupTest(axis, str(level), n_in, c_in, whole,
                                                            test))  # fmt: skip
    return rule.GateEvidence(
        candidate=candidate.name, has_champion=has_champion, comparisons=tuple(found),
        subgroups=None if subgroups is None else tuple(subgroups),
        patients_used=tuple(pool.ids), figures={PRIMARY: float(ours_ba[0])},
        figure_slopes=slopes,
    )  # fmt: skip


@functools.lru_cache(maxsize=64)
def _weights(covid: bytes, n_boot: int, seed: int) -> np.ndarray:
    """The product's resamples of a pool (the same for every run of a size: the labels of a
    pool of ``n`` patients are in the same places)."""
    labels = np.frombuffer(covid, dtype=bool).astype(np.int8)
    return evaluation.bootstrap_weights(labels, n_boot=n_boot, seed=seed)


def true_ba(model: ScoreModel, shift: float, threshold: float) -> float:
    """Expected patient balanced accuracy of a backbone ``shift`` above ``mu`` at ``threshold``."""
    return float(population_balanced_accuracy(model, shift, np.array([threshold]))[0])


def secondary_refused(verdict: GateVerdict) -> bool:
    """A secondary rule refused: COVID sensitivity not shown non-inferior, or subgroup harm."""
    sens = any(
        math.isfinite(c.sensitivity_ci_low) and c.sensitivity_ci_low < -c.sensitivity_margin
        for c in verdict.comparisons
    )
    return sens or (verdict.subgroups is not None and not verdict.subgroups.passed)


# --------------------------------------------------------------------------- one run


@dataclass(frozen=True)
class Outcome:
    """One simulated run: the candidate, the verdict, the figures the registry records."""

    candidate: str
    promoted: bool
    secondary_refused: bool
    recorded_ba: float
    measured_ba: float
    true_ba: float
    detectable_gain: float


def simulate_run(
    cohort: Cohort,
    model: ScoreModel,
    settings: GateSettings,
    n_challengers: int,
    shift: float,
    index: int,
    *,
    patients: int = 75,
    state: str = "first-run",
    seed: int = 0,
) -> Outcome:
    """One weekly run: development selection on the cohort's folds (``shift`` added to the
    first challenger's ``mu``), then the gate on ``patients`` new sequestered patients, with an
    equal champion in ``steady`` state (none in ``first-run``, policy ``beat-baseline``)."""
    names = (BASELINE_BACKBONE, *CHALLENGERS[:n_challengers])
    rng = np.random.default_rng([seed, n_challengers, int(shift * 1e6), index, patients,
                                 state == "steady"])  # fmt: skip
    n_models, n_slices = len(names), model.slices
    mu = np.full(n_models, model.mu)
    mu[1] += shift
    sign = np.where(cohort.covid, 1.0, -1.0)
    latent = (
        mu[:, None] * sign
        + rng.normal(0.0, model.sd_patient, len(cohort.keys))
        + rng.normal(0.0, model.sd_model_patient, (n_models, len(cohort.keys)))
    )
    noise = rng.normal(0.0, model.sd_slice, (n_models, len(cohort.unit_patient), n_slices))
    p_dev = special.expit(latent[:, cohort.unit_patient, None] + noise)
    dev_truth = cohort.covid[cohort.unit_patient]
    fraction = (p_dev > 0.5).sum(axis=-1) / n_slices
    thresholds = np.array([choose_threshold(row, dev_truth) for row in fraction])
    per_fold = fold_metrics(p_dev, dev_truth, cohort.unit_fold, thresholds, cohort.k)
    evaluations = [
        {"backbone": name, "fold": f + 1,
         "metrics": {key: float(values[b, f]) for key, values in per_fold.items()}}
        for b, name in enumerate(names) for f in range(cohort.k)
    ]  # fmt: skip
    candidate = pipeline.choose_candidate(
        pipeline.leaderboard(evaluations), settings.primary_metric
    )
    if index % CHECK_EVERY == 0:
        b = names.index(candidate)
        unit_ids = [f"fold-{f}/{cohort.keys[i]}" for f, i in
                    zip(cohort.unit_fold, cohort.unit_patient, strict=True)]  # fmt: skip
        product = evaluation.choose_patient_threshold(
            predictions(unit_ids, dev_truth, p_dev[b], thresholds[b])
        )
        if product != thresholds[b]:
            raise RuntimeError("choose_threshold no longer mirrors choose_patient_threshold")
    pool = make_pool(patients, model, rng)
    b = names.index(candidate)
    ours = Scored(candidate, score_pool(pool, mu[b], model, rng), thresholds[b], mu[b])
    comparators = {}
    if candidate != BASELINE_BACKBONE:
        comparators["baseline"] = Scored(
            BASELINE_BACKBONE, score_pool(pool, model.mu, model, rng), thresholds[0], model.mu
        )
    steady = state == "steady"
    if steady:  # an equal champion, trained in an earlier run (its threshold: the baseline's)
        comparators["champion"] = Scored(
            "champion", score_pool(pool, model.mu, model, rng), thresholds[0], model.mu
        )
    evidence = gate_evidence(ours, comparators, pool, settings, has_champion=steady, model=model)
    verdict = rule.judge(evidence, settings)
    return Outcome(
        candidate, verdict.passed, secondary_refused(verdict),
        float(verdict.figures[PRIMARY]), float(evidence.figures[PRIMARY]),
        true_ba(model, mu[b] - model.mu, thresholds[b]),
        math.nan if verdict.detectable_gain is None else float(verdict.detectable_gain),
    )  # fmt: skip


# --------------------------------------------------------------------------- a year


@dataclass(frozen=True)
class Year:
    """One simulated year: promotions, of which false (the candidate was not truly better)."""

    promotions: int
    false_promotions: int


def simulate_year(
    model: ScoreModel,
    settings: GateSettings,
    shift: float,
    index: int,
    *,
    null: bool = False,
    seed: int = 0,
    weeks: int = 52,
    start: int = 75,
    growth: int = 5,
    better_every: int = 8,
) -> Year:
    """52 weekly gates on a growing pool (``start`` patients, ``growth`` more each week; the same
    patients stay, the champion's scores on them too). Each week a retrained baseline and one
    candidate: ``shift`` better than the champion (the baseline before any) with probability
    ``1 / better_every`` (never when ``null``), else equal to it."""
    rng = np.random.default_rng([seed, 52, index, int(null)])
    full = make_pool(start + growth * (weeks - 1), model, rng)
    champion: Scored | None = None
    promotions = false = 0
    for week in range(weeks):
        n = start + growth * week
        pool = full.head(n)
        better = not null and rng.random() < 1 / better_every
        reference = champion.mu if champion is not None else model.mu
        mu = reference + (shift if better else 0.0)
        candidate = Scored("candidate", score_pool(full, mu, model, rng), 0.5, mu)
        baseline = Scored(BASELINE_BACKBONE, score_pool(full, model.mu, model, rng), 0.5, model.mu)
        comparators = {"baseline": _head(baseline, n)}
        if champion is not None:
            comparators["champion"] = _head(champion, n)
        evidence = gate_evidence(
            _head(candidate, n), comparators, pool, settings, has_champion=champion is not None,
            model=model,
        )  # fmt: skip
        if rule.judge(evidence, settings).passed:
            promotions += 1
            false += not better
            champion = candidate
    return Year(promotions, false)


def _head(scored: Scored, n: int) -> Scored:
    return Scored(scored.name, scored.p[:n], scored.threshold, scored.mu)


# --------------------------------------------------------------------------- report


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion."""
    if trials == 0:
        return math.nan, math.nan
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    return low, 1.0 if successes == trials else min(1.0, centre + half)


def _pool_map(function: partial, items: Sequence[int], workers: int) -> list:
    if workers <= 1:
        return [function(i) for i in items]
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        return list(pool.map(function, items, chunksize=max(1, len(items) // (4 * workers))))


def run_scenario(
    cohort: Cohort,
    model: ScoreModel,
    settings: GateSettings,
    n_challengers: int,
    shift: float,
    sims: int,
    *,
    patients: int = 75,
    state: str = "first-run",
    seed: int = 0,
    workers: int = 1,
) -> list[Outcome]:
    """``sims`` independent runs (in ``workers`` processes; same results for any count)."""
    run = partial(simulate_run, cohort, model, settings, n_challengers, shift,
                  patients=patients, state=state, seed=seed)  # fmt: skip
    return _pool_map(run, range(sims), workers)


def scenario_record(
    outcomes: list[Outcome], *, patients: int, challengers: int, state: str, gain: float
) -> dict[str, Any]:
    """One ``scenarios`` entry: promotions of any backbone under the null, of the truly better
    one otherwise; ``se`` the binomial standard error."""
    if gain == 0:
        hits = sum(o.promoted for o in outcomes)
    else:
        hits = sum(o.promoted and o.candidate == CHALLENGERS[0] for o in outcomes)
    runs = len(outcomes)
    rate = hits / runs
    detectable = [o.detectable_gain for o in outcomes if math.isfinite(o.detectable_gain)]
    return {
        "patients": patients, "covid_patients": covid_patients(patients),
        "challengers": challengers, "state": state, "true_gain": gain, "runs": runs,
        "promotion_rate": round(rate, 4), "se": round(math.sqrt(rate * (1 - rate) / runs), 4),
        "median_detectable_auc_gain": round(float(np.median(detectable)), 4)
        if detectable else None,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Print the parameters and the rates (module docstring); ``--json``: one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=120, help="runs per scenario")
    parser.add_argument("--years", type=int, default=30, help="simulated years, each kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--slices", type=int, default=30, help="slices per patient")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--n-boot", type=int, default=500)
    parser.add_argument("--calibration-reps", type=int, default=100)
    parser.add_argument("--patients", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    settings = replace(
        GateSettings(), n_boot=args.n_boot, first_run_policy=FirstRunPolicy.BEAT_BASELINE
    )
    model = ScoreModel(slices=args.slices)
    cohort = make_cohort(slices=args.slices, seed=args.seed)
    shifts = {
        gain: calibrate_shift(cohort, model, gain, reps=args.calibration_reps, seed=args.seed)
        for gain in GAINS if gain > 0
    }  # fmt: skip
    scenarios, secondary, optimism, measured = [], [], [], []
    for state in STATES:
        for patients in args.patients:
            for challengers in (1, 7):
                for gain in GAINS:
                    shift = shifts[gain].shift if gain else 0.0
                    outcomes = run_scenario(
                        cohort, model, settings, challengers, shift, args.sims,
                        patients=patients, state=state, seed=args.seed, workers=args.workers,
                    )  # fmt: skip
                    record = scenario_record(
                        outcomes, patients=patients, challengers=challengers, state=state, gain=gain
                    )
                    scenarios.append(record)
                    if gain == 0 and state == "steady":  # every candidate equals the champion
                        secondary.append((patients, challengers, outcomes))
                    for o in outcomes:
                        if o.promoted and gain > 0 and o.candidate == CHALLENGERS[0]:
                            optimism.append(o.recorded_ba - o.true_ba)
                            measured.append(o.measured_ba - o.true_ba)
                    if not args.json:
                        print(record, flush=True)
    refused = {
        f"{p} patients, {c} challenger(s)": round(
            float(np.mean([o.secondary_refused for o in g])), 4
        )
        for p, c, g in secondary
    }
    year_shift = shifts[0.10].shift
    year = partial(simulate_year, model, settings, year_shift, seed=args.seed)
    mixed = _pool_map(year, range(args.years), args.workers)
    null = _pool_map(partial(year, null=True), range(args.years), args.workers)
    promotions = sum(y.promotions for y in mixed)
    false = sum(y.false_promotions for y in mixed)
    result = {
        "scenarios": scenarios,
        "equivalent_refused_by_secondary_rules": max(refused.values()) if refused else None,
        "equivalent_refused_by_secondary_rules_by_scenario": refused,
        "promoted_optimism_points": round(100 * float(np.mean(optimism)), 3) if optimism else None,
        "promoted_optimism_points_as_measured": round(100 * float(np.mean(measured)), 3)
        if measured
        else None,
        "year": {
            "years": args.years,
            "weeks": 52,
            "pool": "75 patients, +5 a week (330 in week 52)",
            "promotions": promotions,
            "false_promotions": false,
            "false_discovery_share": round(false / promotions, 4) if promotions else 0.0,
            "complete_null_any_false_promotion": round(
                float(np.mean([y.promotions > 0 for y in null])), 4
            ),
        },  # fmt: skip
        "parameters": {
            "endpoint": settings.primary_metric,
            "alpha": settings.alpha,
            "n_boot": settings.n_boot,
            "slices": model.slices,
            "mu": model.mu,
            "sd_patient": model.sd_patient,
            "sd_model_patient": model.sd_model_patient,
            "sd_slice": model.sd_slice,
            "sensitivity_margin_floor": settings.sensitivity_margin,
            "sensitivity_planning_sd": settings.sensitivity_planning_sd,
            "subgroup_margin": settings.subgroup_margin,
            "shifts": {str(g): round(c.shift, 4) for g, c in shifts.items()},
            "base_patient_balanced_accuracy": round(shifts[0.05].base, 4),
        },  # fmt: skip
        "wall_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
