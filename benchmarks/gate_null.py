"""Proof that luck does not promote: the gate's false-promotion rate and power, by simulation.

Weekly runs are simulated on a roster shaped like COVID-CTset and pushed through the product's
own selection and gate code (issue 13):

1. The 377 patients (95 COVID, 282 normal) are split once into development (80%) and
   sequestered (20%, stratified by label: 19 COVID + 56 normal) patients; the development
   patients get the seed's k = 5 folds from :func:`covidct.data.folds.assign_folds` (every COVID
   patient tested once, normal patients tested in every fold they do not train in).
2. Each backbone (ResNet152, the baseline, and 1 or 7 challengers: the registry's other
   backbones) scores every fold's test patients (out-of-fold) and the sequestered patients.
3. Its patient threshold is chosen on its pooled out-of-fold development predictions (the unit
   is (fold, patient), as ``pipeline.pooled_predictions``) by a numpy copy of
   :func:`covidct.evaluation.choose_patient_threshold` (4 times faster; checked equal to it on
   every 10th run, and in ``tests/promotion/test_gate_null.py``).
4. Per fold, patient balanced accuracy and image ROC AUC (the only metrics the leaderboard's
   ranking reads; numpy, checked equal to :func:`covidct.evaluation.headline_metrics` in the
   tests) go to :func:`covidct.pipeline.leaderboard`; the candidate is
   :func:`covidct.pipeline.choose_candidate` by ``patient_balanced_accuracy``.
5. The candidate's and the baseline's sequestered predictions go to
:func:`covidct.promotion.gate.compare`
   (paired bootstrap :func:`covidct.evaluation.paired_bootstrap`, ``GateSettings`` defaults:
   1,000 resamples, margin 0, sensitivity margin 0.05) and :func:`covidct.promotion.gate.decide`
   with no
   champion and the first-run policy ``beat-baseline`` (the most permissive real case). A
   candidate that is the baseline itself is never promoted.

For contrast, the *old* procedure (issue 7) selects the same way but confirms on the same pooled
out-of-fold development predictions it selected on (winner's curse); it is judged on the first
``--old-sims`` null runs (its bootstrap over 900 (fold, patient) units costs most of the time).

Data model. Slice ``j`` of patient ``i`` scored by backbone ``m`` has the logit
``(mu + shift_m) * (+1 if COVID else -1) + d_i + e_mi + eps_mij`` (``p_covid`` its sigmoid),
with ``d_i ~ N(0, sd_patient)`` shared by every backbone (patients hard for every model),
``e_mi ~ N(0, sd_model_patient)`` the backbone's own error on the patient, repeated on all its
slices (the within-patient correlation) and on every fold that tests it, and ``eps_mij ~ N(0,
sd_slice)`` fresh for every score. Each patient has ``--slices`` slices, all selected. Defaults:
mu 1.5, sd_patient 1.0, sd_model_patient 0.7, sd_slice 1.5 (patient balanced accuracy about
0.87, image COVID sensitivity about 0.78). Every backbone has ``shift_m = 0`` except, in the
power scenario, one challenger whose shift is calibrated (printed) so that its expected patient
balanced accuracy, at a threshold chosen on development data, is 5 points above the others'
(exact over the patient population by Gauss-Hermite quadrature, averaged over simulated
development sets with common random numbers).

Prints the parameters and a Markdown table: procedure, truth, challengers, runs, runs whose
candidate is not the baseline (``gated``), promotions (of the truly better backbone in the power
rows; wrong promotions there are counted apart), the rate and its 95% Wilson interval.

    uv run python benchmarks/gate_null.py [--sims 300] [--old-sims 100] [--seed 0]
        [--slices 30] [--workers 2] [--n-boot 1000] [--gain 0.05] [--calibration-reps 200]
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
import pandas as pd
from scipy import special, stats

from covidct import evaluation, pipeline
from covidct.config import FirstRunPolicy, GateSettings
from covidct.data.folds import assign_folds
from covidct.promotion import gate
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


def promoted(
    candidate: str, tables: dict[str, pd.DataFrame], settings: GateSettings
) -> tuple[bool, gate.GateVerdict]:
    """The product's verdict on the first run (no champion): candidate against the baseline."""
    if candidate == BASELINE_BACKBONE:
        verdict = gate.decide(candidate, {}, has_champion=False, settings=settings)
        return verdict.passed, verdict

    def bootstrap(a: pd.DataFrame, b: pd.DataFrame, metric: str) -> tuple[float, float, float]:
        return evaluation.paired_bootstrap(
            a, b, metric, n_boot=settings.n_boot, seed=settings.seed
        ).as_tuple()

    comparison = gate.compare(
        "baseline", BASELINE_BACKBONE, tables[candidate], tables[BASELINE_BACKBONE],
        settings=settings, paired_bootstrap=bootstrap, overlap_patients=0,
    )  # fmt: skip
    verdict = gate.decide(
        candidate, {"baseline": comparison}, has_champion=False, settings=settings
    )
    return verdict.passed, verdict


