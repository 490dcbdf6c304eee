"""The MLflow model registry: aliases only, safe moves, and an append-only audit ledger.

* Aliases: ``champion`` (what serving resolves, ``models:/<name>@champion``) and
  ``baseline-resnet152`` (the last run's ResNet152), each move recorded in the ledger; a refused
  version carries no alias (:mod:`covidct.promotion.audit` checks the registry against the
  ledger). Stages are never
  used (deprecated since MLflow 2.9).
* :func:`promote` is a compare-and-set on ``@champion``. Under a :class:`PromotionLock` it
  re-reads ``@champion`` and raises :class:`ChampionMovedError` if it changed since the gate read
  it; it writes an *intent* record, moves the alias (one atomic upsert in the registry, so
  ``@champion`` resolves at every instant), only then tags the previous champion
  ``superseded_by``, appends the audit record and deletes the intent.
* Crash safety: a promotion interrupted after its intent was written is finished (or dropped, if
  the alias never moved) by the next holder of the lock before it does anything else
  (:func:`resume_promotion` does just that for a retried DAG run), so every alias move ends up
  in the ledger exactly once.
* :func:`register_version` is idempotent per (DAG run, backbone): a retried task finds the
  version it created and never registers a second one.
* The ledger is one JSON object per event under ``ledger/promotions/`` in the data lake (an
  append-only log that works on S3, where objects cannot be appended to); pending intents live
  under ``ledger/promotion-intents/``.

What serialises promotion
-------------------------
In production the DAG runs ``gate_and_promote`` in the Airflow pool ``promote`` with one slot
and ``max_active_runs=1``, so two promotions are never *scheduled* at once. The pool does not
cover everything (a CLI ``covidct registry rollback`` during a run, a manual second DAG, a
zombie task and its retry), so :func:`promote` also takes a :class:`PromotionLock`: a registered
model named ``<model>.promotion-lock`` in the same MLflow registry as the alias. Creating a
registered model is create-if-absent on every MLflow backend (a unique key in SQLite and
PostgreSQL, ``RESOURCE_ALREADY_EXISTS`` through the tracking server), so exactly one process
holds the lock, whatever machine it runs on; it exists only while a promotion is in flight.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol

from covidct.lake.layout import LakeLayout
from covidct.schema import ALIAS_CHAMPION

logger = logging.getLogger(__name__)

LEDGER_PREFIX = LakeLayout.LEDGER_PROMOTIONS
INTENT_PREFIX = LakeLayout.LEDGER_PROMOTION_INTENTS
#: Suffix of the registered model that serves as the promotion lock of ``<model>``.
LOCK_SUFFIX = ".promotion-lock"
#: Default seconds to wait for the lock before raising :class:`PromotionLockTimeout`.
LOCK_TIMEOUT_S = 120.0
#: A lock older than this (seconds) is presumed abandoned by a dead holder and may be broken.
LOCK_STALE_AFTER_S = 6 * 3600.0
_NO_CHAMPION_CODES = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")
_LOCK_BUSY_CODES = ("RESOURCE_ALREADY_EXISTS", "RESOURCE_DOES_NOT_EXIST")


class ChampionMovedError(RuntimeError):
    """``@champion`` changed between the gate's read and the alias move; nothing was moved."""


class PromotionLockTimeout(TimeoutError):
    """Another promotion held the lock for longer than the caller was willing to wait."""


class LedgerStore(Protocol):
    """The part of ``covidct.lake.storage.ObjectStore`` the ledger needs."""

    def list(self, prefix: str) -> list[str]: ...  # noqa: D102
    def read_bytes(self, key: str) -> bytes: ...  # noqa: D102
    def write_bytes(self, key: str, data: bytes) -> None: ...  # noqa: D102
    def delete(self, key: str) -> None: ...  # noqa: D102


@dataclass(frozen=True)
class ChampionRef:
    """The version ``@champion`` points at, or ``None`` fields when there is none."""

    version: str | None
    backbone: str | None = None
    run_id: str | None = None


