"""Confirmation on sequestered patients, through the pipeline's own tasks on a real lake and a
real MLflow registry (SQLite): two weeks, the second adding patients, then a re-lock.

Small models (VGG16, 32 px, one optimizer step per fold) keep it quick; what is checked is the
custody of patients and models, not accuracy.
"""

from __future__ import annotations

import html
import io
import json
import re
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import tifffile
from chromium import browser_page, chromium_path, offline

from covidct import pipeline
from covidct.config import Settings
from covidct.data import sequester
from covidct.lake.backends import LocalStore
from covidct.lake.layout import LakeLayout, RunLayout
from covidct.pipeline import confirmation
from covidct.promotion import registry
from covidct.promotion.deployable import DIGEST_TAG
from covidct.training import TrainingSpec

PARAMS = TrainingSpec.of_profile("cpu-smoke", epochs=1, steps_per_epoch=1, image_size=32).to_dict()


def _write_batch(lake: LocalStore, batch: str, first: int, count: int) -> pd.DataFrame:
    """``count`` patients (every third COVID), two 48x48 uint16 slices each, in the lake."""
    rng = np.random.default_rng(first)
    rows = []
    for index in range(first, first + count):
        positive = index % 3 == 0
        for instance in (1, 2):
            path = f"{batch}/p{index:03d}/SR_2/IM{instance:05d}.tif"
            target = lake.root / pipeline.CURATED_BATCHES / path
            target.parent.mkdir(parents=True, exist_ok=True)
            stored = rng.normal(700 + 300 * positive, 80, (48, 48)).clip(0, 4095)
            tifffile.imwrite(target, stored.astype(np.uint16))
            rows.append({
                "path": path, "source": "negin", "patient_key": f"negin/p{index:03d}",
                "label": "Positive" if positive else "Negative", "series": "SR_2",
                "dark_pixels": 1000, "sha256": f"{index}-{instance}",
            })  # fmt: skip
    return pd.DataFrame(rows)


def _curate(lake: LocalStore, manifest: pd.DataFrame, version: str) -> dict:
    from covidct.data import selection

    # curate marks the selected slices since selection became part of the dataset manifest
    manifest = manifest.assign(**{selection.SELECTED_COLUMN: True})
    key = LakeLayout.dataset_manifest(version)
    buffer = io.BytesIO()
    manifest.to_parquet(buffer, index=False)
    lake.write_bytes(key, buffer.getvalue())
    return {"dataset_version": version, "manifest_key": key}


def _week(settings: Settings, curated: dict, run: str) -> tuple[dict, dict, list[dict]]:
    specs = pipeline.make_folds(settings, curated, 2, 0, dag_run_id=run)
    trained = [pipeline.train(settings, "vgg16", spec, PARAMS, run) for spec in specs]
    evaluated = [pipeline.evaluate(settings, item, run) for item in trained]
    aggregated = pipeline.aggregate(settings, evaluated, run)
    confirmed = pipeline.confirm(settings, aggregated, run)
    return (
        confirmed,
        pipeline.gate_and_promote(settings, confirmed, run, send=lambda a: None),
        specs,
    )


@pytest.fixture(scope="module")
def weeks(tmp_path_factory: pytest.TempPathFactory) -> dict:
    home = tmp_path_factory.mktemp("confirm_home")
    env = {"COVIDCT_HOME": str(home), "COVIDCT_GATE_FIRST_RUN": "promote-best",
           "COVIDCT_GATE_N_BOOT": "200"}  # fmt: skip
    settings = Settings.from_env(env)
    lake = LocalStore(home / "lake")
    week1 = _write_batch(lake, "b1", 0, 30)
    c1, g1, s1 = _week(settings, _curate(lake, week1, "v1"), "manual__week1")
    week2 = pd.concat([week1, _write_batch(lake, "b2", 30, 15)], ignore_index=True)
    c2, g2, s2 = _week(settings, _curate(lake, week2, "v2"), "manual__week2")
    return {"settings": settings, "lake": lake, "home": home, "week1": (c1, g1, s1),
            "week2": (c2, g2, s2), "manifest2": week2}  # fmt: skip


