"""The MLflow model registry: aliases only, safe moves, and an append-only audit ledger.

* Aliases: ``champion`` (what serving resolves, ``models:/<name>@champion``), ``challenger``
  (the latest refused candidate), ``baseline-resnet152`` (this run's ResNet152). Stages are never
  used (deprecated since MLflow 2.9).
* :func:`promote` re-reads ``@champion`` just before moving it and raises
  :class:`ChampionMovedError` if it changed (compare-and-set emulation); it sets the new alias
  *before* touching anything about the previous champion, so ``@champion`` resolves at every
  instant; then it appends an audit record. The DAG runs it in a pool of one slot.
* :func:`register_version` is idempotent per (DAG run, backbone): a retried task finds the
  version it created and never registers a second one.
* The ledger is one JSON object per event under ``ledger/promotions/`` in the data lake (an
  append-only log that works on S3, where objects cannot be appended to).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from covidct.schema import ALIAS_CHAMPION, LEDGER

logger = logging.getLogger(__name__)

LEDGER_PREFIX = f"{LEDGER}/promotions"


class ChampionMovedError(RuntimeError):
    """``@champion`` changed between the gate's read and the alias move; nothing was moved."""


class LedgerStore(Protocol):
    """The part of ``covidct.storage.ObjectStore`` the ledger needs."""

    def list(self, prefix: str) -> list[str]: ...  # noqa: D102
    def read_bytes(self, key: str) -> bytes: ...  # noqa: D102
    def write_bytes(self, key: str, data: bytes) -> None: ...  # noqa: D102


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


def get_champion(mlflow_client: Any, model_name: str) -> ChampionRef:
    """Resolve ``@champion`` with ``get_model_version_by_alias`` (search may omit aliases)."""
    from mlflow.exceptions import MlflowException

    try:
        version = mlflow_client.get_model_version_by_alias(model_name, ALIAS_CHAMPION)
    except MlflowException:
        return ChampionRef(None)
    return ChampionRef(str(version.version), version.tags.get("backbone"), version.run_id)


def ensure_registered_model(mlflow_client: Any, model_name: str) -> None:
    """Create the registered model if it does not exist (done once, before parallel tasks)."""
    from mlflow.exceptions import MlflowException

    try:
        mlflow_client.get_registered_model(model_name)
    except MlflowException:
        mlflow_client.create_registered_model(
            model_name, description="covidct COVID-19 CT-slice classifier (normal, covid)"
        )


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
    fold-manifest digest, headline metrics, gate verdict). Returns the version number as a string.
    """
    ensure_registered_model(mlflow_client, model_name)
    query = f"name='{model_name}' and tag.dag_run_id='{dag_run_id}' and tag.backbone='{backbone}'"
    existing = mlflow_client.search_model_versions(query)
    if existing:
        version = str(min(int(v.version) for v in existing))
        logger.info("reusing version %s of %s for run %s", version, model_name, dag_run_id)
    else:
        all_tags = {"dag_run_id": dag_run_id, "backbone": backbone, **tags}
        created = mlflow_client.create_model_version(
            model_name, model_uri, run_id=run_id, tags={k: str(v) for k, v in all_tags.items()}
        )
        version = str(created.version)
    for key, value in tags.items():
        mlflow_client.set_model_version_tag(model_name, version, key, str(value))
    return version


def append_ledger(store: LedgerStore, event: Mapping[str, Any]) -> str:
    """Write one audit record (adds ``at``, UTC ISO time); returns its key. Never overwrites."""
    at = datetime.now(UTC)
    record = {"at": at.isoformat(), **event}
    stem = f"{at.strftime('%Y%m%dT%H%M%S%fZ')}-{event.get('action', 'event')}"
    key = f"{LEDGER_PREFIX}/{stem}.json"
    suffix = 0
    while key in set(store.list(LEDGER_PREFIX)):
        suffix += 1
        key = f"{LEDGER_PREFIX}/{stem}-{suffix}.json"
    store.write_bytes(key, json.dumps(record, sort_keys=True, default=str).encode())
    return key


def read_ledger(store: LedgerStore) -> list[dict[str, Any]]:
    """Return every audit record, oldest first."""
    keys = sorted(k for k in store.list(LEDGER_PREFIX) if k.endswith(".json"))
    return [json.loads(store.read_bytes(key)) for key in keys]


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
) -> dict[str, Any]:
    """Move ``@champion`` to ``version`` if it still points at ``expected_champion``.

    Raises ChampionMovedError (and moves nothing) when ``@champion`` changed since the gate
    read it. The new alias is set first; only then is the previous champion tagged
    ``superseded_by``. Returns the audit record written to the ledger.
    """
    current = get_champion(mlflow_client, model_name).version
    if current != expected_champion:
        raise ChampionMovedError(
            f"{model_name}@champion is version {current}, expected {expected_champion}; not moved"
        )
    mlflow_client.set_registered_model_alias(model_name, ALIAS_CHAMPION, version)
    if current is not None and current != version:
        mlflow_client.set_model_version_tag(model_name, current, "superseded_by", version)
    event = {
        "action": action,
        "model": model_name,
        "version": version,
        "previous_champion": current,
        "reason": reason,
        "dag_run_id": dag_run_id,
        "figures": dict(figures),
    }
    append_ledger(store, event)
    logger.info("%s@champion: %s -> %s (%s)", model_name, current, version, reason)
    return event


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
