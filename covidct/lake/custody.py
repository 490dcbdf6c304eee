"""Chain of custody for landed batches: content-hash ledger, quarantine, acceptance.

Storage areas (prefixes of one :class:`~covidct.lake.storage.ObjectStore`, names in
:mod:`covidct.schema`)::

    landing/<batch_id>/...                               batches as the hospital sent them
    quarantine/<batch_id>/<hash16>/batch/...             a failed batch, byte-identical
    quarantine/<batch_id>/<hash16>/report/...            its validation report + verdict.json
    curated/batches/<batch_id>/...                       an accepted batch, byte-identical
    curated/manifests/<batch_id>.parquet                 its per-slice manifest
    ledger/batches/<content_hash>.jsonl                  one JSON line per batch content hash
    ledger/landings/<batch_id>/<time>-<hash16>.json      receipts of ``covidct land``

Batch content hash (:func:`content_hash`): sha256 over the sorted lines
``"<relative path>\\0<sha256 of the file>\\n"`` of every file of the batch, so it changes
with any byte, name or file count and does not depend on the batch id or the listing order.

Rules:
* Discovery compares each landed batch's content hash with the ledger: a batch landing twice
  (under any id) is a no-op.
* Quarantine and acceptance *move* the batch out of landing: verified copy (sha256 of every
  object read back), then removal of the landing objects. Nothing is ever deleted without a
  verified copy; the hash of the moved batch is checked against the landed one.
* Every write is idempotent: a retried task overwrites its own output, and the ledger has one
  object per content hash (written once; "append-only": an existing record is never changed).
  S3 has no append, so the ledger is a folder of one-line JSON-lines objects rather than one
  growing file.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from covidct.batch.contract import check_name, name_problem
from covidct.batch.files import escaped
from covidct.lake.layout import LakeLayout
from covidct.lake.storage import ObjectStore, folder, sha256_hex

logger = logging.getLogger(__name__)

LEDGER_BATCHES = LakeLayout.LEDGER_BATCHES
#: Receipts of ``covidct land`` (:mod:`covidct.lake.landing`), ``<batch_id>/<time>-<hash16>.json``.
LEDGER_LANDINGS = LakeLayout.LEDGER_LANDINGS
CURATED_BATCHES = LakeLayout.CURATED_BATCHES
CURATED_MANIFESTS = LakeLayout.CURATED_MANIFESTS
#: Hex digits of the content hash naming a quarantined version.
SHORT_HASH = LakeLayout.SHORT_HASH


class BatchStatus(StrEnum):
    """Outcome recorded in the ledger for one batch content hash."""

    ACCEPTED = "accepted"
    QUARANTINED = "quarantined"


@dataclass(frozen=True)
class LedgerEntry:
    """One ledger record: which content, under which id, what happened, where it lives now.

    ``location``: store key prefix of the batch bytes; ``manifest_key``: curated manifest
    (accepted batches only); ``recorded_at``: ISO 8601 UTC; ``info``: JSON-safe extras.
    """

    content_hash: str
    batch_id: str
    status: BatchStatus
    location: str
    n_files: int
    recorded_at: str
    manifest_key: str | None = None
    info: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """Return the record as one JSON line (no newline)."""
        return json.dumps({**asdict(self), "status": self.status.value}, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LedgerEntry:
        """Return the entry for a parsed JSON record; raises KeyError/ValueError if malformed."""
        return cls(**{**data, "status": BatchStatus(data["status"]), "info": data.get("info", {})})


@dataclass(frozen=True)
class LandedBatch:
    """A batch folder under ``landing/`` with its content hash."""

    batch_id: str
    content_hash: str
    n_files: int

    @property
    def prefix(self) -> str:
        """Return the batch's landing prefix."""
        return landing_prefix(self.batch_id)


def landing_prefix(batch_id: str) -> str:
    """Return ``landing/<batch_id>``; raises ValueError for an id that is not one clean folder
    name (:func:`covidct.batch.files.name_problem`: blank, separators, not NFC, ...)."""
    return LakeLayout.landing_batch(check_name("batch id", batch_id))


