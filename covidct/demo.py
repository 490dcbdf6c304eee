"""Inputs for the demo: a deliberately faulty batch that validation must quarantine.

``python -m covidct.demo faulty-batch OUT_DIR`` writes a small synthetic batch, then breaks it
in two ways a hospital export really breaks: one slice re-saved as 8-bit, and one patient whose
row is missing from ``Patient_details.csv`` (images without a label).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

from covidct.batch.slices import read_slice
from covidct.safe_csv import write_csv
from covidct.schema import PATIENT_COLUMN, PATIENT_DETAILS

logger = logging.getLogger(__name__)


def make_faulty_batch(out_dir: Path, *, seed: int = 7) -> dict[str, str]:
    """Write a 3-patient synthetic batch with two faults; return ``{fault: file or patient}``."""
    from covidct.batch.synth import write_synthetic_batch

    out_dir = Path(out_dir)
    write_synthetic_batch(out_dir, patients=3, seed=seed, max_slices_per_patient=6, source="faulty")
    slices = sorted(out_dir.glob("*/SR_*/*.tif"))
    if not slices:
        raise ValueError(f"synthetic batch {out_dir} holds no slice")
    victim = slices[0]
    eight_bit = (read_slice(victim, expected_shape=None) // 256).astype(np.uint8)
    tifffile.imwrite(victim, eight_bit, metadata=None)
    details = pd.read_csv(out_dir / PATIENT_DETAILS, dtype=str)
    unlabelled = str(details[PATIENT_COLUMN].iloc[-1])
    write_csv(details.iloc[:-1], out_dir / PATIENT_DETAILS)
    return {"uint8 slice": str(victim.relative_to(out_dir)), "patient without label": unlabelled}


def main(argv: list[str] | None = None) -> int:
    """``python -m covidct.demo faulty-batch OUT_DIR``."""
    parser = argparse.ArgumentParser(prog="python -m covidct.demo")
    parser.add_argument("what", choices=["faulty-batch"])
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    faults = make_faulty_batch(args.out_dir)
    for fault, where in faults.items():
        logger.info("faulty batch %s: %s: %s", args.out_dir.name, fault, where)
    return 0


if __name__ == "__main__":
    sys.exit(main())
