"""Tests for covidct.batch.roster on the real COVID-CTset roster and on small hand-made ones."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

from covidct import schema
from covidct.batch.contract import write_patient_details
from covidct.batch.roster import (
    ALL_CSV,
    ROSTER_COLUMNS,
    RosterError,
    default_roster_dir,
    load_default_roster,
    load_roster,
    parse_filenames,
    series_counts,
)

ROSTER_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "covid-ctset"


@pytest.fixture(scope="module")
def roster() -> pd.DataFrame:
    return load_roster(ROSTER_DIR / ALL_CSV, ROSTER_DIR / schema.PATIENT_DETAILS)


@pytest.fixture(scope="module")
def raw_rows() -> list[dict[str, str]]:
    with (ROSTER_DIR / ALL_CSV).open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize(
    ("name", "group", "patient", "series", "instance"),
    [
        ("137covid_patient1_SR_2_IM00010.tif", "137covid", "patient1", "SR_2", 10),
        ("normalcd3_patient430_SR_4_IM00123.tif", "normalcd3", "patient430", "SR_4", 123),
        ("137covid_patient22_SR_3_IM05056.tif", "137covid", "patient22", "SR_3", 5056),
        ("cdunnormal_patient151_SR_3_IM00001.tif", "cdunnormal", "patient151", "SR_3", 1),
    ],
)
def test_parse_filenames(name: str, group: str, patient: str, series: str, instance: int) -> None:
    parts = parse_filenames("all.csv", pd.Series([name]))
    assert parts.iloc[0].to_dict() == {
        "group": group,
        "patient_id": patient,
        "series": series,
        "instance": instance,
    }


@pytest.mark.parametrize(
    "name",
    [
        "patient1_SR_2_IM00010.tif",
        "137covid_patient1_SR_2_IM00010.png",
        "137covid_p1_SR_2_IM00010.tif",
        "137covid_patient1_SR2_IM00010.tif",
        "137covid_patient1_SR_2_00010.tif",
    ],
)
def test_parse_filenames_refuses_other_names(name: str) -> None:
    with pytest.raises(RosterError, match="all.csv: 1 file names") as caught:
        parse_filenames("all.csv", pd.Series(["137covid_patient1_SR_2_IM00010.tif", name]))
    assert name in str(caught.value)


def test_every_real_row_parses_and_joins_its_patient(
    roster: pd.DataFrame, raw_rows: list[dict[str, str]]
) -> None:
    assert tuple(roster.columns) == ROSTER_COLUMNS
    assert list(roster["filename"]) == [row["filename"] for row in raw_rows]
    assert list(roster["class"]) == [row["class"] for row in raw_rows]
    assert roster.notna().drop(columns="thickness_mm").all().all()
    rebuilt = (
        roster["group"]
        + "_"
        + roster["patient_id"]
        + "_"
        + roster["series"]
        + "_IM"
        + roster["instance"].map("{:05d}".format)
        + ".tif"
    )
    assert (rebuilt == roster["filename"]).all()
    assert set(roster["series"]) <= set(schema.SERIES)


def test_patient_ids_are_global_and_match_patient_details(roster: pd.DataFrame) -> None:
    details = pd.read_csv(ROSTER_DIR / schema.PATIENT_DETAILS, dtype=str)
    assert set(roster["patient_id"]) == set(details["Patient ID"])
    label_of = dict(zip(details["Patient ID"], details["COVID-19 Infection"], strict=True))
    assert (roster["label"] == roster["patient_id"].map(label_of)).all()
    assert (roster["class"] == roster["label"].map(schema.LABEL_TO_CLASS)).all()
    for column, attribute in (("SEX", "sex"), ("AGE", "age")):
        published = dict(zip(details["Patient ID"], details[column], strict=True))
        assert (roster[attribute] == roster["patient_id"].map(published)).all()
    assert set(roster["sex"]) == {"F", "M"}
    keys = roster["patient_key"]
    assert (keys == schema.DEFAULT_SOURCE + "/" + roster["patient_id"]).all()
    # a patient found in two groups has one label: ids are not per group
    groups = roster.groupby("patient_id")["group"].nunique()
    shared = groups[groups > 1].index
    assert len(shared) > 0
    assert (
        roster[roster["patient_id"].isin(shared)].groupby("patient_id")["label"].nunique() == 1
    ).all()


def test_duplicates_are_the_same_image_under_another_group(roster: pd.DataFrame) -> None:
    key = ["patient_id", "series", "instance"]
    duplicates = roster[roster["duplicate"]]
    assert len(duplicates) > 0
    firsts = roster[~roster["duplicate"]].set_index(key)
    columns = [*key, "group", "class"]
    for patient, series, instance, group, class_name in duplicates[columns].itertuples(
        index=False, name=None
    ):
        first = firsts.loc[(patient, series, instance)]
        assert first["group"] != group
        assert first["class"] == class_name
    distinct = load_roster(
        ROSTER_DIR / ALL_CSV, ROSTER_DIR / schema.PATIENT_DETAILS, drop_duplicates=True
    )
    assert not distinct.duplicated(key).any()
    assert len(distinct) == len(roster) - len(duplicates)
    assert set(distinct["patient_id"]) == set(roster["patient_id"])


def test_series_counts_count_each_image_once(roster: pd.DataFrame) -> None:
    counts = series_counts(roster)
    distinct = roster.drop_duplicates(["patient_id", "series", "instance"])
    expected = distinct.groupby(["patient_id", "series"]).size()
    got = counts.set_index(["patient_id", "series"])["slices"]
    pd.testing.assert_series_equal(got.sort_index(), expected.sort_index(), check_names=False)
    assert counts["slices"].sum() == len(distinct)


def test_thickness_comes_from_the_patients_series_column(roster: pd.DataFrame) -> None:
    details = pd.read_csv(ROSTER_DIR / schema.PATIENT_DETAILS)
    details = details.set_index("Patient ID")
    sample = roster.drop_duplicates(["patient_id", "series"])
    for row in sample.itertuples():
        expected = details.loc[row.patient_id, f"{row.series} Folder thickness(mm)"]
        assert (pd.isna(expected) and pd.isna(row.thickness_mm)) or expected == row.thickness_mm


def test_default_roster_dir_is_the_shared_data() -> None:
    assert default_roster_dir().resolve() == ROSTER_DIR.resolve()
    assert len(load_default_roster()) == len(load_default_roster(ROSTER_DIR))


def _write_roster(folder: Path, images: list[tuple[str, str]], labels: dict[str, str]) -> None:
    with (folder / ALL_CSV).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "class"])
        writer.writerows(images)
    write_patient_details(
        folder / schema.PATIENT_DETAILS,
        [{"Patient ID": p, "COVID-19 Infection": label} for p, label in labels.items()],
    )


@pytest.mark.parametrize(
    ("images", "labels", "reason"),
    [
        (
            [("137covid_patient1_SR_2_IM00010.tif", "normal")],
            {"patient1": "Positive"},
            "class disagrees",
        ),
        (
            [("137covid_patient1_SR_2_IM00010.tif", "covid")],
            {"patient2": "Positive"},
            "absent from",
        ),
        (
            [("137covid_patient1_SR_2_IM00010.tif", "COVID")],
            {"patient1": "Positive"},
            "unknown classes",
        ),
        (
            [("137covid_patient1_SR_2_IM00010.tif", "covid")] * 2,
            {"patient1": "Positive"},
            "listed twice",
        ),
        ([("covid_patient1.tif", "covid")], {"patient1": "Positive"}, "do not match"),
    ],
    ids=["class-vs-label", "no-details-row", "unknown-class", "repeated-name", "bad-name"],
)
def test_inconsistent_rosters_are_refused(
    tmp_path: Path, images: list, labels: dict, reason: str
) -> None:
    _write_roster(tmp_path, images, labels)
    with pytest.raises(RosterError, match=reason) as caught:
        load_default_roster(tmp_path)
    assert str(tmp_path / ALL_CSV) in str(caught.value)


def test_small_roster_with_a_duplicate(tmp_path: Path) -> None:
    images = [
        ("normal1_patient200_SR_2_IM00011.tif", "normal"),
        ("normal4_patient200_SR_2_IM00011.tif", "normal"),
        ("normal4_patient200_SR_2_IM00012.tif", "normal"),
        ("137covid_patient3_SR_3_IM00002.tif", "covid"),
    ]
    _write_roster(tmp_path, images, {"patient200": "Negative", "patient3": "Positive"})
    roster = load_default_roster(tmp_path)
    assert roster["duplicate"].tolist() == [False, True, False, False]
    counts = series_counts(roster).set_index(["patient_id", "series"])["slices"].to_dict()
    assert counts == {("patient200", "SR_2"): 2, ("patient3", "SR_3"): 1}
    assert roster["thickness_mm"].isna().all()
