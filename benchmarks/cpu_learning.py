"""Does the demo's training learn? Sequestered ROC AUC against steps, training patients, image
size and severity band, on exactly the data path the demo uses.

A synthetic batch (``covidct synth``, the phantom with literature-based COVID-19 findings and
its truth beside it) is landed in a throw-away lake and goes through the DAG's own steps:
``pipeline.validate``, ``pipeline.curate`` (selection marked once: only open-lung slices are
used), ``pipeline.make_folds`` (sequestration first, then patient-level folds). Each row trains
fold 1's training split with ``training.train_model`` (the function the DAG's train task calls)
under the run spec the DAG's form would give (``TrainingSpec.of_profile(profile, ...)``), and
scores the sequestered slices with ``training.predict_p_covid``: image ROC AUC (all selected
sequestered slices, with its 95% patient-bootstrap interval), patient ROC AUC (mean p(COVID) of
a patient's slices), and image ROC AUC of each severity band's COVID slices against every
normal slice. ``--train-patients`` keeps that many of fold 1's training patients (half COVID
where it can), to show how far more patients would go. Prints one Markdown row per run; nothing
is asserted.

    uv run python benchmarks/cpu_learning.py [--backbones resnet152,resnet50] [--sizes 64]
        [--steps 20,60] [--train-patients 0] [--patients 240] [--max-slices 4]
        [--scanner negin] [--profile cpu-smoke] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: the phantom's severity bands (covidct.evaluation.truth.SEVERITY_BANDS), mildest first
SEVERITY_BANDS = ("none", "mild", "moderate", "severe")

HEADER = (
    "| backbone | px | steps | train patients (COVID) | train slices | sequestered patients "
    "(COVID) | s | image AUC [95% CI] | patient AUC | AUC none | AUC mild | AUC moderate "
    "| AUC severe |"
)


def prepare(tmp: Path, patients: int, max_slices: int, scanner: str, seed: int):  # noqa: ANN201
    """Write, land, validate, curate and fold one synthetic batch the DAG's way; return
    ``(settings, fold-1 frame, sequestered frame, image root)``."""
    from covidct import pipeline
    from covidct.batch.synth import write_synthetic_batch
    from covidct.config import Settings
    from covidct.lake.custody import CURATED_BATCHES
    from covidct.lake.landing import land_batch
    from covidct.lake.layout import LakeLayout
    from covidct.lake.storage import read_parquet

    batch = tmp / "inbox" / "synth"
    write_synthetic_batch(batch, patients=patients, seed=seed, max_slices_per_patient=max_slices,
                          scanner=scanner)  # fmt: skip
    settings = Settings.from_env(
        {"COVIDCT_HOME": str(tmp / "home"), "COVIDCT_TRUTH_DIR": str(tmp / "inbox")}
    )
    store = pipeline.lake(settings)
    land_batch(store, batch, "synth")
    verdict = pipeline.validate(settings, "synth", "manual__learning")
    if not verdict["passed"]:
        raise SystemExit(f"the synthetic batch failed validation: {verdict['reasons'][:3]}")
    curated = pipeline.curate(settings, [verdict], "manual__learning")
    specs = pipeline.make_folds(settings, curated, 2, seed, dag_run_id="manual__learning")
    fold = read_parquet(store, specs[0]["key"])
    held = read_parquet(store, LakeLayout.sequestered_manifest(curated["dataset_version"]))
    root = pipeline.materialize(store, CURATED_BATCHES, settings)
    return settings, fold, held, root


def keep_patients(train, count: int, seed: int):  # noqa: ANN001, ANN201
    """``count`` of the training split's patients, half COVID where possible (0: all)."""
    import numpy as np

    if count <= 0:
        return train
    rng = np.random.default_rng(seed)
    by_label = train.groupby("label")["patient_key"].unique()
    n_covid = min(count // 2, len(by_label.get("Positive", [])))
    chosen = set(rng.permutation(by_label.get("Positive", []))[:n_covid])
    chosen |= set(rng.permutation(by_label.get("Negative", []))[: count - n_covid])
    return train[train["patient_key"].isin(chosen)]


def band_aucs(settings, scored) -> dict[str, float]:  # noqa: ANN001
    """Image ROC AUC of each severity band's COVID slices against every normal slice."""
    from sklearn.metrics import roc_auc_score

    from covidct.pipeline import truth

    bands = truth.severity_bands(settings, scored)
    normal = scored[scored["y_true"] == "normal"]
    out = {}
    for band in SEVERITY_BANDS:
        covid = scored[scored["patient_id"].map(bands).eq(band)]
        if len(covid) and len(normal):
            both = [*covid["p_covid"], *normal["p_covid"]]
            out[band] = roc_auc_score([1] * len(covid) + [0] * len(normal), both)
    return out


def ceiling(settings, held) -> str:  # noqa: ANN001
    """What a perfect lesion detector could reach on the sequestered selected slices, whose
    labels are their patient's: image ROC AUC ``0.5 + 0.5 x`` (share of COVID slices that cut
    a lesion; the rest tie with every normal slice) and patient sensitivity (share of COVID
    patients with a lesion on some selected slice)."""
    import pandas as pd

    from covidct.batch.synth_truth import read_truth
    from covidct.pipeline import truth

    covid = held[held["label"] == "Positive"]
    lesion = []
    for path in covid["path"]:
        batch, _, inside = truth.slice_parts(path)
        folder = truth.truth_folder(settings, batch)
        slices = read_truth(folder)[1].set_index("path") if folder else pd.DataFrame()
        lesion.append(bool(folder) and int(slices.loc[inside, "lesion_pixels"]) > 0)
    shown = pd.Series(lesion, index=covid.index)
    patients = shown.groupby(covid["patient_key"]).any()
    return (
        f"ceiling on the sequestered selected slices (a perfect lesion detector): image AUC "
        f"{0.5 + 0.5 * shown.mean():.3f} ({int(shown.sum())} of {len(shown)} COVID slices cut a "
        f"lesion); patient sensitivity {patients.mean():.3f} ({int(patients.sum())} of "
        f"{len(patients)} COVID patients show one)"
    )


def run(args, backbone: str, size: int, steps: int, n_train: int, data, work: Path) -> str:  # noqa: ANN001
    """Train and score once; return the Markdown row."""
    from sklearn.metrics import roc_auc_score

    from covidct import evaluation, training
    from covidct.pipeline.development import predictions_frame
    from covidct.training.spec import TrainingSpec

    settings, fold, held, root = data
    train = keep_patients(fold[fold["split"] == "train"], n_train, args.seed)
    spec = TrainingSpec.of_profile(args.profile, epochs=1, steps_per_epoch=steps, image_size=size)
    config = training.TrainingConfig.from_spec(spec)
    started = time.perf_counter()
    result = training.train_model(
        backbone, train, fold[fold["split"] == "val"], image_root=root, config=config,
        checkpoint_dir=work / f"{backbone}-{size}-{steps}-{n_train}", mlflow_run=False,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    p_covid = training.predict_p_covid(result.model, list(held["path"]), image_root=root,
                                       config=config)  # fmt: skip
    scored = predictions_frame(held.reset_index(drop=True), p_covid)
    ci = evaluation.bootstrap_ci(scored, "image_roc_auc", n_boot=500, seed=0)
    patients = scored.groupby("patient_id").agg(p=("p_covid", "mean"), y=("y_true", "first"))
    patient_auc = roc_auc_score(patients["y"].eq("covid"), patients["p"])
    bands = band_aucs(settings, scored)
    n_covid = train.loc[train["label"] == "Positive", "patient_key"].nunique()
    cells = [
        backbone, str(size), str(steps),
        f"{train['patient_key'].nunique()} ({n_covid})", str(len(train)),
        f"{len(patients)} ({int(patients['y'].eq('covid').sum())})", f"{seconds:.0f}",
        f"{ci.point:.3f} [{ci.low:.3f}, {ci.high:.3f}]", f"{patient_auc:.3f}",
        *(f"{bands[b]:.3f}" if b in bands else "-" for b in SEVERITY_BANDS),
    ]  # fmt: skip
    return "| " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> int:
    """Print the table (module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", default="resnet152,resnet50")
    parser.add_argument("--sizes", default="64")
    parser.add_argument("--steps", default="20,60")
    parser.add_argument("--train-patients", default="0", help="0: all of fold 1's training split")
    parser.add_argument("--patients", type=int, default=240, help="synthetic patients in all")
    parser.add_argument("--max-slices", type=int, default=4)
    parser.add_argument("--scanner", default="negin")
    parser.add_argument("--profile", default="cpu-smoke")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(HEADER)
    print("|---" * HEADER.count(" | ") + "|---|", flush=True)
    with tempfile.TemporaryDirectory(prefix="covidct-learning-") as tmp:
        data = prepare(Path(tmp), args.patients, args.max_slices, args.scanner, args.seed)
        print(f"\n{ceiling(data[0], data[2])}\n", flush=True)
        for n_train in (int(v) for v in args.train_patients.split(",")):
            for backbone in args.backbones.split(","):
                for size in (int(v) for v in args.sizes.split(",")):
                    for steps in (int(v) for v in args.steps.split(",")):
                        row = run(args, backbone, size, steps, n_train, data, Path(tmp))
                        print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
