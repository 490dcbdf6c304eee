"""The covidct command line: exit codes and messages a person reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from covidct.batch.synth import write_synthetic_batch
from covidct.cli import EXIT_ERROR, EXIT_INVALID, EXIT_OK, main
from covidct.demo import make_faulty_batch


@pytest.fixture(scope="module")
def batches(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("batches")
    write_synthetic_batch(root / "good", patients=3, seed=1, max_slices_per_patient=3)
    make_faulty_batch(root / "bad")
    return {"good": root / "good", "bad": root / "bad", "missing": root / "nope"}


@pytest.mark.parametrize(
    ("batch", "code", "needle"),
    [("good", EXIT_OK, "PASS"), ("bad", EXIT_INVALID, "uint8"), ("missing", EXIT_ERROR, "nope")],
)
def test_validate_exit_codes(batches, batch, code, needle, capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert main(["validate", str(batches[batch]), "--report", str(tmp_path / "r")]) == code
    out = capsys.readouterr()
    assert needle.lower() in (out.out + out.err).lower()


def test_report_without_any_run_is_a_clear_error(tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COVIDCT_HOME", str(tmp_path))
    assert main(["report"]) == EXIT_ERROR
    assert "no run recorded yet" in capsys.readouterr().err


def test_land_then_history_on_an_empty_ledger(batches, tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COVIDCT_HOME", str(tmp_path))
    assert main(["land", str(batches["good"]), "--batch-id", "b1"]) == EXIT_OK
    landed = sorted(
        p.relative_to(tmp_path / "lake/landing/b1")
        for p in (tmp_path / "lake/landing/b1").rglob("*.tif")
    )
    original = sorted(p.relative_to(batches["good"]) for p in batches["good"].rglob("*.tif"))
    assert landed == original and landed
    assert main(["registry", "history"]) == EXIT_OK
    assert "no promotion decision recorded yet" in capsys.readouterr().out


def test_sequester_show_and_relock(tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    import pandas as pd

    from covidct.data import sequester
    from covidct.lake.backends import LocalStore

    monkeypatch.setenv("COVIDCT_HOME", str(tmp_path))
    assert main(["sequester", "show"]) == EXIT_OK
    assert "no sequestration yet" in capsys.readouterr().out
    keys = [f"s/p{i}" for i in range(20)]
    manifest = pd.DataFrame({"patient_key": keys, "label": ["Positive", "Negative"] * 10})
    sequester.update(
        LocalStore(tmp_path / "lake"), manifest, sequester.SequesterRule(), dag_run_id="r"
    )
    assert main(["sequester", "show"]) == EXIT_OK
    assert "epoch 1" in capsys.readouterr().out
    assert main(["sequester", "relock", "--share", "1.5", "--reason", "x"]) == EXIT_ERROR
    assert "share must be in (0, 1)" in capsys.readouterr().err
    assert main(["sequester", "relock", "--share", "0.3", "--reason", "power"]) == EXIT_OK
    assert "epoch 2" in capsys.readouterr().out
    assert sequester.read_lock(LocalStore(tmp_path / "lake"))["reason"] == "power"
