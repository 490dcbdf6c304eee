"""Landing a local batch folder in the lake: exactly the files validation will see, audited.

:func:`land_batch` is what ``covidct land`` runs. It walks the batch with
:func:`covidct.batch.files.scan_batch` and refuses the whole batch, writing nothing, when any
entry is a symbolic link, a hard link or a special file, so that no byte from outside the batch
can reach landing (nor, later, quarantine). It uploads the regular files it read, reads every
object back and checks its sha256, and records a receipt (the file list with sha256s and the
content hash, :func:`covidct.lake.custody.content_hash`) under ``ledger/landings/<batch_id>/``.
Files are read twice (hashed first, to decide; uploaded second, each checked against its first
hash) and never held all at once.

Landing under an id already in landing:

* same content: a no-op that says so;
* other content: refused (:class:`LandingConflict`) unless ``replace=True``, which replaces
  the folder completely (files the sender removed are deleted) and records both contents;
* content already in the ledger (accepted or quarantined) or pending under another id: a no-op
  naming that batch (one content, one batch).
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from covidct.batch.files import BatchFiles, escaped, read_regular, scan_batch
from covidct.lake.custody import (
    BatchLedger,
    content_hash,
    landed_batches,
    landing_prefix,
)
from covidct.lake.layout import LakeLayout
from covidct.lake.storage import ObjectStore, folder, sha256_hex

logger = logging.getLogger(__name__)

#: Files read, hashed and uploaded at once (memory: this many files, never the whole batch).
UPLOAD_THREADS = 8


class LandingConflict(FileExistsError):
    """``landing/<batch_id>`` holds other content that has not been ingested yet."""


@dataclass(frozen=True)
class LandingReceipt:
    """What :func:`land_batch` did. ``action``: "landed", "replaced" or "no-op".

    ``files``: {batch-relative POSIX path: sha256} of the local batch; ``replaced``: content
    hash of the landing folder it replaced (None otherwise); ``message``: one line for people.
    """

    batch_id: str
    action: str
    content_hash: str
    files: dict[str, str]
    message: str
    replaced: str | None = None
    landed_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON view (the receipt stored in the ledger)."""
        return asdict(self)


def receipt_key(batch_id: str, landed_at: str, digest: str) -> str:
    """Return ``ledger/landings/<batch_id>/<time>-<hash16>.json``."""
    stamp = landed_at.replace(":", "").replace("+0000", "Z")
    return LakeLayout.landing_receipt(batch_id, stamp, digest)


def scan_for_landing(batch_dir: Path) -> BatchFiles:
    """Return the files of ``batch_dir`` when every entry is a regular file or folder.

    Raises ValueError naming the batch and every refused entry (links, special files) and
    FileNotFoundError when ``batch_dir`` is not a folder or holds no file.
    """
    scan = scan_batch(batch_dir)
    if scan.refused:
        count = len(scan.refused)
        raise ValueError(
            f"batch {batch_dir}: {count} {'entry' if count == 1 else 'entries'} refused,"
            f" nothing landed: {scan.refusal_text()}"
        )
    if not scan.files:
        raise FileNotFoundError(f"batch {batch_dir} holds no file")
    return scan


def _hash_files(scan: BatchFiles) -> dict[str, str]:
    """{relative path: sha256} of every file, one file in memory at a time."""
    with ThreadPoolExecutor(max_workers=UPLOAD_THREADS) as pool:
        digests = pool.map(lambda rel: sha256_hex(read_regular(scan.path(rel))), scan.files)
        return dict(zip(scan.files, digests, strict=True))


def _same_content_elsewhere(store: ObjectStore, batch_id: str, digest: str) -> str | None:
    seen = BatchLedger(store).get(digest)
    if seen is not None:
        return f"content {digest[:12]} is already {seen.status.value} as batch {seen.batch_id}"
    for batch in landed_batches(store):
        if batch.batch_id != batch_id and batch.content_hash == digest:
            return f"content {digest[:12]} is already pending as landing/{batch.batch_id}"
    return None


def land_batch(
    store: ObjectStore, batch_dir: str | Path, batch_id: str, *, replace: bool = False
) -> LandingReceipt:
    """Upload the local batch ``batch_dir`` to ``landing/<batch_id>`` (module docstring).

    Returns the receipt (also written to the ledger unless nothing was landed). Raises
    ValueError (invalid batch id; a link or special file in the batch, all named),
    FileNotFoundError (no such folder, or no file), :class:`LandingConflict` (other content
    pending under ``batch_id`` and ``replace`` is False) and ValueError when the objects read
    back differ from the local files.
    """
    prefix = landing_prefix(batch_id)
    scan = scan_for_landing(Path(batch_dir))
    files = _hash_files(scan)
    digest = content_hash(files)
    existing = store.hash_prefix(prefix)
    old = content_hash(existing) if existing else None
    if old == digest:
        return _no_op(batch_id, digest, files, f"landing/{batch_id} already holds this content")
    elsewhere = _same_content_elsewhere(store, batch_id, digest)
    if elsewhere:
        return _no_op(batch_id, digest, files, elsewhere)
    if old is not None and not replace:
        raise LandingConflict(
            f"landing/{escaped(batch_id)} already holds other content ({old[:12]}, "
            f"{len(existing)} files) not yet ingested; pass --replace to replace it completely, "
            "or land under another batch id"
        )
    _upload_exactly(store, prefix, scan, files, stale=[k for k in existing if k not in files])
    action = "replaced" if old else "landed"
    message = f"landed {len(files)} files as landing/{batch_id} (content {digest[:12]})" + (
        f", replacing content {old[:12]} completely" if old else ""
    )
    receipt = LandingReceipt(batch_id, action, digest, files, message, replaced=old)
    store.write_text(
        receipt_key(batch_id, receipt.landed_at, digest),
        json.dumps(receipt.to_dict(), sort_keys=True) + "\n",
    )
    logger.debug(message)  # the receipt's message is what `covidct land` prints, once
    return receipt


def _no_op(batch_id: str, digest: str, files: dict[str, str], why: str) -> LandingReceipt:
    message = f"already landed, nothing changed: {why}"
    logger.debug(message)
    return LandingReceipt(batch_id, "no-op", digest, files, message)


def _upload_exactly(
    store: ObjectStore, prefix: str, scan: BatchFiles, files: dict[str, str], stale: list[str]
) -> None:
    """Upload every file (each read again and checked against ``files``: a file changed since
    it was hashed is refused), delete ``stale`` keys, then check landing holds exactly ``files``.
    """
    base = folder(prefix)

    def upload(relative: str) -> None:
        data = read_regular(scan.path(relative))
        if sha256_hex(data) != files[relative]:
            raise ValueError(f"{scan.path(relative)} changed while it was being landed")
        store.write_bytes(base + relative, data)

    with ThreadPoolExecutor(max_workers=UPLOAD_THREADS) as pool:
        list(pool.map(upload, files))
    store.delete_many(base + relative for relative in stale)
    landed = store.hash_prefix(prefix)
    if landed != files:
        wrong = sorted(set(landed.items()) ^ set(files.items()))[:3]
        raise ValueError(f"{prefix} does not hold the batch after upload (e.g. {wrong})")
