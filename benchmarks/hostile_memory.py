"""Peak memory of validating a batch that holds the worst files the reader limits allow.

Usage: ``python benchmarks/hostile_memory.py [--workers 2] [--slices 200] [--metadata]``

Writes two batches into a temporary folder and validates each in a fresh Python process with
``covidct.batch.validation.validate_batch`` (process readers, ``--workers``), then prints the peak
resident set size of the validating process and of its largest reader process
(``VmHWM`` of ``/proc/self/status``: ``ru_maxrss`` would carry the peak of whatever process
exec'd it, e.g. a pytest worker that trained a model; and ``resource.getrusage``'s
``RUSAGE_CHILDREN``, whose ``ru_maxrss`` is the largest single child, not a sum):

* ``normal``: ``--slices`` 512x512 uint16 slices (air ~24, body ~1060, lungs ~200);
* ``hostile``: as many files, the first three of every reader chunk (64 files) being a
  decompression bomb (deflate TIFF
  declaring 20000x20000 uint16, ~0.8 MB on disk), a file at the byte limit
  (``covidct.batch.slices.MAX_SLICE_FILE_BYTES``, a 512x512 slice padded with junk) and an image
  at the
  decoded limit (``MAX_DECODED_BYTES`` of uint8 pixels, whose statistics take float64 copies).

The stated ceiling is the validating process plus ``workers`` readers, each at most the largest
reader measured here (one file's bytes, its decoded image and the statistics' temporaries).

``--metadata`` (issue 32) validates instead four batches of one normal patient (``--slices``
slices) whose metadata file is hostile, each refused unread by its limit
(``covidct.batch.contract``), and prints the same figures:

* ``details-1M-rows``: a ``Patient_details.csv`` of 1,000,000 rows (about 36 MB; drove validation
  past 7.7 GB before the limits);
* ``details-rows``: one just under the byte limit with more rows than the row limit;
* ``json-deep``: a ``batch.json`` nested 100,000 deep (a RecursionError before);
* ``json-100MB``: a 100 MB ``batch.json``;
* ``json-duplicate-keys``: a ``batch.json`` of 10,000 keys, every one of them twice (refused:
  duplicate keys, the last one used to win silently).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import tifffile
from manifest_speed import synthetic_slice  # this folder's benchmark: the same test slice

from covidct.batch.contract import MAX_DETAILS_BYTES
from covidct.batch.slices import MAX_DECODED_BYTES, MAX_SLICE_FILE_BYTES

_VALIDATE = """
import json, resource, sys, time
from pathlib import Path
from covidct.batch.validation import validate_batch
started = time.perf_counter()
verdict = validate_batch(Path(sys.argv[1]), progress=False, workers=int(sys.argv[2]))
print(json.dumps({
    "seconds": round(time.perf_counter() - started, 1),
    "passed": verdict.passed,
    "checks": sorted(c.value for c in verdict.failed_checks),
    "self_mib": [int(l.split()[1]) for l in open("/proc/self/status")
                 if l.startswith("VmHWM")][0] // 1024,
    "largest_reader_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024,
}))
"""


def chest(seed: int) -> np.ndarray:
    """Return a 512x512 uint16 chest-like slice (Negin stored values), seeded by ``seed``."""
    return synthetic_slice(np.random.default_rng(seed))


def write_details(batch: Path) -> None:
    """Write the Patient_details.csv of the one patient P1 (SR_2 only)."""
    (batch / "Patient_details.csv").write_text(
        "Patient ID,SEX,AGE,Date,COVID-19 Infection,SR_2 Folder thickness(mm),"
        "SR_3 Folder thickness(mm),SR_4 Folder thickness(mm)\nP1,F,050Y,20200401,Positive,5,,\n"
    )


def write_normal(batch: Path, slices: int) -> None:
    """Write one patient with ``slices`` slices in SR_2 and its Patient_details.csv."""
    folder = batch / "P1" / "SR_2"
    folder.mkdir(parents=True)
    for index in range(1, slices + 1):
        tifffile.imwrite(folder / f"IM{index:05d}.tif", chest(index), photometric="minisblack")
    write_details(batch)


def write_bomb(path: Path, side: int = 20_000) -> None:
    """A deflate TIFF of well under 1 MB declaring ``side`` x ``side`` uint16 pixels."""
    tile = np.zeros((1024, 1024), np.uint16)
    per_side = math.ceil(side / 1024)
    tiles = (tile for _ in range(per_side * per_side))
    tifffile.imwrite(
        path, tiles, shape=(side, side), dtype=np.uint16, tile=(1024, 1024), compression="zlib"
    )


def write_hostile(batch: Path, slices: int, chunk: int = 64) -> None:
    """``slices`` files of one patient where the first three of every reader chunk of
    ``chunk`` files are a bomb, a file at the byte limit and an image at the decoded limit."""
    folder = batch / "P1" / "SR_2"
    folder.mkdir(parents=True)
    side = int(math.isqrt(MAX_DECODED_BYTES))
    for index in range(1, slices + 1):
        path = folder / f"IM{index:05d}.tif"
        kind = (index - 1) % chunk
        if kind == 0:
            write_bomb(path)
        elif kind == 1:
            tifffile.imwrite(path, chest(index), photometric="minisblack")
            with path.open("ab") as handle:
                handle.write(b"\0" * (MAX_SLICE_FILE_BYTES - path.stat().st_size))
        elif kind == 2:
            noise = np.random.default_rng(index).integers(0, 255, (side, side), dtype=np.uint8)
            tifffile.imwrite(path, noise, photometric="minisblack")
        else:
            tifffile.imwrite(path, chest(index), photometric="minisblack")
    write_details(batch)


def write_huge_details(batch: Path, slices: int) -> None:
    """A normal batch whose Patient_details.csv has 1,000,000 rows (about 36 MB)."""
    write_normal(batch, slices)
    row = "P1,F,050Y,20200401,Positive,5,,\n"
    with (batch / "Patient_details.csv").open("a") as handle:
        handle.write(row * 1_000_000)


def write_many_rows(batch: Path, slices: int) -> None:
    """A normal batch whose Patient_details.csv is under the byte limit but over the rows."""
    write_normal(batch, slices)
    with (batch / "Patient_details.csv").open("a") as handle:
        handle.write("x\n" * ((MAX_DETAILS_BYTES - 1024) // 2))


def write_deep_json(batch: Path, slices: int) -> None:
    """A normal batch whose batch.json nests 100,000 lists."""
    write_normal(batch, slices)
    deep = "[" * 100_000 + "]" * 100_000
    (batch / "batch.json").write_text('{"source": "negin", "x": ' + deep + "}")


def write_big_json(batch: Path, slices: int) -> None:
    """A normal batch with a 100 MB batch.json."""
    write_normal(batch, slices)
    (batch / "batch.json").write_text(json.dumps({"source": "negin", "pad": "x" * 100_000_000}))


def write_duplicate_keys(batch: Path, slices: int) -> None:
    """A normal batch whose batch.json holds 10,000 keys twice each (``source`` among them)."""
    write_normal(batch, slices)
    pairs = [f'"k{i}": {i}' for i in range(10_000)] + ['"source": "negin"']
    (batch / "batch.json").write_text("{" + ", ".join(pairs + pairs) + "}")


METADATA_CASES = {
    "details-1M-rows": write_huge_details,
    "details-rows": write_many_rows,
    "json-deep": write_deep_json,
    "json-100MB": write_big_json,
    "json-duplicate-keys": write_duplicate_keys,
}


def measure(batch: Path, workers: int) -> dict[str, object]:
    """Validate ``batch`` in a fresh process; return its timing, verdict and peak memory."""
    done = subprocess.run(
        [sys.executable, "-c", _VALIDATE, str(batch), str(workers)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    """Write both batches, validate each, print one JSON line per batch."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--slices", type=int, default=200)
    parser.add_argument("--metadata", action="store_true", help="the hostile metadata cases")
    args = parser.parse_args()
    cases = METADATA_CASES if args.metadata else {"normal": write_normal, "hostile": write_hostile}
    with tempfile.TemporaryDirectory() as tmp:
        for name, write in cases.items():
            batch = Path(tmp) / name
            write(batch, args.slices)
            result = measure(batch, args.workers)
            print(json.dumps({"batch": name, "workers": args.workers, **result}))


if __name__ == "__main__":
    main()
