"""The four tables batch validation judges, derived from the manifest: slices, patients (against
``Patient_details.csv``), the batch (``batch.json``) and the layout (every file's path and name).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from covidct import schema
from covidct.batch.checks import (
    THICKNESS_COLUMNS,
)
from covidct.batch.contract import batch_source, read_batch_info, read_patient_details_text
from covidct.batch.files import escaped, name_problem, scan_batch
from covidct.batch.manifest import ROOT_FILES

# ------------------------------------------------------------------------------- the tables


def slice_table(manifest: pd.DataFrame, known_hashes: Mapping[str, str]) -> pd.DataFrame:
    """Return the manifest plus ``earlier_patient``: the patient key of an earlier batch that
    sent the same sha256 (None when new)."""
    table = manifest.reset_index(drop=True).copy()
    table["earlier_patient"] = [known_hashes.get(h) if h else None for h in table["sha256"]]
    return table


def _details_or_empty(batch_dir: Path) -> pd.DataFrame:
    try:
        return read_patient_details_text(batch_dir)
    except (FileNotFoundError, ValueError):
        return pd.DataFrame(columns=list(schema.PATIENT_DETAILS_COLUMNS))


def _expected_series(row: Mapping[str, Any] | None) -> set[str] | None:
    """Series with a stated thickness; None when the row states none (then any is fine)."""
    if row is None:
        return None
    stated = {s for s, column in THICKNESS_COLUMNS.items() if str(row.get(column) or "").strip()}
    return stated or None


def _series_problems(found: set[str], expected: set[str] | None) -> tuple[str | None, str | None]:
    unexpected = {s for s in found if s not in schema.SERIES}
    missing: set[str] = set()
    if expected is not None:
        unexpected |= found - expected
        missing = expected - found
    return (",".join(sorted(missing)) or None, ",".join(sorted(unexpected)) or None)


def patient_validation_table(
    slices: pd.DataFrame,
    details: pd.DataFrame,
    source: str,
    known_labels: Mapping[str, str],
) -> pd.DataFrame:
    """Return one row per patient with images or a Patient_details.csv row.

    Columns: patient_key, patient_id, label (None when absent or empty), details_rows,
    n_slices, series (found, comma-joined), missing_series, unexpected_series,
    earlier_label (from ``known_labels``, keyed by patient key), label_contradiction
    ("earlier -> now" text, None when consistent or unknown).
    """
    rows_by_id: dict[str, pd.DataFrame] = {
        str(pid): rows for pid, rows in details.groupby(schema.PATIENT_COLUMN, sort=False)
    }
    with_series = slices[slices["series"].notna()]
    found_by_id: dict[str, set[str]] = {
        str(pid): {str(s) for s in group}
        for pid, group in with_series.groupby("patient_id")["series"]
    }
    counts = {str(pid): int(n) for pid, n in slices.groupby("patient_id").size().items()}
    rows = []
    for pid in sorted(set(rows_by_id) | set(counts)):
        details_rows = rows_by_id.get(pid)
        first = (
            {str(k): v for k, v in details_rows.iloc[0].items()}
            if details_rows is not None
            else None
        )
        label = (first or {}).get(schema.LABEL_COLUMN) or None
        missing, unexpected = _series_problems(found_by_id.get(pid, set()), _expected_series(first))
        key = schema.patient_key(source, pid)
        earlier = known_labels.get(key)
        rows.append(
            {
                "patient_key": key,
                "patient_id": pid,
                "label": label,
                "details_rows": 0 if details_rows is None else len(details_rows),
                "n_slices": int(counts.get(pid, 0)),
                "series": ",".join(sorted(found_by_id.get(pid, set()))) or None,
                "missing_series": missing if counts.get(pid) else None,
                "unexpected_series": unexpected,
                "earlier_label": earlier,
                "label_contradiction": (
                    f"{earlier} -> {label}" if earlier and label and earlier != label else None
                ),
            }
        )
    return pd.DataFrame(rows, columns=_PATIENT_VALIDATION_COLUMNS)


_PATIENT_VALIDATION_COLUMNS = [
    "patient_key",
    "patient_id",
    "label",
    "details_rows",
    "n_slices",
    "series",
    "missing_series",
    "unexpected_series",
    "earlier_label",
    "label_contradiction",
]


def layout_table(batch_dir: Path) -> pd.DataFrame:
    """Return one row per entry at the batch root (plus missing required files).

    Columns: entry (name, "/" appended to folders), problem (None when the entry is fine).
    Every symbolic link, hard link or special file anywhere in the batch is a row of its own
    (path escaped, reason from :func:`covidct.batch.files.scan_batch`).
    """
    refused = scan_batch(batch_dir).refused
    entries = [_details_entry(batch_dir), *_info_entry(batch_dir)]
    entries += [{"entry": escaped(name), "problem": reason} for name, reason in refused]
    refused_names = {name for name, _ in refused}
    for child in sorted(batch_dir.iterdir()):
        if child.name in refused_names or (child.name in ROOT_FILES and child.is_file()):
            continue
        entries.append(_root_entry(child))
    return pd.DataFrame(entries, columns=["entry", "problem"])


def _details_entry(batch_dir: Path) -> dict[str, Any]:
    try:
        ids = read_patient_details_text(batch_dir)[schema.PATIENT_COLUMN]
        bad = [(pid, name_problem(pid)) for pid in ids if pid and name_problem(pid)]
        problem = "; ".join(f"Patient ID '{escaped(pid)}' {why}" for pid, why in bad) or None
    except (FileNotFoundError, ValueError) as error:
        problem = str(error).replace(str(batch_dir) + "/", "")
    return {"entry": schema.PATIENT_DETAILS, "problem": problem}


def _info_entry(batch_dir: Path) -> list[dict[str, Any]]:
    if not (batch_dir / schema.BATCH_INFO).exists():
        return []
    try:
        read_batch_info(batch_dir)
        batch_source(batch_dir)
        problem = None
    except ValueError as error:
        problem = str(error).replace(str(batch_dir) + "/", "")
    return [{"entry": schema.BATCH_INFO, "problem": problem}]


def _root_entry(child: Path) -> dict[str, Any]:
    if not child.is_dir():
        allowed = ", ".join(sorted(ROOT_FILES))
        return {
            "entry": child.name,
            "problem": f"unexpected file at the batch root "
            f"(allowed: {allowed} and patient folders)",
        }
    name_issue = name_problem(child.name)
    if name_issue is not None:
        return {"entry": escaped(child.name) + "/", "problem": f"patient folder name {name_issue}"}
    has_files = any(p.is_file() for p in child.rglob("*"))
    return {"entry": child.name + "/", "problem": None if has_files else "empty patient folder"}


def batch_validation_table(
    batch_id: str, slices: pd.DataFrame, patients: pd.DataFrame, source: str
) -> pd.DataFrame:
    """Return a one-row table: batch_id, source, n_slices, n_patients_with_images."""
    with_images = int((patients["n_slices"] > 0).sum()) if len(patients) else 0
    return pd.DataFrame(
        [
            {
                "batch_id": batch_id,
                "source": source,
                "n_slices": len(slices),
                "n_patients_with_images": with_images,
            }
        ]
    )
