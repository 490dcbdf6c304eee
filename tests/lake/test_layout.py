"""Tests of covidct.lake.layout: the lake's keys equal the documented layout table, key by key.

docs/architecture.md, "Lake layout", is read as it is: each backticked key of its first column
(and the files its ``runs/<run>/evidence/`` row names) is filled with sample values and compared
with what :class:`LakeLayout` and :class:`RunLayout` build. A key renamed in the code or in the
document, a row added to one and not the other, fails here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from covidct.lake.layout import LakeLayout, RunLayout, run_key_of

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"

HASH = "0123456789abcdef" * 4
#: Sample value of each placeholder of the table.
SAMPLES = {
    "<run>": "manual__week2",
    "<batch_id>": "week48",
    "<batch>": "week48",
    "<hash16>": HASH[:16],
    "<content_hash>": HASH,
    "<version>": "fedcba9876543210",
    "<k>": "3",
    "<seed>": "42",
    "<backbone>": "vgg16",
    "<backbone or champion>": "champion",
    "<model>": "vgg16",
    "<candidate>": "vgg16",
    "<N>": "7",
    "<nnnn>": "0012",
    "<time>": "20261201T120000Z",
    "<action>": "promote",
    "<id8>": "abcd1234",
    "<id>": "f" * 32,
}
RUN = RunLayout("manual__week2")
B, V = "week48", "fedcba9876543210"

#: Documented key (as written in the table) -> the key the layout builds for the samples.
KEYS: dict[str, Callable[[], str]] = {
    "landing/<batch_id>/...": lambda: LakeLayout.landing_batch(B),
    "staging/landing/<batch_id>/...": lambda: LakeLayout.staging_batch(B),
    "quarantine/<batch_id>/<hash16>/batch/...": lambda: LakeLayout.quarantined_batch(B, HASH),
    "quarantine/<batch_id>/<hash16>/report/...": lambda: LakeLayout.quarantine_report(B, HASH),
    "curated/batches/<batch_id>/...": lambda: LakeLayout.curated_batch(B),
    "curated/manifests/<batch_id>.parquet": lambda: LakeLayout.curated_manifest(B),
    "curated/<version>/manifest.parquet": lambda: LakeLayout.dataset_manifest(V),
    "curated/<version>/sequestered.parquet": lambda: LakeLayout.sequestered_manifest(V),
    "folds/assignment-k<k>-seed<seed>.parquet": lambda: LakeLayout.fold_assignment(3, 42),
    "folds/<version>/fold-<k>.parquet": lambda: LakeLayout.fold_manifest(V, 3),
    "sequestered/lock.json": lambda: LakeLayout.SEQUESTER_LOCK,
    "sequestered/locks/epoch-<nnnn>.json": lambda: LakeLayout.sequester_lock_record(12),
    "sequestered/assignment.parquet": lambda: LakeLayout.SEQUESTER_ASSIGNMENT,
    "ledger/batches/<content_hash>.jsonl": lambda: LakeLayout.ledger_batch(HASH),
    "ledger/landings/<batch_id>/<time>-<hash16>.json": lambda: LakeLayout.landing_receipt(
        B, "20261201T120000Z", HASH
    ),
    "ledger/promotions/<time>-<action>-<id8>.json": lambda: LakeLayout.promotion_record(
        "20261201T120000Z-promote-abcd1234"
    ),
    "ledger/promotion-intents/<id>.json": lambda: LakeLayout.promotion_intent("f" * 32),
    "runs/<run>/validation/<batch>/manifest.parquet": lambda: RUN.validation_manifest(B),
    "runs/<run>/validation/<batch>/verdict.json": lambda: RUN.validation_verdict(B),
    "runs/<run>/checkpoints/<backbone>/fold-<k>/": lambda: RUN.checkpoints("vgg16", 3),
    "runs/<run>/predictions/<backbone>-fold<k>.csv": lambda: RUN.predictions("vgg16", 3),
    "runs/<run>/gradcam/<backbone>-fold<k>.png": lambda: RUN.gradcam("vgg16", 3),
    "runs/<run>/leaderboard.csv": lambda: RUN.leaderboard,
    "runs/<run>/pooled_metrics.json": lambda: RUN.pooled_metrics,
    "runs/<run>/curation.json": lambda: RUN.curation,
    "runs/<run>/deployables/<backbone>/seen_patients.parquet": lambda: RUN.seen_patients("vgg16"),
    "runs/<run>/sequestered/<backbone or champion>.csv": lambda: RUN.sequestered_predictions(
        "champion"
    ),
    "runs/<run>/gate.json": lambda: RUN.gate,
    "runs/<run>/drift/<batch>.json": lambda: RUN.drift(B),
    "runs/<run>/evidence/": lambda: RUN.evidence_dir,
    "runs/<run>/evidence/evidence.json": lambda: RUN.evidence_index,
    "runs/<run>/evidence/<model>-subgroups.csv": lambda: RUN.subgroups("vgg16"),
    "runs/<run>/evidence/<model>-reliability.png": lambda: RUN.reliability("vgg16"),
    "runs/<run>/evidence/roster.parquet": lambda: RUN.roster,
    "runs/<run>/evidence/probe-<candidate>.json": lambda: RUN.probe("vgg16"),
    "runs/<run>/evidence/serving-v<N>.json": lambda: RUN.serving(7),
    "runs/<run>/model_cards/v<N>/model_card.html": lambda: RUN.model_card(7),
    "runs/<run>/model_cards/index.json": lambda: RUN.model_cards_index,
    "runs/history/<run>.json": lambda: RUN.history,
    "runs/<run>/summary.json": lambda: RUN.summary_json,
    "runs/<run>/summary.txt": lambda: RUN.summary_txt,
    "runs/<run>/report/report.html": lambda: RUN.report_html,
    "runs/LATEST": lambda: LakeLayout.LATEST,
}


def documented_keys(text: str) -> list[str]:
    """Every key of the "Lake layout" table: the backticked names of the first column (a bare
    file name is a sibling of the key before it, a path is a key) and the files of the
    ``evidence/`` row."""
    section = text.split("## Lake layout", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    keys = []
    for row in rows:
        first, content = row.split("|")[1:3]
        names = re.findall(r"`([^`]+)`", first)
        keys.append(names[0])
        folder = names[0].rsplit("/", 1)[0]
        keys += [name if "/" in name else f"{folder}/{name}" for name in names[1:]]
        if names[0].endswith("/evidence/"):
            keys += [f"{names[0]}{n}" for n in re.findall(r"`([^`/]+\.[a-z]+)`", content)]
    return keys


def fill(key: str) -> str:
    """The documented key with sample values, without its ``/...`` or trailing ``/``."""
    for placeholder, value in sorted(SAMPLES.items(), key=lambda kv: -len(kv[0])):
        key = key.replace(placeholder, value)
    return key.removesuffix("/...").removesuffix("/")


def test_the_table_is_read() -> None:
    keys = documented_keys(DOC.read_text())
    assert len(keys) >= 40 and "runs/<run>/gate.json" in keys and "runs/LATEST" in keys


def test_the_layout_names_every_documented_key_and_no_other() -> None:
    assert sorted(documented_keys(DOC.read_text())) == sorted(KEYS)


@pytest.mark.parametrize("documented", sorted(KEYS))
def test_each_key_is_the_documented_one(documented: str) -> None:
    assert KEYS[documented]() == fill(documented)


def test_the_real_keys_of_a_run() -> None:
    """Spelled out, so a placeholder swap in both the table and the code is caught too."""
    run = RunLayout.of("manual__2026-12-01T12:00:00+00:00")
    assert run.run_key == "manual__2026-12-01T12_00_00_00_00"
    assert run.gate == "runs/manual__2026-12-01T12_00_00_00_00/gate.json"
    assert run.predictions("vgg16", 2).endswith("/predictions/vgg16-fold2.csv")
    assert run.checkpoints("vgg16", 2).endswith("/checkpoints/vgg16/fold-2")
    assert run.history == "runs/history/manual__2026-12-01T12_00_00_00_00.json"
    assert run.report_html.endswith("_00_00/report/report.html")
    assert LakeLayout.quarantine_batch("b1", HASH) == "quarantine/b1/0123456789abcdef"
    assert LakeLayout.LATEST == "runs/LATEST"
    assert run.model_card_from_report(3) == "../model_cards/v3/model_card.html"


def test_a_run_layout_from_its_prefix() -> None:
    assert RunLayout.at("runs/manual__week2") == RUN == RunLayout.at("runs/manual__week2/")
    for bad in ("curated/manual__week2", "runs/a/b", "runs/a:b"):
        with pytest.raises(ValueError, match="is not a run folder"):
            RunLayout.at(bad)
    with pytest.raises(ValueError, match="not storage-safe"):
        RunLayout("a/b")
    assert run_key_of("scheduled__2026-12-01T00:00:00+00:00") == (
        "scheduled__2026-12-01T00_00_00_00_00"
    )