def _fold_patients(lake: LocalStore, specs: list[dict]) -> set[str]:
    return {
        str(key)
        for spec in specs
        for key in pd.read_parquet(io.BytesIO(lake.read_bytes(spec["key"])))["patient_key"]
    }


def test_no_fold_holds_a_sequestered_patient(weeks: dict) -> None:
    lake = weeks["lake"]
    _, sequestered = sequester.roles_of(sequester.read_assignment(lake))
    for week in ("week1", "week2"):
        confirmed, _, specs = weeks[week]
        assert _fold_patients(lake, specs).isdisjoint(sequestered)
        assert confirmed["sequestered"]["patients"] > 0


def test_registered_model_is_the_evaluated_model(weeks: dict) -> None:
    client = registry.client(weeks["settings"].mlflow.tracking_uri)
    for week in ("week1", "week2"):
        confirmed, gated, _ = weeks[week]
        assert gated["evaluated_model_digest"] == gated["registered_model_digest"]
        assert gated["evaluated_model_digest"]
        version = client.get_model_version("covidct-classifier", gated["version"])
        assert version.tags[DIGEST_TAG] == gated["registered_model_digest"]
        assert version.tags["deployable"] == "ensemble of 2 fold models (mean softmax)"
        assert version.tags["sequester_epoch"] == "1"
        # the registered version predicts what the gate scored
        frame = pd.read_csv(io.BytesIO(weeks["lake"].read_bytes(
            confirmed["deployables"]["vgg16"]["predictions_key"])))  # fmt: skip
        model = mlflow.keras.load_model(f"models:/covidct-classifier/{gated['version']}")
        assert len(model.layers) == 4  # input, two fold models, their mean
        assert frame["p_covid"].between(0, 1).all()


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        (None, TrainingSpec.from_dict(PARAMS)),  # as registered: the full spec
        # registered before the typed spec: the form's non-null values; the rest the profile's
        ('{"epochs": 1, "image_size": 32, "profile": "cpu-smoke", "steps_per_epoch": 1}',
         TrainingSpec.from_dict(PARAMS)),
        ('{"profile": "cpu-smoke"}', TrainingSpec.of_profile("cpu-smoke")),
        ('{"image_size": 32}', "its training spec is unreadable (profile: missing"),
        ('{"profile": "gpu"}', "its training spec is unreadable (profile: expected one of"),
    ],
)  # fmt: skip
def test_champions_training_spec_is_read_from_its_tag(
    weeks: dict, tag: str | None, expected: TrainingSpec | str
) -> None:
    """The champion is scored with the spec of its ``train_params`` tag; an unreadable tag is
    a note (the champion is not compared), never a silent default."""
    settings = weeks["settings"]
    client = registry.client(settings.mlflow.tracking_uri)
    champion = registry.get_champion(client, settings.mlflow.model_name).version
    original = client.get_model_version(settings.mlflow.model_name, champion).tags["train_params"]
    assert TrainingSpec.from_tag(original) == TrainingSpec.from_dict(PARAMS)
    lock = sequester.read_lock(weeks["lake"])
    frame = pd.read_parquet(io.BytesIO(weeks["lake"].read_bytes(
        confirmation.sequestered_key("v2"))))  # fmt: skip
    try:
        if tag is not None:
            client.set_model_version_tag(settings.mlflow.model_name, champion, "train_params", tag)
        record, _, notes = confirmation.champion_record(settings, lock, frame)
    finally:
        client.set_model_version_tag(settings.mlflow.model_name, champion, "train_params", original)
    if isinstance(expected, TrainingSpec):
        assert record is not None and TrainingSpec.from_dict(record["train_params"]) == expected
    else:
        assert record is None and any(expected in note for note in notes), notes


