"""Object storage for the data lake: one interface over a local folder and S3.

``open_store("file:///abs/root")`` and ``open_store("s3://bucket/prefix")`` return an
:class:`ObjectStore`. Keys are POSIX strings relative to the store root ("landing/b1/x.tif").
Each backend implements a handful of primitives (list, read, write, exists, delete, copy one
object); every higher operation (upload, download, verified copy and move of a prefix) is
written once on top of them, so the local folder and S3 run the same code path.

Custody rule: :meth:`ObjectStore.move_prefix` copies, verifies the sha256 of every copied
object against its source, and only then deletes the sources; an existing destination object
with different bytes is never overwritten unless asked. Bytes are never lost.

S3 goes through boto3 with botocore's "standard" retry mode (exponential backoff with jitter
on throttling, 5xx and connection errors; botocore documentation "Retries").
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

#: Threads used for per-object transfers (I/O bound; S3 requests wait on the network).
TRANSFER_THREADS = 8
PARTIAL_SUFFIX = ".covidct-partial"
#: Sorted object keys (an alias: inside ObjectStore, ``list`` names the listing method).
KeyList = list[str]
_T = TypeVar("_T")
_R = TypeVar("_R")


class StoreScheme(StrEnum):
    """URI schemes accepted by :func:`open_store`."""

    FILE = "file"
    S3 = "s3"


class IntegrityError(RuntimeError):
    """A copied object's sha256 differs from its source's."""


def sha256_hex(data: bytes) -> str:
    """Return the lowercase hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def check_key(key: str) -> str:
    """Return ``key`` if it is a valid relative POSIX key, else raise ValueError naming it.

    Valid: non-empty, no leading "/", no "." or ".." segment, no empty segment, no backslash.
    """
    parts = key.split("/")
    if not key or key.startswith("/") or "\\" in key or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid object key {key!r}: expected a relative POSIX path")
    return key


def folder(prefix: str) -> str:
    """Return ``prefix`` as a folder prefix ("a/b" -> "a/b/"; "" stays "" = whole store)."""
    prefix = prefix.strip("/")
    return f"{prefix}/" if prefix else ""


def _parallel(function: Callable[[_T], _R], items: Iterable[_T]) -> list[_R]:
    items = list(items)
    if len(items) <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=TRANSFER_THREADS) as pool:
        return list(pool.map(function, items))


