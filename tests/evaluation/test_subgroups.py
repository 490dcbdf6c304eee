"""Subgroup performance table (covidct.evaluation.subgroups) on simulated and on the published
roster."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import subgroup_sim as sim

from covidct import schema
from covidct.batch import roster as published
from covidct.batch.contract import read_patient_details, write_batch_info, write_patient_details
from covidct.evaluation.subgroups import (
    TABLE_COLUMNS,
    UNKNOWN,
    age_band,
    age_band_labels,
    annotate,
    batch_roster,
    parse_age,
    patient_roster,
    subgroup_table,
)


def _hits(patient: dict[str, object]) -> int:
    return 8 if patient["sex"] == "M" else 5 + int(str(patient["id"])[1:]) % 3


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return subgroup_table(
        sim.predictions(_hits), patient_roster(sim.details()), min_patients=20, n_boot=200
    )


def _row(table: pd.DataFrame, axis: str, subgroup: str, unit: str, metric: str) -> pd.Series:
    found = table[
        (table["axis"] == axis)
        & (table["subgroup"] == subgroup)
        & (table["unit"] == unit)
        & (table["metric"] == metric)
    ]
    assert len(found) == 1, (axis, subgroup, unit, metric)
    return found.iloc[0]


def test_table_is_tidy_with_every_axis_and_level(table: pd.DataFrame) -> None:
    assert tuple(table.columns) == TABLE_COLUMNS
    levels = table.groupby("axis", sort=False)["subgroup"].unique().map(list).to_dict()
    assert levels == {
        "all": ["all"],
        "sex": ["F", "M"],
        "age_band": ["<40", "40-59", "60+"],
        "series": ["SR_2", "SR_3"],
        "slice_thickness": ["1.5 mm", "5 mm"],
        "source": ["negin"],
    }
    assert len(table) == 11 * 2 * 3  # subgroups x units x metrics
    defined = table.dropna(subset=["point"])
    assert (defined["low"] <= defined["point"] + 1e-12).all()
    assert (defined["point"] <= defined["high"] + 1e-12).all()


def test_point_estimates_follow_the_definitions(table: pd.DataFrame) -> None:
    people = [p for p in sim.patients() if p["covid"] and p["sex"] == "F"]
    hits = sum(_hits(p) for p in people)
    expected = hits / (10 * len(people))  # sensitivity = TP / (TP + FN), eq. 3
    got = _row(table, "sex", "F", "image", "covid_sensitivity")
    assert got["point"] == pytest.approx(expected)
    assert got["n_patients"] == 40 and got["n_covid_patients"] == len(people) == 20
    assert got["n_images"] == 400
    # patient level: a patient is COVID when more than 0.3 of its slices are; F patients have 5-7
    assert _row(table, "sex", "F", "patient", "covid_sensitivity")["point"] == 1.0
    specificity = _row(table, "all", "all", "image", "covid_specificity")
    assert specificity["point"] == 1.0
    balanced = _row(table, "sex", "M", "image", "balanced_accuracy")["point"]
    assert balanced == pytest.approx((0.8 + 1.0) / 2)


def test_series_subgroups_hold_that_series_slices_only(table: pd.DataFrame) -> None:
    predictions = sim.predictions(_hits)
    sr3 = predictions[(predictions["series"] == "SR_3") & (predictions["y_true"] == "covid")]
    got = _row(table, "series", "SR_3", "image", "covid_sensitivity")
    assert got["point"] == pytest.approx(float((sr3["p_covid"] > 0.5).mean()))
    assert got["n_images"] == 400
    same = _row(table, "slice_thickness", "1.5 mm", "image", "covid_sensitivity")
    assert same["point"] == got["point"]


def test_small_subgroups_are_flagged_not_hidden(table: pd.DataFrame) -> None:
    old = table[table["subgroup"] == "60+"]
    assert len(old) == 6 and old["below_min_size"].all()
    assert (old["n_patients"] == len(sim.OLD)).all()
    assert not table.loc[table["subgroup"] != "60+", "below_min_size"].any()


def test_unknown_attributes_are_their_own_subgroup() -> None:
    roster = patient_roster(sim.details())
    roster = roster[roster["patient_id"] != "negin/p3"]
    predictions = sim.predictions(_hits).drop(columns="series")
    annotated = annotate(predictions, roster)
    p3 = annotated[annotated["patient_id"] == "negin/p3"].iloc[0]
    assert (p3["sex"], p3["age_band"], p3["slice_thickness"]) == (UNKNOWN,) * 3
    assert p3["source"] == "negin"  # from the patient key
    assert set(annotated["series"]) == {UNKNOWN}
    table = subgroup_table(predictions, roster, n_boot=50)
    sexes = table.loc[table["axis"] == "sex", "subgroup"].unique().tolist()
    assert sexes == ["F", "M", UNKNOWN]
    bare = annotate(sim.predictions(_hits))  # no roster at all
    assert set(bare["sex"]) == set(bare["age_band"]) == set(bare["slice_thickness"]) == {UNKNOWN}
    assert set(bare["series"]) == {"SR_2", "SR_3"} and set(bare["source"]) == {"negin"}


def test_batch_roster_reads_the_batch_files(tmp_path: Path) -> None:
    write_patient_details(tmp_path / schema.PATIENT_DETAILS, sim.details().to_dict("records"))
    write_batch_info(tmp_path, {"source": "ricord"})
    roster = batch_roster(tmp_path)
    assert len(roster) == 80 * len(schema.SERIES)
    first = roster.iloc[0]
    assert (first["patient_id"], first["source"], first["sex"]) == ("ricord/p0", "ricord", "F")
    assert first["age_years"] == sim.patients()[0]["age"]


def test_bad_input_names_the_problem() -> None:
    with pytest.raises(ValueError, match="p_covid"):
        subgroup_table(sim.predictions(_hits).drop(columns="p_covid"))
    with pytest.raises(ValueError, match="min_patients"):
        subgroup_table(sim.predictions(_hits), min_patients=0)
    with pytest.raises(ValueError, match="patient7: AGE '5 years'"):
        parse_age("5 years", patient="patient7")
    with pytest.raises(ValueError, match="strictly increasing"):
        age_band_labels((60, 40))


def test_age_strings_and_bands() -> None:
    assert parse_age("053Y") == 53.0
    assert parse_age("006M") == 0.5
    assert parse_age("012W") == pytest.approx(12 * 7 / 365.25)
    assert parse_age(71) == 71.0
    assert math.isnan(parse_age(float("nan")))
    assert age_band_labels((40, 60)) == ("<40", "40-59", "60+")
    assert [age_band(a) for a in (0.5, 39.9, 40, 59, 60, 82)] == [
        "<40", "<40", "40-59", "40-59", "60+", "60+",
    ]  # fmt: skip
    assert age_band(float("nan")) == UNKNOWN


def test_documented_age_bands_of_the_published_roster() -> None:
    details_csv = published.default_roster_dir() / schema.PATIENT_DETAILS
    roster = patient_roster(read_patient_details(details_csv))
    people = roster.drop_duplicates("patient_id")
    bands = people["age_years"].map(age_band).value_counts()
    assert bands.to_dict() == {"<40": 179, "40-59": 157, "60+": 41}  # module docstring
    assert set(people["sex"]) == {"F", "M"}
    assert np.isclose(roster["thickness_mm"].dropna().min(), 1.5)
