"""How separable are the synthetic phantom's COVID and normal slices without deep learning?

One hand-made feature per open-lung slice of a synthetic batch (``covidct synth``): the fraction of
the 64x64 image (8x8 area mean of HU, as ``covidct.data.loading`` resizes for the demo's 64 px
models) whose HU lies in the ground-glass range [-750, -250]. Prints the ROC AUC of that feature
between COVID and normal open-lung slices, and, when the batch has a truth folder
(``<batch>.truth``, :func:`covidct.batch.synth.read_truth`), the AUC of each severity band's COVID
slices against all normal slices. Nothing is tuned on it; it only reports.

    uv run python benchmarks/phantom_separability.py BATCH_DIR [--truth TRUTH_DIR]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from covidct import schema
from covidct.batch.slices import read_slice

GGO_RANGE_HU = (-750.0, -250.0)


def ggo_fraction(image: np.ndarray, size: int = 64) -> float:
    """Fraction of the ``size`` x ``size`` area-mean HU image inside :data:`GGO_RANGE_HU`."""
    hu = image.astype(np.float32) - schema.HU_OFFSET
    block = hu.shape[0] // size
    small = hu.reshape(size, block, size, block).mean(axis=(1, 3))
    low, high = GGO_RANGE_HU
    return float(np.mean((small >= low) & (small <= high)))


def open_slices(batch_dir: Path) -> pd.DataFrame:
    """Open-lung slices of a synthetic batch: columns path, patient_id, covid (bool), feature."""
    info = json.loads((batch_dir / schema.BATCH_INFO).read_text())
    rows = []
    for patient in info["synthetic"]["patients"]:
        for series in patient["series"]:
            for index, is_open in enumerate(series["open_lung"], start=1):
                if not is_open:
                    continue
                path = f"{patient['patient_id']}/{series['name']}/IM{index:05d}.tif"
                rows.append(
                    {
                        "path": path,
                        "patient_id": patient["patient_id"],
                        "covid": patient["label"] == schema.Label.POSITIVE.value,
                        "feature": ggo_fraction(read_slice(batch_dir / path)),
                    }
                )
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("batch_dir", type=Path)
    parser.add_argument("--truth", type=Path, default=None)
    args = parser.parse_args()
    table = open_slices(args.batch_dir)
    auc = roc_auc_score(table["covid"], table["feature"])
    print(f"open-lung slices: {len(table)} ({int(table['covid'].sum())} COVID); AUC {auc:.3f}")
    truth = args.truth or args.batch_dir.with_name(args.batch_dir.name + ".truth")
    if not (truth / "patients.csv").is_file():
        return
    patients = pd.read_csv(truth / "patients.csv", dtype={"patient_id": str})
    bands = patients.set_index("patient_id")["severity_band"]
    table["band"] = table["patient_id"].map(bands)
    normal = table[~table["covid"]]
    slices = pd.read_csv(truth / "slices.csv", usecols=["path", "lesion_pixels"])
    cut = table["path"].map(slices.set_index("path")["lesion_pixels"]) > 0
    hit = pd.concat([table[table["covid"] & cut], normal])
    value = roc_auc_score(hit["covid"], hit["feature"])
    print(f"  COVID slices cutting a lesion: {int(cut.sum())} vs {len(normal)}; AUC {value:.3f}")
    for band, group in table[table["covid"]].groupby("band"):
        both = pd.concat([group, normal])
        value = roc_auc_score(both["covid"], both["feature"])
        print(f"  {band}: {len(group)} COVID slices vs {len(normal)} normal; AUC {value:.3f}")


if __name__ == "__main__":
    main()
