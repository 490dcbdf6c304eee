"""``covidct folds``: assign the folds of a COVID-CTset-style roster (the published patient lists)
from the command line and write the fold manifests and the protocol table.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from covidct.data.fold_manifests import manifest_digest, protocol_table, write_fold_manifests
from covidct.data.folds import (
    FILENAME_COLUMN,
    LABEL,
    PATIENT_ID_COLUMN,
    PATIENT_KEY_COLUMN,
    assign_folds,
)
from covidct.schema import (
    DEFAULT_SOURCE,
    LABEL_COLUMN,
    LABEL_TO_CLASS,
    PATIENT_COLUMN,
    Label,
    patient_key,
)

logger = logging.getLogger(__name__)

_ROSTER_PATTERN = (
    r"^(?P<group>[A-Za-z0-9]+)_(?P<patient_id>[^_]+)_(?P<series>SR_\d+)_(?P<image>IM\d+)\.tif$"
)


@dataclass(frozen=True)
class _Roster:
    slices: pd.DataFrame
    n_rows: int
    duplicate_rows: int
    duplicate_patients: int


def _read_ctset_roster(
    roster_csv: Path, labels_csv: Path, *, source: str = DEFAULT_SOURCE
) -> _Roster:
    """Read COVID-CTset ``all.csv`` and ``Patient_details.csv`` into a slice table.

    Returns columns ``filename, group, patient_id, series, image, class, patient_key, label``,
    one row per distinct (patient, series, image): see the module docstring for why duplicates
    under two archive groups are dropped. Raises ValueError naming the file and the offending
    rows or patients (bad filename, patient without details, class contradicting the label).
    """
    roster = pd.read_csv(roster_csv, dtype=str)
    if FILENAME_COLUMN not in roster.columns:
        raise ValueError(f"{roster_csv}: no {FILENAME_COLUMN!r} column; has {list(roster.columns)}")
    parts = roster[FILENAME_COLUMN].str.extract(_ROSTER_PATTERN)
    bad = parts["patient_id"].isna()
    if bad.any():
        rows = np.flatnonzero(bad.to_numpy())[:5]
        lines = [f"line {r + 2}: {roster[FILENAME_COLUMN].iloc[r]}" for r in rows]
        raise ValueError(
            f"{roster_csv}: filename(s) not <group>_<patient>_<SR_n>_<IMn>.tif: {lines}"
        )
    slices = pd.concat([roster, parts.rename(columns={"patient_id": PATIENT_ID_COLUMN})], axis=1)
    slices[LABEL] = _labels_for(slices, roster_csv, labels_csv)
    slices[PATIENT_KEY_COLUMN] = [patient_key(source, p) for p in slices[PATIENT_ID_COLUMN]]
    slices = slices.sort_values(FILENAME_COLUMN, kind="stable")
    duplicated = slices.duplicated([PATIENT_ID_COLUMN, "series", "image"])
    n_dup_patients = slices.loc[duplicated, PATIENT_ID_COLUMN].nunique()
    if duplicated.any():
        logger.warning(
            "%s: dropped %d rows that repeat a (patient, series, image) under a second group "
            "(%d patients)",
            roster_csv,
            int(duplicated.sum()),
            n_dup_patients,
        )
    kept = slices[~duplicated].reset_index(drop=True)
    return _Roster(kept, len(roster), int(duplicated.sum()), int(n_dup_patients))


def _labels_for(slices: pd.DataFrame, roster_csv: Path, labels_csv: Path) -> pd.Series:
    """Label of each slice from ``Patient_details.csv``; checked against the roster's class."""
    details = pd.read_csv(labels_csv, dtype=str)
    missing = [c for c in (PATIENT_COLUMN, LABEL_COLUMN) if c not in details.columns]
    if missing:
        raise ValueError(f"{labels_csv}: missing column(s) {missing}")
    if details[PATIENT_COLUMN].duplicated().any():
        twice = sorted(set(details.loc[details[PATIENT_COLUMN].duplicated(), PATIENT_COLUMN]))
        raise ValueError(f"{labels_csv}: patient(s) listed twice: {twice[:10]}")
    label = slices[PATIENT_ID_COLUMN].map(details.set_index(PATIENT_COLUMN)[LABEL_COLUMN])
    unknown = sorted(set(slices.loc[label.isna(), PATIENT_ID_COLUMN]))
    if unknown:
        raise ValueError(f"{roster_csv}: patient(s) {unknown[:10]} not in {labels_csv}")
    if "class" in slices.columns:
        wrong = label.map(LABEL_TO_CLASS) != slices["class"]
        if wrong.any():
            who = sorted(set(slices.loc[wrong, PATIENT_ID_COLUMN]))[:10]
            raise ValueError(f"{roster_csv}: class contradicts {labels_csv} for patient(s) {who}")
    return label


def run_folds_command(roster_csv: Path, labels_csv: Path, k: int, seed: int, out_dir: Path) -> str:
    """Build folds of a COVID-CTset-style roster, write ``out_dir/fold-<i>.csv``, return a report.

    ``roster_csv``: ``filename,class`` (``all.csv``); ``labels_csv``: ``Patient_details.csv``.
    The returned text (for the CLI to print) has a roster summary, the :func:`protocol_table`
    and each manifest's path, rows and digest. Raises what :func:`_read_ctset_roster` and
    :func:`assign_folds` raise.
    """
    roster = _read_ctset_roster(roster_csv, labels_csv)
    assignment = assign_folds(roster.slices, k=k, seed=seed)
    paths = write_fold_manifests(assignment, out_dir)
    patients = assignment.patients
    n_covid = int((patients[LABEL] == Label.POSITIVE.value).sum())
    lines = [
        f"roster {roster_csv}: {roster.n_rows} rows; dropped {roster.duplicate_rows} rows that "
        f"repeat a (patient, series, image) of {roster.duplicate_patients} patients",
        f"{len(roster.slices)} slices of {len(patients)} patients "
        f"({n_covid} COVID, {len(patients) - n_covid} normal); k={k}, seed={seed}",
        "",
        protocol_table(assignment).to_string(index=False),
        "",
    ]
    for path in paths:
        manifest = pd.read_csv(path, dtype={PATIENT_ID_COLUMN: str})
        lines.append(f"{path}  rows={len(manifest)}  digest={manifest_digest(manifest)}")
    return "\n".join(lines)