def client(tracking_uri: str) -> Any:
    """Return an ``MlflowClient`` bound to ``tracking_uri`` (registry on the same store)."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _error_code(error: Exception) -> str:
    return str(getattr(error, "error_code", ""))


def get_champion(mlflow_client: Any, model_name: str) -> ChampionRef:
    """Resolve ``@champion`` with ``get_model_version_by_alias`` (search may omit aliases).

    Returns ``ChampionRef(None)`` when the model or the alias does not exist. Any other registry
    error (unreachable server, locked database) propagates: "no champion" must never be a guess.
    """
    from mlflow.exceptions import MlflowException

    try:
        version = mlflow_client.get_model_version_by_alias(model_name, ALIAS_CHAMPION)
    except MlflowException as error:
        if _error_code(error) in _NO_CHAMPION_CODES:
            return ChampionRef(None)
        raise
    return ChampionRef(str(version.version), version.tags.get("backbone"), version.run_id)


def ensure_registered_model(mlflow_client: Any, model_name: str) -> None:
    """Create the registered model if it does not exist (done once, before parallel tasks)."""
    from mlflow.exceptions import MlflowException

    try:
        mlflow_client.get_registered_model(model_name)
    except MlflowException:
        try:
            mlflow_client.create_registered_model(
                model_name, description="covidct COVID-19 CT-slice classifier (normal, covid)"
            )
        except MlflowException as error:  # created meanwhile by a parallel task
            if _error_code(error) != "RESOURCE_ALREADY_EXISTS":
                raise


def version_of_run(
    mlflow_client: Any, model_name: str, dag_run_id: str, backbone: str
) -> str | None:
    """The first version of ``model_name`` that DAG run ``dag_run_id`` registered for
    ``backbone`` (by their tags), as a string; None when it registered none."""
    query = f"name='{model_name}' and tag.dag_run_id='{dag_run_id}' and tag.backbone='{backbone}'"
    existing = mlflow_client.search_model_versions(query)
    return str(min(int(v.version) for v in existing)) if existing else None


def register_version(
    mlflow_client: Any,
    model_name: str,
    *,
    model_uri: str,
    run_id: str,
    dag_run_id: str,
    backbone: str,
    tags: Mapping[str, str],
) -> str:
    """Register ``model_uri`` as a new version, or return the one this DAG run already made.

    Tags every version with ``dag_run_id``, ``backbone`` and ``tags`` (dataset version,
    fold-manifest digest, headline metrics, gate verdict); the identifying tags are written in
    the same call that creates the version, so a crash right after it still leaves a version
    that a retry finds. Returns the version number as a string.
    """
    ensure_registered_model(mlflow_client, model_name)
    version = version_of_run(mlflow_client, model_name, dag_run_id, backbone)
    if version is not None:
        logger.info("reusing version %s of %s for run %s", version, model_name, dag_run_id)
    else:
        all_tags = {"dag_run_id": dag_run_id, "backbone": backbone, **tags}
        # MLflow 3 logged models (models:/m-<id>): a tracking server requires the model id
        model_id = (
            model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") else None
        )
        created = mlflow_client.create_model_version(
            model_name,
            model_uri,
            run_id=run_id,
            tags={k: str(v) for k, v in all_tags.items()},
            model_id=model_id,
        )
        version = str(created.version)
    for key, value in tags.items():
        mlflow_client.set_model_version_tag(model_name, version, key, str(value))
    return version


# ------------------------------------------------------------------------------------ lock


def lock_name(model_name: str) -> str:
    """Return the name of the registered model that locks promotions of ``model_name``."""
    return f"{model_name}{LOCK_SUFFIX}"


def lock_owner(dag_run_id: str) -> str:
    """Return the lock owner for a promotion: the DAG run, or this process for manual moves."""
    if dag_run_id:
        return f"dag-run:{dag_run_id}"
    return f"manual:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class PromotionLock:
    """Mutual exclusion for moves of ``<model>@champion``, held in the MLflow registry itself.

    Acquiring creates the registered model ``<model>.promotion-lock`` (tags ``owner``,
    ``token``, ``acquired_at`` in Unix seconds); creation is atomic and fails when it exists, so
    one holder at a time. Releasing deletes it (only if our ``token`` still holds it).

    * The same ``owner`` (a retry of the same DAG run, after its first attempt died holding
      the lock) takes the lock over instead of waiting; owners from :func:`lock_owner` with an
      empty DAG run id are unique per call and never take over.
    * A lock older than ``stale_after_s`` seconds is presumed dead and broken (logged).
    * Waits at most ``timeout_s`` seconds (polling every ``poll_s``), then raises
      :class:`PromotionLockTimeout` naming the holder and how to clear it.
    Use as a context manager.
    """

    def __init__(
        self,
        mlflow_client: Any,
        model_name: str,
        owner: str,
        *,
        timeout_s: float = LOCK_TIMEOUT_S,
        poll_s: float = 0.2,
        stale_after_s: float = LOCK_STALE_AFTER_S,
    ) -> None:
        self.client = mlflow_client
        self.name = lock_name(model_name)
        self.owner = owner
        self.token = uuid.uuid4().hex
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self.stale_after_s = stale_after_s

    def __enter__(self) -> PromotionLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()

    def _try_create(self) -> bool:
        from mlflow.exceptions import MlflowException

        tags = {"owner": self.owner, "token": self.token, "acquired_at": f"{time.time():.3f}"}
        try:
            self.client.create_registered_model(
                self.name, tags=tags, description="covidct promotion lock (exists while held)"
            )
        except MlflowException as error:
            if _error_code(error) in _LOCK_BUSY_CODES:
                return False
            raise
        return True

    def holder(self) -> dict[str, str] | None:
        """Return the current holder's tags (``owner``, ``token``, ``acquired_at``) or None."""
        from mlflow.exceptions import MlflowException

        try:
            return dict(self.client.get_registered_model(self.name).tags)
        except MlflowException as error:
            if _error_code(error) == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise

    def _take_over_or_break(self, holder: dict[str, str]) -> bool:
        if holder.get("owner") == self.owner and not self.owner.startswith("manual:"):
            self.client.set_registered_model_tag(self.name, "token", self.token)
            logger.warning("%s: %s takes over its own lock (earlier attempt died)", self.name,
                           self.owner)  # fmt: skip
            return True
        age = time.time() - float(holder.get("acquired_at", "0") or 0)
        if age > self.stale_after_s and self.holder() == holder:
            logger.warning(
                "%s: breaking lock of %s, %.0f s old", self.name, holder.get("owner"), age
            )
            self._delete()
        return False

    def acquire(self) -> None:
        """Take the lock; raises PromotionLockTimeout after ``timeout_s`` seconds."""
        deadline = time.monotonic() + self.timeout_s
        while not self._try_create():
            holder = self.holder()
            if holder is not None and self._take_over_or_break(holder):
                return
            if time.monotonic() > deadline:
                raise PromotionLockTimeout(
                    f"{self.name} is held by {holder}; waited {self.timeout_s:.0f} s. If that "
                    f"holder is dead, delete the registered model {self.name!r}"
                )
            time.sleep(self.poll_s)
        logger.debug("%s acquired by %s", self.name, self.owner)

    def _delete(self) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.delete_registered_model(self.name)
        except MlflowException as error:
            if _error_code(error) != "RESOURCE_DOES_NOT_EXIST":
                raise

    def release(self) -> None:
        """Give the lock back (no-op when someone else took it over or broke it)."""
        holder = self.holder()
        if holder is not None and holder.get("token") == self.token:
            self._delete()