@dataclass(frozen=True)
class Outcome:
    """One simulated run: the candidate, both procedures' verdicts, sequestered accuracies."""

    candidate: str
    promoted: bool
    promoted_old: bool | None
    sequestered_ba: tuple[float, ...]


def simulate_run(
    cohort: Cohort,
    model: ScoreModel,
    settings: GateSettings,
    n_challengers: int,
    shift: float,
    index: int,
    *,
    seed: int = 0,
    old: bool = True,
) -> Outcome:
    """One weekly run; ``shift`` is added to the first challenger's ``mu`` (0: all equal)."""
    names = (BASELINE_BACKBONE, *CHALLENGERS[:n_challengers])
    rng = np.random.default_rng([seed, n_challengers, int(shift * 1e6), index])
    n_models, n_patients, n_slices = len(names), len(cohort.keys), model.slices
    mu = np.full(n_models, model.mu)
    mu[1] += shift
    sign = np.where(cohort.covid, 1.0, -1.0)
    latent = (
        mu[:, None] * sign
        + rng.normal(0.0, model.sd_patient, n_patients)
        + rng.normal(0.0, model.sd_model_patient, (n_models, n_patients))
    )

    def scores(patients: np.ndarray) -> np.ndarray:
        noise = rng.normal(0.0, model.sd_slice, (n_models, len(patients), n_slices))
        return special.expit(latent[:, patients, None] + noise)

    p_dev, p_seq = scores(cohort.unit_patient), scores(cohort.sequestered)
    dev_truth, seq_truth = cohort.covid[cohort.unit_patient], cohort.covid[cohort.sequestered]
    fraction = (p_dev > 0.5).sum(axis=-1) / n_slices
    thresholds = np.array([choose_threshold(row, dev_truth) for row in fraction])
    per_fold = fold_metrics(p_dev, dev_truth, cohort.unit_fold, thresholds, cohort.k)
    evaluations = []
    for b, name in enumerate(names):
        for f in range(cohort.k):
            metrics = {key: float(values[b, f]) for key, values in per_fold.items()}
            evaluations.append({"backbone": name, "fold": f + 1, "metrics": metrics})
    candidate = pipeline.choose_candidate(pipeline.leaderboard(evaluations), PRIMARY)
    seq_fraction = (p_seq > 0.5).sum(axis=-1) / n_slices
    seq_ba = balanced_accuracy(seq_fraction > thresholds[:, None], seq_truth)

    unit_ids = [
        f"fold-{f}/{cohort.keys[i]}"
        for f, i in zip(cohort.unit_fold, cohort.unit_patient, strict=True)
    ]  # the unit of pipeline.pooled_predictions
    seq_ids = cohort.keys[cohort.sequestered]
    new_tables, old_tables = {}, {}
    for name in {candidate, BASELINE_BACKBONE}:
        b = names.index(name)
        new_tables[name] = predictions(seq_ids, seq_truth, p_seq[b], thresholds[b])
        if old or index % CHECK_EVERY == 0:
            old_tables[name] = predictions(unit_ids, dev_truth, p_dev[b], thresholds[b])
        if index % CHECK_EVERY == 0:
            product = evaluation.choose_patient_threshold(old_tables[name])
            if product != thresholds[b]:
                raise RuntimeError(
                    f"{name}: numpy threshold {thresholds[b]} != product's {product}; "
                    "choose_threshold no longer mirrors evaluation.choose_patient_threshold"
                )
    passed, _ = promoted(candidate, new_tables, settings)
    passed_old = promoted(candidate, old_tables, settings)[0] if old else None
    return Outcome(candidate, passed, passed_old, tuple(float(v) for v in seq_ba))


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


