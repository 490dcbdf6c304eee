"""Resumable training: the checkpoint of every epoch with its state file (``state.json``),
the checks that a resumed run is the same run, and the mirror that pushes checkpoints to the
object store and pulls them back on another worker (SHA-256 checked).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras

from covidct.lake.storage import IntegrityError, ObjectStore, atomic_write, folder, sha256_hex
from covidct.training.optimization import (
    compile_model,
)
from covidct.training.profiles import TrainingConfig
from covidct.training.tracking import (
    serving_copy,
)

logger = logging.getLogger(__name__)

STATE_FILE = "state.json"


CHECKPOINT_GLOB = "epoch-*.keras"


# --------------------------------------------------------------------------- checkpoints


def read_state(checkpoint_dir: Path) -> dict[str, Any] | None:
    """The last completed epoch's state (``state.json``), or None when there is none.

    Raises CheckpointStateError (a ValueError) naming the file when it is not a JSON object
    with an integer ``epoch`` and a string ``checkpoint``.
    """
    path = Path(checkpoint_dir) / STATE_FILE
    if not path.is_file():
        return None
    return parse_state(path.read_text(), str(path))


class CheckpointStateError(ValueError):
    """A ``state.json`` that cannot be read: delete it (and its checkpoint) to start again."""


def parse_state(text: str, where: str) -> dict[str, Any]:
    """Parse a ``state.json`` read from ``where`` (a path or URI, for the message)."""
    try:
        state = json.loads(text)
    except json.JSONDecodeError as error:
        raise CheckpointStateError(
            f"{where}: not valid JSON ({error}); delete it and its checkpoint to start again"
        ) from error
    if not isinstance(state, dict):
        raise CheckpointStateError(f"{where}: expected a JSON object, got {type(state).__name__}")
    epoch, name = state.get("epoch"), state.get("checkpoint")
    if not isinstance(epoch, int) or epoch < 1 or not isinstance(name, str) or not name:
        raise CheckpointStateError(
            f"{where}: needs an integer 'epoch' >= 1 and a 'checkpoint' file name, got "
            f"epoch={epoch!r}, checkpoint={name!r}; delete it and its checkpoint to start again"
        )
    return state


def _write_json_atomically(path: Path, payload: Mapping[str, Any]) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(payload, indent=2))
    os.replace(temporary, path)


#: ``state.json`` key: False when the checkpoint file holds weights only (the last epoch).
OPTIMIZER_STATE = "optimizer_state"


class EpochCheckpoint(keras.callbacks.Callback):
    """Save the model and ``state.json`` after every epoch; keep only the latest file.

    Epochs before ``final_epoch`` save the compiled model with its optimizer state (Nadam: 3x
    the weights), which a resumed run needs to continue with the same moments and step count;
    the final epoch saves the weights only (:func:`serving_copy`): nothing is left to train,
    and a retry only needs the model (``state.json`` records ``optimizer_steps`` and
    ``optimizer_state: false``). The model file is written first and renamed into place, then
    the state is replaced atomically, so a kill at any moment leaves a consistent pair.
    """

    def __init__(
        self, directory: Path, identity: Mapping[str, Any], history: dict, final_epoch: int
    ) -> None:
        super().__init__()
        self.directory = Path(directory)
        self.identity = dict(identity)
        self.history = history
        self.final_epoch = final_epoch

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        name = f"epoch-{epoch + 1:04d}.keras"
        partial = self.directory / f"partial-{name}"
        with_optimizer = epoch + 1 < self.final_epoch
        (self.model if with_optimizer else serving_copy(self.model)).save(partial)
        os.replace(partial, self.directory / name)
        state = {
            **self.identity,
            "epoch": epoch + 1,
            "checkpoint": name,
            "optimizer_steps": int(self.model.optimizer.iterations.numpy()),
            OPTIMIZER_STATE: with_optimizer,
            "history": self.history,
        }
        _write_json_atomically(self.directory / STATE_FILE, state)
        for old in [*self.directory.glob(CHECKPOINT_GLOB), *self.directory.glob("partial-*")]:
            if old.name != name:
                old.unlink()
        logger.info("checkpoint %s (epoch %d)", self.directory / name, epoch + 1)


#: TrainingConfig settings that may change between a checkpoint and its resumption: more
#: epochs extend a run; where the weights cache lives, eager mode and how much of the validation
#: set is scored do not change what is trained.
RESUME_MAY_CHANGE = frozenset({"epochs", "weights_cache", "run_eagerly", "validation_steps"})


class CheckpointMismatchError(ValueError):
    """A checkpoint cannot continue the requested training (other settings, or past its end)."""


def run_identity(backbone: str, config: TrainingConfig, steps: int, batch: int) -> dict[str, Any]:
    """What a checkpoint must share with the training that continues it: the backbone, the
    settings that may not change on resume (all but ``RESUME_MAY_CHANGE``), steps per epoch and
    global batch size; compared by :func:`check_resumable`."""
    settings = {
        key: value for key, value in config.to_params().items() if key not in RESUME_MAY_CHANGE
    }
    return {
        "backbone": backbone,
        "profile": config.profile.value,
        "image_size": config.image_size,
        "steps_per_epoch": steps,
        "global_batch_size": batch,
        "settings": settings,
    }


def check_resumable(
    state: Mapping[str, Any], identity: Mapping[str, Any], epochs: int, where: Path
) -> None:
    """Raise CheckpointMismatchError unless ``state`` can continue the requested training.

    Compares the identity (backbone, profile, image size, steps, global batch, and every
    TrainingConfig setting but :data:`RESUME_MAY_CHANGE`), listing each difference; checkpoints
    written before ``settings`` was recorded are compared on the rest. A checkpoint already past
    ``epochs`` is refused too.
    """
    different: dict[str, Any] = {}
    for key, value in identity.items():
        if key == "settings" and key not in state:
            continue
        stored = state.get(key)
        if isinstance(value, Mapping) and isinstance(stored, Mapping):
            keys = sorted(set(value) | set(stored))
            pairs = {name: (stored.get(name), value.get(name)) for name in keys}
            different.update({name: pair for name, pair in pairs.items() if pair[0] != pair[1]})
        elif stored != value:
            different[key] = (stored, value)
    if different:
        raise CheckpointMismatchError(
            f"{where}: checkpoint was made with other settings (stored, requested): {different}; "
            "delete the checkpoint (and its mirrored copy) or train under another run"
        )
    if int(state["epoch"]) > epochs:
        raise CheckpointMismatchError(
            f"{where}: checkpoint is at epoch {state['epoch']}, past the {epochs} epochs asked for"
        )


def restore_checkpoint(
    checkpoint_dir: Path, state: Mapping[str, Any], config: TrainingConfig, replicas: int
) -> keras.Model:
    """Load the checkpoint ``state`` names; a weights-only one (the last epoch) is compiled anew
    with its optimizer step count restored (extending a finished run restarts Nadam's moments).
    """
    path = Path(checkpoint_dir) / str(state["checkpoint"])
    if not path.is_file():
        raise FileNotFoundError(f"{checkpoint_dir}/{STATE_FILE} names {path}, which is missing")
    logger.info("resuming from %s (epoch %s)", path, state["epoch"])
    model = keras.saving.load_model(path, compile=True)
    if state.get(OPTIMIZER_STATE, True) is False or getattr(model, "optimizer", None) is None:
        compile_model(model, config, replicas)
        model.optimizer.iterations.assign(int(state.get("optimizer_steps", 0)))
    return model


# --------------------------------------------------------------------------- checkpoint mirror

#: Key added to the mirrored ``state.json``: hex sha256 of the checkpoint file it names.
CHECKPOINT_SHA256 = "checkpoint_sha256"


class CheckpointSyncError(RuntimeError):
    """Uploading a checkpoint to the object store failed (training stops; the task retries)."""


def push_checkpoint(store: ObjectStore, prefix: str, local_dir: Path) -> dict[str, Any]:
    """Upload the latest checkpoint of ``local_dir`` to folder ``prefix`` of ``store``.

    Order: the ``epoch-NNNN.keras`` file, then ``state.json`` (the local state plus
    ``checkpoint_sha256``), then deletion of every other ``epoch-*.keras`` object under
    ``prefix``: a reader never sees a state naming a missing file, and one epoch is kept.
    Returns the uploaded state. Raises FileNotFoundError when ``local_dir`` has no state or
    lacks the file it names; the store's errors propagate.
    """
    state = read_state(local_dir)
    if state is None:
        raise FileNotFoundError(f"{local_dir} has no {STATE_FILE} to upload")
    base, name = folder(prefix), str(state["checkpoint"])
    data = (Path(local_dir) / name).read_bytes()
    store.write_bytes(base + name, data)
    mirrored = {**state, CHECKPOINT_SHA256: sha256_hex(data)}
    store.write_text(base + STATE_FILE, json.dumps(mirrored, indent=2))
    keep = base + name
    store.delete_many(
        key for key in store.list(base + "epoch-") if key.endswith(".keras") and key != keep
    )
    logger.info("checkpoint epoch %s uploaded to %s", state["epoch"], store.uri(keep))
    return mirrored


def read_remote_state(store: ObjectStore, prefix: str) -> dict[str, Any] | None:
    """The ``state.json`` under folder ``prefix`` of ``store``, or None when there is none."""
    key = folder(prefix) + STATE_FILE
    if not store.exists(key):
        return None
    return parse_state(store.read_text(key), store.uri(key))


def pull_checkpoint(store: ObjectStore, prefix: str, local_dir: Path) -> int:
    """Copy the checkpoint under ``prefix`` into ``local_dir`` when it is newer than the local one.

    Newer: a higher ``epoch`` than ``local_dir``'s ``state.json`` (or no local state). The file
    is checked against the state's ``checkpoint_sha256`` and written before the state, and
    older local ``epoch-*.keras`` files are removed. Returns the epoch ``local_dir`` now holds
    (0: none). Raises IntegrityError on a sha256 mismatch, FileNotFoundError when the state
    names a missing object.
    """
    local = read_state(local_dir)
    local_epoch = int(local["epoch"]) if local else 0
    remote = read_remote_state(store, prefix)
    if remote is None or int(remote["epoch"]) <= local_epoch:
        return local_epoch
    name = str(remote["checkpoint"])
    data = store.read_bytes(folder(prefix) + name)
    expected = remote.get(CHECKPOINT_SHA256)
    if expected is not None and sha256_hex(data) != expected:
        raise IntegrityError(
            f"{store.uri(folder(prefix) + name)}: sha256 {sha256_hex(data)} != {expected} "
            f"recorded in its {STATE_FILE}"
        )
    local_dir = Path(local_dir)
    local_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(local_dir / name, data)
    _write_json_atomically(local_dir / STATE_FILE, remote)
    for old in local_dir.glob(CHECKPOINT_GLOB):
        if old.name != name:
            old.unlink()
    logger.info("checkpoint epoch %s pulled from %s", remote["epoch"], store.uri(folder(prefix)))
    return int(remote["epoch"])


class CheckpointMirror(keras.callbacks.Callback):
    """Keep a copy of :class:`EpochCheckpoint`'s directory in an object store (the run's lake).

    Pass it in ``train_model(callbacks=...)`` (it runs after the local checkpoint) and call
    :meth:`pull` before training, so a task retried on another worker resumes from the last
    uploaded epoch. An upload failure is logged and raised as :class:`CheckpointSyncError`,
    which stops training: the task fails and its retry resumes from the last good upload.
    """

    def __init__(self, store: ObjectStore, prefix: str, local_dir: Path) -> None:
        super().__init__()
        self.store = store
        self.prefix = folder(prefix)
        self.local_dir = Path(local_dir)

    def pull(self) -> int:
        """See :func:`pull_checkpoint`; returns the epoch the local directory now holds."""
        return pull_checkpoint(self.store, self.prefix, self.local_dir)

    def sync(self) -> int:
        """Pull a newer stored checkpoint, or push a newer local one (an earlier failed upload).

        Returns the epoch both sides now hold (0: none).
        """
        epoch = self.pull()
        remote = read_remote_state(self.store, self.prefix)
        if epoch > (int(remote["epoch"]) if remote else 0):
            push_checkpoint(self.store, self.prefix, self.local_dir)
        return epoch

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        try:
            push_checkpoint(self.store, self.prefix, self.local_dir)
        except Exception as error:
            where = self.store.uri(self.prefix)
            logger.exception("epoch %d: checkpoint upload to %s failed", epoch + 1, where)
            raise CheckpointSyncError(
                f"epoch {epoch + 1}: uploading {self.local_dir} to {where} failed: {error}"
            ) from error
