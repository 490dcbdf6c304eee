"""End to end: real `airflow dags test` runs of covidct_retraining on the embedded default.

One home, two DAG runs, shared by every test here (each end-to-end behaviour is proven once):

- run 1 lands a real DICOM batch, a good synthetic batch and a faulty one, and runs the DAG with
  a tiny cpu-smoke profile under the first-run policy ``promote-best``: the faulty batch is
  quarantined byte-identical, metrics are logged to MLflow, and a version is registered and
  promoted with its verdict;
- run 2 retrains VGG16 on the same folds with less training and must beat that champion, both
  scored on the sequestered patients, by the paired patient bootstrap: it cannot, so the
  champion stays, a ``not_promoted`` alert is written, and `covidct registry history` lists
  both decisions.

Tests of run 1 come first in this file: the second run starts with the first test that needs it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


def _sha_tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _run(args: list[str], env: dict[str, str], timeout: int = 1200) -> str:
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    if done.returncode != 0:
        raise AssertionError(f"{args} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return done.stdout


def embedded_env(home: Path) -> dict[str, str]:
    """Environment of the embedded default under ``home`` (what the Makefile exports)."""
    return {
        **os.environ,
        "COVIDCT_HOME": str(home),
        "AIRFLOW_HOME": str(home / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow/airflow.db",
        "COVIDCT_GATE_N_BOOT": "200",
        "COVIDCT_TASK_RETRIES": "0",
        "COVIDCT_DEADLINE_HOURS": "0",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }


def land_inputs(home: Path, env: dict[str, str]) -> dict[str, str]:
    """Convert, synthesise and land the test batches; return the faulty batch's sha256 tree."""
    covidct = str(BIN / "covidct")
    inbox = home / "inbox"
    sbu = REPO.parent / "shared" / "data" / "tcia" / "covid19-ny-sbu"
    ingest = ["ingest-dicom", str(sbu), str(inbox / "sbu"), "--label", "Positive"]
    _run([covidct, *ingest, "--source", "covid19-ny-sbu"], env)
    synth = ["synth", str(inbox / "good"), "--patients", "14", "--seed", "3"]
    _run([covidct, *synth, "--max-slices", "6"], env)
    _run([sys.executable, "-m", "covidct.demo", "faulty-batch", str(inbox / "bad")], env)
    bad_before = _sha_tree(inbox / "bad")
    for batch in ("sbu", "good", "bad"):
        _run([covidct, "land", str(inbox / batch), "--batch-id", batch], env)
    _run([str(BIN / "airflow"), "db", "migrate"], env)
    return bad_before


TINY = {"profile": "cpu-smoke", "folds": 2, "backbones": ["resnet152", "vgg16"],
        "epochs": 1, "steps_per_epoch": 2, "image_size": 32}  # fmt: skip


def run_dag(env: dict[str, str], conf: dict) -> tuple[str, dict]:
    """Run the DAG with ``airflow dags test``; return its log and ``covidct report --json``."""
    dag_test = [str(BIN / "airflow"), "dags", "test", "covidct_retraining", "-c", json.dumps(conf)]
    log = _run(dag_test, env)
    runs = len(list(Path(env["COVIDCT_HOME"]).glob("dag-test-*.log")))
    (Path(env["COVIDCT_HOME"]) / f"dag-test-{runs + 1}.log").write_text(log)  # kept on failure
    return log, json.loads(_run([str(BIN / "covidct"), "report", "--json"], env))


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    home = tmp_path_factory.mktemp("covidct_home")
    env = {
        **embedded_env(home),
        "COVIDCT_GATE_FIRST_RUN": "promote-best",
        "COVIDCT_TRUTH_DIR": str(home / "inbox"),  # the synthetic batch's truth, beside it
    }
    bad_before = land_inputs(home, env)
    log, report = run_dag(env, TINY)
    return {
        "home": home,
        "env": env,
        "bad_before": bad_before,
        "log": log,
        "report": report,
    }


