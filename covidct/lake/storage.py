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

import hashlib
import logging
import os
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlparse

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

#: Threads used for per-object transfers (I/O bound; S3 requests wait on the network).
TRANSFER_THREADS = 8
_PARTIAL_SUFFIX = ".covidct-partial"
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


# ------------------------------------------------------------------------------ local folder


def atomic_write(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` through a uniquely named partial file and ``os.replace``.

    A reader sees the old file or the whole new one, never a torn write; the partial file is
    removed on failure. The folder must exist; OSError propagates.
    """
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}{_PARTIAL_SUFFIX}")
    try:
        partial.write_bytes(data)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


class LocalStore(ObjectStore):
    """An :class:`ObjectStore` on a local folder ``root`` (created on first write).

    A symbolic link under ``root`` is not an object: it is not listed and not read.
    """

    def __init__(self, root: Path) -> None:
        if not root.is_absolute():
            raise ValueError(f"local store root must be absolute, got {root}")
        self.root = root

    def __repr__(self) -> str:
        return f"LocalStore({self.root})"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def list(self, prefix: str = "") -> KeyList:
        directory = self.root.joinpath(*prefix.split("/")[:-1]) if "/" in prefix else self.root
        if not directory.is_dir():
            return []
        keys = []
        for path_root, _dirs, files in os.walk(directory):
            for name in files:
                if name.endswith(_PARTIAL_SUFFIX):
                    continue
                if os.path.islink(os.path.join(path_root, name)):
                    logger.warning("%s: symbolic link in the store, not an object", name)
                    continue
                key = (Path(path_root) / name).relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def list_dirs(self, prefix: str = "") -> KeyList:
        base = folder(prefix)
        directory = self.root.joinpath(*base.split("/")[:-1]) if base else self.root
        if not directory.is_dir():
            return []
        children = (p for p in directory.iterdir() if p.is_dir())
        return sorted(p.name for p in children if any(f.is_file() for f in p.rglob("*")))

    def read_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:  # never through a symbolic link: an object's bytes live inside the store
            with os.fdopen(os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)), "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.uri(key)} does not exist") from None

    def write_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        self._prune(path.parent)

    def _prune(self, directory: Path) -> None:
        while directory != self.root and directory.is_relative_to(self.root):
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent

    def fingerprints(self, prefix: str) -> dict[str, str]:
        base = folder(prefix)
        marks = {}
        for key in self.list(base):
            stat = self._path(key).stat()
            marks[key[len(base) :]] = f"{stat.st_size}:{stat.st_mtime_ns}"
        return marks

    def uri(self, key: str = "") -> str:
        path = self.root.joinpath(*key.strip("/").split("/")) if key.strip("/") else self.root
        return path.as_uri()


# ------------------------------------------------------------------------------------ S3


class S3Store(ObjectStore):
    """An :class:`ObjectStore` on ``s3://bucket/prefix`` through a boto3 S3 client."""

    def __init__(self, bucket: str, prefix: str, client: Any) -> None:
        if not bucket:
            raise ValueError("S3 store needs a bucket name")
        self.bucket = bucket
        self.prefix = folder(prefix)
        self.client = client

    def __repr__(self) -> str:
        return f"S3Store(s3://{self.bucket}/{self.prefix})"

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _pages(self, prefix: str, **extra: Any) -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator("list_objects_v2")
        yield from paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix, **extra)

    def list(self, prefix: str = "") -> KeyList:
        start = len(self.prefix)
        keys = [
            obj["Key"][start:] for page in self._pages(prefix) for obj in page.get("Contents", [])
        ]
        return sorted(keys)

    def list_dirs(self, prefix: str = "") -> KeyList:
        base = folder(prefix)
        names = [
            common["Prefix"][len(self.prefix + base) :].rstrip("/")
            for page in self._pages(base, Delimiter="/")
            for common in page.get("CommonPrefixes", [])
        ]
        return sorted(names)

    def read_bytes(self, key: str) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except self.client.exceptions.NoSuchKey:
            raise FileNotFoundError(f"{self.uri(key)} does not exist") from None
        body: bytes = response["Body"].read()
        return body

    def write_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def delete_many(self, keys: Iterable[str]) -> None:
        """Delete ``keys`` with DeleteObjects, 1,000 per request; raises OSError on any error."""
        full = [self._key(key) for key in keys]
        for start in range(0, len(full), 1000):
            objects = [{"Key": key} for key in full[start : start + 1000]]
            response = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True}
            )
            if response.get("Errors"):
                raise OSError(f"S3 delete failed in s3://{self.bucket}: {response['Errors'][:3]}")

    def copy_object(self, src: str, dst: str) -> None:
        self.client.copy_object(
            Bucket=self.bucket,
            Key=self._key(dst),
            CopySource={"Bucket": self.bucket, "Key": self._key(src)},
        )

    def fingerprints(self, prefix: str) -> dict[str, str]:
        start = len(self.prefix + folder(prefix))
        return {
            obj["Key"][start:]: f"{obj['Size']}:{obj.get('ETag', '')}"
            for page in self._pages(folder(prefix))
            for obj in page.get("Contents", [])
        }

    def uri(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{self.prefix}{key.lstrip('/')}"


def s3_client(
    *,
    endpoint_url: str | None = None,
    session: Any | None = None,
    max_attempts: int = 8,
    region_name: str | None = None,
) -> Any:
    """Return a boto3 S3 client with standard-mode retries and path-style addressing.

    ``session``: a ``boto3.Session`` carrying credentials (None: boto3's default chain).
    ``max_attempts``: total attempts per request, first try included (botocore ``retries``).
    """
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"total_max_attempts": max_attempts, "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
        max_pool_connections=TRANSFER_THREADS * 2,
        s3={"addressing_style": "path"},
    )
    session = session or boto3.session.Session()
    return session.client(
        "s3", endpoint_url=endpoint_url, config=config, region_name=region_name or "us-east-1"
    )


def open_store(
    uri: str,
    *,
    endpoint_url: str | None = None,
    session: Any | None = None,
    max_attempts: int = 8,
    client: Any | None = None,
) -> ObjectStore:
    """Return the store for ``uri``: ``file:///abs/root`` or ``s3://bucket[/prefix]``.

    ``endpoint_url``, ``session`` and ``max_attempts`` configure the S3 client (see
    :func:`s3_client`; without ``session`` boto3 finds credentials by its default chain:
    environment, shared config, instance role); ``client`` passes a ready one. Nothing is
    contacted until the first operation. Raises ValueError for another scheme
    (listing the valid ones) or a malformed URI.
    """
    parsed = urlparse(uri)
    try:
        scheme = StoreScheme(parsed.scheme)
    except ValueError:
        valid = ", ".join(f"{s.value}://" for s in StoreScheme)
        raise ValueError(f"unsupported store URI {uri!r}; valid schemes: {valid}") from None
    if scheme is StoreScheme.FILE:
        if parsed.netloc not in ("", "localhost"):
            raise ValueError(f"file URI {uri!r} must be file:///absolute/path")
        return LocalStore(Path(unquote(parsed.path)))
    client = client or s3_client(
        endpoint_url=endpoint_url, session=session, max_attempts=max_attempts
    )
    return S3Store(parsed.netloc, parsed.path.strip("/"), client)


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
