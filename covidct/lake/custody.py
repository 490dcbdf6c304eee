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
import io
import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import pandas as pd

from covidct import schema
from covidct.batch.files import check_name, escaped, name_problem
from covidct.lake.storage import ObjectStore, folder, sha256_hex

logger = logging.getLogger(__name__)

LEDGER_BATCHES = f"{schema.LEDGER}/batches"
#: Receipts of ``covidct land`` (:mod:`covidct.lake.landing`), ``<batch_id>/<time>-<hash16>.json``.
LEDGER_LANDINGS = f"{schema.LEDGER}/landings"
CURATED_BATCHES = f"{schema.CURATED}/batches"
CURATED_MANIFESTS = f"{schema.CURATED}/manifests"
#: Hex digits of the content hash naming a quarantined version.
SHORT_HASH = 16


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
    return f"{schema.LANDING}/{check_name('batch id', batch_id)}"


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
        return f"{LEDGER_BATCHES}/{content_hash_hex}.jsonl"

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
    for batch_id in store.list_dirs(schema.LANDING):
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
    exactly the content of its latest landing receipt (``ledger/landings/<id>/``): an
    interrupted ``--replace`` or a file added behind the CLI's back is left in landing, logged.
    """
    ledger = BatchLedger(store)
    pending: list[LandedBatch] = []
    first_id: dict[str, str] = {}
    for batch in landed_batches(store):
        seen, receipt = ledger.get(batch.content_hash), latest_receipt_hash(store, batch.batch_id)
        if receipt not in (None, batch.content_hash):
            logger.error(
                "landing/%s holds content %s, not %s of its last landing receipt: left in landing",
                *(batch.batch_id, batch.content_hash[:12], str(receipt)[:12]),
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


def latest_receipt_hash(store: ObjectStore, batch_id: str) -> str | None:
    """Return the content hash of the latest landing receipt of ``batch_id`` (None: none)."""
    keys = store.list(f"{LEDGER_LANDINGS}/{batch_id}/")
    return str(json.loads(store.read_text(max(keys)))["content_hash"]) if keys else None


def discover_new_batches(store: ObjectStore) -> list[str]:
    """Return ids of landed batches not yet in the ledger (same content twice: no-op)."""
    return [batch.batch_id for batch in pending_batches(store)]


def _landed_hash(
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


def _move_verified(store: ObjectStore, src: str, dst: str, expected_hash: str) -> int:
    """Move folder ``src`` to ``dst`` and check the whole destination has ``expected_hash``."""
    store.move_prefix(src, dst)
    moved = store.hash_prefix(dst)
    if not moved or content_hash(moved) != expected_hash:
        raise ValueError(
            f"{store.uri(dst)} does not hold content {expected_hash[:12]}... after the move;"
            f" nothing was deleted that was not copied"
        )
    return len(moved)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------- quarantine


def quarantine_prefix(batch_id: str, content_hash_hex: str) -> str:
    """Return ``quarantine/<batch_id>/<hash16>`` (each failed version kept apart)."""
    return f"{schema.QUARANTINE}/{batch_id}/{content_hash_hex[:SHORT_HASH]}"


def quarantine_batch(
    store: ObjectStore,
    batch_id: str,
    verdict_dict: Mapping[str, Any],
    report_dir: Path | None,
    *,
    content_hash_hex: str | None = None,
) -> str:
    """Move ``landing/<batch_id>`` into quarantine with its report; return the quarantine URI.

    The batch bytes go to ``quarantine/<id>/<hash16>/batch/`` (verified move; the content hash
    is checked after the move), the files of ``report_dir`` and ``verdict.json`` (the JSON of
    ``verdict_dict``) to ``.../report/``, and the ledger records the hash as quarantined.
    ``content_hash_hex``: the hash seen at discovery; pass it so a retry after a partial move
    still finds its target. Raises FileNotFoundError when landing is empty and no hash is
    given, ValueError when the landed content changed.
    """
    done = f"{quarantine_prefix(batch_id, content_hash_hex)}/batch" if content_hash_hex else None
    digest = _landed_hash(store, batch_id, content_hash_hex, done)
    target = quarantine_prefix(batch_id, digest)
    n_files = _move_verified(store, landing_prefix(batch_id), f"{target}/batch", digest)
    if report_dir is not None and report_dir.is_dir():
        store.upload_dir(report_dir, f"{target}/report")
    verdict_text = json.dumps(dict(verdict_dict), indent=2, sort_keys=True, default=str)
    store.write_text(f"{target}/report/verdict.json", verdict_text + "\n")
    BatchLedger(store).record(
        LedgerEntry(
            content_hash=digest,
            batch_id=batch_id,
            status=BatchStatus.QUARANTINED,
            location=f"{target}/batch",
            n_files=n_files,
            recorded_at=_now(),
            info={"reasons": list(verdict_dict.get("reasons", []))[:20]},
        )
    )
    logger.warning("batch %s quarantined at %s", batch_id, store.uri(target))
    return store.uri(target)


# ---------------------------------------------------------------------------- acceptance


def curated_prefix(batch_id: str) -> str:
    """Return ``curated/batches/<batch_id>``."""
    return f"{CURATED_BATCHES}/{batch_id}"


def manifest_key(batch_id: str) -> str:
    """Return ``curated/manifests/<batch_id>.parquet``."""
    return f"{CURATED_MANIFESTS}/{batch_id}.parquet"


def accept_batch(
    store: ObjectStore,
    batch_id: str,
    *,
    manifest: pd.DataFrame,
    info: Mapping[str, Any] | None = None,
    content_hash_hex: str | None = None,
) -> str:
    """Move ``landing/<batch_id>`` to ``curated/batches/<batch_id>``; return its URI.

    Landing is emptied (verified move: every byte lives on in curated). ``manifest``
    (:func:`covidct.batch.manifest.build_manifest` rows, e.g. ``BatchVerdict.manifest``) is stored
    as ``curated/manifests/<batch_id>.parquet``; ``info`` (JSON-safe) goes to the ledger.
    A retry is a no-op. Raises FileExistsError when ``curated/batches/<batch_id>`` already
    holds different content (a reused batch id; nothing is overwritten), FileNotFoundError /
    ValueError as :func:`quarantine_batch`.
    """
    target = curated_prefix(batch_id)
    digest = _landed_hash(store, batch_id, content_hash_hex, target)
    _refuse_other_content(store, target, batch_id, digest)
    n_files = _move_verified(store, landing_prefix(batch_id), target, digest)
    store.write_bytes(manifest_key(batch_id), _parquet_bytes(manifest, batch_id, digest))
    BatchLedger(store).record(
        LedgerEntry(
            content_hash=digest,
            batch_id=batch_id,
            status=BatchStatus.ACCEPTED,
            location=target,
            n_files=n_files,
            recorded_at=_now(),
            manifest_key=manifest_key(batch_id),
            info=dict(info or {}),
        )
    )
    logger.info("batch %s accepted at %s", batch_id, store.uri(target))
    return store.uri(target)


def _refuse_other_content(store: ObjectStore, target: str, batch_id: str, digest: str) -> None:
    """Raise FileExistsError when ``target`` holds objects that are not this batch's."""
    existing = store.hash_prefix(target)
    if not existing or content_hash(existing) == digest:
        return
    landed = store.hash_prefix(landing_prefix(batch_id))
    foreign = sorted(k for k, v in existing.items() if landed.get(k) != v)
    if foreign:
        raise FileExistsError(
            f"{store.uri(target)} already holds another batch {batch_id!r} (e.g. {foreign[:3]});"
            f" landed content {digest[:12]}... left in landing"
        )