def test_first_week_promotes_second_week_is_judged_on_new_sequestered_patients(weeks: dict) -> None:
    _, first, _ = weeks["week1"]
    confirmed, second, _ = weeks["week2"]
    assert first["verdict"]["passed"] and first["champion_after"] == first["version"]
    assert second["champion_before"] == first["version"]
    (comparison,) = second["comparisons"]
    assert comparison["comparator"] == "champion"
    assert comparison["overlap_patients"] == 0
    # the week-1 champion is scored on every sequestered patient, newcomers included
    champion = confirmed["champion"]
    assert champion["patients"] == second["sequestered_patients"] > first["sequestered_patients"]
    assert champion["overlap_patients"] == 0
    assignment = sequester.read_assignment(weeks["lake"])
    newcomers = assignment[(assignment["assigned_in"] == "manual__week2")]
    assert (newcomers["role"] == sequester.SEQUESTERED).sum() >= 1
    scored = pd.read_csv(io.BytesIO(weeks["lake"].read_bytes(champion["predictions_key"])))
    assert set(newcomers.loc[newcomers["role"] == "sequestered", "patient_key"]) <= set(
        scored["patient_id"]
    )


def test_gate_refuses_a_leaky_or_altered_candidate(weeks: dict) -> None:
    """Forged evidence (the same week-2 predictions): overlap or a digest mismatch refuses."""
    confirmed, _, _ = weeks["week2"]
    mine = dict(confirmed["deployables"]["vgg16"])
    forged = {**mine, "overlap_patients": 3, "registered_model_digest": "0" * 16}
    evidence = {**confirmed, "deployables": {"vgg16": forged}, "champion": None}
    gated = pipeline.gate_and_promote(
        weeks["settings"], evidence, "manual__forged", send=lambda alert: None
    )
    assert not gated["verdict"]["passed"]
    reasons = " ".join(gated["verdict"]["reasons"])
    assert "digests differ" in reasons and "saw 3 of the sequestered patients" in reasons
    assert gated["champion_after"] == gated["champion_before"]


def test_report_json_carries_the_confirmation(weeks: dict) -> None:
    from covidct.report import collect_summary

    gate = collect_summary(weeks["settings"], "manual__week2")["gate"]
    assert gate["sequestered_patients"] == weeks["week2"][0]["sequestered"]["patients"]
    assert [c["overlap_patients"] for c in gate["comparisons"]] == [0]
    assert gate["evaluated_model_digest"] == gate["registered_model_digest"]
    json.dumps(gate)


def test_evidence_is_recorded_with_the_registered_version(weeks: dict) -> None:
    """Temperature on the version, calibration before/after, serving check, run report."""
    from covidct.report import write_summary

    settings, lake = weeks["settings"], weeks["lake"]
    confirmed, gated, _ = weeks["week2"]
    client = registry.client(settings.mlflow.tracking_uri)
    tags = client.get_model_version("covidct-classifier", gated["version"]).tags
    recorded = json.loads(lake.read_bytes(confirmed["evidence"]["key"]))
    entry = recorded["models"]["vgg16"]
    assert float(tags["temperature"]) == pytest.approx(entry["temperature"], rel=1e-5)
    assert json.loads(tags["temperature_fit"])["n_predictions"] > 0
    assert entry["calibration_raw"]["ece"] >= 0 and entry["calibration_scaled"]["brier"] >= 0
    assert recorded["models"]["champion"]["version"] == weeks["week1"][1]["version"]
    serving = gated["serving_check"]
    assert serving["passed"], serving["reasons"]
    assert serving["ms_per_slice"] > 0 and serving["slices"] == 8
    assert tags["serving_ms_per_slice"]  # latency recorded with the version
    assert tags["model_card"].endswith("model_card/model_card.html")
    write_summary(settings, "manual__week2")
    page = (lake.root / "runs/manual__week2/report/report.html").read_text()
    for needle in ("Batch drift", "Subgroups on the sequestered patients", "all patients",
                   "Calibration before and after", "Serving check", "model_card.html"):  # fmt: skip
        assert needle in page, needle


