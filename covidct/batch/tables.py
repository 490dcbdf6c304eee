"""The four tables batch validation judges, derived from the manifest: slices, patients (against
``Patient_details.csv``), the batch (``batch.json``) and the layout (every file's path and name).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from covidct import schema
from covidct.batch.checks import (
    THICKNESS_COLUMNS,
)
from covidct.batch.contract import (
    InputLimitError,
    batch_source,
    field_problems,
    name_problem,
    parse_thickness,
    read_batch_info,
    read_patient_details_text,
)
from covidct.batch.files import escaped, scan_batch
from covidct.batch.manifest import ROOT_FILES

# ------------------------------------------------------------------------------- the tables


def slice_table(manifest: pd.DataFrame, known_hashes: Mapping[str, str]) -> pd.DataFrame:
    """Return the manifest plus ``earlier_patient``: the patient key of an earlier batch that
    sent the same sha256 (None when new)."""
    table = manifest.reset_index(drop=True).copy()
    table["earlier_patient"] = [known_hashes.get(h) if h else None for h in table["sha256"]]
    return table


def details_or_empty(batch_dir: Path) -> pd.DataFrame:
    """``Patient_details.csv`` of ``batch_dir`` as text (:func:`read_patient_details_text`),
    or an empty table with its columns when the file is absent or unreadable (validation then
    reports every patient as missing its row)."""
    try:
        return read_patient_details_text(batch_dir)
    except (FileNotFoundError, ValueError):
        return pd.DataFrame(columns=list(schema.PATIENT_DETAILS_COLUMNS))


def _expected_series(row: Mapping[str, Any] | None) -> set[str] | None:
    """Series with a stated thickness; None when the row states none (then any is fine)."""
    if row is None:
        return None
    stated = {s for s, column in THICKNESS_COLUMNS.items() if _stated(row.get(column))}
    return stated or None


def _stated(cell: object) -> bool:
    """A thickness cell states its series unless empty (:func:`parse_thickness`); an invalid
    cell states it too (and is a field problem of its own)."""
    try:
        return parse_thickness(cell) is not None
    except ValueError:
        return True


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


def layout_table(
    batch_dir: Path, *, source: str = schema.DEFAULT_SOURCE, known_patients: Iterable[str] = ()
) -> pd.DataFrame:
    """Return one row per entry at the batch root (plus missing required files).

    Columns: entry (name, "/" appended to folders), problem (None when the entry is fine),
    over_limit (None, or why ``Patient_details.csv`` or ``batch.json`` was refused unread:
    :class:`covidct.batch.contract.InputLimitError`). Every symbolic link, hard link or special
    file anywhere in the batch is a row of its own (path escaped, reason from
    :func:`covidct.batch.files.scan_batch`); so is every path whose folder or file name breaks
    :data:`covidct.batch.contract.NAME_PATTERN`, and every patient id that differs only by case
    from another of the batch or from a ``known_patients`` key (``<source>/<id>``).
    """
    scan = scan_batch(batch_dir)
    entries = [_details_entry(batch_dir), *_info_entry(batch_dir)]
    entries += [{"entry": escaped(name), "problem": reason} for name, reason in scan.refused]
    refused_names = {name for name, _ in scan.refused}
    for child in sorted(batch_dir.iterdir()):
        if child.name in refused_names or (child.name in ROOT_FILES and child.is_file()):
            continue
        entries.append(_root_entry(child))
    entries += _file_name_entries(scan.files)
    entries += _case_entries(batch_dir, source, known_patients)
    return pd.DataFrame(entries, columns=["entry", "problem", "over_limit"])


def _details_entry(batch_dir: Path) -> dict[str, Any]:
    try:
        details = read_patient_details_text(batch_dir)
    except InputLimitError as error:
        return {"entry": schema.PATIENT_DETAILS, "over_limit": _relative(error, batch_dir)}
    except (FileNotFoundError, ValueError) as error:
        return {"entry": schema.PATIENT_DETAILS, "problem": _relative(error, batch_dir)}
    problems = []
    for record in details.to_dict("records"):
        row = {str(column): str(value) for column, value in record.items()}
        pid = row[schema.PATIENT_COLUMN]
        why = name_problem(pid) if pid else None
        if why:
            problems.append(f"Patient ID '{escaped(pid)}' {why}")
        problems += [f"patient '{escaped(pid)}': {p}" for p in field_problems(row)]
    return {"entry": schema.PATIENT_DETAILS, "problem": "; ".join(problems[:20]) or None}


def _relative(error: Exception, batch_dir: Path) -> str:
    return str(error).replace(str(batch_dir) + "/", "")


def _info_entry(batch_dir: Path) -> list[dict[str, Any]]:
    if not (batch_dir / schema.BATCH_INFO).exists():
        return []
    try:
        read_batch_info(batch_dir)
        batch_source(batch_dir)
    except InputLimitError as error:
        return [{"entry": schema.BATCH_INFO, "over_limit": _relative(error, batch_dir)}]
    except ValueError as error:
        return [{"entry": schema.BATCH_INFO, "problem": _relative(error, batch_dir)}]
    return [{"entry": schema.BATCH_INFO, "problem": None}]


def _root_entry(child: Path) -> dict[str, Any]:
    if not child.is_dir():
        allowed = ", ".join(sorted(ROOT_FILES))
        return {
            "entry": escaped(child.name),
            "problem": f"unexpected file at the batch root "
            f"(allowed: {allowed} and patient folders)",
        }
    name_issue = name_problem(child.name)
    if name_issue is not None:
        return {"entry": escaped(child.name) + "/", "problem": f"patient folder name {name_issue}"}
    has_files = any(p.is_file() for p in child.rglob("*"))
    return {"entry": child.name + "/", "problem": None if has_files else "empty patient folder"}


def _file_name_entries(files: Iterable[str]) -> list[dict[str, Any]]:
    """A row per file below a patient folder whose series folder or file name breaks the
    pattern (the patient folder itself is judged by :func:`_root_entry`)."""
    rows = []
    for path in files:
        for part in path.split("/")[1:]:
            why = name_problem(part)
            if why is not None:
                rows.append({"entry": escaped(path), "problem": f"name '{escaped(part)}' {why}"})
                break
    return rows


def _case_entries(
    batch_dir: Path, source: str, known_patients: Iterable[str]
) -> list[dict[str, Any]]:
    """A row per patient id (folder or ``Patient ID``) equal, ignoring case, to another id of
    the batch or to a known patient key of the same source, without being the same id."""
    ids = {p.name for p in batch_dir.iterdir() if p.is_dir() and not p.is_symlink()}
    ids |= {str(pid) for pid in details_or_empty(batch_dir)[schema.PATIENT_COLUMN] if pid}
    known: dict[str, str] = {}
    for key in known_patients:
        known.setdefault(key.casefold(), key)
    by_fold: dict[str, set[str]] = {}
    for pid in ids:
        by_fold.setdefault(pid.casefold(), set()).add(pid)
    rows = []
    for pid in sorted(ids):
        others = sorted(by_fold[pid.casefold()] - {pid})
        key = schema.patient_key(source, pid)
        earlier = known.get(key.casefold())
        if others:
            shown = ", ".join(f"'{escaped(o)}'" for o in others)
            rows.append({"entry": escaped(pid), "problem": f"differs only by case from {shown}"})
        elif earlier is not None and earlier != key:
            problem = f"differs only by case from the known patient '{escaped(earlier)}'"
            rows.append({"entry": escaped(pid), "problem": problem})
    return rows


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