# ------------------------------------------------------------------------- content hashes


def content_hash(files: Mapping[str, str]) -> str:
    """Return the batch content hash of {relative POSIX path: file sha256} (module docstring).

    Raises ValueError for an empty mapping (an empty batch has no content to identify).
    """
    if not files:
        raise ValueError("cannot hash an empty batch")
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(f"{path}\0{files[path]}\n".encode())
    return digest.hexdigest()


def batch_content_hash(store: ObjectStore, prefix: str) -> str:
    """Return the content hash of every object under folder ``prefix`` (reads every byte)."""
    return content_hash(store.hash_prefix(prefix))


def local_file_hashes(batch_dir: Path) -> dict[str, str]:
    """Return {relative POSIX path: sha256} of every file under ``batch_dir``."""
    files = sorted(p for p in batch_dir.rglob("*") if p.is_file())
    return {p.relative_to(batch_dir).as_posix(): sha256_hex(p.read_bytes()) for p in files}


def local_content_hash(batch_dir: Path) -> str:
    """Return the content hash of a local batch folder (same value as in the store)."""
    return content_hash(local_file_hashes(batch_dir))


# ------------------------------------------------------------------------------ the ledger


class BatchLedger:
    """Content-hash ledger under ``ledger/batches/`` of ``store`` (one object per hash)."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    @staticmethod
    def key(content_hash_hex: str) -> str:
        """Return the ledger object key for a content hash."""
        return LakeLayout.ledger_batch(content_hash_hex)

    def entries(self) -> list[LedgerEntry]:
        """Return every record, oldest first (by ``recorded_at``)."""
        records: list[LedgerEntry] = []
        for key in self.store.list(folder(LEDGER_BATCHES)):
            lines = self.store.read_text(key).splitlines()
            records.extend(LedgerEntry.from_dict(json.loads(line)) for line in lines if line)
        return sorted(records, key=lambda e: (e.recorded_at, e.content_hash))

    def get(self, content_hash_hex: str) -> LedgerEntry | None:
        """Return the record of ``content_hash_hex``, None when the content is unknown."""
        key = self.key(content_hash_hex)
        if not self.store.exists(key):
            return None
        line = self.store.read_text(key).splitlines()[0]
        return LedgerEntry.from_dict(json.loads(line))

    def record(self, entry: LedgerEntry) -> LedgerEntry:
        """Write ``entry`` unless its content hash is already recorded; return the stored one.

        Idempotent: recording the same content twice keeps the first record (one line per
        hash, never duplicated, never rewritten).
        """
        existing = self.get(entry.content_hash)
        if existing is not None:
            if existing.status != entry.status:
                logger.warning(
                    "ledger keeps %s for content %s (batch %s); ignoring new status %s",
                    existing.status,
                    entry.content_hash[:12],
                    entry.batch_id,
                    entry.status,
                )
            return existing
        self.store.write_text(self.key(entry.content_hash), entry.to_json() + "\n")
        logger.info("ledger: batch %s %s (%s)", entry.batch_id, entry.status, entry.content_hash)
        return entry


# ---------------------------------------------------------------------------- discovery


def landed_batches(store: ObjectStore) -> list[LandedBatch]:
    """Return every batch folder under ``landing/`` with its content hash, sorted by id."""
    batches = []
    for batch_id in store.list_dirs(LakeLayout.LANDING):
        problem = name_problem(batch_id)
        if problem is not None:
            logger.error("landing/%s: %s; left in landing", escaped(batch_id), problem)
            continue
        files = store.hash_prefix(landing_prefix(batch_id))
        if files:
            batches.append(LandedBatch(batch_id, content_hash(files), len(files)))
    return batches


def pending_batches(store: ObjectStore) -> list[LandedBatch]:
    """Return landed batches whose content hash is not in the ledger (new work).

    One content, one batch: when several landing ids hold the same content, only the first id
    (sorted) is pending; the others are logged as no-ops naming it, so one run never curates
    the same content twice. A batch landed by ``covidct land`` is pending only while it holds
    exactly the content of its latest landing receipt (``ledger/landings/<id>/``), which
    ``covidct land`` writes last: a batch without one (an interrupted first landing, files put
    there behind the CLI's back) or with another content (an interrupted ``--replace``) is
    left in landing, logged, until the next ``covidct land`` of its id completes or replaces it.
    """
    ledger = BatchLedger(store)
    pending: list[LandedBatch] = []
    first_id: dict[str, str] = {}
    for batch in landed_batches(store):
        seen, receipt = ledger.get(batch.content_hash), latest_receipt_hash(store, batch.batch_id)
        if receipt != batch.content_hash:
            logger.warning(
                "landing/%s holds content %s, %s: an unfinished landing, left in landing",
                batch.batch_id,
                batch.content_hash[:12],
                f"not {receipt[:12]} of its last receipt" if receipt else "with no receipt",
            )
        elif batch.content_hash in first_id:
            logger.warning(
                "landing/%s is content %s, already pending as batch %s: no-op",
                *(batch.batch_id, batch.content_hash[:12], first_id[batch.content_hash]),
            )
        elif seen is None:
            first_id[batch.content_hash] = batch.batch_id
            pending.append(batch)
        else:
            logger.info(
                "landing/%s is content %s, already %s as batch %s: no-op",
                *(batch.batch_id, batch.content_hash[:12], seen.status.value, seen.batch_id),
            )
    return pending


def receipted_batches(store: ObjectStore) -> list[LandedBatch]:
    """Return the landed batches that hold exactly the content of their latest receipt."""
    return [
        batch
        for batch in landed_batches(store)
        if latest_receipt_hash(store, batch.batch_id) == batch.content_hash
    ]


def latest_receipt_hash(store: ObjectStore, batch_id: str) -> str | None:
    """Return the content hash of the latest landing receipt of ``batch_id`` (None: none)."""
    keys = store.list(LakeLayout.landing_receipts(batch_id))
    return str(json.loads(store.read_text(max(keys)))["content_hash"]) if keys else None


def discover_new_batches(store: ObjectStore) -> list[str]:
    """Return ids of landed batches not yet in the ledger (same content twice: no-op)."""
    return [batch.batch_id for batch in pending_batches(store)]


def landed_hash(
    store: ObjectStore, batch_id: str, expected: str | None, target: str | None = None
) -> str:
    """Return the content hash of ``landing/<batch_id>``, checked against ``expected``.

    A retry after an interrupted move finds landing partly or wholly gone: that is fine when
    ``target`` already holds exactly ``expected`` and every leftover landing object is there.
    Raises FileNotFoundError (nothing landed, no hash given) or ValueError (content changed).
    """
    files = store.hash_prefix(landing_prefix(batch_id))
    if expected is None:
        if not files:
            raise FileNotFoundError(f"{store.uri(landing_prefix(batch_id))} holds no batch")
        return content_hash(files)
    if files and content_hash(files) == expected:
        return expected
    done = store.hash_prefix(target) if target else {}
    if done and content_hash(done) == expected and all(done.get(k) == v for k, v in files.items()):
        return expected
    found = content_hash(files)[:12] if files else "nothing"
    raise ValueError(f"landing/{batch_id} changed: found {found}, expected {expected[:12]}...")


def move_verified(store: ObjectStore, src: str, dst: str, expected_hash: str) -> int:
    """Move folder ``src`` to ``dst`` and check the whole destination has ``expected_hash``."""
    store.move_prefix(src, dst)
    moved = store.hash_prefix(dst)
    if not moved or content_hash(moved) != expected_hash:
        raise ValueError(
            f"{store.uri(dst)} does not hold content {expected_hash[:12]}... after the move;"
            f" nothing was deleted that was not copied"
        )
    return len(moved)


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second (``2026-01-05T10:00:00+00:00``)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------- acceptance


def curated_prefix(batch_id: str) -> str:
    """Return ``curated/batches/<batch_id>``."""
    return LakeLayout.curated_batch(batch_id)


def manifest_key(batch_id: str) -> str:
    """Return ``curated/manifests/<batch_id>.parquet``."""
    return LakeLayout.curated_manifest(batch_id)
