"""The real COVID-CTset roster: one row per image listed in ``all.csv``, joined to its patient.

Source: the published metadata of COVID-CTset (Rahimzadeh et al., Biomedical Signal Processing
and Control 2021, doi:10.1016/j.bspc.2021.102588), ``../shared/data/covid-ctset/``: ``all.csv``
(``filename,class``; the 12,058 images selected for training and testing) and
``Patient_details.csv`` (377 patients).

File names follow ``<group>_<patient>_<SR_n>_IM<nnnnn>.tif``, e.g.
``137covid_patient1_SR_2_IM00010.tif``: ``group`` is the dataset folder the image was published
in (``137covid``, ``157covid``, ``normal1``..``normal5``, ``normalcd1``..``normalcd3``,
``cdnormal4``, ``cdunnormal``), ``patient`` the patient id, ``SR_n`` the breath-hold series.

What the files show (checked on the published files, 2026-11-30):

* All 12,058 names parse with the pattern above; names are unique. Line endings are CRLF.
* Patient ids are global, not per group: ``patient1`` .. ``patient434`` with gaps, 377 distinct
  ids, exactly the 377 rows of ``Patient_details.csv`` (every detail row has images and every
  image's patient has a detail row). Ids 1-145 are the 95 Positive patients (covid groups),
  146-434 the 282 Negative ones. ``class`` agrees with the patient's ``COVID-19 Infection`` on
  every row (covid <-> Positive, normal <-> Negative).
* 78 Negative patients appear in two normal groups (66 in normal1 and normal4, 11 in normal1 and
  normal5, 1 in normal1 and normal2) with identical series and instance numbers: the same
  images published twice under two folder names. 2,125 rows are such second copies; without
  them the roster holds 9,933 distinct images (2,282 covid, 7,651 normal). The ``duplicate``
  column marks the second copy (file order), and ``drop_duplicates=True`` removes it. Grouping
  must use the patient id (``patient_key``), never the group: the group would split a patient.
* ``patient22`` SR_3 lists IM00027, IM00028, IM05055, IM05056: instance numbers far outside the
  rest of the roster (all others are <= 500). Kept as published.
* Series: every patient has SR_2 images; 81 have SR_3 and 68 have SR_4 images (the selection
  kept only open-lung slices, so these counts are smaller than the raw 63,849-image set).
* ``Patient_details.csv`` leaves some thicknesses empty; patient78 and patient83 have SR_2
  images but no SR_2 thickness (``thickness_mm`` is NaN there).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from covidct import schema
from covidct.batch.contract import read_patient_details

logger = logging.getLogger(__name__)

#: Pattern of an ``all.csv`` file name; named groups become roster columns.
FILENAME_PATTERN = (
    r"^(?P<group>[A-Za-z0-9]+)_(?P<patient_id>patient\d+)_"
    r"(?P<series>SR_\d+)_IM(?P<instance>\d+)\.tif$"
)
ALL_CSV = "all.csv"
ROSTER_COLUMNS: tuple[str, ...] = (
    "filename",
    "patient_id",
    "patient_key",
    "group",
    "series",
    "instance",
    "class",
    "label",
    "sex",
    "age",
    "thickness_mm",
    "duplicate",
)


class RosterError(ValueError):
    """The roster files disagree with the published COVID-CTset layout; names the file."""


def default_roster_dir() -> Path:
    """Return ``../shared/data/covid-ctset`` beside the repository checkout holding this package.

    Raises FileNotFoundError when it is not there (an installed package has no checkout beside
    it): pass the folder explicitly instead.
    """
    folder = Path(__file__).resolve().parents[3] / "shared" / "data" / "covid-ctset"
    if not (folder / ALL_CSV).is_file() or not (folder / schema.PATIENT_DETAILS).is_file():
        raise FileNotFoundError(
            f"COVID-CTset roster not found in {folder} (expected {ALL_CSV} and "
            f"{schema.PATIENT_DETAILS}); pass the folder explicitly"
        )
    return folder


def load_default_roster(roster_dir: str | Path | None = None) -> pd.DataFrame:
    """Load the roster from ``roster_dir`` (default :func:`default_roster_dir`)."""
    folder = Path(roster_dir) if roster_dir is not None else default_roster_dir()
    return load_roster(folder / ALL_CSV, folder / schema.PATIENT_DETAILS)


def parse_filenames(all_csv: str | Path, names: pd.Series) -> pd.DataFrame:
    """Split ``all.csv`` file names into group, patient_id, series and instance (int64).

    Raises RosterError naming ``all_csv`` and up to five offending names if any name does not
    match :data:`FILENAME_PATTERN`.
    """
    parts = names.str.extract(FILENAME_PATTERN)
    bad = names[parts.isna().any(axis=1)]
    if len(bad):
        raise RosterError(
            f"{all_csv}: {len(bad)} file names do not match <group>_<patient>_<SR_n>_IM<n>.tif, "
            f"e.g. {list(bad)[:5]}"
        )
    parts["instance"] = parts["instance"].astype("int64")
    return parts


def _read_all_csv(all_csv: Path) -> pd.DataFrame:
    frame = pd.read_csv(all_csv, dtype=str)
    if list(frame.columns) != ["filename", "class"]:
        raise RosterError(f"{all_csv}: expected columns ['filename', 'class'], got {list(frame)}")
    unknown = sorted(set(frame["class"]) - set(schema.CLASS_NAMES))
    if unknown:
        raise RosterError(
            f"{all_csv}: unknown classes {unknown}; valid: {list(schema.CLASS_NAMES)}"
        )
    if frame["filename"].duplicated().any():
        raise RosterError(f"{all_csv}: file names listed twice, e.g. {_first_duplicates(frame)}")
    return frame


def _first_duplicates(frame: pd.DataFrame) -> list[str]:
    return list(frame.loc[frame["filename"].duplicated(), "filename"])[:5]


def _series_thickness(details: pd.DataFrame) -> pd.DataFrame:
    """Long table (patient_id, series, thickness_mm) from the ``SR_n Folder thickness(mm)``."""
    columns = {f"{series} Folder thickness(mm)": series for series in schema.SERIES}
    long = details.melt(
        id_vars=[schema.PATIENT_COLUMN],
        value_vars=list(columns),
        var_name="series",
        value_name="thickness_mm",
    )
    long["series"] = long["series"].map(columns)
    return long.rename(columns={schema.PATIENT_COLUMN: "patient_id"})


def _check_labels(all_csv: Path, details_csv: Path, roster: pd.DataFrame) -> None:
    missing = sorted(set(roster.loc[roster["label"].isna(), "patient_id"]))
    if missing:
        raise RosterError(f"{all_csv}: patients absent from {details_csv}: {missing[:10]}")
    expected = roster["label"].map(schema.LABEL_TO_CLASS)
    wrong = roster.loc[expected != roster["class"], "filename"]
    if len(wrong):
        raise RosterError(
            f"{all_csv}: {len(wrong)} images whose class disagrees with the patient's "
            f"{schema.LABEL_COLUMN!r} in {details_csv}, e.g. {list(wrong)[:5]}"
        )


def load_roster(
    all_csv: str | Path, patient_details_csv: str | Path, *, drop_duplicates: bool = False
) -> pd.DataFrame:
    """Load the COVID-CTset roster: one row per image of ``all.csv`` (file order kept).

    Columns (:data:`ROSTER_COLUMNS`): ``filename``; ``patient_id`` (e.g. ``patient1``);
    ``patient_key`` (``negin/patient1``, ``schema.patient_key`` with ``schema.DEFAULT_SOURCE``);
    ``group`` (e.g. ``137covid``); ``series`` (``SR_2``..``SR_4``); ``instance`` (int64, the
    IMnnnnn number); ``class`` (``covid``/``normal``); ``label`` (``Positive``/``Negative`` from
    ``Patient_details.csv``); ``sex`` and ``age`` (the patient's ``SEX`` and ``AGE`` as published,
    e.g. ``F`` and ``053Y``, a DICOM Age String; NaN when empty); ``thickness_mm`` (float64, the
    series' folder thickness, NaN when unknown); ``duplicate`` (bool: the same patient, series
    and instance appeared on an earlier row under another group; see the module docstring).
    ``drop_duplicates=True`` removes those.

    Raises RosterError (a ValueError) naming the file when a name does not parse, a class is
    unknown, a patient has no detail row, or class and label disagree; PatientDetailsError when
    ``patient_details_csv`` is malformed.
    """
    all_csv, patient_details_csv = Path(all_csv), Path(patient_details_csv)
    images = _read_all_csv(all_csv)
    images = pd.concat([images, parse_filenames(all_csv, images["filename"])], axis=1)
    details = read_patient_details(patient_details_csv)
    labels = details[[schema.PATIENT_COLUMN, schema.LABEL_COLUMN, "SEX", "AGE"]].rename(
        columns={
            schema.PATIENT_COLUMN: "patient_id",
            schema.LABEL_COLUMN: "label",
            "SEX": "sex",
            "AGE": "age",
        }
    )
    roster = images.merge(labels, on="patient_id", how="left", validate="many_to_one")
    _check_labels(all_csv, patient_details_csv, roster)
    roster = roster.merge(_series_thickness(details), on=["patient_id", "series"], how="left")
    roster["patient_key"] = [
        schema.patient_key(schema.DEFAULT_SOURCE, p) for p in roster["patient_id"]
    ]
    roster["duplicate"] = roster.duplicated(["patient_id", "series", "instance"], keep="first")
    n_duplicates = int(roster["duplicate"].sum())
    if n_duplicates:
        logger.info(
            "%s: %d rows repeat an image already listed under another group", all_csv, n_duplicates
        )
    if drop_duplicates:
        roster = roster.loc[~roster["duplicate"]]
    return roster.loc[:, list(ROSTER_COLUMNS)].reset_index(drop=True)


def series_counts(roster: pd.DataFrame) -> pd.DataFrame:
    """Distinct images per patient and series: columns patient_id, label, series, slices (int64).

    Duplicated rows (the same image under two groups) count once.
    """
    distinct = roster.loc[~roster["duplicate"]]
    counts = (
        distinct.groupby(["patient_id", "label", "series"], observed=True)["instance"]
        .nunique()
        .rename("slices")
        .reset_index()
    )
    counts["slices"] = counts["slices"].astype("int64")
    return counts