def run_scenario(
    cohort: Cohort,
    model: ScoreModel,
    settings: GateSettings,
    n_challengers: int,
    shift: float,
    sims: int,
    *,
    seed: int = 0,
    old_runs: int | None = None,
    workers: int = 1,
) -> list[Outcome]:
    """``sims`` independent runs (in ``workers`` processes; same results for any count).

    The first ``old_runs`` (None: all) also judge the old procedure on the same data.
    """
    run = partial(simulate_run, cohort, model, settings, n_challengers, shift, seed=seed)
    one = partial(_indexed, run, sims if old_runs is None else old_runs)
    if workers <= 1:
        return [one(i) for i in range(sims)]
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        return list(pool.map(one, range(sims), chunksize=max(1, sims // (4 * workers))))


def _indexed(run: partial[Outcome], old_runs: int, index: int) -> Outcome:
    return run(index, old=index < old_runs)


def _row(procedure: str, truth: str, n: int, outcomes: list[Outcome], hits: int) -> str:
    gated = sum(o.candidate != BASELINE_BACKBONE for o in outcomes)
    low, high = wilson(hits, len(outcomes))
    return (
        f"| {procedure} | {truth} | {n} | {len(outcomes)} | {gated} | {hits} | "
        f"{hits / len(outcomes):.3f} | [{low:.3f}, {high:.3f}] |"
    )


def main(argv: list[str] | None = None) -> int:
    """Print the parameters and the false-promotion / power table (see module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=300, help="runs per scenario")
    parser.add_argument(
        "--old-sims", type=int, default=100, help="of which judged by the old procedure too"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--slices", type=int, default=30, help="slices per patient")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--n-boot", type=int, default=GateSettings().n_boot)
    parser.add_argument("--gain", type=float, default=0.05, help="true gain, power rows")
    parser.add_argument("--calibration-reps", type=int, default=200)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    settings = replace(
        GateSettings(), n_boot=args.n_boot, first_run_policy=FirstRunPolicy.BEAT_BASELINE
    )
    model = ScoreModel(slices=args.slices)
    cohort = make_cohort(slices=args.slices, seed=args.seed)
    seq, dev = cohort.covid[cohort.sequestered], cohort.covid[cohort.development]
    tested = cohort.covid[cohort.unit_patient]
    print(
        f"roster {len(cohort.keys)} patients ({cohort.covid.sum()} COVID); sequestered "
        f"{seq.sum()} COVID + {(~seq).sum()} normal; development {dev.sum()} + {(~dev).sum()} "
        f"in {cohort.k} folds ({tested.sum()} COVID + {(~tested).sum()} normal out-of-fold "
        f"(fold, patient) units); {model.slices} slices per patient"
    )
    print(
        f"logit = mu*(+-1) + d_i + e_mi + eps_mij: mu {model.mu}, sd_patient "
        f"{model.sd_patient}, sd_model_patient {model.sd_model_patient}, sd_slice "
        f"{model.sd_slice}"
    )
    print(
        f"gate: {settings.primary_metric}, margin {settings.margin}, sensitivity margin "
        f"{settings.sensitivity_margin}, {settings.n_boot} bootstrap resamples (seed "
        f"{settings.seed}), first run, policy {settings.first_run_policy.value}; "
        f"{args.sims} runs per row (the old procedure: the first {min(args.old_sims, args.sims)} "
        f"null runs), seed {args.seed}, {args.workers} worker(s)",
        flush=True,
    )
    calibration = calibrate_shift(
        cohort, model, args.gain, reps=args.calibration_reps, seed=args.seed
    )
    print(
        f"power: {CHALLENGERS[0]} gets mu + {calibration.shift:.3f}: expected patient balanced "
        f"accuracy {calibration.better:.4f} against {calibration.base:.4f} (+"
        f"{calibration.better - calibration.base:.4f}; {calibration.reps} simulated development "
        "sets)",
        flush=True,
    )
    run = partial(run_scenario, cohort, model, settings, seed=args.seed, workers=args.workers)
    old_sims = min(args.old_sims, args.sims)
    null = {n: run(n, 0.0, args.sims, old_runs=old_sims) for n in (1, 7)}
    power = {n: run(n, calibration.shift, args.sims, old_runs=0) for n in (1, 7)}
    realised = np.mean([o.sequestered_ba for o in null[7]])
    print(f"realised mean patient balanced accuracy on the sequestered patients: {realised:.4f}")
    print("\n| procedure | truth | challengers | runs | gated | promotions | rate | 95% CI |")
    print("|---" * 8 + "|")
    for n, outcomes in null.items():
        print(_row("sequestered gate", "all equal", n, outcomes, sum(o.promoted for o in outcomes)))
    gain = f"+{args.gain * 100:g} pts"
    for n, outcomes in power.items():
        hits = sum(o.promoted and o.candidate == CHALLENGERS[0] for o in outcomes)
        print(_row("sequestered gate", f"one {gain}", n, outcomes, hits))
    for n, outcomes in null.items():
        hits = sum(bool(o.promoted_old) for o in outcomes[:old_sims])
        print(_row("old: dev out-of-fold", "all equal", n, outcomes[:old_sims], hits))
    for n, outcomes in power.items():
        wrong = sum(o.promoted and o.candidate != CHALLENGERS[0] for o in outcomes)
        picked = sum(o.candidate == CHALLENGERS[0] for o in outcomes)
        print(
            f"\n{gain}, {n} challenger(s): the better backbone was the candidate in {picked} of "
            f"{len(outcomes)} runs; {wrong} promotion(s) of a backbone not better",
            end="",
        )
    print(
        "\n\npromotions: of any backbone when all are equal (false promotions; the product "
        "promises <= 5%), of the better one otherwise (power); gated: runs whose candidate was "
        f"not {BASELINE_BACKBONE} (else no promotion)"
    )
    print(f"wall time {time.perf_counter() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
