"""The deployable model of a backbone: its k fold models as one Keras model, the content digest
of its files and the local folder of its registry URI.

The deployable is the k-fold ensemble (:func:`ensemble_model`, the mean of the fold models'
softmax outputs; why, in :mod:`covidct.pipeline.confirmation`). Its digest (:func:`model_digest`)
is tagged on the registered version (:data:`DIGEST_TAG`) when it is registered, recomputed on the
files the confirmation scored, and compared again by the serving check
(:mod:`covidct.promotion.serving`): the model scored is the model registered.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: the registered version's tag that holds its content digest
DIGEST_TAG = "model_digest"
#: written into the model folder by MLflow when a version is registered (name and version):
#: registry bookkeeping, not model content, so not part of the digest
REGISTRY_BOOKKEEPING = frozenset({"registered_model_meta"})


def ensemble_model(members: Sequence[Any], name: str = "ensemble") -> Any:
    """One Keras model averaging ``members``' outputs: float32 (B, S, S, 1) -> (B, 2) softmax.

    ``members``: the fold models (same input and output shapes); renamed ``fold_1..fold_k``
    (Keras needs unique layer names). Raises ValueError when there is none.
    """
    import keras

    if not members:
        raise ValueError("an ensemble needs at least one member model")
    for index, member in enumerate(members, start=1):
        member.name = f"fold_{index}"
    inputs = keras.Input(shape=members[0].input_shape[1:], name="slices")
    outputs = [member(inputs) for member in members]
    mean = keras.layers.Average(name="mean_softmax")(outputs) if len(outputs) > 1 else outputs[0]
    return keras.Model(inputs, mean, name=name)


def model_digest(path: Path | str) -> str:
    """SHA-256 (first 16 hex digits) over a model folder's files: relative path and bytes each.

    A single file is hashed as it is. Two copies of the same MLflow model give the same digest;
    :data:`REGISTRY_BOOKKEEPING` files are left out.
    """
    root = Path(path)
    files = (
        [root]
        if root.is_file()
        else sorted(
            p for p in root.rglob("*") if p.is_file() and p.name not in REGISTRY_BOOKKEEPING
        )
    )
    digest = hashlib.sha256()
    for file in files:
        digest.update(str(file.relative_to(root) if file != root else file.name).encode() + b"\0")
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def download(uri: str) -> Path:
    """Local folder of an MLflow model URI (no copy for a local artifact store)."""
    import mlflow

    return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