class ObjectStore(ABC):
    """A flat key -> bytes store with folder-like prefixes (local folder or S3)."""

    # ---------------------------------------------------------------- backend primitives

    @abstractmethod
    def list(self, prefix: str = "") -> KeyList:
        """Return every key starting with ``prefix`` (plain string prefix), sorted.

        All pages are fetched (S3 returns at most 1,000 keys per request).
        """

    @abstractmethod
    def list_dirs(self, prefix: str = "") -> KeyList:
        """Return the names of the immediate sub-folders of folder ``prefix`` that hold objects."""

    @abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """Return the object's bytes. Raises FileNotFoundError naming the URI when absent."""

    @abstractmethod
    def write_bytes(self, key: str, data: bytes) -> None:
        """Create or replace the object ``key`` with ``data`` (whole object, atomic)."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Return True when the object ``key`` exists."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete the object ``key`` (no error when it is already absent)."""

    @abstractmethod
    def fingerprints(self, prefix: str) -> dict[str, str]:
        """Return {relative key: cheap change marker} under folder ``prefix`` (no content read).

        Local: size and modification time; S3: size and ETag (from the listing).
        """

    @abstractmethod
    def uri(self, key: str = "") -> str:
        """Return the absolute URI of ``key`` ("file:///..." or "s3://bucket/...")."""

    def copy_object(self, src: str, dst: str) -> None:
        """Copy one object inside the store (backends may copy server-side)."""
        self.write_bytes(dst, self.read_bytes(src))

    def upload_file(self, local_file: Path, key: str) -> None:
        """Write the local file ``local_file`` to ``key``."""
        self.write_bytes(key, local_file.read_bytes())

    # ---------------------------------------------------------------- derived operations

    def read_text(self, key: str) -> str:
        """Return the object decoded as UTF-8."""
        return self.read_bytes(key).decode("utf-8")

    def write_text(self, key: str, text: str) -> None:
        """Write ``text`` encoded as UTF-8."""
        self.write_bytes(key, text.encode("utf-8"))

    def sha256(self, key: str) -> str:
        """Return the hex sha256 of the object's bytes."""
        return sha256_hex(self.read_bytes(key))

    def list_relative(self, prefix: str) -> KeyList:
        """Return keys under folder ``prefix``, relative to it, sorted."""
        base = folder(prefix)
        return [key[len(base) :] for key in self.list(base)]

    def hash_prefix(self, prefix: str) -> dict[str, str]:
        """Return {relative key: sha256} of every object under folder ``prefix``."""
        base = folder(prefix)
        relative = self.list_relative(prefix)
        hashes = _parallel(lambda rel: self.sha256(base + rel), relative)
        return dict(zip(relative, hashes, strict=True))

    def upload_dir(self, local_dir: Path, prefix: str) -> dict[str, str]:
        """Upload every file under ``local_dir`` to folder ``prefix``.

        Returns {relative POSIX path: sha256}. Raises FileNotFoundError when ``local_dir`` is
        not a directory.
        """
        if not local_dir.is_dir():
            raise FileNotFoundError(f"upload source {local_dir} is not a directory")
        base = folder(prefix)
        files = sorted(p for p in local_dir.rglob("*") if p.is_file())

        def upload(file: Path) -> tuple[str, str]:
            relative = file.relative_to(local_dir).as_posix()
            data = file.read_bytes()
            self.write_bytes(base + relative, data)
            return relative, sha256_hex(data)

        return dict(_parallel(upload, files))

    def download_prefix(self, prefix: str, local_dir: Path) -> Path:
        """Write every object under folder ``prefix`` to ``local_dir/<relative key>``.

        Returns ``local_dir``. Existing local files with the same names are replaced.
        """
        base = folder(prefix)
        local_dir.mkdir(parents=True, exist_ok=True)

        def download(relative: str) -> None:
            target = local_dir.joinpath(*PurePosixPath(relative).parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(target, self.read_bytes(base + relative))

        _parallel(download, self.list_relative(prefix))
        return local_dir

    def copy_prefix(self, src: str, dst: str, *, overwrite: bool = False) -> dict[str, str]:
        """Copy every object under folder ``src`` to folder ``dst`` and verify each sha256.

        Returns {relative key: sha256}. An existing destination object with the same bytes
        is kept (a retried copy is a no-op); one with different bytes raises FileExistsError
        naming it unless ``overwrite``. Raises IntegrityError when a copy reads back with a
        different sha256, ValueError when ``src`` and ``dst`` overlap.
        """
        src_base, dst_base = folder(src), folder(dst)
        if src_base.startswith(dst_base) or dst_base.startswith(src_base):
            raise ValueError(f"cannot copy {self.uri(src_base)} onto overlapping {dst_base!r}")

        def copy(relative: str) -> tuple[str, str]:
            return relative, self._copy_verified(
                src_base + relative, dst_base + relative, overwrite
            )

        copied = dict(_parallel(copy, self.list_relative(src)))
        logger.info("copied %d objects %s -> %s", len(copied), self.uri(src_base), dst_base)
        return copied

    def _copy_verified(self, src: str, dst: str, overwrite: bool) -> str:
        expected = self.sha256(src)
        if self.exists(dst):
            existing = self.sha256(dst)
            if existing == expected:
                return expected
            if not overwrite:
                raise FileExistsError(
                    f"{self.uri(dst)} exists with different bytes (sha256 {existing[:12]}...,"
                    f" source {expected[:12]}...); refusing to overwrite"
                )
        self.copy_object(src, dst)
        actual = self.sha256(dst)
        if actual != expected:
            raise IntegrityError(
                f"copy {self.uri(src)} -> {self.uri(dst)}: sha256 {actual} != source {expected}"
            )
        return expected

    def move_prefix(self, src: str, dst: str, *, overwrite: bool = False) -> dict[str, str]:
        """Move folder ``src`` to ``dst``: verified copy of every object, then delete sources.

        Sources are deleted only after every destination object reads back with its source's
        sha256, and only when no source object changed while it was copied (same
        :meth:`fingerprints` before and after). Returns {relative key: sha256}. Raises as
        :meth:`copy_prefix`; IntegrityError (nothing deleted) when a source changed.
        """
        before = self.fingerprints(src)
        copied = self.copy_prefix(src, dst, overwrite=overwrite)
        after = self.fingerprints(src)
        changed = sorted(k for k in copied if before.get(k) is None or before[k] != after.get(k))
        if changed:
            raise IntegrityError(
                f"{len(changed)} objects under {self.uri(folder(src))} changed during the move"
                f" (e.g. {changed[:3]}); sources kept"
            )
        self.delete_many(folder(src) + relative for relative in copied)
        logger.info("moved %d objects %s -> %s", len(copied), self.uri(folder(src)), folder(dst))
        return copied

    def delete_many(self, keys: Iterable[str]) -> None:
        """Delete every key in ``keys``."""
        _parallel(self.delete, keys)

    def publish_prefix(self, src: str, dst: str) -> None:
        """Make folder ``src`` visible as folder ``dst``, replacing whatever ``dst`` held; ``src``
        is gone afterwards. The caller verifies ``dst`` and then writes what vouches for it
        (e.g. a landing receipt), so a reader trusting only vouched content never sees a mix.

        Generic form (S3): verified copy with overwrite, deletion of ``dst`` keys not in
        ``src``, deletion of ``src``. Raises as :meth:`copy_prefix`.
        """
        copied = self.copy_prefix(src, dst, overwrite=True)
        self.delete_many(folder(dst) + key for key in self.list_relative(dst) if key not in copied)
        self.delete_many(folder(src) + key for key in copied)

    def sweep_partials(self, prefix: str) -> int:
        """Remove unfinished writes left under folder ``prefix`` by a killed writer; return how
        many. S3 has none (an object appears whole or not at all)."""
        return 0

    def discard_prefix(self, prefix: str) -> None:
        """Delete everything under folder ``prefix``, unfinished partial writes included."""
        self.delete_many(self.list(folder(prefix)))


# ------------------------------------------------------------------------------ local folder


def fsync_dir(directory: Path) -> None:
    """Flush ``directory``'s entries (names created, renamed or removed in it) to disk.

    OSError propagates (a folder that cannot be opened); a file system that cannot sync a
    folder (EINVAL) is tolerated.
    """
    descriptor = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(descriptor)
    except OSError as error:
        if error.errno != errno.EINVAL:
            raise
    finally:
        os.close(descriptor)


def make_dirs(directory: Path) -> None:
    """Create ``directory`` and its missing parents, syncing each new name into its parent."""
    missing = []
    while not directory.is_dir():
        missing.append(directory)
        directory = directory.parent
    for new in reversed(missing):
        new.mkdir(exist_ok=True)
        fsync_dir(new.parent)


def atomic_write(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` durably: a uniquely named partial file, ``os.fsync`` of it,
    ``os.replace`` onto ``target``, ``os.fsync`` of the folder.

    A reader sees the old file or the whole new one, never a torn write, also after a power
    loss; the partial file is removed on failure. The folder must exist; OSError propagates
    (e.g. ENOSPC, "No space left on device").
    """
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}{PARTIAL_SUFFIX}")
    try:
        with partial.open("xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, target)
        fsync_dir(target.parent)
    finally:
        partial.unlink(missing_ok=True)


def read_json_lines(store: ObjectStore, keys: Iterable[str]) -> list[Mapping[str, Any]]:
    """Return the JSON objects of every line of the objects ``keys`` (helper for ledgers)."""
    import json

    records: list[Mapping[str, Any]] = []
    for key in keys:
        records.extend(json.loads(line) for line in store.read_text(key).splitlines() if line)
    return records


def read_parquet(store: ObjectStore, key: str) -> pd.DataFrame:
    """The table stored at ``key`` as Parquet. Raises what the store raises for a missing key."""
    import io

    import pandas as pd

    return pd.read_parquet(io.BytesIO(store.read_bytes(key)))


def write_parquet(store: ObjectStore, key: str, frame: pd.DataFrame) -> str:
    """Store ``frame`` at ``key`` as Parquet (no index); return ``key``."""
    import io

    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    store.write_bytes(key, buffer.getvalue())
    return key
