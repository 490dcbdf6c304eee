"""Time patient-level fold assignment on a 64,000-slice roster (issue 4: well under a second).

Builds a synthetic Negin-style slice table (patients of 5-60 slices, about a quarter COVID, ids
colliding across two sources), then times ``assign_folds`` alone, ``assign_folds`` plus all k
fold manifests, ``protocol_table`` and ``manifest_digest`` of one manifest. Prints the median
and best of ``--repeats`` runs. Usage: ``python benchmarks/folds_speed.py [--slices 64000]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from covidct.data.fold_manifests import manifest_digest, protocol_table
from covidct.data.folds import assign_folds
from covidct.schema import Label, patient_key


def synthetic_roster(n_slices: int, seed: int = 0) -> pd.DataFrame:
    """One row per slice: path, patient_key, label; about ``n_slices`` rows (exactly, trimmed)."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(5, 61, size=n_slices // 20)
    sizes = sizes[: int(np.searchsorted(np.cumsum(sizes), n_slices)) + 1]
    sizes[-1] -= int(sizes.sum()) - n_slices
    sources = np.where(np.arange(len(sizes)) % 2 == 0, "negin", "site-b")
    keys = [patient_key(s, f"patient{i // 2}") for i, s in enumerate(sources)]
    labels = np.where(rng.random(len(sizes)) < 0.25, Label.POSITIVE.value, Label.NEGATIVE.value)
    patient = np.repeat(np.arange(len(sizes)), sizes)
    image = np.arange(n_slices) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    key_array = np.array(keys, dtype=object)[patient]
    return pd.DataFrame(
        {
            "path": [f"{k}/SR_2/IM{i:05d}.tif" for k, i in zip(key_array, image, strict=True)],
            "patient_key": key_array,
            "label": labels[patient],
        }
    )


def timed(action: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(median, best) wall time in seconds of ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=64_000)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    slices = synthetic_roster(args.slices)
    assignment = assign_folds(slices, k=args.k)
    manifest = assignment.fold_manifest(1)

    def assign_and_manifests() -> None:
        folds = assign_folds(slices, k=args.k)
        for fold in folds.folds:
            folds.fold_manifest(fold)

    n_patients = slices["patient_key"].nunique()
    print(f"roster: {len(slices):,} slices, {n_patients:,} patients, k={args.k}")
    for name, action in [
        ("assign_folds", lambda: assign_folds(slices, k=args.k)),
        (f"assign_folds + {args.k} fold manifests", assign_and_manifests),
        ("protocol_table", lambda: protocol_table(assignment)),
        ("manifest_digest (one fold)", lambda: manifest_digest(manifest)),
    ]:
        median, best = timed(action, args.repeats)
        print(f"{name:<34} median {median * 1000:8.1f} ms   best {best * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