def _parquet_bytes(manifest: pd.DataFrame, batch_id: str, digest: str) -> bytes:
    table = manifest.assign(batch_id=batch_id, batch_content_hash=digest)
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    return buffer.getvalue()


# ------------------------------------------------------------------- earlier-batch facts


def accepted_manifests(store: ObjectStore) -> pd.DataFrame:
    """Return the concatenated manifests of every accepted batch (empty frame when none)."""
    frames = []
    for entry in BatchLedger(store).entries():
        if entry.status is BatchStatus.ACCEPTED and entry.manifest_key:
            frames.append(pd.read_parquet(io.BytesIO(store.read_bytes(entry.manifest_key))))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def known_labels(store: ObjectStore) -> dict[str, str]:
    """Return patient_key -> label of every accepted batch (first accepted label wins)."""
    manifests = accepted_manifests(store)
    if manifests.empty:
        return {}
    labelled = manifests.dropna(subset=["label"]).drop_duplicates("patient_key", keep="first")
    return dict(zip(labelled["patient_key"], labelled["label"], strict=True))


def known_hashes(store: ObjectStore, batch_id: str | None = None) -> dict[str, str]:
    """Return slice sha256 -> patient_key of every accepted batch (excluded slices included).

    ``batch_id``: the batch about to be validated; the slices of every *other* pending batch
    (:func:`pending_batches`) are added as sha256 -> ``landing/<other id>/<path>``, so the same
    pixels sent twice in one run fail both batches, each naming the other (validate every
    pending batch before moving any, as the DAG does).
    """
    manifests = accepted_manifests(store)
    known: dict[str, str] = {}
    if not manifests.empty:
        rows = manifests.dropna(subset=["sha256"]).drop_duplicates("sha256", keep="first")
        known = dict(zip(rows["sha256"], rows["patient_key"], strict=True))
    if batch_id is None:
        return known
    for other in pending_batches(store):
        if other.batch_id == batch_id:
            continue
        for path, digest in sorted(store.hash_prefix(other.prefix).items()):
            if "/" in path:  # files under patient folders, not the batch's own metadata
                known.setdefault(digest, f"{other.prefix}/{path}")
    return known


