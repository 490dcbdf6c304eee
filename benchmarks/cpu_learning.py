"""Does ``cpu-smoke`` learn? Held-out ROC AUC against training patients, steps and image size.

Trains with the product's own ``training.train_model`` (the function the DAG's train task calls)
and scores with ``training.predict_p_covid`` on synthetic patients (``covidct.batch.synth``), split
by
patient: ``--train-patients`` of them (half COVID where the batch allows, like the seed's
balanced training folds, and at most two thirds of each class) train, every other patient is
held out. Only open-lung slices
(``covidct.data.selection``) are used, as in the demo. Prints one Markdown row per run: training and
held-out patients, steps, image size, seconds, training-slice AUC (up to 200 slices), held-out
image AUC and patient AUC (mean p(COVID) per patient). Nothing is asserted; figures vary by
about 0.05 AUC between seeds.

    uv run python benchmarks/cpu_learning.py [--backbones resnet50,resnet152] [--sizes 64]
        [--steps 40,120] [--train-patients 40,160] [--patients 240] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def slices(batch: Path):  # noqa: ANN201 - pandas frame
    """Open-lung slices of a synthetic batch: columns patient, path (relative), label."""
    import pandas as pd

    from covidct import schema
    from covidct.data import selection

    frame = selection.select_batch(batch)
    frame = frame[frame["keep"]].copy()
    details = pd.read_csv(batch / schema.PATIENT_DETAILS, dtype=str)
    labels = dict(zip(details.iloc[:, 0], details["COVID-19 Infection"], strict=True))
    frame["patient"] = frame["patient_id"].astype(str)
    frame["label"] = frame["patient"].map(labels)
    frame["path"] = frame["path"].map(lambda p: str(Path(p).relative_to(batch)))
    return frame[["patient", "path", "label"]].reset_index(drop=True)


def split(frame, train_patients: int, seed: int):  # noqa: ANN001, ANN201
    """(train, held-out) frames: ``train_patients`` patients, half COVID where possible, at most
    two thirds of each class (the rest is held out, so both classes are scored)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    by_label = frame.groupby("label")["patient"].unique()
    covid, normal = by_label["Positive"], by_label["Negative"]
    n_covid = min(train_patients // 2, 2 * len(covid) // 3)
    n_normal = min(train_patients - n_covid, 2 * len(normal) // 3)
    positive = rng.permutation(covid)[:n_covid]
    negative = rng.permutation(normal)[:n_normal]
    chosen = set(positive) | set(negative)
    return frame[frame["patient"].isin(chosen)], frame[~frame["patient"].isin(chosen)]


def run(backbone: str, size: int, steps: int, frames, root: Path, work: Path) -> dict:  # noqa: ANN001
    """Train once; return the row's figures."""
    from sklearn.metrics import roc_auc_score

    from covidct import training

    train, held_out = frames
    config = training.TrainingConfig.from_profile(
        "cpu-smoke", epochs=1, steps_per_epoch=steps, image_size=size
    )
    started = time.perf_counter()
    result = training.train_model(
        backbone, train[["path", "label"]], train.iloc[:0][["path", "label"]], image_root=root,
        config=config, checkpoint_dir=work / f"{backbone}-{size}-{steps}-{len(train)}",
        mlflow_run=False,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    sample = train.sample(min(200, len(train)), random_state=0)
    p_train = training.predict_p_covid(result.model, list(sample["path"]), image_root=root,
                                       config=config)  # fmt: skip
    p_test = training.predict_p_covid(result.model, list(held_out["path"]), image_root=root,
                                      config=config)  # fmt: skip
    scored = held_out.assign(p=p_test, y=held_out["label"].eq("Positive"))
    patients = scored.groupby("patient").agg(p=("p", "mean"), y=("y", "first"))
    return {
        "seconds": seconds,
        "train_auc": roc_auc_score(sample["label"].eq("Positive"), p_train),
        "image_auc": roc_auc_score(scored["y"], scored["p"]),
        "patient_auc": roc_auc_score(patients["y"], patients["p"]),
        "held_out_patients": f"{len(patients)} ({int(patients['y'].sum())} COVID)",
        "train_patients": f"{train['patient'].nunique()} "
        f"({train.loc[train['label'].eq('Positive'), 'patient'].nunique()} COVID)",
    }


def main(argv: list[str] | None = None) -> int:
    """Print the table (module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", default="resnet50,resnet152")
    parser.add_argument("--sizes", default="64")
    parser.add_argument("--steps", default="40,120")
    parser.add_argument("--train-patients", default="40,160")
    parser.add_argument("--patients", type=int, default=240, help="synthetic patients in all")
    parser.add_argument("--max-slices", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from covidct.batch.synth import write_synthetic_batch

    print("| backbone | px | steps | train patients | held-out patients | s | train AUC "
          "| held-out image AUC | held-out patient AUC |")  # fmt: skip
    print("|---" * 9 + "|", flush=True)
    with tempfile.TemporaryDirectory(prefix="covidct-learning-") as tmp:
        root = Path(tmp) / "batch"
        write_synthetic_batch(root, patients=args.patients, seed=args.seed,
                              max_slices_per_patient=args.max_slices)  # fmt: skip
        frame = slices(root)
        for n_train in (int(v) for v in args.train_patients.split(",")):
            frames = split(frame, n_train, args.seed)
            for backbone in args.backbones.split(","):
                for size in (int(v) for v in args.sizes.split(",")):
                    for steps in (int(v) for v in args.steps.split(",")):
                        row = run(backbone, size, steps, frames, root, Path(tmp))
                        print(
                            f"| {backbone} | {size} | {steps} | {row['train_patients']} | "
                            f"{row['held_out_patients']} | {row['seconds']:.0f} | "
                            f"{row['train_auc']:.2f} | {row['image_auc']:.2f} | "
                            f"{row['patient_auc']:.2f} |",
                            flush=True,
                        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
