"""Fold manifests: one Parquet table per fold (train, val and test slices with their patient,
label and split), their content digest, the protocol table of patient and slice counts, and the
MLflow dataset record of a fold.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd

from covidct.data.folds import (
    DIGEST_HEX_CHARS,
    FILENAME_COLUMN,
    FOLD_COLUMN,
    LABEL,
    PATH_COLUMN,
    PATIENT_ID_COLUMN,
    PATIENT_KEY_COLUMN,
    POOL_SPLIT,
    SPLIT_COLUMN,
    FoldAssignment,
)
from covidct.safe_csv import write_csv
from covidct.schema import (
    LABEL_TO_CLASS,
    ClassName,
    Split,
)

logger = logging.getLogger(__name__)


def manifest_digest(df: pd.DataFrame) -> str:
    """Content hash of a table's rows: independent of row and column order, 32 hex characters.

    Each row is rendered as strings (so a CSV round trip keeps the digest), hashed with pandas'
    ``hash_pandas_object`` (SipHash, 64 bits), the row hashes are sorted and the column names
    plus the sorted hashes are hashed with SHA-256; the first 128 bits are returned (MLflow
    keeps at most 36 characters of a dataset digest). Duplicate rows count.
    """
    columns = sorted(str(c) for c in df.columns)
    canonical = df.set_axis([str(c) for c in df.columns], axis=1)[columns].astype("string")
    rows = pd.util.hash_pandas_object(canonical, index=False).to_numpy(dtype=np.uint64)
    digest = hashlib.sha256("\x1f".join(columns).encode() + b"\x00")
    digest.update(np.sort(rows).astype("<u8").tobytes())
    return digest.hexdigest()[:DIGEST_HEX_CHARS]


def _manifest_for_file(assignment: FoldAssignment, fold: int) -> pd.DataFrame:
    """Fold manifest with ``filename`` and ``patient_id`` first, rows sorted by filename."""
    manifest = assignment.fold_manifest(fold)
    if FILENAME_COLUMN not in manifest.columns:
        manifest[FILENAME_COLUMN] = manifest[PATH_COLUMN].astype(str).str.rsplit("/", n=1).str[-1]
    if PATIENT_ID_COLUMN not in manifest.columns:
        keys = manifest[PATIENT_KEY_COLUMN].astype(str)
        manifest[PATIENT_ID_COLUMN] = keys.str.split("/", n=1).str[-1]
    first = [FILENAME_COLUMN, PATIENT_ID_COLUMN, PATIENT_KEY_COLUMN, LABEL, SPLIT_COLUMN]
    order = first + [FOLD_COLUMN] + [c for c in manifest.columns if c not in {*first, FOLD_COLUMN}]
    sort_by = [PATIENT_KEY_COLUMN, PATH_COLUMN if PATH_COLUMN in manifest else FILENAME_COLUMN]
    return manifest[order].sort_values(sort_by, kind="stable").reset_index(drop=True)


def write_fold_manifests(
    assignment: FoldAssignment, out_dir: Path, *, parquet: bool = False
) -> list[Path]:
    """Write ``fold-<i>.csv`` (and ``fold-<i>.parquet`` if ``parquet``) for i in 1..k.

    Columns: ``filename, patient_id, patient_key, label, split, fold`` then the remaining slice
    columns; rows sorted by patient key and path/filename, so equal assignments give
    byte-identical files. Creates ``out_dir``; returns the written paths in fold order.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for fold in assignment.folds:
        manifest = _manifest_for_file(assignment, fold)
        path = out_dir / f"fold-{fold}.csv"
        write_csv(manifest, path)
        written.append(path)
        if parquet:
            written.append(out_dir / f"fold-{fold}.parquet")
            manifest.to_parquet(written[-1], index=False)
        logger.info("wrote %s (%d rows, digest %s)", path, len(manifest), manifest_digest(manifest))
    return written


def read_fold_manifests(out_dir: Path) -> pd.DataFrame:
    """Concatenate the ``fold-<i>.csv`` files of ``out_dir``: a ``previous`` for assign_folds.

    Raises FileNotFoundError if ``out_dir`` holds no fold manifest.
    """
    paths = sorted(out_dir.glob("fold-*.csv"))
    if not paths:
        raise FileNotFoundError(f"no fold-<i>.csv manifest in {out_dir}")
    return pd.concat([pd.read_csv(p, dtype={PATIENT_ID_COLUMN: str}) for p in paths])


def protocol_table(assignment: FoldAssignment) -> pd.DataFrame:
    """Patients and images per class, split and fold, in the shape of the seed's Tables 2-4.

    One row per fold (1..k) and split (``train``, ``val``, ``train+val`` = the published
    "training set", ``test``); int64 columns ``covid_patients``, ``covid_images``,
    ``normal_patients``, ``normal_images``.
    """
    table = assignment.splits.merge(
        assignment.patients[[PATIENT_KEY_COLUMN, LABEL, "n_images"]], on=PATIENT_KEY_COLUMN
    )
    pool = table[table[SPLIT_COLUMN] != Split.TEST.value].assign(**{SPLIT_COLUMN: POOL_SPLIT})
    table = pd.concat([table, pool], ignore_index=True)
    table["cls"] = table[LABEL].map(LABEL_TO_CLASS)
    grouped = table.groupby([FOLD_COLUMN, SPLIT_COLUMN, "cls"])["n_images"]
    counts = grouped.agg(patients="size", images="sum").unstack("cls", fill_value=0)
    pairs = cast("list[tuple[str, str]]", counts.columns.tolist())
    counts.columns = [f"{cls}_{what}" for what, cls in pairs]
    splits = [Split.TRAIN.value, Split.VAL.value, POOL_SPLIT, Split.TEST.value]
    index = pd.MultiIndex.from_product([assignment.folds, splits], names=[FOLD_COLUMN, "split"])
    columns = [
        f"{c}_{w}" for c in (ClassName.COVID, ClassName.NORMAL) for w in ("patients", "images")
    ]
    out = counts.reindex(index=index, columns=columns, fill_value=0).astype(np.int64)
    return out.reset_index()


def log_fold_dataset(
    fold_df: pd.DataFrame, *, name: str, context: str = "training", source: str | None = None
) -> str:
    """Log a fold manifest to the active MLflow run as an input dataset; return its digest.

    The dataset is ``mlflow.data.from_pandas(fold_df, name=name, digest=manifest_digest(...),
    targets="label", source=source)`` linked with ``mlflow.log_input(..., context=context)``.
    MLflow identifies a dataset by (experiment, name, digest): the same manifest logged again
    under the same name links the existing dataset entry (with its first ``source``).
    Raises RuntimeError if no MLflow run is active (this never starts one).
    """
    import mlflow
    from mlflow.data.pandas_dataset import from_pandas

    if mlflow.active_run() is None:
        raise RuntimeError(f"no active MLflow run to log fold dataset {name!r} to")
    digest = manifest_digest(fold_df)
    targets = LABEL if LABEL in fold_df.columns else None
    with warnings.catch_warnings():  # schema inference hints about int columns: not actionable
        warnings.filterwarnings("ignore", message="Hint: Inferred schema", category=UserWarning)
        located = {"source": source} if source is not None else {}
        dataset = from_pandas(fold_df, targets=targets, name=name, digest=digest, **located)
        mlflow.log_input(dataset, context=context)
    return digest
