"""covidct.lake.custody: ledger, discovery, quarantine and acceptance on a local folder and on
S3."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from conftest import BatchFactory

from covidct import schema
from covidct.batch.manifest import build_manifest
from covidct.lake.backends import open_store
from covidct.lake.curation import (
    accept_batch,
    ingest_batch,
    known_hashes,
    known_labels,
    quarantine_batch,
)
from covidct.lake.custody import (
    BatchLedger,
    BatchStatus,
    batch_content_hash,
    content_hash,
    curated_prefix,
    discover_new_batches,
    landed_batches,
    local_content_hash,
    local_file_hashes,
)
from covidct.lake.landing import land_batch
from covidct.lake.layout import LakeLayout
from covidct.lake.storage import ObjectStore

BACKENDS = ["local", pytest.param("s3", marks=pytest.mark.s3)]


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return open_store((tmp_path / "lake").as_uri())
    return request.getfixturevalue("s3_store")


def _one_patient(factory: BatchFactory, name: str, label: str = "Positive") -> Path:
    return factory.write(name, patients={"patient1": label})


def _ledger_lines(store: ObjectStore) -> int:
    """Custody records (landing receipts left out)."""
    keys = store.list(f"{LakeLayout.LEDGER_BATCHES}/")
    return sum(len(store.read_text(k).splitlines()) for k in keys)


@pytest.mark.parametrize(
    ("files", "text"),
    [
        ({"a": "x"}, "a\0x\n"),
        ({"b": "2", "a": "1"}, "a\x001\nb\x002\n"),  # sorted by path, not insertion order
    ],
)
def test_content_hash_hand_computed(files: dict[str, str], text: str) -> None:
    assert content_hash(files) == hashlib.sha256(text.encode()).hexdigest()


def test_content_hash_of_nothing_raises() -> None:
    with pytest.raises(ValueError, match="empty batch"):
        content_hash({})


def test_store_and_local_hashes_agree(store: ObjectStore, batch_factory: BatchFactory) -> None:
    batch = _one_patient(batch_factory, "b1")
    store.upload_dir(batch, "landing/b1")
    assert batch_content_hash(store, "landing/b1") == local_content_hash(batch)
    (batch / "patient1" / "SR_2" / "IM00001.tif").rename(batch / "patient1" / "SR_2" / "IM2.tif")
    assert local_content_hash(batch) != batch_content_hash(store, "landing/b1")  # names count


def test_quarantine_then_corrected_resubmission(
    store: ObjectStore, batch_factory: BatchFactory, tmp_path: Path
) -> None:
    bad = _one_patient(batch_factory, "bad")
    (bad / "patient1" / "SR_3" / "IM00001.tif").write_bytes(b"not a tiff")
    sent = local_file_hashes(bad)
    land_batch(store, bad, "week48")
    assert discover_new_batches(store) == ["week48"]

    outcome = ingest_batch(store, "week48", tmp_path / "work1")
    assert not outcome.passed
    assert any("patient1/SR_3/IM00001.tif" in r for r in outcome.verdict["reasons"])
    quarantined = f"{schema.QUARANTINE}/week48/{outcome.content_hash[:16]}"
    assert outcome.location == store.uri(quarantined)
    assert store.hash_prefix(f"{quarantined}/batch") == sent  # byte-identical, every file
    report = store.list_relative(f"{quarantined}/report")
    assert {"validation.json", "index.html", "verdict.json", "data_docs/index.html"} <= set(report)
    assert store.list("landing/") == []
    assert BatchLedger(store).get(outcome.content_hash).status is BatchStatus.QUARANTINED

    again = land_batch(store, bad, "week48-again")  # the same bad bytes land twice: no-op
    assert again.action == "no-op" and "quarantined as batch week48" in again.message
    assert discover_new_batches(store) == []

    good = _one_patient(batch_factory, "good")
    land_batch(store, good, "week48")
    assert discover_new_batches(store) == ["week48"]
    accepted = ingest_batch(store, "week48", tmp_path / "work2")
    assert accepted.passed, accepted.verdict["reasons"]
    assert store.hash_prefix(curated_prefix("week48")) == local_file_hashes(good)
    assert store.hash_prefix(f"{quarantined}/batch") == sent  # the quarantined copy stays
    assert _ledger_lines(store) == 2


def test_same_batch_landing_twice_is_a_no_op(
    store: ObjectStore, batch_factory: BatchFactory
) -> None:
    batch = _one_patient(batch_factory, "b1")
    store.upload_dir(batch, "landing/b1")
    digest = landed_batches(store)[0].content_hash
    manifest = build_manifest(batch, progress=False)
    uri = accept_batch(store, "b1", manifest=manifest, content_hash_hex=digest)
    again = accept_batch(store, "b1", manifest=manifest, content_hash_hex=digest)  # retried task
    assert uri == again == store.uri(curated_prefix("b1"))
    assert _ledger_lines(store) == 1
    store.upload_dir(batch, "landing/b1")
    store.upload_dir(batch, "landing/b1-resent")
    assert [b.content_hash for b in landed_batches(store)] == [digest, digest]
    assert discover_new_batches(store) == []


def test_retry_after_an_interrupted_move(store: ObjectStore, batch_factory: BatchFactory) -> None:
    batch = _one_patient(batch_factory, "b1")
    store.upload_dir(batch, "landing/b1")
    digest = batch_content_hash(store, "landing/b1")
    store.copy_prefix("landing/b1", curated_prefix("b1"))  # the move's verified copy ...
    landed = store.list("landing/b1/")
    store.delete_many(landed[:2])  # ... and half its clean-up, then the worker died
    manifest = build_manifest(batch, progress=False)
    accept_batch(store, "b1", manifest=manifest, content_hash_hex=digest)
    assert store.list("landing/") == []
    assert store.hash_prefix(curated_prefix("b1")) == local_file_hashes(batch)
    assert BatchLedger(store).get(digest).status is BatchStatus.ACCEPTED


def test_quarantine_retry_is_idempotent(
    store: ObjectStore, batch_factory: BatchFactory, tmp_path: Path
) -> None:
    batch = _one_patient(batch_factory, "b1")
    store.upload_dir(batch, "landing/b1")
    digest = batch_content_hash(store, "landing/b1")
    report = tmp_path / "report"
    report.mkdir()
    (report / "index.html").write_text("<p>failed</p>")
    verdict = {"passed": False, "reasons": ["[constant] ..."]}
    first = quarantine_batch(store, "b1", verdict, report, content_hash_hex=digest)
    second = quarantine_batch(store, "b1", verdict, report, content_hash_hex=digest)
    assert first == second
    assert _ledger_lines(store) == 1
    with pytest.raises(FileNotFoundError, match="landing/b1"):
        quarantine_batch(store, "b1", verdict, report)  # nothing landed, no hash to resume


def test_reused_batch_id_with_other_content_is_refused(
    store: ObjectStore, batch_factory: BatchFactory
) -> None:
    first = _one_patient(batch_factory, "first")
    store.upload_dir(first, "landing/b1")
    accept_batch(store, "b1", manifest=build_manifest(first, progress=False))
    other = _one_patient(batch_factory, "other")
    store.upload_dir(other, "landing/b1")
    with pytest.raises(FileExistsError, match="already holds another batch 'b1'"):
        accept_batch(store, "b1", manifest=build_manifest(other, progress=False))
    assert store.hash_prefix("landing/b1") == local_file_hashes(other)  # left in landing
    assert store.hash_prefix(curated_prefix("b1")) == local_file_hashes(first)


def test_later_batches_are_checked_against_earlier_ones(
    store: ObjectStore, batch_factory: BatchFactory, tmp_path: Path
) -> None:
    first = _one_patient(batch_factory, "first", "Positive")
    store.upload_dir(first, "landing/w1")
    assert ingest_batch(store, "w1", tmp_path / "w1").passed
    assert known_labels(store) == {"negin/patient1": "Positive"}
    assert set(known_hashes(store).values()) == {"negin/patient1"}
    assert len(known_hashes(store)) == 3

    contradicting = _one_patient(batch_factory, "second", "Negative")
    store.upload_dir(contradicting, "landing/w2")
    outcome = ingest_batch(store, "w2", tmp_path / "w2")
    assert [f["check"] for f in outcome.verdict["failures"]] == ["label_contradiction"]

    resent = batch_factory.write("third", patients={"patient2": "Negative"})
    shutil.copy(first / "patient1/SR_2/IM00001.tif", resent / "patient2/SR_2/IM00002.tif")
    store.upload_dir(resent, "landing/w3")
    outcome = ingest_batch(store, "w3", tmp_path / "w3")
    failure = next(f for f in outcome.verdict["failures"] if f["check"] == "resent_slice")
    assert failure["examples"] == ["patient2/SR_2/IM00002.tif (earlier_patient=negin/patient1)"]


@pytest.mark.parametrize("batch_id", ["", "a/b", "..", "."])
def test_invalid_batch_ids_are_refused(batch_id: str, tmp_path: Path) -> None:
    store = open_store((tmp_path / "lake").as_uri())
    with pytest.raises(ValueError, match="invalid batch id"):
        quarantine_batch(store, batch_id, {}, None)
