"""Issue 32: every CSV the product writes is safe to open in a spreadsheet (covidct.safe_csv)."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest
from conftest import SHARED_DATA

from covidct.cli import EXIT_OK, main
from covidct.safe_csv import FORMULA_PREFIXES, csv_text, safe_cell

CTSET = SHARED_DATA / "covid-ctset"
HOSTILE_ID = "=cmd|' C calc'!A0"


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=1+1", "'=1+1"),
        ("+cmd", "'+cmd"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\n=1"),  # a bare CR would go unquoted: a new row in a spreadsheet
        ("a\r=cmd|' /C calc'!A0", "a\n=cmd|' /C calc'!A0"),  # quoted: one cell
        ("-1.5", "-1.5"),  # a negative number written as text stays a number
        ("+3e-4", "+3e-4"),
        ("patient1", "patient1"),
        (-7, -7),
        (None, None),
    ],
)
def test_safe_cell(value: object, written: object) -> None:
    assert safe_cell(value) == written


def test_numbers_stay_numbers_and_text_is_neutralised() -> None:
    frame = pd.DataFrame({"id": ["=x", "ok"], "score": [-0.25, 1.0], "n": [-3, 4]})
    rows = list(csv.reader(csv_text(frame).splitlines()))
    assert rows == [["id", "score", "n"], ["'=x", "-0.25", "-3"], ["ok", "1.0", "4"]]
    index = pd.DataFrame({"auc": [0.5]}, index=pd.Index(["@evil"], name="backbone"))
    assert csv_text(index, index=True).splitlines()[1] == "'@evil,0.5"


def _hostile_roster(tmp_path: Path) -> tuple[Path, Path]:
    """The real COVID-CTset roster with patient1 renamed to a spreadsheet formula."""
    roster = (CTSET / "all.csv").read_text().replace("_patient1_", f"_{HOSTILE_ID}_")
    details = (CTSET / "Patient_details.csv").read_text()
    details = details.replace("\npatient1,", f'\n"{HOSTILE_ID}",')
    (tmp_path / "all.csv").write_text(roster)
    (tmp_path / "details.csv").write_text(details)
    return tmp_path / "all.csv", tmp_path / "details.csv"


def test_folds_never_write_a_formula(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    roster, details = _hostile_roster(tmp_path)
    out = tmp_path / "folds"
    argv = ["folds", "--roster", str(roster), "--labels", str(details), "--k", "2"]
    assert main([*argv, "--seed", "0", "--out", str(out)]) == EXIT_OK
    capsys.readouterr()
    cells = [
        cell
        for path in sorted(out.glob("fold-*.csv"))
        for row in csv.reader(path.read_text().splitlines())
        for cell in row
    ]
    assert f"'{HOSTILE_ID}" in cells  # the hostile id is there, shown as text
    formulas = [c for c in cells if c.startswith(FORMULA_PREFIXES) and safe_cell(c) != c]
    assert formulas == []


def test_ordinary_tables_are_written_as_pandas_writes_them() -> None:
    """Nothing changes for clean tables: fold manifests and leaderboards keep their bytes."""
    flat = pd.DataFrame({"patient_key": ["negin/p1"], "auc": [-0.5], "band": ["<40"]})
    assert csv_text(flat) == flat.to_csv(index=False)
    board = pd.DataFrame(
        [[0.5, 0.1]], columns=pd.MultiIndex.from_tuples([("auc", "mean"), ("auc", "sd")])
    )
    board.index = pd.Index(["resnet152"], name="backbone")
    assert csv_text(board, index=True) == board.to_csv()
