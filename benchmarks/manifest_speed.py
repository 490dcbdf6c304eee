"""Manifest throughput: slices per second of ``build_manifest`` vs a bare tifffile read.

Usage: ``python benchmarks/manifest_speed.py --slices 4000 [--workers 2] [--executor process]``

Writes N synthetic 512x512 uint16 TIFFs (Negin stored values: air ~24, body ~1000-1100,
lungs ~200) into a temporary batch folder, reads them once with ``tifffile.imread`` on one
core (the baseline, hot page cache), then builds the manifest with each executor kind and
prints slices/s and the ratio to the baseline. Target (issue 3): >= 1,000 slices/s on 2 cores.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

from covidct import schema
from covidct.batch.manifest import ExecutorKind, build_manifest

SLICES_PER_SERIES = 100


def synthetic_slice(rng: np.random.Generator) -> np.ndarray:
    """Return a 512x512 uint16 chest-like slice: air frame, body disc, two darker lungs."""
    rows, cols = np.mgrid[0:512, 0:512]
    image = np.full((512, 512), 24.0)
    image[(rows - 256) ** 2 / 200**2 + (cols - 256) ** 2 / 230**2 < 1] = 1060.0
    for centre in (160, 352):
        image[(rows - 256) ** 2 / 120**2 + (cols - centre) ** 2 / 70**2 < 1] = 200.0
    return np.clip(image + rng.normal(0, 20, image.shape), 0, 4095).astype(np.uint16)


def write_batch(batch_dir: Path, n_slices: int) -> None:
    """Write a Negin-style batch of ``n_slices`` distinct TIFFs under ``batch_dir``."""
    rng = np.random.default_rng(0)
    base = synthetic_slice(rng)
    series_of: dict[str, set[str]] = {}
    for index in range(n_slices):
        patient = f"patient{index // (SLICES_PER_SERIES * 3) + 1}"
        series = schema.SERIES[(index // SLICES_PER_SERIES) % 3]
        folder = batch_dir / patient / series
        folder.mkdir(parents=True, exist_ok=True)
        pixels = base.copy()
        pixels[0, 0], pixels[0, 1] = index % 4096, index // 4096  # distinct sha256 per slice
        tifffile.imwrite(folder / f"IM{index:05d}.tif", pixels)
        series_of.setdefault(patient, set()).add(series)
    lines = [",".join(schema.PATIENT_DETAILS_COLUMNS)]
    for patient, present in series_of.items():
        thickness = ",".join("5" if s in present else "" for s in schema.SERIES)
        lines.append(f"{patient},F,050Y,20200401,Positive,{thickness}")
    (batch_dir / schema.PATIENT_DETAILS).write_text("\n".join(lines) + "\n")


def bare_read_rate(files: list[Path]) -> float:
    """Return slices/s of ``tifffile.imread`` over ``files`` on one core."""
    started = time.perf_counter()
    for file in files:
        tifffile.imread(file)
    return len(files) / (time.perf_counter() - started)


def manifest_rate(batch_dir: Path, executor: str, workers: int | None) -> tuple[float, int]:
    """Return (slices/s, rows) of one ``build_manifest`` run."""
    started = time.perf_counter()
    manifest = build_manifest(batch_dir, executor=executor, workers=workers, progress=False)
    return len(manifest) / (time.perf_counter() - started), len(manifest)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument(
        "--executor", choices=[k.value for k in ExecutorKind], action="append", default=None
    )
    parser.add_argument(
        "--validate", action="store_true", help="also time validate_batch (with GE Data Docs)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    executors = args.executor or [k.value for k in ExecutorKind]
    with tempfile.TemporaryDirectory() as tmp:
        batch_dir = Path(tmp) / "batch"
        write_batch(batch_dir, args.slices)
        files = sorted(batch_dir.glob("*/*/*.tif"))
        bare = bare_read_rate(files)
        print(f"bare tifffile.imread (1 core): {bare:,.0f} slices/s over {len(files)} files")
        for executor in executors:
            rate, rows = manifest_rate(batch_dir, executor, args.workers)
            print(
                f"build_manifest executor={executor:<7} workers={args.workers or 'auto'}:"
                f" {rate:,.0f} slices/s ({rows} rows), ratio to bare read {rate / bare:.2f}"
            )
        if args.validate:
            validate_rate(batch_dir, Path(tmp) / "report", args.workers)


def validate_rate(batch_dir: Path, report_dir: Path, workers: int | None) -> None:
    """Print the wall time of one full ``validate_batch`` (manifest, four GE suites, docs)."""
    from covidct.batch.validation import validate_batch

    started = time.perf_counter()
    verdict = validate_batch(batch_dir, report_dir=report_dir, progress=False, workers=workers)
    seconds = time.perf_counter() - started
    print(
        f"validate_batch with Data Docs: {seconds:.1f} s for {verdict.n_slices} slices"
        f" ({verdict.n_slices / seconds:,.0f} slices/s), passed={verdict.passed}"
    )


if __name__ == "__main__":
    main()
