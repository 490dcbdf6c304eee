"""Issue 32: names by contract (one ASCII pattern for every name a batch carries, no second
identity by case, homoglyph or fullwidth form; SEX/AGE/Date in their formats) and limits on every
metadata file before it is parsed (size, rows, nesting; duplicate JSON keys refused)."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import pytest
from conftest import SHARED_DATA, BatchFactory

from covidct import schema
from covidct.batch.checks import Check
from covidct.batch.contract import (
    MAX_BATCH_INFO_BYTES,
    MAX_DETAILS_BYTES,
    MAX_DETAILS_ROWS,
    MAX_JSON_DEPTH,
    field_problems,
    name_problem,
    read_batch_info,
)
from covidct.batch.validation import validate_batch
from covidct.cli import EXIT_ERROR, EXIT_INVALID, main

FORMULA = "=cmd|' C calc'!A0"


def _layout(verdict: object) -> str:
    (layout,) = [r for r in verdict.reasons if r.startswith("[layout]")]  # type: ignore[attr-defined]
    return layout


def _validate(batch: Path, **kwargs: object):  # noqa: ANN202 - BatchVerdict
    return validate_batch(batch, progress=False, workers=1, **kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------ names


@pytest.mark.parametrize(
    ("patient", "shown", "reason"),
    [
        (FORMULA, FORMULA, "starts with '=' (a spreadsheet formula)"),
        ("p\u0430tient1", "p\\u0430tient1", "not ASCII (\\u0430 CYRILLIC SMALL LETTER A"),
        ("patient\uff11", "patient\\uff11", "FULLWIDTH DIGIT ONE"),
        ("<script>", "<script>", "contains markup characters"),
        ("@SUM(A1)", "@SUM(A1)", "starts with '@'"),
    ],
    ids=["formula", "homoglyph", "fullwidth", "markup", "at-sign"],
)
def test_hostile_patient_names_are_refused_and_shown_escaped(
    batch_factory: BatchFactory, patient: str, shown: str, reason: str
) -> None:
    batch = batch_factory.write(patients={patient: "Positive", "patient2": "Negative"})
    verdict = _validate(batch)
    assert not verdict.passed
    layout = _layout(verdict)
    assert f"{shown}/ (problem=patient folder name" in layout and reason in layout
    assert f"Patient ID '{shown}' " in layout
    assert layout.isascii()


def test_ids_that_differ_only_by_case_are_one_patient_too_many(
    batch_factory: BatchFactory,
) -> None:
    batch = batch_factory.write(patients={"Patient7": "Positive", "patient7": "Positive"})
    layout = _layout(_validate(batch))
    assert "Patient7 (problem=differs only by case from 'patient7')" in layout


def test_a_lower_case_copy_of_a_known_patient_is_refused(batch_factory: BatchFactory) -> None:
    batch = batch_factory.write(patients={"patient7": "Positive"})
    verdict = _validate(batch, known_labels={"negin/Patient7": "Positive"})
    assert "differs only by case from the known patient 'negin/Patient7'" in _layout(verdict)
    assert _validate(batch, known_labels={"negin/patient7": "Positive"}).passed  # the same one


@pytest.mark.parametrize(
    ("column", "value"),
    [("SEX", "=1+1"), ("SEX", "m"), ("AGE", "@050Y"), ("AGE", "fifty"), ("Date", "=NOW()")]
    + [("Date", "20201332")],
)
def test_sex_age_and_date_are_checked_against_their_formats(
    batch_factory: BatchFactory, column: str, value: str
) -> None:
    batch = batch_factory.write(patients={"patient1": "Positive"})
    details = batch / schema.PATIENT_DETAILS
    default = {"SEX": ",F,", "AGE": ",050Y,", "Date": ",20200401,"}[column]
    details.write_text(details.read_text().replace(default, default.replace(default[1:-1], value)))
    layout = _layout(_validate(batch))
    assert f"patient 'patient1': {column} '{value}' is not" in layout


def test_file_and_series_names_follow_the_pattern(batch_factory: BatchFactory) -> None:
    batch = batch_factory.write(patients={"patient1": "Positive"})
    (batch / "patient1/SR_2/IM00001.tif").rename(batch / "patient1/SR_2/=IM1.tif")
    assert "name '=IM1.tif' starts with '='" in _layout(_validate(batch))


def test_a_source_with_markup_is_refused(batch_factory: BatchFactory) -> None:
    batch = batch_factory.write(patients={"patient1": "Positive"}, source="<!channel>")
    layout = _layout(_validate(batch))
    assert "'source' must match" in layout and "contains markup characters" in layout


def test_a_fullwidth_batch_id_is_refused(
    batch_factory: BatchFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    batch = batch_factory.write()
    monkeypatch.setenv("COVIDCT_HOME", str(tmp_path / "home"))
    assert main(["land", str(batch), "--batch-id", "\uff21"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "invalid batch id '\\uff21': not ASCII" in err and err.isascii()
    assert not [p for p in (tmp_path / "home").rglob("*") if p.is_file()]


def test_the_real_roster_fits_the_contract() -> None:
    """Every patient id, SEX, AGE and Date of the published COVID-CTset roster passes."""
    with (SHARED_DATA / "covid-ctset" / "Patient_details.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 377
    assert [r["Patient ID"] for r in rows if name_problem(r["Patient ID"])] == []
    assert [p for r in rows for p in field_problems(r)] == []


# ----------------------------------------------------------------------------------- limits


def _validate_cli(batch: Path, report: Path, capsys: pytest.CaptureFixture[str]) -> int:
    code = main(["validate", str(batch), "--report", str(report)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code


def _limit_failure(report: Path) -> str:
    verdict = json.loads((report / "validation.json").read_text())
    (failure,) = [f for f in verdict["failures"] if f["check"] == Check.INPUT_LIMIT.value]
    return " ".join(failure["examples"])


def test_an_oversized_patient_details_is_refused_unread(
    batch_factory: BatchFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = batch_factory.write(patients={"patient1": "Positive"})
    row = "patient1,F,050Y,20200401,Positive,5,5,5\n"
    with (batch / schema.PATIENT_DETAILS).open("a") as handle:
        handle.write(row * (MAX_DETAILS_BYTES // len(row) + 10))
    assert _validate_cli(batch, tmp_path / "report", capsys) == EXIT_ERROR
    assert f"over the {MAX_DETAILS_BYTES:,}-byte limit" in _limit_failure(tmp_path / "report")


def test_too_many_rows_are_refused_unparsed(
    batch_factory: BatchFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = batch_factory.write(patients={"patient1": "Positive"})
    with (batch / schema.PATIENT_DETAILS).open("a") as handle:
        handle.write("x\n" * (MAX_DETAILS_ROWS + 1))
    assert _validate_cli(batch, tmp_path / "report", capsys) == EXIT_ERROR
    assert f"over the limit of {MAX_DETAILS_ROWS:,}" in _limit_failure(tmp_path / "report")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"source": "negin", "x": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested deeper"),
        (
            json.dumps({"source": "negin", "pad": "x" * (MAX_BATCH_INFO_BYTES + 1)}),
            f"over the {MAX_BATCH_INFO_BYTES:,}-byte limit",
        ),
    ],
    ids=["100000-deep", "over-1-MiB"],
)
def test_hostile_batch_json_exits_2_with_a_report(
    batch_factory: BatchFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    text: str,
    expected: str,
) -> None:
    batch = batch_factory.write(patients={"patient1": "Positive"})
    (batch / schema.BATCH_INFO).write_text(text)
    assert _validate_cli(batch, tmp_path / "report", capsys) == EXIT_ERROR
    assert expected in _limit_failure(tmp_path / "report")
    assert (tmp_path / "report" / "index.html").is_file()
    assert MAX_JSON_DEPTH == 32


def test_duplicate_json_keys_are_refused(
    batch_factory: BatchFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = batch_factory.write(patients={"patient1": "Positive"})
    (batch / schema.BATCH_INFO).write_text('{"source": "site-a", "source": "negin"}')
    assert _validate_cli(batch, tmp_path / "report", capsys) == EXIT_INVALID
    assert "duplicate keys ['source']" in _layout(_validate(batch))


def test_many_duplicate_json_keys_are_refused_at_once(tmp_path: Path) -> None:
    """10,000 keys twice each under the byte limit: refused in well under a second (the first
    duplicate check counted every key against every other, quadratic in the keys)."""
    pairs = [f'"k{i}": {i}' for i in range(10_000)] + ['"source": "negin"']
    (tmp_path / schema.BATCH_INFO).write_text("{" + ", ".join(pairs + pairs) + "}")
    started = time.perf_counter()
    with pytest.raises(ValueError, match=r"duplicate keys \['k0', 'k1', ") as error:
        read_batch_info(tmp_path)
    assert time.perf_counter() - started < 1.0
    assert "and 9,996 more" in str(error.value)
