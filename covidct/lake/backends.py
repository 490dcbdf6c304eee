"""The two object stores behind :class:`~covidct.lake.storage.ObjectStore`: a local folder
(:class:`LocalStore`, the embedded default) and S3 (:class:`S3Store`, production; boto3 with
retries), and :func:`open_store`, which picks one from a URI.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

if TYPE_CHECKING:
    pass
from covidct.lake.storage import (
    PARTIAL_SUFFIX,
    TRANSFER_THREADS,
    KeyList,
    ObjectStore,
    StoreScheme,
    atomic_write,
    check_key,
    folder,
    fsync_dir,
    make_dirs,
)

logger = logging.getLogger(__name__)
#: Suffix of a folder :meth:`LocalStore.publish_prefix` renamed aside (removed once published).
_ASIDE_SUFFIX = ".covidct-replaced"


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
                if name.endswith(PARTIAL_SUFFIX):
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
        make_dirs(path.parent)
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

    def _folder_path(self, prefix: str) -> Path:
        return self.root.joinpath(*check_key(folder(prefix).rstrip("/")).split("/"))

    def publish_prefix(self, src: str, dst: str) -> None:
        """Rename folder ``src`` onto ``dst`` (one atomic ``os.rename``; an existing ``dst`` is
        first renamed aside next to ``src`` and removed after), then sync both parents."""
        source, target = self._folder_path(src), self._folder_path(dst)
        if not source.is_dir():
            raise FileNotFoundError(f"{self.uri(src)} does not exist")
        make_dirs(target.parent)
        self._remove_asides(source)
        aside = source.with_name(f".{source.name}.{uuid.uuid4().hex}{_ASIDE_SUFFIX}")
        if target.exists():
            os.rename(target, aside)
        os.rename(source, target)
        fsync_dir(target.parent)
        fsync_dir(source.parent)
        shutil.rmtree(aside, ignore_errors=True)
        self._prune(source.parent)

    def discard_prefix(self, prefix: str) -> None:
        """Remove the folder ``prefix`` with everything in it (partial files too)."""
        path = self._folder_path(prefix)
        self._remove_asides(path)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
            fsync_dir(path.parent)
            self._prune(path.parent)

    @staticmethod
    def _remove_asides(source: Path) -> None:
        """Remove what a :meth:`publish_prefix` killed between its renames left aside."""
        if source.parent.is_dir():
            for aside in source.parent.glob(f".{source.name}.*{_ASIDE_SUFFIX}"):
                shutil.rmtree(aside, ignore_errors=True)

    def sweep_partials(self, prefix: str) -> int:
        """Remove the partial files (``*.covidct-partial``) a killed writer left under folder
        ``prefix``; return how many."""
        path = self._folder_path(prefix)
        partials = list(path.rglob(f"*{PARTIAL_SUFFIX}")) if path.is_dir() else []
        for partial in partials:
            partial.unlink(missing_ok=True)
        return len(partials)

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
