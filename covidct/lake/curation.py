"""Curation of a validated batch: accepted batches are copied to ``curated/`` with their manifest,
refused ones moved to ``quarantine/``, each step recorded in the ledger; the patients' labels
and slice hashes of earlier accepted batches are read back for the next validation.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from covidct.lake.custody import (
    BatchLedger,
    BatchStatus,
    LedgerEntry,
    content_hash,
    curated_prefix,
    landed_hash,
    landing_prefix,
    local_content_hash,
    manifest_key,
    move_verified,
    pending_batches,
    utc_now,
)
from covidct.lake.layout import LakeLayout
from covidct.lake.storage import ObjectStore

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------- quarantine


def quarantine_prefix(batch_id: str, content_hash_hex: str) -> str:
    """Return ``quarantine/<batch_id>/<hash16>`` (each failed version kept apart)."""
    return LakeLayout.quarantine_batch(batch_id, content_hash_hex)


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
    done = LakeLayout.quarantined_batch(batch_id, content_hash_hex) if content_hash_hex else None
    digest = landed_hash(store, batch_id, content_hash_hex, done)
    target = quarantine_prefix(batch_id, digest)
    moved = LakeLayout.quarantined_batch(batch_id, digest)
    n_files = move_verified(store, landing_prefix(batch_id), moved, digest)
    if report_dir is not None and report_dir.is_dir():
        store.upload_dir(report_dir, LakeLayout.quarantine_report(batch_id, digest))
    verdict_text = json.dumps(dict(verdict_dict), indent=2, sort_keys=True, default=str)
    store.write_text(LakeLayout.quarantine_verdict(batch_id, digest), verdict_text + "\n")
    _record(
        store, BatchStatus.QUARANTINED, batch_id, digest, moved, n_files,
        info={"reasons": list(verdict_dict.get("reasons", []))[:20]},
    )  # fmt: skip
    logger.warning("batch %s quarantined at %s", batch_id, store.uri(target))
    return store.uri(target)


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
    digest = landed_hash(store, batch_id, content_hash_hex, target)
    _refuse_other_content(store, target, batch_id, digest)
    n_files = move_verified(store, landing_prefix(batch_id), target, digest)
    store.write_bytes(manifest_key(batch_id), _parquet_bytes(manifest, batch_id, digest))
    _record(
        store, BatchStatus.ACCEPTED, batch_id, digest, target, n_files,
        manifest=manifest_key(batch_id), info=dict(info or {}),
    )  # fmt: skip
    logger.info("batch %s accepted at %s", batch_id, store.uri(target))
    return store.uri(target)


def _record(
    store: ObjectStore,
    status: BatchStatus,
    batch_id: str,
    digest: str,
    location: str,
    n_files: int,
    *,
    info: dict[str, Any],
    manifest: str | None = None,
) -> None:
    """The ledger entry of a batch just moved out of landing (quarantined or accepted)."""
    BatchLedger(store).record(
        LedgerEntry(
            content_hash=digest,
            batch_id=batch_id,
            status=status,
            location=location,
            n_files=n_files,
            recorded_at=utc_now(),
            manifest_key=manifest,
            info=info,
        )  # fmt: skip
    )


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

    digest = landed_hash(store, batch_id, content_hash_hex)
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
