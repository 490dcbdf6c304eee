"""Throughput of the input pipeline (covidct.data.make_dataset) against a bare tifffile decode.

Writes ``--count`` CT-like 512x512 uint16 TIFFs (or reads ``--dir``), then prints images/s of:

- a bare ``tifffile.imread`` loop over the same files (hot page cache, one core);
- the pipeline's first epoch (parallel decode + intensity transform + resize, filling the cache);
- cached epochs without augmentation (what every later epoch costs when the model is on a
  device and augmentation runs there, ``gpu-fast``);
- cached epochs with the Table 5 augmentation on the host (``paper``; ``cpu-smoke`` flips only).

Each for ``--pipelines``: ``tf.data`` (the TensorFlow backend's default) and ``numpy`` (the NumPy
``PyDataset`` of :mod:`covidct.data.host`, every other backend's; read here as Keras reads it,
its ``workers`` threads building batches in parallel).

Usage: ``python benchmarks/pipeline_speed.py [--count 300] [--image-size 512 64] [--dir DIR]
[--pipelines tf.data numpy]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import tifffile


def write_slices(directory: Path, count: int, seed: int = 0) -> list[Path]:
    """CT-like slices: air ~24, body ~1060, lungs ~200 (stored values, HU + 1024), noise."""
    rng = np.random.default_rng(seed)
    rows, cols = np.ogrid[0:512, 0:512]
    body = ((rows - 256) / 200) ** 2 + ((cols - 256) / 230) ** 2 < 1
    lungs = (((rows - 256) / 118) ** 2 + ((cols - 160) / 72) ** 2 < 1) | (
        ((rows - 256) / 118) ** 2 + ((cols - 352) / 72) ** 2 < 1
    )
    base = np.where(lungs, 200.0, np.where(body, 1060.0, 24.0))
    paths = []
    for index in range(count):
        image = np.clip(base + rng.normal(0, 20, base.shape), 0, 4095).astype(np.uint16)
        path = directory / f"IM{index:05d}.tif"
        tifffile.imwrite(path, image, photometric="minisblack")
        paths.append(path)
    return paths


def bare_decode_rate(paths: list[Path], repeats: int = 3) -> float:
    for path in paths:  # warm the page cache
        path.read_bytes()
    started = time.perf_counter()
    for _ in range(repeats):
        for path in paths:
            tifffile.imread(path)
    return repeats * len(paths) / (time.perf_counter() - started)


def batches(dataset: Any) -> Iterator[Any]:
    """One pass: a ``tf.data.Dataset`` iterated, a ``PyDataset`` read by its worker threads."""
    if hasattr(dataset, "element_spec"):
        yield from dataset
        return
    with ThreadPoolExecutor(max(dataset.workers, 1)) as pool:
        yield from pool.map(dataset.__getitem__, range(len(dataset)))
    dataset.on_epoch_end()


def epoch_rate(dataset, images: int) -> float:
    started = time.perf_counter()
    seen = 0
    for batch, _ in batches(dataset):
        seen += int(batch.shape[0])
    if seen != images:
        raise RuntimeError(f"expected {images} images per epoch, saw {seen}")
    return images / (time.perf_counter() - started)


def pipeline_rates(
    paths: list[Path], image_size: int, batch_size: int, epochs: int, pipeline: str
) -> dict:
    from covidct.data import AugmentConfig, make_dataset

    labels = [index % 2 for index in range(len(paths))]
    plain = make_dataset(
        paths, labels, image_size=image_size, batch_size=batch_size, seed=1, pipeline=pipeline
    )
    first = epoch_rate(plain, len(paths))
    cached = np.median([epoch_rate(plain, len(paths)) for _ in range(epochs)])
    augmented = make_dataset(
        paths,
        labels,
        image_size=image_size,
        batch_size=batch_size,
        augment=AugmentConfig(),
        seed=1,
        pipeline=pipeline,
    )
    epoch_rate(augmented, len(paths))  # fill its cache
    with_augment = np.median([epoch_rate(augmented, len(paths)) for _ in range(epochs)])
    return {"first": first, "cached": cached, "cached_augmented": with_augment}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--image-size", type=int, nargs="+", default=[512, 64])
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="existing folder of TIFFs")
    parser.add_argument("--pipelines", nargs="+", default=["tf.data", "numpy"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        if args.dir is not None:
            paths = sorted(args.dir.rglob("*.tif"))[: args.count]
        else:
            paths = write_slices(Path(scratch), args.count)
        print(f"{len(paths)} slices, 512x512 uint16, {os.cpu_count()} CPU cores")
        bare = bare_decode_rate(paths)
        print(f"bare tifffile.imread (1 core, hot cache): {bare:8.0f} images/s")
        for size, pipeline in ((s, p) for s in args.image_size for p in args.pipelines):
            rates = pipeline_rates(paths, size, args.batch_size, args.epochs, pipeline)
            print(
                f"{pipeline:>7} -> {size}x{size}, batch {args.batch_size}: "
                f"first epoch {rates['first']:7.0f} images/s | "
                f"cached {rates['cached']:7.0f} images/s "
                f"({rates['cached'] / bare:.1f}x bare decode) | "
                f"cached + Table 5 augmentation {rates['cached_augmented']:7.0f} images/s"
            )


if __name__ == "__main__":
    main()