def test_model_card_of_a_registered_version_has_every_section(weeks, tmp_path, monkeypatch,
                                                              capsys) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    from covidct.cli import EXIT_ERROR, EXIT_OK, main
    from covidct.report.model_card import CARD_SECTIONS

    _, gated, _ = weeks["week2"]
    version = gated["version"]
    monkeypatch.setenv("COVIDCT_HOME", str(weeks["home"]))
    out = tmp_path / "card.html"
    assert main(["model-card", version, "--out", str(out)]) == EXIT_OK
    page = out.read_text()
    for heading in CARD_SECTIONS:
        assert f"<h2>{heading}</h2>" in page, heading
    assert page.count("data:image/png;base64,") >= 2  # reliability diagram, Grad-CAM panels
    assert "ECE before" in page and "ECE after" in page
    assert f"previous champion v{gated['champion_before']}" in page  # the change record
    assert "all patients" in page and "passed" in page
    assert "dataset version" in page and "development" in page
    # issue 33: tables and sentences, rates in percent, a change record that lists what changed
    text = html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))
    assert '{"' not in text and "None" not in text
    mine = next(m for m in gated["models"].values() if str(m["version"]) == str(version))
    accuracy = mine["metrics"]["patient_balanced_accuracy"]
    assert f"<td>balanced accuracy (patient)</td><td>{100 * accuracy:.2f}</td>" in page
    assert f"Compared with the previous champion, v{gated['champion_before']}:" in text
    for sentence in ("Data: dataset version ", "Training specification: ",
                     "Sequestered metrics (both scored on this run's sequestered patients): "
                     "ROC AUC (image) ", "Gate verdict: "):  # fmt: skip
        assert sentence in text, sentence
    assert "(95% CI " in text.split("Sequestered metrics")[1]
    if chromium_path() is not None:  # the card asks nothing of the network
        with browser_page() as browser:
            network = offline(browser)
            browser.goto(out.resolve().as_uri(), wait_until="load")
            assert browser.locator("h2").count() == len(CARD_SECTIONS) and network == []
    # the card logged with the version is the same document
    logged = mlflow.artifacts.download_artifacts(
        registry.client(weeks["settings"].mlflow.tracking_uri)
        .get_model_version("covidct-classifier", version).tags["model_card"]
    )  # fmt: skip
    assert "Change record" in Path(logged).read_text()
    # without --out: the key the run published it to, not the current folder
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)
    assert main(["model-card", version]) == EXIT_OK
    published = weeks["home"] / "lake" / RunLayout.of("manual__week2").model_card(version)
    assert capsys.readouterr().out == f"model card written to {published}\n"
    assert published.read_text() == page and not list(tmp_path.glob("model_card_v*"))
    assert main(["model-card", "999"]) == EXIT_ERROR
    assert "has no version '999'" in capsys.readouterr().err


def test_a_first_runs_change_record_says_whether_the_version_became_champion(weeks) -> None:  # type: ignore[no-untyped-def]
    from covidct.report.model_card import change_html

    settings = weeks["settings"]
    _, first, _ = weeks["week1"]  # promote-best: the first run's candidate becomes champion
    assert first["champion_before"] is None and first["champion_after"] == first["version"]
    client = registry.client(settings.mlflow.tracking_uri)
    promoted = change_html(client, settings, first["version"], first)
    assert "this version became champion" in promoted
    assert f"champion none &rarr; v{first['version']}" in promoted
    assert "this version is the first champion" in promoted
    refused = {**first, "champion_after": None}  # as in `make demo`: beat-baseline refuses
    record = change_html(client, settings, first["version"], refused)
    assert "this version was not promoted; champion none &rarr; none" in record
    assert "first champion" not in record