# ------------------------------------------------------------------------------------ ledger


def append_ledger(store: LedgerStore, event: Mapping[str, Any]) -> str:
    """Write one audit record (adds ``at``, UTC ISO time); returns its key. Never overwrites.

    Keys sort by time (microseconds) and end in a random suffix, so two writers never collide.
    """
    at = datetime.now(UTC)
    record = {"at": at.isoformat(), **event}
    stem = f"{at.strftime('%Y%m%dT%H%M%S%fZ')}-{event.get('action', 'event')}"
    key = LakeLayout.promotion_record(f"{stem}-{uuid.uuid4().hex[:8]}")
    store.write_bytes(key, json.dumps(record, sort_keys=True, default=str).encode())
    return key


def read_ledger(store: LedgerStore) -> list[dict[str, Any]]:
    """Return every audit record, oldest first."""
    keys = sorted(k for k in store.list(LEDGER_PREFIX) if k.endswith(".json"))
    return [json.loads(store.read_bytes(key)) for key in keys]


def pending_intents(store: LedgerStore) -> dict[str, dict[str, Any]]:
    """Return {key: intent} for every promotion that started and never finished, oldest first."""
    keys = sorted(k for k in store.list(INTENT_PREFIX) if k.endswith(".json"))
    return {key: json.loads(store.read_bytes(key)) for key in keys}


# ------------------------------------------------------------------------------- promotion


def _finish(mlflow_client: Any, store: LedgerStore, intent_key: str, event: Mapping[str, Any]
            ) -> None:  # fmt: skip
    """Steps after the alias moved: tag the old champion, audit, drop the intent (idempotent)."""
    model_name, version = event["model"], event["version"]
    previous = event["previous_champion"]
    if previous is not None and previous != version:
        mlflow_client.set_model_version_tag(model_name, previous, "superseded_by", version)
    done = {r.get("promotion_id") for r in read_ledger(store)}
    if event["promotion_id"] not in done:
        append_ledger(store, event)
    store.delete(intent_key)


