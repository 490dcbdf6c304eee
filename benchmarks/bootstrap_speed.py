"""Time the gate's paired patient bootstrap (:func:`covidct.evaluation.paired_bootstrap`).

Two models' predictions on the same synthetic test set (``--patients`` patients of ``--slices``
slices each, a fifth of them COVID; the second model noisier per slice and per patient), then
``--n-boot`` paired resamples per metric, as the gate runs them. Prints the median and best of
``--repeats`` runs per metric, in seconds. The docstring of ``paired_bootstrap`` promises well
under a second for 1,000 resamples of 300 patients x 40 slices.
Usage: ``python benchmarks/bootstrap_speed.py [--patients 300] [--slices 40]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pandas as pd

from covidct.evaluation import paired_bootstrap
from covidct.schema import CLASS_NAMES, POSITIVE_CLASS

METRICS = ("image_roc_auc", "image_pr_auc", "patient_balanced_accuracy", "image_mcc")


def two_models(
    n_patients: int = 300, n_slices: int = 40, seed: int = 0
) -> tuple[pd.DataFrame, ...]:
    """Predictions of a better and a worse model on one test set: columns patient_id, y_true
    (``covid``/``normal``, a fifth of the patients COVID), slice_id, fold, p_covid (float64).
    The worse model adds noise per slice and per patient, so it is worse at both units. The
    tests of :func:`covidct.evaluation.paired_bootstrap` use the same two models."""
    covid, normal = POSITIVE_CLASS, next(c for c in CLASS_NAMES if c != POSITIVE_CLASS)
    rng = np.random.default_rng(seed)
    labels = np.where(np.arange(n_patients) < n_patients // 5, covid, normal)
    truth = np.repeat(labels, n_slices)
    patient_level_shift = np.repeat(rng.normal(0, 0.1, n_patients), n_slices)
    base = np.where(truth == covid, 0.62, 0.38) + patient_level_shift
    frame = pd.DataFrame({
        "patient_id": np.repeat([f"p{i}" for i in range(n_patients)], n_slices),
        "y_true": truth,
        "slice_id": np.tile(np.arange(n_slices), n_patients),
        "fold": 1,
    })  # fmt: skip
    good = frame.assign(p_covid=np.clip(base + rng.normal(0, 0.15, len(truth)), 0, 1))
    extra = rng.normal(0, 0.35, len(truth)) + np.repeat(rng.normal(0, 0.15, n_patients), n_slices)
    worse = frame.assign(p_covid=np.clip(base + extra, 0, 1))
    return good, worse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=300)
    parser.add_argument("--slices", type=int, default=40)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    good, worse = (m.assign(patient_threshold=0.5) for m in two_models(args.patients, args.slices))
    print(
        f"paired bootstrap: {args.patients} patients x {args.slices} slices, "
        f"{args.n_boot} resamples, {args.repeats} runs each"
    )
    for metric in METRICS:
        seconds = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            paired_bootstrap(good, worse, metric, n_boot=args.n_boot, seed=3)
            seconds.append(time.perf_counter() - started)
        print(
            f"  {metric:28s} median {statistics.median(seconds):6.3f} s"
            f"   best {min(seconds):6.3f} s"
        )


if __name__ == "__main__":
    main()