def _subgroup_case(missed: set[str]) -> pd.DataFrame:
    """120 sequestered-like patients (three slices each): 100 from source a (50 COVID), 20 from
    source b (10 COVID). p(COVID) is 0.9 for COVID slices, 0.1 for normal ones and for the COVID
    patients in ``missed``."""
    rows = []
    for index in range(120):
        patient = f"{'a' if index < 100 else 'b'}/p{index:03d}"
        covid = index % 2 == 0
        p = 0.9 if covid and patient not in missed else 0.1
        for instance in range(3):
            rows.append({"patient_id": patient, "y_true": "covid" if covid else "normal",
                         "p_covid": p, "slice_id": f"{patient}/{instance}", "series": "SR_2",
                         "patient_threshold": 0.5, "selected": True})  # fmt: skip
    return pd.DataFrame(rows)


def test_gate_refuses_a_candidate_that_regresses_in_one_subgroup(weeks: dict) -> None:
    """Forged evidence: the candidate misses 8 of source b's 10 COVID patients the champion
    finds, and finds 10 of source a's the champion misses (better overall); gate_and_promote
    refuses it naming source=b, and only source=b.

    Issue 31: harm in a subgroup must now be shown beyond the margin with family-wise (Holm)
    control; 3 missed of 10 (the old case) gives p about 0.06 for a loss beyond 5 points, not
    evidence of harm, so the forged loss is 8 of 10 (80 points)."""
    settings, lake = weeks["settings"], weeks["lake"]
    confirmed, _, _ = weeks["week2"]
    candidate = _subgroup_case({f"b/p{i:03d}" for i in range(100, 116, 2)})
    champion = _subgroup_case({f"a/p{i:03d}" for i in range(0, 20, 2)})
    lake.write_bytes("runs/forged/candidate.csv", candidate.to_csv(index=False).encode())
    lake.write_bytes("runs/forged/champion.csv", champion.to_csv(index=False).encode())
    mine = {**confirmed["deployables"]["vgg16"], "predictions_key": "runs/forged/candidate.csv"}
    rival = {**confirmed["champion"], "predictions_key": "runs/forged/champion.csv"}
    forged = {**confirmed, "deployables": {"vgg16": mine}, "champion": rival, "evidence": None}
    gated = pipeline.gate_and_promote(settings, forged, "manual__subgroup", send=lambda a: None)
    assert not gated["verdict"]["passed"]
    (reason,) = gated["subgroups"]["reasons"]
    assert reason.startswith("source=b: COVID sensitivity lost beyond the margin")
    assert reason in gated["verdict"]["reasons"]
    judged = {c["subgroup"]: c for c in gated["subgroups"]["comparisons"] if c["axis"] == "source"}
    assert judged["b"]["judged"] and judged["b"]["difference"] == pytest.approx(-0.8)
    assert judged["a"]["passed"] and judged["a"]["difference"] == pytest.approx(0.2)
    assert gated["champion_after"] == gated["champion_before"]


def test_after_a_relock_the_champion_is_scored_only_on_patients_it_never_saw(
    weeks: dict,
) -> None:
    settings, lake = weeks["settings"], weeks["lake"]
    sequester.relock(lake, sequester.SequesterRule(share=0.4), reason="test", by="pytest")
    lock = sequester.read_lock(lake)
    relocked = Settings.from_env({"COVIDCT_HOME": str(weeks["home"]),
                                  "COVIDCT_SEQUESTERED_SHARE": "0.4"})  # fmt: skip
    curated = _curate(lake, weeks["manifest2"], "v3")
    pipeline.make_folds(relocked, curated, 2, 0, dag_run_id="manual__week3")
    frame = pd.read_parquet(io.BytesIO(lake.read_bytes(confirmation.sequestered_key("v3"))))
    champion, clean, notes = confirmation.champion_record(settings, lock, frame)
    assert champion is not None
    assert 0 < clean["patient_key"].nunique() < frame["patient_key"].nunique()
    seen = set(pd.read_parquet(io.BytesIO(lake.read_bytes(champion["seen_patients_key"])))[
        "patient_key"])  # fmt: skip
    assert seen.isdisjoint(clean["patient_key"])
    assert any("re-locked" in note and "left out" in note for note in notes)