@pytest.fixture(scope="module")
def two_runs(demo_run: dict) -> dict:
    """Run 2 in run 1's home (weaker: one step, retrained), then the history and alerts."""
    env, home = demo_run["env"], demo_run["home"]
    # the quickest backbone only: run 1 proved the ResNet152 baseline; this run's candidate
    # must beat the champion (run 1's model, re-evaluated here)
    weaker = {**TINY, "backbones": ["vgg16"], "steps_per_epoch": 1, "force_retrain": True}
    _, second = run_dag(env, weaker)
    history = json.loads(_run([str(BIN / "covidct"), "registry", "history", "--json"], env))
    text = _run([str(BIN / "covidct"), "registry", "history"], env)
    alerts = [json.loads(x) for x in (home / "alerts.jsonl").read_text().splitlines()]
    return {"home": home, "first": demo_run["report"], "second": second, "history": history,
            "text": text, "alerts": alerts}  # fmt: skip


def test_faulty_batch_quarantined_byte_identical(demo_run: dict) -> None:
    lake = demo_run["home"] / "lake"
    assert demo_run["report"]["quarantined"] == ["bad"]
    (version,) = (lake / "quarantine" / "bad").iterdir()  # quarantine/<id>/<hash16>/batch
    quarantined = _sha_tree(version / "batch")
    for path, digest in demo_run["bad_before"].items():
        assert quarantined[path] == digest, path
    alerts = [
        json.loads(line) for line in (demo_run["home"] / "alerts.jsonl").read_text().splitlines()
    ]
    assert any(a["kind"] == "batch_quarantined" and "bad" in a["summary"] for a in alerts)


def test_models_trained_evaluated_and_gated(demo_run: dict) -> None:
    report = demo_run["report"]
    assert {row["backbone"] for row in report["leaderboard"]} == {"resnet152", "vgg16"}
    gate = report["gate"]
    assert gate["verdict"]["reasons"]
    assert gate["version"]
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{demo_run['home']}/mlflow.db")
    version = client.get_model_version("covidct-classifier", gate["version"])
    assert version.tags["gate_verdict"] in {"passed", "refused"}
    experiment = client.get_experiment_by_name("covidct")
    run_id = report["dag_run_id"]
    found = client.search_runs([experiment.experiment_id], f"tags.dag_run_id = '{run_id}'")
    folds = [run for run in found if run.data.tags.get("role") != "deployable"]
    assert len(folds) == 4  # 2 backbones x 2 folds, plus one deployable ensemble per gated model
    assert len(found) - len(folds) == (1 if report["gate"]["candidate"] == "resnet152" else 2)
    for run in folds:
        assert "test_image_accuracy" in run.data.metrics
        assert run.data.params["optimizer"].lower() == "nadam"
    # promote-best: the first run's best backbone becomes champion, with its verdict
    assert gate["verdict"]["passed"] and version.tags["gate_verdict"] == "passed"
    # decided on sequestered patients with the model it registered
    assert gate["sequestered_patients"] > 0
    assert all(c["overlap_patients"] == 0 for c in gate["comparisons"])
    assert gate["evaluated_model_digest"] == gate["registered_model_digest"]
    assert client.get_model_version_by_alias("covidct-classifier", "champion")


def test_only_selected_slices_train_pick_thresholds_and_are_scored(demo_run: dict) -> None:
    """Closed-lung slices stay in the lake but reach no fold, no threshold, no score."""
    import pandas as pd

    lake = demo_run["home"] / "lake"
    report = demo_run["report"]
    curation = report["curation"]
    (manifest_path,) = lake.glob(f"curated/{curation['dataset_version']}/manifest.parquet")
    manifest = pd.read_parquet(manifest_path)
    selected = set(manifest.loc[manifest["selected"], "path"])
    closed = set(manifest.loc[~manifest["selected"], "path"])
    assert closed and len(closed) == curation["n_not_diagnostic"] > 0
    for fold_file in lake.glob(f"folds/{curation['dataset_version']}/fold-*.parquet"):
        assert set(pd.read_parquet(fold_file)["path"]) <= selected, fold_file.name
    run_dir = lake / report["run_prefix"].split("/lake/", 1)[1]
    scored = [*run_dir.glob("predictions/*.csv"), *run_dir.glob("sequestered/*.csv")]
    assert scored
    for csv in scored:  # test predictions carry the thresholds picked on val (selected too)
        frame = pd.read_csv(csv)
        assert set(frame["slice_id"]) <= selected and frame["selected"].all(), csv.name
    html = (run_dir / "report" / "report.html").read_text()
    assert "not diagnostic: closed lung" in html


