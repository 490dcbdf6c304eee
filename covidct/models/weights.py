"""ImageNet weights for the backbones, read only from a configured cache (a folder or an object
store, never the internet) with their SHA-256 checked, and loaded into a one-channel model
(:class:`ChannelAdaptation`: how RGB kernels meet a grey CT slice).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

import keras
import numpy as np

from covidct.lake.backends import open_store
from covidct.lake.storage import IntegrityError, ObjectStore, atomic_write, sha256_hex

logger = logging.getLogger(__name__)


class WeightsSpec(Protocol):
    """What loading weights needs of a registry entry (a
    :class:`covidct.models.backbones.BackboneSpec`, which stands above this module): its name,
    its ImageNet "notop" file name and its Keras Applications constructor."""

    @property
    def name(self) -> str: ...

    @property
    def imagenet_file(self) -> str: ...

    @property
    def application(self) -> Any: ...


#: Suffix of the optional digest sidecar beside a cached weights file (``sha256sum`` format).
SHA256_SIDECAR = ".sha256"


_SOURCE_STAMP = ".source"


class ChannelAdaptation(StrEnum):
    """How a one-channel CT slice meets a backbone designed for RGB (see module docstring)."""

    SUM = "sum"
    RANDOM = "random"
    REPLICATE = "replicate"


# --------------------------------------------------------------------------- weights


@dataclass(frozen=True)
class WeightsCache:
    """Where ``weights="imagenet"`` files are read from; nothing comes from the internet.

    ``location``: a local folder (``/opt/weights`` or ``file:///opt/weights``) or an object
    store URI (``s3://bucket/prefix``, see :func:`covidct.lake.backends.open_store`) holding the
    Keras Applications "notop" files under their own names (``WeightsSpec.imagenet_file``),
    each optionally beside ``<file>.sha256`` (hex digest; ``sha256sum`` output works).
    ``s3_endpoint_url``: endpoint of a non-AWS S3 server (credentials: boto3's default chain).
    ``local_dir``: where files of a remote location are copied (the worker's work dir); needed
    only for a remote location.
    """

    location: str
    s3_endpoint_url: str | None = None
    local_dir: Path | None = None

    def __str__(self) -> str:
        return self.location

    @classmethod
    def of(cls, value: WeightsCacheLike) -> WeightsCache | None:
        """``value`` as a WeightsCache: a str or Path is a location; None stays None."""
        if value is None or isinstance(value, WeightsCache):
            return value
        return cls(str(value))

    @property
    def is_remote(self) -> bool:
        """True for an object store URI other than ``file://``."""
        return urlparse(self.location).scheme not in ("", "file")

    def local_folder(self) -> Path:
        """The local folder the files are read from (the copy folder for a remote location).

        Raises ValueError for a remote location without ``local_dir``.
        """
        parsed = urlparse(self.location)
        if parsed.scheme == "file":
            return Path(unquote(parsed.path))
        if not self.is_remote:
            return Path(self.location).expanduser()
        if self.local_dir is None:
            raise ValueError(f"weights cache {self.location} needs local_dir to copy files into")
        parts = [parsed.scheme, parsed.netloc, *parsed.path.strip("/").split("/")]
        return Path(self.local_dir).joinpath(*(part for part in parts if part))

    def resolve(self, file_name: str) -> Path:
        """The local path of ``file_name``, copied from a remote location first when needed.

        Raises FileNotFoundError naming the location and ``file_name`` when it is absent, and
        :class:`covidct.lake.storage.IntegrityError` when a copied file fails its checks.
        """
        if not self.is_remote:
            path = self.local_folder() / file_name
            if not path.is_file():
                raise FileNotFoundError(f"weights file {path} does not exist")
            _check_local_sidecar(path)
            return path
        store = open_store(self.location, endpoint_url=self.s3_endpoint_url)
        return fetch_weights_file(store, file_name, self.local_folder())


WeightsCacheLike = WeightsCache | str | Path | None


def fetch_weights_file(store: ObjectStore, file_name: str, local_dir: Path) -> Path:
    """Return ``local_dir / file_name``, a verified copy of the object ``file_name`` of ``store``.

    A copy made earlier is reused while the object and its ``.sha256`` sidecar keep their
    fingerprints (size and ETag or modification time; recorded in ``<file>.source``) and the copy
    still has the listed size. Otherwise
    the object is read, its size checked against the store's listing and its sha256 against the
    sidecar when one exists, then written atomically. Raises FileNotFoundError naming the
    store URI and the expected file name when the object is absent, IntegrityError when the
    size or the sha256 differ (nothing is written then).
    """
    marks = store.fingerprints("")
    if file_name not in marks:
        raise FileNotFoundError(
            f"weights cache {store.uri()} has no {file_name} (expected {store.uri(file_name)}); "
            "nothing is downloaded from the internet"
        )
    target = Path(local_dir) / file_name
    stamp = target.with_name(target.name + _SOURCE_STAMP)
    source = f"{marks[file_name]} {marks.get(file_name + SHA256_SIDECAR, '-')}"
    listed_size = int(marks[file_name].split(":", 1)[0])
    fresh = target.is_file() and stamp.is_file() and stamp.read_text() == source
    if fresh and target.stat().st_size == listed_size:
        logger.info("weights %s: reusing %s", store.uri(file_name), target)
        return target
    data = store.read_bytes(file_name)
    _check_weights_bytes(store, file_name, data, listed_size)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, data)
    atomic_write(stamp, source.encode())
    logger.info("weights %s: copied to %s (%d bytes)", store.uri(file_name), target, len(data))
    return target


def _check_local_sidecar(path: Path) -> None:
    """Compare ``path`` with its ``<file>.sha256`` sidecar when there is one (IntegrityError)."""
    sidecar = path.with_name(path.name + SHA256_SIDECAR)
    if not sidecar.is_file():
        return
    words = sidecar.read_text().split()
    expected = words[0].lower() if words else "<empty>"
    actual = sha256_hex(path.read_bytes())
    if actual != expected:
        raise IntegrityError(f"{path}: sha256 {actual} differs from {expected} in {sidecar}")


def _check_weights_bytes(store: ObjectStore, file_name: str, data: bytes, size: int) -> None:
    if len(data) != size:
        raise IntegrityError(f"{store.uri(file_name)}: read {len(data)} bytes, listed {size}")
    sidecar = file_name + SHA256_SIDECAR
    if not store.exists(sidecar):
        return
    words = store.read_text(sidecar).split()
    expected = words[0].lower() if words else "<empty>"
    actual = sha256_hex(data)
    if actual != expected:
        raise IntegrityError(
            f"{store.uri(file_name)}: sha256 {actual} differs from {expected} in "
            f"{store.uri(sidecar)}"
        )


def resolve_weights_file(
    spec: WeightsSpec, weights: str | Path, weights_cache: WeightsCacheLike
) -> Path:
    """The local file that ``weights`` names. Never downloads from the internet.

    Raises ValueError for ``"imagenet"`` without a cache or an unknown string, FileNotFoundError
    naming the expected path or URI when the file is missing, IntegrityError (see
    :func:`fetch_weights_file`).
    """
    if isinstance(weights, str) and not weights.endswith((".h5", ".keras")):
        if weights != "imagenet":
            raise ValueError(f"weights must be None, 'imagenet' or a file path, got {weights!r}")
        cache = WeightsCache.of(weights_cache)
        if cache is None:
            raise ValueError(
                f"{spec.name}: weights='imagenet' needs a weights cache (folder or s3:// URI) "
                f"holding {spec.imagenet_file}; nothing is downloaded"
            )
        return cache.resolve(spec.imagenet_file)
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"{spec.name}: weights file {path} does not exist")
    return path


def load_weights(
    model: keras.Model,
    spec: WeightsSpec,
    weights: str | Path,
    weights_cache: WeightsCacheLike,
    adaptation: ChannelAdaptation,
) -> None:
    """Load ``weights`` into ``model`` in place (see module docstring for what is accepted)."""
    path = resolve_weights_file(spec, weights, weights_cache)
    if path.name.endswith((".weights.h5", ".keras")):
        model.load_weights(path)
        logger.info("%s: loaded whole-model weights from %s", spec.name, path)
        return
    try:
        reference = spec.application(
            include_top=False, weights=str(path), input_shape=(*model.input_shape[1:3], 3)
        )
    except (OSError, ValueError) as error:  # h5py: truncated/not HDF5; keras: layer mismatch
        raise ValueError(
            f"{spec.name}: cannot load ImageNet weights from {path}: {error}. Expected the Keras "
            f"Applications 'notop' file of {spec.name} ({spec.imagenet_file}, the legacy HDF5 "
            "layout keras.applications reads; a Keras 3 '.weights.h5' file is not that)"
        ) from error
    copied = transfer_trunk_weights(reference, model, adaptation)
    logger.info("%s: %d layers loaded from %s (%s)", spec.name, copied, path, adaptation.value)


def transfer_trunk_weights(
    reference: keras.Model, model: keras.Model, adaptation: ChannelAdaptation
) -> int:
    """Copy weights layer by layer (matched by name) from an RGB trunk into ``model``.

    A kernel whose input-channel axis is 3 in ``reference`` and 1 in ``model`` is summed over
    colour (``sum``) or left as initialised (``random``). Returns the number of layers copied.
    Raises ValueError when no layer matches or another shape differs.
    """
    copied = 0
    names = {layer.name for layer in model.layers}
    for source in reference.layers:
        source_weights = source.get_weights()
        if not source_weights or source.name not in names:
            continue
        target = model.get_layer(source.name)
        adapted = _adapt_kernels(source_weights, target.get_weights(), source.name, adaptation)
        if adapted is not None:
            target.set_weights(adapted)
            copied += 1
    if copied == 0:
        raise ValueError(f"{model.name}: no layer of {reference.name} matched by name")
    return copied


def _adapt_kernels(
    source: list[np.ndarray], target: list[np.ndarray], name: str, adaptation: ChannelAdaptation
) -> list[np.ndarray] | None:
    adapted = []
    for src, dst in zip(source, target, strict=True):
        if src.shape == dst.shape:
            adapted.append(src)
        elif src.ndim == 4 and src.shape[2] == 3 and dst.shape[2] == 1:
            if adaptation is ChannelAdaptation.RANDOM:
                return None
            adapted.append(src.sum(axis=2, keepdims=True))
        else:
            raise ValueError(f"layer {name}: weight shape {src.shape} does not fit {dst.shape}")
    return adapted