def recover_pending(mlflow_client: Any, store: LedgerStore, model_name: str) -> list[dict]:
    """Finish or drop promotions of ``model_name`` interrupted by a crash; call under the lock.

    An intent whose version ``@champion`` now points at moved the alias: its audit record is
    written (``recovered: true``). Otherwise the alias never moved and the intent is deleted.
    Returns the audit records written.
    """
    recovered = []
    champion = get_champion(mlflow_client, model_name).version
    for key, intent in pending_intents(store).items():
        if intent.get("model") != model_name:
            continue
        if intent["version"] == champion:
            event = {**intent, "recovered": True}
            _finish(mlflow_client, store, key, event)
            recovered.append(event)
            logger.warning("finished interrupted promotion of %s v%s (run %s)", model_name,
                           intent["version"], intent.get("dag_run_id"))  # fmt: skip
        else:
            store.delete(key)
            logger.warning("dropped promotion intent %s: the alias never moved", key)
    return recovered


def promote(
    mlflow_client: Any,
    store: LedgerStore,
    model_name: str,
    *,
    version: str,
    expected_champion: str | None,
    reason: str,
    dag_run_id: str,
    figures: Mapping[str, Any],
    action: str = "promote",
    lock_timeout_s: float = LOCK_TIMEOUT_S,
) -> dict[str, Any]:
    """Move ``@champion`` to ``version`` if it still points at ``expected_champion``.

    Holds :class:`PromotionLock` throughout (waiting at most ``lock_timeout_s`` seconds, then
    PromotionLockTimeout) and first finishes any interrupted promotion (:func:`recover_pending`).
    Raises ChampionMovedError (and moves nothing) when ``@champion`` changed since the gate
    read it. Order: intent record, alias move, ``superseded_by`` tag on the previous champion,
    audit record, intent deleted. Returns the audit record written to the ledger.
    """
    owner = lock_owner(dag_run_id)
    with PromotionLock(mlflow_client, model_name, owner, timeout_s=lock_timeout_s):
        recover_pending(mlflow_client, store, model_name)
        current = get_champion(mlflow_client, model_name).version
        if current != expected_champion:
            raise ChampionMovedError(
                f"{model_name}@champion is version {current}, expected {expected_champion}; "
                "not moved"
            )
        event = {
            "action": action, "model": model_name, "version": version,
            "previous_champion": current, "reason": reason, "dag_run_id": dag_run_id,
            "figures": dict(figures), "promotion_id": uuid.uuid4().hex,
        }  # fmt: skip
        intent_key = LakeLayout.promotion_intent(str(event["promotion_id"]))
        store.write_bytes(intent_key, json.dumps(event, sort_keys=True, default=str).encode())
        mlflow_client.set_registered_model_alias(model_name, ALIAS_CHAMPION, version)
        _finish(mlflow_client, store, intent_key, event)
    logger.info("%s@champion: %s -> %s (%s)", model_name, current, version, reason)
    return event


def resume_promotion(
    mlflow_client: Any,
    store: LedgerStore,
    model_name: str,
    dag_run_id: str,
    *,
    lock_timeout_s: float = LOCK_TIMEOUT_S,
) -> dict[str, Any] | None:
    """For a retried DAG run: finish its interrupted promotion and return its audit record.

    Returns the ``promote`` record of ``dag_run_id`` whose version ``@champion`` still points
    at (written now if the first attempt died between the alias move and the audit), or None
    when this run has not promoted: the caller then runs the gate as usual.
    """
    with PromotionLock(mlflow_client, model_name, lock_owner(dag_run_id),
                       timeout_s=lock_timeout_s):  # fmt: skip
        recover_pending(mlflow_client, store, model_name)
        champion = get_champion(mlflow_client, model_name).version
    for record in reversed(read_ledger(store)):
        if (record.get("model"), record.get("dag_run_id")) != (model_name, dag_run_id):
            continue
        if record.get("action") == "promote" and record.get("version") == champion:
            return record
    return None


def rollback(
    mlflow_client: Any, store: LedgerStore, model_name: str, version: str, reason: str
) -> dict[str, Any]:
    """Move ``@champion`` back to an existing ``version``, audited. Raises if it does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        mlflow_client.get_model_version(model_name, version)
    except MlflowException as error:
        raise ValueError(f"{model_name} has no version {version}") from error
    current = get_champion(mlflow_client, model_name).version
    return promote(
        mlflow_client, store, model_name, version=version, expected_champion=current,
        reason=reason, dag_run_id="", figures={}, action="rollback",
    )  # fmt: skip