def test_confirmed_models_are_scored_against_the_phantoms_truth(demo_run: dict) -> None:
    """Sensitivity by severity band counts every sequestered COVID patient of the synthetic
    batch (its truth sits beside it in the inbox), and the pointing game was played on the
    true-positive lesion slices it found; the summary says whether each model beats chance."""
    import pandas as pd

    from covidct.batch.synth_truth import read_truth

    gate = demo_run["report"]["gate"]
    patients, _ = read_truth(demo_run["home"] / "inbox" / "good.truth")
    positive = set(patients.loc[patients["label"] == "Positive", "patient_id"])
    lake = demo_run["home"] / "lake"
    (held_file,) = lake.glob("curated/*/sequestered.parquet")
    held = pd.read_parquet(held_file)
    synthetic = held[held["path"].str.startswith("good/")]
    expected = synthetic.loc[synthetic["patient_id"].isin(positive), "patient_key"].nunique()
    for name, record in gate["models"].items():
        bands = record["severity"]
        assert sum(item["patients"] for item in bands.values()) == expected, name
        assert record["gradcam_pointing_slices"] >= 0
        assert isinstance(record["no_better_than_chance"], bool)
        assert set(record["intervals"]) == {"image_roc_auc", "patient_balanced_accuracy"}


# --------------------------------------------------------------------------- run 2


def test_first_run_promotes_second_is_refused(two_runs: dict) -> None:
    first, second = two_runs["first"]["gate"], two_runs["second"]["gate"]
    assert first["verdict"]["passed"] and first["verdict"]["status"] == "first-run"
    assert first["champion_after"] == first["version"]
    assert not second["verdict"]["passed"] and second["verdict"]["status"] == "refuse"
    assert second["champion_before"] == second["champion_after"] == first["version"]
    assert any("vs champion" in reason for reason in second["verdict"]["reasons"])
    (comparison,) = second["comparisons"]
    assert comparison["comparator"] == "champion" and comparison["overlap_patients"] == 0
    assert comparison["n_patients"] == second["sequestered_patients"]


def test_history_and_alerts_explain_both_decisions(two_runs: dict) -> None:
    actions = [(r["action"], r["version"]) for r in two_runs["history"]]
    first, second = two_runs["first"]["gate"], two_runs["second"]["gate"]
    decisions = [(action, version) for action, version in actions if action != "baseline"]
    assert decisions == [("promote", first["version"]), ("refuse", second["version"])]
    # run 1 trained ResNet152: its @baseline-resnet152 move is in the ledger, before the
    # decision (issue 33 item 5; run 2 trains VGG16 only)
    assert actions[0][0] == "baseline"
    assert all(r["reason"] for r in two_runs["history"])
    assert "promote" in two_runs["text"] and "refuse" in two_runs["text"]
    kinds = [a["kind"] for a in two_runs["alerts"]]
    assert "not_promoted" in kinds and "batch_quarantined" in kinds


def test_champion_resolves_to_the_first_runs_model(two_runs: dict) -> None:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{two_runs['home']}/mlflow.db")
    champion = client.get_model_version_by_alias("covidct-classifier", "champion")
    assert str(champion.version) == two_runs["first"]["gate"]["version"]
    assert champion.tags["gate_verdict"] == "passed"
    assert client.get_model_version_by_alias("covidct-classifier", "baseline-resnet152")
