"""Two folds of one backbone in one process: built and traced twice, or the second fold on the
kept compiled model (``train_model(reuse_compiled=True)``, ``covidct/training/warm.py``).

Writes synthetic uint16 TIFF slices (COVID ones brighter) into a temporary folder, splits them
into two folds and, for each backbone, times ``train_model`` with the ``cpu-smoke`` profile
(compiled, batch-norm re-estimation included, no MLflow):

- ``fresh s``: fold 2 on a newly built model (what each fold cost before);
- ``first s`` / ``reused s``: fold 1, then fold 2 on fold 1's kept model, reset;
- ``max |diff|``: fold 2's weights, reused against fresh (0 means identical).

Prints a Markdown table; nothing is asserted.

    uv run python benchmarks/warm_folds.py [--backbones resnet152,resnet50] [--size 64]
        [--steps 20] [--slices 160] [--batch 16]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def write_slices(
    root: Path, count: int, side: int = 128, contrast: float = 200.0, noise: float = 120.0
):  # noqa: ANN201 - a DataFrame
    """``count`` one-slice patients under ``root`` (``patient<i>/SR_2/IM00001.tif``, written by
    the product's :func:`covidct.batch.slices.write_slice`: uint16 (side, side) stored values,
    normal around 300, ``contrast`` brighter for COVID, sd ``noise``, seed 0); every other patient
    is Positive. Returns the fold table: columns ``path`` (relative to ``root``), ``label``."""
    import numpy as np
    import pandas as pd

    from covidct.batch.slices import write_slice

    rng = np.random.default_rng(0)
    rows = []
    for index in range(count):
        positive = index % 2 == 1
        stored = rng.normal(300 + contrast * positive, noise, (side, side)).clip(0, 4095)
        name = f"patient{index}/SR_2/IM00001.tif"
        write_slice(root / name, stored.astype(np.uint16))
        rows.append((name, "Positive" if positive else "Negative"))
    return pd.DataFrame(rows, columns=["path", "label"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", default="resnet152,resnet50")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--slices", type=int, default=160)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()

    import numpy as np

    from covidct.training import Profile, TrainingConfig, release_warm_model, train_model

    config = TrainingConfig.from_profile(
        Profile.CPU_SMOKE,
        image_size=args.size,
        batch_size=args.batch,
        epochs=1,
        steps_per_epoch=args.steps,
        run_eagerly=False,
    )
    print("| backbone | fresh s | first s | reused s | max abs diff |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="covidct-warm-") as scratch:
        root = Path(scratch) / "images"
        frame = write_slices(root, args.slices)
        half = len(frame) // 2
        folds = [frame.iloc[:half].reset_index(drop=True), frame.iloc[half:].reset_index(drop=True)]

        def run(backbone: str, fold: int, name: str, reuse: bool):  # noqa: ANN202
            started = time.perf_counter()
            result = train_model(
                backbone, folds[fold], folds[fold].iloc[:0], image_root=root, config=config,
                checkpoint_dir=Path(scratch) / backbone / name, mlflow_run=False,
                reuse_compiled=reuse,
            )  # fmt: skip
            weights = [np.array(v.numpy(), copy=True) for v in result.model.variables]
            return time.perf_counter() - started, weights

        for backbone in args.backbones.split(","):
            release_warm_model()
            fresh_s, fresh = run(backbone, 1, "fresh", reuse=False)
            first_s, _ = run(backbone, 0, "first", reuse=True)
            reused_s, reused = run(backbone, 1, "reused", reuse=True)
            release_warm_model()
            diff = max(float(np.max(np.abs(a - b))) for a, b in zip(reused, fresh, strict=True))
            print(f"| {backbone} | {fresh_s:.1f} | {first_s:.1f} | {reused_s:.1f} | {diff:.3g} |")


if __name__ == "__main__":
    main()