# --------------------------------------------------------------------- one batch, end to end


@dataclass(frozen=True)
class IngestOutcome:
    """Result of :func:`ingest_batch`: where the batch went and its verdict as JSON."""

    batch_id: str
    content_hash: str
    passed: bool
    location: str
    verdict: Mapping[str, Any]


def ingest_batch(
    store: ObjectStore,
    batch_id: str,
    work_dir: Path,
    *,
    policy: Any | None = None,
    content_hash_hex: str | None = None,
    progress: bool = False,
) -> IngestOutcome:
    """Download, validate against earlier batches, then accept or quarantine one batch.

    ``work_dir``: local scratch folder (the batch goes to ``work_dir/batch``, the report to
    ``work_dir/report``); ``policy``: a ``covidct.batch.checks.ValidationPolicy`` (default
    strict). Raises ValueError when the downloaded bytes do not match the landed hash.
    """
    from covidct.batch.checks import ValidationPolicy
    from covidct.batch.validation import validate_batch

    digest = _landed_hash(store, batch_id, content_hash_hex)
    local = store.download_prefix(landing_prefix(batch_id), work_dir / "batch")
    if local_content_hash(local) != digest:
        raise ValueError(f"download of landing/{batch_id} does not match content {digest[:12]}")
    verdict = validate_batch(
        local,
        known_labels=known_labels(store),
        known_hashes=known_hashes(store, batch_id),
        policy=policy or ValidationPolicy(),
        report_dir=work_dir / "report",
        progress=progress,
        batch_id=batch_id,
    )
    if verdict.passed:
        info = {
            "n_slices": verdict.n_slices,
            "n_patients": verdict.n_patients,
            "excluded_slices": list(verdict.excluded_slices),
            "source": verdict.source,
        }
        location = accept_batch(
            store, batch_id, manifest=verdict.manifest, info=info, content_hash_hex=digest
        )
    else:
        location = quarantine_batch(
            store, batch_id, verdict.to_dict(), work_dir / "report", content_hash_hex=digest
        )
    return IngestOutcome(batch_id, digest, verdict.passed, location, verdict.to_dict())
