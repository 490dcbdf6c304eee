"""The covidct command line: exit codes and messages a person reads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from covidct.batch.synth import write_synthetic_batch
from covidct.cli import EXIT_ERROR, EXIT_INVALID, EXIT_OK, main
from covidct.demo import make_faulty_batch
from covidct.lake.layout import LakeLayout


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
    assert (
        f"no data lake at {tmp_path / 'lake'} (COVIDCT_HOME={tmp_path})" in capsys.readouterr().err
    )
    (tmp_path / "lake").mkdir()
    assert main(["report"]) == EXIT_ERROR
    assert f"no run recorded yet in file://{tmp_path / 'lake'}" in capsys.readouterr().err


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
    (tmp_path / "lake").mkdir()
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


# ------------------------------------------------------------------ report: which run

TRAINED_EARLY, TRAINED_LATE = "manual__2026-12-01T08:00:00+00:00", "scheduled__2026-12-02T00:00:00"
DRY = "manual__2026-12-03T09:00:00+00:00"


def test_report_of_an_unknown_run_is_one_line_listing_the_runs(
    tmp_path, monkeypatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    from covidct.lake.backends import LocalStore

    monkeypatch.setenv("COVIDCT_HOME", str(tmp_path))
    lake = LocalStore(tmp_path / "lake")
    _summarized(lake, TRAINED_EARLY, "2026-12-01T09:00:00+00:00", trained=True)
    _summarized(lake, DRY, "2026-12-03T09:01:00+00:00", trained=False)
    assert main(["report", "--run", "nosuchrun"]) == EXIT_INVALID
    out = capsys.readouterr()
    assert out.out == "" and out.err.count("\n") == 1
    assert out.err.startswith(f"covidct report: error: no run 'nosuchrun' in file://{tmp_path}")
    assert f"runs, latest first: {DRY} (trained nothing), {TRAINED_EARLY}\n" in out.err
    # a run that exists is shown, a dry run too when asked for by name
    assert main(["report", "--run", DRY]) == EXIT_OK
    assert f"== covidct run {DRY} ==" in capsys.readouterr().out


def test_plain_report_skips_a_later_dry_run(tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from covidct.lake.backends import LocalStore

    monkeypatch.setenv("COVIDCT_HOME", str(tmp_path))
    lake = LocalStore(tmp_path / "lake")
    _summarized(lake, DRY, "2026-12-03T09:01:00+00:00", trained=False)
    assert main(["report"]) == EXIT_INVALID  # only a dry run: nothing to report, said once
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has trained a model yet (a dry run trains none)" in err
    assert f"{DRY} (trained nothing)" in err
    _summarized(lake, TRAINED_EARLY, "2026-12-01T09:00:00+00:00", trained=True)
    _summarized(lake, TRAINED_LATE, "2026-12-02T01:00:00+00:00", trained=True)
    _summarized(lake, DRY, "2026-12-03T09:01:00+00:00", trained=False)  # the form's dry run
    assert lake.read_text(LakeLayout.LATEST) == DRY
    assert main(["report"]) == EXIT_OK
    text = capsys.readouterr().out
    assert text.startswith(f"== covidct run {TRAINED_LATE} ==")
    assert "vgg16" in text and "no model was trained" not in text


# ---------------------------------------------------------------- evaluate-predictions


def _predictions(tmp_path: Path, rows: str, header: str = "patient_id,y_true,p_covid,fold") -> Path:
    path = tmp_path / "pred.csv"
    path.write_text(f"{header}\n{rows}")
    return path


def test_evaluate_predictions_refuses_rows_it_cannot_tell_apart(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    rows = "p1,covid,0.9,1\np1,covid,0.9,1\np1,covid,0.9,1\np2,normal,0.2,1\np1,covid,0.9,2\n"
    path = _predictions(tmp_path, rows)  # the third and fourth p1 rows of fold 1 repeat the first
    assert main(["evaluate-predictions", str(path)]) == EXIT_ERROR
    out = capsys.readouterr()
    assert out.out == "" and out.err.count("\n") == 1
    assert out.err.startswith(f"covidct evaluate-predictions: error: {path}: 2 duplicated row(s)")
    # slice ids tell the same scores apart; the same slice in another fold is another model's
    named = "p1,covid,0.9,1,IM1\np1,covid,0.9,1,IM2\np2,normal,0.2,1,IM1\np1,covid,0.9,2,IM1\n"
    path = _predictions(tmp_path, named, "patient_id,y_true,p_covid,fold,slice_id")
    assert main(["evaluate-predictions", str(path), "--json"]) == EXIT_OK
    capsys.readouterr()
    # but one slice id twice within a fold is refused
    path = _predictions(
        tmp_path, named + "p1,covid,0.8,2,IM1\n", "patient_id,y_true,p_covid,fold,slice_id"
    )
    assert main(["evaluate-predictions", str(path)]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{path}: 1 duplicate slice row(s)" in err and "2/p1/IM1" in err


def test_evaluate_predictions_says_how_many_folds_each_mean_averages(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    import json

    # fold 2 has no normal patient: its specificity and AUCs are undefined, so their fold
    # means are fold 1's value alone while accuracy and sensitivity average both folds
    rows = "".join(
        f"{patient},{label},{score},{fold},{patient}/IM{i}\n"
        for fold, patients in ((1, (("a", "covid"), ("b", "normal"))), (2, (("c", "covid"),)))
        for patient, label in patients
        for i, score in enumerate((0.9, 0.7) if label == "covid" else (0.2, 0.6))
    )
    path = _predictions(tmp_path, rows, "patient_id,y_true,p_covid,fold,slice_id")
    assert main(["evaluate-predictions", str(path), "--json"]) == EXIT_OK
    report = json.loads(capsys.readouterr().out)
    image = report["image"]
    assert (
        image["fold_n_folds"]["accuracy"] == 2 and image["fold_n_folds"]["covid_specificity"] == 1
    )
    assert image["fold_n_folds"]["roc_auc"] == 1
    assert set(image["fold_n_folds"]) == set(image["fold_mean"])
    fewer = report["fold_means_over_fewer_folds"]
    assert fewer["image_covid_specificity"] == 1 and fewer["patient_roc_auc"] == 1
    assert "image_accuracy" not in fewer and "image_covid_sensitivity" not in fewer
    assert main(["evaluate-predictions", str(path)]) == EXIT_OK
    text = capsys.readouterr().out
    lines = {line.split()[0]: line for line in text.splitlines() if line.strip()}
    assert lines["accuracy"].endswith("(mean over 2 folds)")
    assert lines["covid_specificity"].endswith("(mean over 1 fold)")
    assert (
        "note: these fold means average fewer than the 2 folds (undefined in the others): " in text
    )
    assert "covid_specificity over 1 fold" in text


# ------------------------------------------------------------------------- model-card


def test_model_card_is_written_into_its_runs_folder_not_the_current_one(
    tmp_path, monkeypatch, capsys, isolated_mlflow_uris
) -> None:  # type: ignore[no-untyped-def]
    from covidct.config import Settings
    from covidct.lake.layout import RunLayout
    from covidct.promotion import registry

    home, cwd = tmp_path / "home", tmp_path / "repo"
    (home / "lake").mkdir(parents=True)
    cwd.mkdir()
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("COVIDCT_HOME", str(home))
    monkeypatch.chdir(cwd)
    settings = Settings.from_env({"COVIDCT_HOME": str(home)})
    client = registry.client(settings.mlflow.tracking_uri)
    mlflow_run = client.create_run(client.create_experiment("cards")).info.run_id
    name = settings.mlflow.model_name
    client.create_registered_model(name)
    dag_run = "manual__2026-12-01T08:00:00+00:00"

    def register(**tags: str) -> str:
        source = str(tmp_path / "model")
        return str(client.create_model_version(name, source, mlflow_run, tags=tags).version)

    version = register(dag_run_id=dag_run, backbone="vgg16")
    assert main(["model-card", version]) == EXIT_OK
    card = home / "lake" / RunLayout.of(dag_run).model_card(version)
    assert (
        card == home / f"lake/runs/{RunLayout.of(dag_run).run_key}/model_cards/v1/model_card.html"
    )
    assert capsys.readouterr().out == f"model card written to {card}\n"
    assert "Change record" in card.read_text() and list(cwd.iterdir()) == []
    out = tmp_path / "mine" / "card.html"  # --out still writes where it says
    assert main(["model-card", version, "--out", str(out)]) == EXIT_OK
    assert capsys.readouterr().out == f"model card written to {out}\n"
    assert out.read_text() == card.read_text()
    orphan = register(backbone="vgg16")  # no DAG run recorded: its run folder is unknown
    assert main(["model-card", orphan]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"version {orphan} records no DAG run" in err
    assert "--out FILE" in err and list(cwd.iterdir()) == []


# --------------------------------------------- the real console script, as a person runs it


def _covidct(args: list[str], cwd: Path, home: Path, **extra: str) -> subprocess.CompletedProcess:
    """Run the installed ``covidct`` script in ``cwd`` with no covidct variable but ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COVIDCT_", "MLFLOW_"))}
    env |= {"HOME": str(home), **extra}
    script = Path(sys.executable).with_name("covidct")
    return subprocess.run(
        [str(script), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture()
def repo_after_demo(tmp_path: Path) -> Path:
    """A repository root where ``make demo`` left a lake with one decision and one run."""
    from covidct.lake.backends import LocalStore
    from covidct.promotion import registry

    repo = tmp_path / "repo"
    lake = LocalStore(repo / ".demo" / "lake")
    registry.append_ledger(
        lake,
        {
            "action": "promote",
            "version": "3",
            "previous_champion": None,
            "dag_run_id": "manual__demo-run",
            "reason": "candidate beat resnet152 on the sequestered patients",
        },
    )
    _summarized(lake, "manual__demo-run", "2026-12-01T10:00:00+00:00", trained=True)
    return repo


def _summarized(lake, run: str, at: str, *, trained: bool) -> None:  # type: ignore[no-untyped-def]
    """A run folder as ``report.write_summary`` leaves it: ``summary.json`` (with a leaderboard
    when the run trained a model; a dry run has none), ``leaderboard.csv``, ``runs/LATEST``."""
    import json

    from covidct.lake.layout import RunLayout

    layout = RunLayout.of(run)
    board = [{"backbone": "vgg16", "folds": 2, "image_accuracy_mean": 0.9}] if trained else []
    if trained:
        lake.write_bytes(layout.leaderboard, b"backbone,folds,image_accuracy_mean\nvgg16,2,0.9\n")
    summary = {"dag_run_id": run, "batches": [], "leaderboard": board, "gate": None,
               "summarized_at": at}  # fmt: skip
    lake.write_bytes(layout.summary_json, json.dumps(summary).encode())
    lake.write_bytes(LakeLayout.LATEST, run.encode())


def test_cli_finds_the_demo_from_the_repository_root(repo_after_demo: Path, tmp_path: Path) -> None:
    user_home = tmp_path / "user"  # ~/.covidct does not exist there
    demo = repo_after_demo / ".demo"
    history = _covidct(["registry", "history"], repo_after_demo, user_home)
    assert history.returncode == EXIT_OK, history.stderr
    assert "promote" in history.stdout and "v3" in history.stdout
    assert "(champion before: none)" in history.stdout and "None" not in history.stdout
    assert "candidate beat resnet152 on the sequestered patients" in history.stdout
    assert f"using the demo's home {demo}" in history.stderr
    report = _covidct(["report"], repo_after_demo, user_home)
    assert report.returncode == EXIT_OK, report.stderr
    assert "manual__demo-run" in report.stdout
    # an explicit home wins over the demo: an empty one says where it looked
    elsewhere = tmp_path / "elsewhere"
    explicit = _covidct(
        ["registry", "history"], repo_after_demo, user_home, COVIDCT_HOME=str(elsewhere)
    )
    assert explicit.returncode == EXIT_ERROR
    assert explicit.stderr.strip() == (
        f"covidct registry: error: no data lake at {elsewhere / 'lake'} "
        f"(COVIDCT_HOME={elsewhere}); run `make demo` in the repository root and the commands "
        "from there, or set COVIDCT_HOME to the stack's home"
    )


@pytest.mark.parametrize("command", [["report"], ["registry", "history"], ["sequester", "show"]])
def test_missing_home_is_one_line_saying_where_it_looked(
    command: list[str], tmp_path: Path
) -> None:
    elsewhere, user_home = tmp_path / "not-the-repo", tmp_path / "user"
    elsewhere.mkdir()
    done = _covidct(command, elsewhere, user_home)
    assert done.returncode == EXIT_ERROR
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr  # no traceback
    assert f"no data lake at {user_home / '.covidct' / 'lake'}" in lines[0]
    assert f"COVIDCT_HOME is not set and {elsewhere / '.demo' / 'lake'} does not exist" in lines[0]


def test_landing_the_same_batch_again_says_it_was_already_landed(
    batches, tmp_path, monkeypatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COVIDCT_HOME", str(tmp_path))
    assert main(["land", str(batches["good"]), "--batch-id", "b1"]) == EXIT_OK
    first = capsys.readouterr().out
    assert first.count("landed ") == 1 and "as landing/b1" in first
    before = sorted((tmp_path / "lake").rglob("*"))
    assert main(["land", str(batches["good"]), "--batch-id", "b1"]) == EXIT_OK
    again = capsys.readouterr().out
    assert again.startswith("already landed, nothing changed: landing/b1 already holds")
    assert "as landing/" not in again and sorted((tmp_path / "lake").rglob("*")) == before


# ------------------------------------------------------------- run configurations (issue 17.5)

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("conf", "code", "needle"),
    [
        ('{"profile": "cpu-smoke", "folds": 2, "epochs": 1}', EXIT_OK, "1 epoch x 3 steps, 64 px"),
        ("{}", EXIT_OK, "cpu-smoke: 2 epochs x 3 steps"),  # the deployment's default profile
        ('{"profile": "gpu"}', EXIT_ERROR, "profile: expected one of paper, gpu-fast, cpu-smoke"),
        ('{"image_size": 8}', EXIT_ERROR, "image_size: expected an integer from 32 to 1024"),
        ('{"profile": "cpu-smoke",}', EXIT_ERROR, "run configuration is not JSON"),
    ],
)
def test_check_conf(conf: str, code: int, needle: str, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("COVIDCT_DEFAULT_PROFILE", raising=False)
    assert main(["check-conf", conf]) == code
    out = capsys.readouterr()
    assert needle in (out.out if code == EXIT_OK else out.err)
    if code != EXIT_OK:
        assert out.err.startswith("covidct check-conf: error: ") and out.err.count("\n") == 1


def test_check_conf_uses_the_deployments_default_profile(capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COVIDCT_DEFAULT_PROFILE", "gpu-fast")
    assert main(["check-conf", "{}"]) == EXIT_OK
    assert "gpu-fast: 100 epochs x one pass, 512 px, batch 32" in capsys.readouterr().out


def test_the_demo_refuses_a_bad_conf_in_seconds_with_one_line(tmp_path: Path) -> None:
    """``infra/demo.sh`` as ``make demo DEMO_CONF=...`` runs it: it stops at its first step, the
    check, with one line and exit 2, before any setup (nothing written under its homes). The
    shared data folder is empty, so a demo that skipped the check would stop on that instead."""
    home, shared = tmp_path / "home", tmp_path / "shared"
    shared.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COVIDCT_", "AIRFLOW"))}
    env |= {
        "SHARED": str(shared),
        "COVIDCT_HOME": str(home),
        "AIRFLOW_HOME": str(home / "airflow"),
        "RUN": "env",  # the venv's scripts from PATH, as `uv run` would
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
    }
    bad = subprocess.run(
        ["bash", str(REPO / "infra" / "demo.sh")],
        cwd=REPO, env=env | {"DEMO_CONF": '{"profile": "gpu"}'},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == EXIT_ERROR, bad.stderr
    assert bad.stderr.strip() == (
        "covidct check-conf: error: profile: expected one of paper, gpu-fast, cpu-smoke; got 'gpu'"
    )
    assert bad.stdout == "" and not home.exists()  # refused before any setup
    good = subprocess.run(
        ["bash", str(REPO / "infra" / "demo.sh")],
        cwd=REPO, env=env | {"DEMO_CONF": '{"profile": "cpu-smoke", "folds": 2}'},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert good.returncode == 2 and "data/tcia is missing" in good.stderr  # past the check


#: Airflow's own heuristic behind "the deployment shape looks like production", evaluated with
#: the configuration `make airflow-ui` gives `airflow standalone`.
LOOKS_LIKE_PRODUCTION = """
import sys
import time
from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
from airflow.configuration import conf
print("HOST=" + conf.get("api", "host"), SimpleAuthManager._looks_like_production())
"""


@pytest.mark.parametrize(("api_host", "production"), [(None, "False"), ("0.0.0.0", "True")])
def test_make_airflow_ui_binds_loopback_and_does_not_look_like_production(
    tmp_path: Path, api_host: str | None, production: str
) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(LOOKS_LIKE_PRODUCTION)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COVIDCT_", "AIRFLOW"))}
    env |= {"COVIDCT_HOME": str(tmp_path), "AIRFLOW_HOME": str(tmp_path / "airflow")}
    if api_host is not None:  # an operator's own choice still wins (and is warned about)
        env["AIRFLOW__API__HOST"] = api_host
    make = ["make", "-s", "--no-print-directory", "airflow-ui", "UV=true"]
    done = subprocess.run(
        [*make, f"RUN={sys.executable} {probe}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    last = done.stdout.strip().splitlines()[-1]
    assert last == f"HOST={api_host or '127.0.0.1'} {production}"
