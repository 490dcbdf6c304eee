"""Landing a local batch folder in the lake: exactly the files validation will see, audited.

:func:`land_batch` is what ``covidct land`` runs. It walks the batch with
:func:`covidct.batch.files.scan_batch` and refuses the whole batch, writing nothing, when any
entry is a symbolic link, a hard link or a special file, so that no byte from outside the batch
can reach landing (nor, later, quarantine). Files are read twice (hashed first, to decide;
uploaded second, each checked against its first hash) and never held all at once.

Landing is a transaction, so that a half-landed batch is never curated:

1. **stage**: the files are written under ``staging/landing/<batch_id>/`` (never discovered),
   each one synced (the local store ``fsync``s every file and folder it writes);
2. **verify**: every staged object is read back and its sha256 checked;
3. **publish**: the staged folder becomes ``landing/<batch_id>`` (one ``rename`` on a local
   store; a verified copy on S3), replacing what was there, and is verified again;
4. **receipt**, last: the file list with sha256s and the content hash
   (:func:`covidct.lake.custody.content_hash`) under ``ledger/landings/<batch_id>/``.
   Discovery (:func:`covidct.lake.custody.pending_batches`) takes only a batch holding exactly
   the content of its latest receipt.

A failure (e.g. "No space left on device") removes what was staged and raises one line naming
the batch. A killed ``land`` leaves at most staged files, partial files or an unreceipted
landing folder; the next ``land`` of that id removes the partial files, keeps the staged files
whose sha256 is right (it resumes), and completes or replaces the unfinished landing.

Landing under an id already in landing:

* same content: a no-op that says so;
* other content: refused (:class:`LandingConflict`) unless ``replace=True``, which replaces
  the folder completely (files the sender removed are deleted) and records both contents;
* content already in the ledger (accepted or quarantined) or pending under another id: a no-op
  naming that batch (one content, one batch);
* an unfinished landing (content no receipt vouches for): completed when it is this content
  (the receipt is written), otherwise replaced without ``--replace`` (nothing was landed).
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
    landing_prefix,
    latest_receipt_hash,
    receipted_batches,
)
from covidct.lake.layout import LakeLayout
from covidct.lake.storage import IntegrityError, ObjectStore, folder, sha256_hex

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
    # microseconds: receipts of one id are ordered by this stamp in their key, and two lands
    # within one second (a quarantined batch corrected and re-landed at once) must not tie
    landed_at: str = field(
        default_factory=lambda: datetime.now(UTC).isoformat(timespec="microseconds")
    )

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
    for batch in receipted_batches(store):
        if batch.batch_id != batch_id and batch.content_hash == digest:
            return f"content {digest[:12]} is already pending as landing/{batch.batch_id}"
    return None


@dataclass(frozen=True)
class _Landing:
    """What ``landing/<batch_id>`` holds before :func:`land_batch` writes anything."""

    files: dict[str, str]
    digest: str | None  # content hash of ``files`` (None: empty)
    receipted: bool  # the latest receipt vouches for exactly this content

    @property
    def unfinished(self) -> bool:
        """Content that no receipt vouches for: an interrupted landing (or bytes put there
        behind ``covidct land``'s back); never discovered."""
        return self.digest is not None and not self.receipted


def _current_landing(store: ObjectStore, batch_id: str) -> _Landing:
    files = store.hash_prefix(landing_prefix(batch_id))
    digest = content_hash(files) if files else None
    receipted = digest is not None and latest_receipt_hash(store, batch_id) == digest
    return _Landing(files, digest, receipted)


def land_batch(
    store: ObjectStore, batch_dir: str | Path, batch_id: str, *, replace: bool = False
) -> LandingReceipt:
    """Land the local batch ``batch_dir`` as ``landing/<batch_id>`` (module docstring).

    Returns the receipt (also written to the ledger, last, unless nothing was landed). Raises
    ValueError (invalid batch id; a link or special file in the batch, all named; a file changed
    while landed), FileNotFoundError (no such folder, or no file), :class:`LandingConflict`
    (other receipted content pending under ``batch_id`` and ``replace`` is False),
    IntegrityError (the lake does not hold the batch after upload) and OSError (a storage
    failure such as a full disk: what was staged is removed, nothing becomes discoverable).
    """
    landing_prefix(batch_id)  # the id is checked before anything is read
    scan = scan_for_landing(Path(batch_dir))
    files = _hash_files(scan)
    digest = content_hash(files)
    _sweep(store, batch_id)
    current = _current_landing(store, batch_id)
    if current.digest == digest:
        if current.receipted:
            return _no_op(batch_id, digest, files, f"landing/{batch_id} already holds this content")
        return _write_receipt(store, batch_id, digest, files, "completed an unfinished landing")
    elsewhere = _same_content_elsewhere(store, batch_id, digest)
    if elsewhere:
        return _no_op(batch_id, digest, files, elsewhere)
    if current.receipted and not replace:
        raise LandingConflict(
            f"landing/{escaped(batch_id)} already holds other content ({str(current.digest)[:12]}"
            f", {len(current.files)} files) not yet ingested; pass --replace to replace it "
            "completely, or land under another batch id"
        )
    _stage_and_publish(store, batch_id, scan, files)
    replaced = current.digest
    note = (
        f"replacing content {str(replaced)[:12]} completely"
        if current.receipted
        else f"replacing an unfinished landing ({str(replaced)[:12]})"
        if replaced
        else ""
    )
    return _write_receipt(store, batch_id, digest, files, note, replaced=replaced)


def _sweep(store: ObjectStore, batch_id: str) -> None:
    """Remove the partial files a killed ``land`` (or move) left in landing and staging."""
    swept = store.sweep_partials(landing_prefix(batch_id)) + store.sweep_partials(
        LakeLayout.staging_batch(batch_id)
    )
    if swept:
        logger.warning(
            "batch %s: removed %d partial files of an interrupted landing", *(batch_id, swept)
        )


def _write_receipt(
    store: ObjectStore,
    batch_id: str,
    digest: str,
    files: dict[str, str],
    note: str,
    replaced: str | None = None,
) -> LandingReceipt:
    """Write the receipt, the last step of a landing: from now on the batch is discoverable."""
    message = f"landed {len(files)} files as landing/{batch_id} (content {digest[:12]})" + (
        f", {note}" if note else ""
    )
    action = "replaced" if replaced else "landed"
    receipt = LandingReceipt(batch_id, action, digest, files, message, replaced=replaced)
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


def _stage_and_publish(
    store: ObjectStore, batch_id: str, scan: BatchFiles, files: dict[str, str]
) -> None:
    """Stage and verify every file, then publish the staged folder as ``landing/<batch_id>``.

    On any failure before the publication the staging folder is removed; OSError is re-raised
    as one line naming the batch and saying that nothing was landed.
    """
    staging = LakeLayout.staging_batch(batch_id)
    try:
        _stage(store, staging, scan, files)
    except OSError as error:
        store.discard_prefix(staging)
        raise OSError(
            f"batch {escaped(batch_id)}: nothing landed (staging removed): "
            f"{error.strerror or error}"
            + (f" ({error.filename})" if getattr(error, "filename", None) else "")
        ) from error
    except BaseException:
        store.discard_prefix(staging)
        raise
    store.publish_prefix(staging, landing_prefix(batch_id))
    _verify(store, landing_prefix(batch_id), files)


def _stage(store: ObjectStore, staging: str, scan: BatchFiles, files: dict[str, str]) -> None:
    """Upload every file to ``staging`` (each read again and checked against ``files``: a file
    changed since it was hashed is refused), keeping what an interrupted landing already staged
    with the right sha256, then check the staging folder holds exactly ``files``."""
    base = folder(staging)
    staged = store.hash_prefix(staging)
    store.delete_many(base + key for key, sha in staged.items() if files.get(key) != sha)

    def upload(relative: str) -> None:
        data = read_regular(scan.path(relative))
        if sha256_hex(data) != files[relative]:
            raise ValueError(f"{scan.path(relative)} changed while it was being landed")
        store.write_bytes(base + relative, data)

    todo = [relative for relative in files if staged.get(relative) != files[relative]]
    with ThreadPoolExecutor(max_workers=UPLOAD_THREADS) as pool:
        list(pool.map(upload, todo))
    _verify(store, staging, files)


def _verify(store: ObjectStore, prefix: str, files: dict[str, str]) -> None:
    """Raise IntegrityError unless folder ``prefix`` holds exactly ``files`` (every byte read)."""
    found = store.hash_prefix(prefix)
    if found != files:
        wrong = sorted(set(found.items()) ^ set(files.items()))[:3]
        raise IntegrityError(f"{prefix} does not hold the batch after upload (e.g. {wrong})")
