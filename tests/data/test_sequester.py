"""Sequestered patients: a stable, stratified rule on the patient key, locked and re-locked."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from covidct.data import sequester
from covidct.data.sequester import DEVELOPMENT, SEQUESTERED, SequesterRule, SequesterRuleChanged
from covidct.lake.backends import LocalStore


def _patients(
    count: int, covid_every: int = 4, source: str = "negin", start: int = 0
) -> pd.DataFrame:
    keys = [f"{source}/p{index:04d}" for index in range(start, start + count)]
    labels = [
        "Positive" if index % covid_every == 0 else "Negative"
        for index in range(start, start + count)
    ]
    return pd.DataFrame({"patient_key": keys, "label": labels, "source": source})


def _shares(table: pd.DataFrame) -> pd.Series:
    return table.groupby(["label", "source"])["role"].apply(lambda r: (r == SEQUESTERED).mean())


def test_first_batch_is_split_by_the_share_in_every_stratum() -> None:
    patients = pd.concat([_patients(377), _patients(60, source="tcia")], ignore_index=True)
    table = sequester.assign(patients, SequesterRule(share=0.2))
    counts = table.groupby(["label", "source"])["role"].agg(
        total="size", held=lambda r: int((r == SEQUESTERED).sum())
    )
    for (label, source), row in counts.iterrows():
        assert row["held"] == round(0.2 * row["total"]), (label, source)
    assert set(table["role"]) == {SEQUESTERED, DEVELOPMENT}


def test_assignment_depends_on_the_key_not_on_order_or_the_other_patients() -> None:
    patients = _patients(200)
    forward = sequester.assign(patients, SequesterRule())
    shuffled = sequester.assign(patients.sample(frac=1.0, random_state=7), SequesterRule())
    pd.testing.assert_frame_equal(forward, shuffled)
    other_salt = sequester.assign(patients, SequesterRule(salt="another"))
    assert not forward["role"].equals(other_salt["role"])


def test_later_batches_never_move_a_patient_and_keep_the_share() -> None:
    week1 = sequester.assign(_patients(100), SequesterRule(), run="week1")
    week2 = sequester.assign(
        pd.concat([_patients(100), _patients(60, start=100)]), SequesterRule(), week1, run="week2"
    )
    kept = week2.set_index("patient_key").loc[week1["patient_key"], "role"]
    assert kept.tolist() == week1["role"].tolist()
    newcomers = week2[week2["assigned_in"] == "week2"]
    assert len(newcomers) == 60 and (newcomers["role"] == SEQUESTERED).any()
    for share in _shares(week2):
        assert abs(share - 0.2) < 0.03


def test_lock_refuses_a_changed_rule_and_relock_is_audited(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "lake")
    manifest = _patients(50).assign(path=lambda f: f["patient_key"] + "/IM00001.tif")
    lock, table = sequester.update(store, manifest, SequesterRule(), dag_run_id="run-1")
    assert lock["epoch"] == 1 and lock["rule_digest"] == SequesterRule().digest()
    with pytest.raises(SequesterRuleChanged, match="covidct sequester relock --share 0.3"):
        sequester.update(store, manifest, SequesterRule(share=0.3), dag_run_id="run-2")
    with pytest.raises(ValueError, match="reason"):
        sequester.relock(store, SequesterRule(share=0.3), reason=" ", by="me")
    new = sequester.relock(store, SequesterRule(share=0.3), reason="more power", by="me")
    assert new["epoch"] == 2 and new["previous"]["epoch"] == 1
    audit = sorted(p.name for p in (tmp_path / "lake" / "sequestered" / "locks").iterdir())
    assert audit == ["epoch-0001.json", "epoch-0002.json"]
    assert (
        json.loads((tmp_path / "lake" / "sequestered" / "locks" / audit[1]).read_text())["reason"]
        == "more power"
    )
    _, again = sequester.update(store, manifest, SequesterRule(share=0.3), dag_run_id="run-3")
    assert (again["role"] == SEQUESTERED).sum() > (table["role"] == SEQUESTERED).sum()
    assert set(again["epoch"]) == {2}


def test_source_comes_from_the_patient_key_without_a_source_column() -> None:
    manifest = pd.DataFrame(
        {"patient_key": ["a/1", "a/1", "b/2"], "label": ["Positive", "Positive", "Negative"]}
    )
    assert sequester.patients_of(manifest)["source"].tolist() == ["a", "b"]
    with pytest.raises(ValueError, match="a/1 has two labels"):
        sequester.patients_of(manifest.assign(label=["Positive", "Negative", "Negative"]))
