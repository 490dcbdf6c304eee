"""DAG steps of batch intake: discover, validate, quarantine, curate and make the folds.

The retraining workflow's steps are one function per DAG task (DAG files only wire these), in
this module, :mod:`covidct.pipeline.development` and :mod:`covidct.pipeline.decision`.

Every step takes the :class:`~covidct.config.Settings`, plain ids and small dicts, and returns a
small JSON-safe dict for XCom (URIs, ids, metric figures; never data). A step's run outputs go
under ``runs/<run_key>/`` (keyed by the DAG run), so a retried step overwrites its own output;
``curate`` and ``make_folds`` write the lake's shared areas (``curated/``, ``folds/``,
``sequestered/``; see docs/architecture.md).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from covidct.config import Settings
from covidct.lake.layout import LakeLayout, RunLayout
from covidct.lake.storage import read_parquet, write_parquet
from covidct.pipeline.context import lake, materialize, run_key_of, send_alert, write_json
from covidct.promotion import alerts as alerts_mod

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- discover / validate


def discover(settings: Settings) -> list[str]:
    """Return the ids of batches in ``landing/`` whose content hash is not yet in the ledger."""
    from covidct.lake import custody

    batches = custody.discover_new_batches(lake(settings))
    logger.info("new batches: %s", batches or "none")
    return batches


def validate(
    settings: Settings, batch_id: str, dag_run_id: str, send: Any = None
) -> dict[str, Any]:
    """Validate one landed batch; save its report and manifest under ``runs/<run>/validation/``.

    A passed batch is compared with the curated reference (:func:`covidct.pipeline.evidence.
    record_batch_drift`: ``runs/<run>/drift/<batch>.json``, a ``batch_drift`` alert through
    ``send`` when it drifted; it stays accepted). The landed content hash is taken before
    validation and handed on, as :func:`covidct.lake.curation.ingest_batch` does, so
    :func:`quarantine` and :func:`curate` move only the content that was validated (landing
    changed since: ValueError, nothing moved). Returns ``{"batch_id", "passed", "reasons",
    "report_dir", "manifest_key", "n_slices", "drift", "content_hash"}``.
    """
    from covidct.batch import validation, validation_report
    from covidct.lake import curation, custody
    from covidct.pipeline import evidence

    store = lake(settings)
    digest = custody.batch_content_hash(store, custody.landing_prefix(batch_id))
    batch_dir = materialize(store, LakeLayout.landing_batch(batch_id), settings)
    report_dir = settings.work_dir / "reports" / run_key_of(dag_run_id) / batch_id
    verdict = validation.validate_batch(
        batch_dir,
        known_labels=curation.known_labels(store),
        known_hashes=curation.known_hashes(store, batch_id),
        report_dir=report_dir,
        progress=False,
    )
    run = RunLayout.of(dag_run_id)
    manifest_key = write_parquet(store, run.validation_manifest(batch_id), verdict.manifest)
    write_json(store, run.validation_verdict(batch_id), verdict.to_dict())
    logger.info("batch %s: %s", batch_id, validation_report.format_verdict(verdict))
    drift = None
    if verdict.passed:  # drift informs, it does not gate
        drift = evidence.record_batch_drift(
            settings, batch_id, batch_dir, verdict.manifest, dag_run_id, send
        )
    return {
        "batch_id": batch_id,
        "passed": bool(verdict.passed),
        "reasons": list(verdict.reasons),
        "report_dir": str(report_dir),
        "manifest_key": manifest_key,
        "n_slices": int(verdict.n_slices),
        "drift": drift,
        "content_hash": digest,
    }


def quarantine(
    settings: Settings, verdict: Mapping[str, Any], dag_run_id: str, send: Any = None
) -> dict[str, Any]:
    """Move a failed batch to ``quarantine/`` byte-identical with its report, and alert.

    A passed batch is left alone (returns ``{"quarantined": False}``). ``send``: the alert
    delivery function (the Airflow plugin's, for Slack/SMTP); None writes ``alerts.jsonl``.
    """
    from covidct.lake import curation

    if verdict["passed"]:
        return {"batch_id": verdict["batch_id"], "quarantined": False}
    store = lake(settings)
    where = curation.quarantine_batch(
        store, verdict["batch_id"], dict(verdict), Path(verdict["report_dir"]),
        content_hash_hex=verdict.get("content_hash"),
    )  # fmt: skip
    send_alert(
        settings,
        alerts_mod.AlertKind.BATCH_QUARANTINED,
        alerts_mod.Severity.WARNING,
        f"batch {verdict['batch_id']} quarantined: {len(verdict['reasons'])} failed check(s)",
        {"batch_id": verdict["batch_id"], "reasons": verdict["reasons"][:20], "where": where},
        dag_run_id=dag_run_id,
        send=send,
    )
    return {"batch_id": verdict["batch_id"], "quarantined": True, "where": where}


# --------------------------------------------------------------------------- curate / folds


def dataset_digest(manifest: pd.DataFrame) -> str:
    """Order-independent content hash over (patient_key, path, sha256, label) of a manifest."""
    rows = manifest[["patient_key", "path", "sha256", "label"]].astype(str)
    lines = sorted("\t".join(row) for row in rows.itertuples(index=False, name=None))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def curate(
    settings: Settings, verdicts: Sequence[Mapping[str, Any]], dag_run_id: str
) -> dict[str, Any]:
    """Accept every passed batch into ``curated/`` and write the dataset version's manifest.

    The manifest covers every batch accepted so far (this run's and earlier ones); its paths are
    relative to ``curated/batches/``, its rows in path order whatever order the batches were
    accepted in, so one dataset version is one table and the same run trains the same models
    (the folds, the sequestered table and the training batches follow the manifest's row
    order). Returns ``{"dataset_version", "manifest_key", "n_slices",
    "n_patients", "accepted"}``; ``dataset_version`` is None when nothing was ever accepted.
    """
    from covidct.data import selection
    from covidct.lake import curation

    store = lake(settings)
    accepted = []
    for verdict in verdicts:
        if not verdict["passed"]:
            continue
        batch_id = verdict["batch_id"]
        manifest = read_parquet(store, verdict["manifest_key"])
        curation.accept_batch(
            store, batch_id, manifest=manifest, info={"dag_run_id": dag_run_id},
            content_hash_hex=verdict.get("content_hash"),
        )  # fmt: skip
        accepted.append(batch_id)
    manifest = curation.accepted_manifests(store)
    if manifest.empty:
        return {"dataset_version": None, "accepted": accepted, "n_slices": 0, "n_patients": 0}
    if "excluded" in manifest.columns:
        manifest = manifest[~manifest["excluded"].fillna(False).astype(bool)]
    manifest = manifest[manifest["read_error"].isna()].reset_index(drop=True)
    manifest["path"] = manifest["batch_id"] + "/" + manifest["path"]
    # one row order per dataset version: the ledger lists batches in the order their validate
    # tasks finished, which Airflow does not fix, and training draws its batches by row position
    manifest = manifest.sort_values("path", kind="stable", ignore_index=True)
    manifest = selection.with_selection(manifest)  # computed once; folds take selected rows
    version = dataset_digest(manifest)
    manifest_key = write_parquet(store, LakeLayout.dataset_manifest(version), manifest)
    counts = selection_counts(manifest)
    write_json(store, RunLayout.of(dag_run_id).curation, {"dataset_version": version, **counts})
    logger.info(
        "dataset %s: %d slices, %d selected (open lung), %d not diagnostic (closed lung)",
        version, counts["n_slices"], counts["n_selected"], counts["n_not_diagnostic"],
    )  # fmt: skip
    return {
        "dataset_version": version,
        "manifest_key": manifest_key,
        "n_slices": int(len(manifest)),
        "n_selected": counts["n_selected"],
        "n_not_diagnostic": counts["n_not_diagnostic"],
        "n_patients": int(manifest["patient_key"].nunique()),
        "accepted": accepted,
    }


def selection_counts(manifest: pd.DataFrame) -> dict[str, Any]:
    """Slices of a selection-marked dataset manifest: ``{"n_slices", "n_selected",
    "n_not_diagnostic", "batches": [{"batch_id", "n_slices", "n_selected",
    "n_not_diagnostic"}]}`` (not diagnostic: closed lung, left out by the COVID-CTset
    selection; kept in the lake)."""
    from covidct.data import selection

    kept = manifest[selection.SELECTED_COLUMN].astype(bool)
    per_batch = (
        pd.DataFrame({"batch_id": manifest["batch_id"].astype(str), "kept": kept})
        .groupby("batch_id", sort=True)["kept"]
        .agg(["size", "sum"])
    )
    return {
        "n_slices": int(len(manifest)),
        "n_selected": int(kept.sum()),
        "n_not_diagnostic": int((~kept).sum()),
        "batches": [
            {
                "batch_id": str(batch_id),
                "n_slices": int(row["size"]),
                "n_selected": int(row["sum"]),
                "n_not_diagnostic": int(row["size"] - row["sum"]),
            }
            for batch_id, row in per_batch.iterrows()
        ],
    }


def make_folds(
    settings: Settings, curated: Mapping[str, Any], k: int, seed: int, dag_run_id: str = "manual"
) -> list[dict]:
    """Sequester patients, then build patient-level folds of the development patients.

    Sequestration (:mod:`covidct.data.sequester`) comes first and does not depend on ``k`` or
    ``seed``; the sequestered patients' slices go to ``curated/<version>/sequestered.parquet``
    and into no fold. Development patients keep their earlier folds. Returns one ``{"fold",
    "key", "digest", "dataset_version"}`` per fold. Raises
    :class:`~covidct.data.sequester.SequesterRuleChanged` when the configured share differs from
    the lake's lock.
    """
    from covidct.data import fold_manifests, folds, selection, sequester
    from covidct.pipeline import confirmation

    store = lake(settings)
    version = curated["dataset_version"]
    manifest = read_parquet(store, curated["manifest_key"])
    rule = sequester.SequesterRule(share=settings.gate.sequestered_share)
    lock, assignment = sequester.update(store, manifest, rule, dag_run_id=dag_run_id)
    development, sequestered = sequester.roles_of(assignment)
    # only selected (open-lung) slices train, validate, threshold or are scored, anywhere
    manifest = selection.selected_only(manifest)
    held = manifest["patient_key"].astype(str).isin(sequestered)
    write_parquet(store, confirmation.sequestered_key(version), manifest[held])
    n_held = int(manifest.loc[held, "patient_key"].nunique())
    manifest = manifest[~held].reset_index(drop=True)
    logger.info(
        "sequestration epoch %s: %d development, %d sequestered patients", lock["epoch"],
        manifest["patient_key"].nunique(), n_held,
    )  # fmt: skip
    previous_key = LakeLayout.fold_assignment(k, seed)
    previous = read_parquet(store, previous_key) if store.exists(previous_key) else None
    if previous is not None:  # a re-lock may have sequestered patients that had folds
        previous = previous[previous["patient_key"].astype(str).isin(development)]
    try:
        assignment_k = folds.assign_folds(manifest, k=k, seed=seed, previous=previous)
    except ValueError as error:
        raise ValueError(
            f"dataset {version}: {error} (development patients only: {n_held} of the patients "
            f"are sequestered, share {rule.share:g}; see `covidct sequester show`)"
        ) from error
    write_parquet(store, previous_key, assignment_k.splits)
    specs = []
    for fold in assignment_k.folds:
        frame = assignment_k.fold_manifest(fold)
        key = write_parquet(store, LakeLayout.fold_manifest(version, fold), frame)
        digest = fold_manifests.manifest_digest(frame)
        specs.append({"fold": fold, "key": key, "digest": digest, "dataset_version": version})
    return specs
