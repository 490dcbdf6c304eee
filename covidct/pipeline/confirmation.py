"""Confirmation on the sequestered patients: the model scored is the model registered.

After the development cross-validation has selected a candidate backbone (the leaderboard's fold
means), the candidate and the ResNet152 baseline each become one *deployable* model, which is
logged and registered first and then scored, from its registry URI, on the sequestered patients
(:mod:`covidct.data.sequester`); the current champion is scored on the same patients. The gate
(:func:`covidct.promotion.rule.judge`) compares them there.

The deployable model is the k-fold ensemble: the backbone's k fold models as one Keras model
whose output is the mean of their softmax outputs
(:func:`covidct.promotion.deployable.ensemble_model`). Chosen over
retraining on all development patients because (a) it is exactly the models the cross-validation
evaluated, with no further training run whose outcome nobody has seen (and no extra training
time: on the CPU demo a ResNet152 retrain would add a third of the run); (b) averaging k models
is at least as accurate as a typical member and better calibrated (Lakshminarayanan et al. 2017,
"Simple and Scalable Predictive Uncertainty Estimation using Deep Ensembles"); (c) its patient
threshold comes from development data none of the ensemble was scored on: the out-of-fold
predictions (each development test patient scored by the fold model that did not train on it).
Its cost is k forward passes per slice at serving time.

Lineage recorded on every registered version (tags): the sequestration epoch and rule digest, the
development patients the model saw (trained, validated or picked its threshold on: every patient
of its folds' manifests, kept in the lake under ``seen_patients_key``), the member fold runs, the
patient threshold and the model's content digest
(:func:`covidct.promotion.deployable.model_digest`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from covidct.config import Settings
from covidct.data import sequester
from covidct.lake.layout import LakeLayout, RunLayout
from covidct.lake.storage import read_parquet, write_parquet
from covidct.pipeline.context import lake
from covidct.pipeline.development import pooled_predictions, predict_split
from covidct.promotion.deployable import DIGEST_TAG, download, ensemble_model, model_digest
from covidct.safe_csv import csv_bytes
from covidct.schema import ALIAS_CHAMPION, BASELINE_BACKBONE
from covidct.training.spec import SPEC_TAG, TrainingSpec

logger = logging.getLogger(__name__)


def sequestered_key(dataset_version: str) -> str:
    """Lake key of a dataset version's sequestered slices (written by ``pipeline.make_folds``)."""
    return LakeLayout.sequestered_manifest(dataset_version)


def members_of(evaluations: Sequence[Mapping[str, Any]], backbone: str) -> list[Mapping[str, Any]]:
    """The backbone's evaluated fold models, by fold. Raises ValueError when there is none."""
    mine = sorted((e for e in evaluations if e["backbone"] == backbone), key=lambda e: e["fold"])
    if not mine:
        raise ValueError(f"no evaluated fold model of backbone {backbone}")
    return mine


def seen_patients(store: Any, members: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every patient the members trained, validated or were tested on in development (sorted)."""
    keys = sorted({m["fold_key"] for m in members})
    return sorted({str(k) for key in keys for k in read_parquet(store, key)["patient_key"]})


def _scored(
    settings: Settings, model: Any, frame: pd.DataFrame, params: TrainingSpec, threshold: float
) -> pd.DataFrame:

    predictions = predict_split(settings, model, frame, params)
    predictions["patient_threshold"] = threshold
    return predictions


def build_deployable(
    settings: Settings,
    evaluations: Sequence[Mapping[str, Any]],
    backbone: str,
    lock: Mapping[str, Any],
    dag_run_id: str,
) -> dict[str, Any]:
    """Log and register ``backbone``'s k-fold ensemble with its lineage; return its record.

    Idempotent per (DAG run, backbone): a retry reuses the version registered first. Returns
    ``{"backbone", "version", "model_uri", "registered_model_digest", "patient_threshold",
    "seen_patients_key", "train_params", "members"}`` (``train_params``:
    ``TrainingSpec.to_dict()``, also the version's ``train_params`` tag). Raises ValueError when
    the members were trained with different training specs.
    """
    import mlflow

    from covidct import evaluation, training
    from covidct.promotion import registry

    store = lake(settings)
    client = registry.client(settings.mlflow.tracking_uri)
    members = members_of(evaluations, backbone)
    params = TrainingSpec.from_dict(members[0]["train_params"])
    for member in members[1:]:
        if TrainingSpec.from_dict(member["train_params"]) != params:
            raise ValueError(
                f"{backbone}: fold run {member['run_id']} was trained with "
                f"{member['train_params']}, fold run {members[0]['run_id']} with {params.to_dict()}"
            )
    run = RunLayout.of(dag_run_id)
    seen = seen_patients(store, members)
    seen_key = write_parquet(
        store, run.seen_patients(backbone), pd.DataFrame({"patient_key": seen})
    )
    oof = pooled_predictions(store, evaluations, backbone)
    threshold = evaluation.choose_patient_threshold(oof)
    existing = registry.version_of_run(client, settings.mlflow.model_name, dag_run_id, backbone)
    if existing is not None:  # a retry: the ensemble was logged and registered already
        version = client.get_model_version(settings.mlflow.model_name, existing)
        logger.info("reusing version %s of %s", existing, backbone)
        return _record(backbone, version, params, threshold, seen_key, members)
    loaded = [training.load_logged_model(m["model_uri"]) for m in members]
    model = ensemble_model(loaded, name=f"{backbone}_ensemble")
    size = int(model.input_shape[1])
    tags = {"dag_run_id": dag_run_id, "backbone": backbone, "role": "deployable"}
    with mlflow.start_run(run_name=f"{backbone}-deployable", tags=tags) as run:
        uri = training.log_keras_model(model, "model", np.zeros((1, size, size, 1), np.float32))
        mlflow.log_params({"members": len(members), "patient_threshold": threshold})
        run_id = run.info.run_id
    training.offer_loaded_model(model, owns=loaded)  # score_registered loads it back
    digest = model_digest(download(uri))
    lineage = {
        "dataset_version": members[0]["dataset_version"],
        "deployable": f"ensemble of {len(members)} fold models (mean softmax)",
        "member_runs": json.dumps([m["run_id"] for m in members]),
        SPEC_TAG: params.to_tag(),
        "patient_threshold": f"{threshold:.6f}",
        "seen_patients_key": seen_key,
        "seen_patients": str(len(seen)),
        "sequester_epoch": str(lock["epoch"]),
        "sequester_rule_digest": str(lock["rule_digest"]),
        DIGEST_TAG: digest,
        "gate_verdict": "pending",
    }
    number = registry.register_version(
        client, settings.mlflow.model_name, model_uri=uri, run_id=run_id,
        dag_run_id=dag_run_id, backbone=backbone, tags=lineage,
    )  # fmt: skip
    return _record(
        backbone, client.get_model_version(settings.mlflow.model_name, number), params,
        threshold, seen_key, members,
    )  # fmt: skip


def _record(
    backbone: str,
    version: Any,
    params: TrainingSpec,
    threshold: float,
    seen_key: str,
    members: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    return {
        "backbone": backbone,
        "version": str(version.version),
        "model_uri": f"models:/{version.name}/{version.version}",
        "registered_model_digest": version.tags.get(DIGEST_TAG),
        "patient_threshold": float(version.tags.get("patient_threshold", threshold)),
        "seen_patients_key": version.tags.get("seen_patients_key", seen_key),
        "train_params": params.to_dict(),
        "members": [m["run_id"] for m in members],
    }


def score_registered(
    settings: Settings,
    record: Mapping[str, Any],
    sequestered: pd.DataFrame,
    name: str,
    dag_run_id: str,
    *,
    probe: bool = False,
) -> dict[str, Any]:
    """Load a registered version from its registry URI, score it on ``sequestered``; record it.

    Returns ``record`` plus ``{"evaluated_model_digest", "predictions_key", "patients",
    "overlap_patients", "probe_key"}``: the digest of the files loaded, the lake key of its
    predictions (patient threshold included), how many scored patients it saw in development
    and, with ``probe`` (the candidate, which the gate's serving check loads again), its
    probe-set predictions (:func:`covidct.pipeline.evidence.probe_predictions`; else ``""``).
    """

    from covidct import training
    from covidct.pipeline import evidence

    store = lake(settings)
    local = download(record["model_uri"])
    model = training.load_logged_model(local)
    spec = TrainingSpec.from_dict(record["train_params"])
    predictions = _scored(settings, model, sequestered, spec, record["patient_threshold"])
    key = RunLayout.of(dag_run_id).sequestered_predictions(name)
    store.write_bytes(key, csv_bytes(predictions))
    seen = set(read_parquet(store, record["seen_patients_key"])["patient_key"].astype(str))
    scored = set(predictions["patient_id"].astype(str))
    return {
        **record,
        "evaluated_model_digest": model_digest(local),
        "predictions_key": key,
        "patients": len(scored),
        "overlap_patients": len(scored & seen),
        "probe_key": evidence.probe_predictions(settings, model, spec.to_dict(), name, dag_run_id)
        if probe
        else "",  # what the serving check compares the served model with
    }


def champion_record(
    settings: Settings, lock: Mapping[str, Any], sequestered: pd.DataFrame
) -> tuple[dict[str, Any] | None, pd.DataFrame, list[str]]:
    """The current champion's record, the sequestered slices it may be scored on, and notes.

    A champion developed under an earlier sequestration epoch may have seen patients that are
    sequestered now: it is scored only on those it never saw, and a note says so. A champion
    without recorded lineage (registered before sequestration) is not compared (note); nor is one
    whose ``train_params`` tag cannot be read as a training spec (note naming the field). A tag
    written before the typed spec (the form's non-null values only) is read with
    ``TrainingSpec.from_tag(..., legacy=True)``: absent fields take the profile's values.
    Returns ``(None, empty, notes)`` when there is no champion or nothing clean to score.
    """
    from covidct.promotion import registry

    store = lake(settings)
    client = registry.client(settings.mlflow.tracking_uri)
    champion = registry.get_champion(client, settings.mlflow.model_name)
    if champion.version is None:
        return None, sequestered.iloc[:0], []
    version = client.get_model_version(settings.mlflow.model_name, champion.version)
    tags = version.tags
    label = f"champion v{champion.version} ({tags.get('backbone')})"
    if "seen_patients_key" not in tags or not store.exists(tags["seen_patients_key"]):
        note = (
            f"{label} has no recorded patient lineage (registered before sequestration): it "
            "cannot be scored cleanly and is not compared; judged against the baseline only"
        )
        return None, sequestered.iloc[:0], [note]
    seen = set(read_parquet(store, tags["seen_patients_key"])["patient_key"].astype(str))
    clean = sequestered[~sequestered["patient_key"].astype(str).isin(seen)]
    notes = []
    if str(tags.get("sequester_epoch")) != str(lock["epoch"]):
        dropped = sequestered["patient_key"].nunique() - clean["patient_key"].nunique()
        notes.append(
            f"sequestration re-locked since {label} was developed (epoch "
            f"{tags.get('sequester_epoch')} -> {lock['epoch']}): comparisons with it are no "
            f"longer clean; it is scored only on the {clean['patient_key'].nunique()} "
            f"sequestered patients it never saw ({dropped} left out)"
        )
    if clean.empty or clean["label"].nunique() < 2:
        notes.append(
            f"{label}: no sequestered patients of both classes it never saw; not compared, "
            "judged against the baseline only"
        )
        return None, sequestered.iloc[:0], notes
    try:
        spec = TrainingSpec.from_tag(tags.get(SPEC_TAG), legacy=True)
    except ValueError as error:
        notes.append(f"{label}: its training spec is unreadable ({error}); not compared")
        return None, sequestered.iloc[:0], notes
    record = _record(
        str(tags.get("backbone")), version, spec,
        float(tags["patient_threshold"]), tags["seen_patients_key"],
        [{"run_id": run} for run in json.loads(tags.get("member_runs", "[]"))],
    )  # fmt: skip
    record["alias"] = ALIAS_CHAMPION
    return record, clean.reset_index(drop=True), notes


def confirm_deployables(
    settings: Settings, aggregated: Mapping[str, Any], dag_run_id: str
) -> dict[str, Any]:
    """Register the candidate's and baseline's deployables; score them and the champion.

    Returns ``aggregated`` plus ``{"sequestered", "deployables", "champion", "notes"}``:
    ``sequestered`` = ``{"key", "patients", "covid_patients", "lock"}``; ``deployables`` maps
    backbone -> :func:`score_registered` record; ``champion`` is its record (scored on the
    sequestered patients it never saw) or None. Raises ValueError when the dataset version has
    no sequestered patients of both classes.
    """

    store = lake(settings)
    evaluations = aggregated["evaluations"]
    version = evaluations[0]["dataset_version"]
    lock = sequester.read_lock(store)
    if lock is None:
        raise ValueError("no sequestration lock in the lake: make_folds has not run")
    frame = read_parquet(store, sequestered_key(version))
    if frame.empty or frame["label"].nunique() < 2:
        raise ValueError(
            f"dataset {version}: the sequestered patients ({frame['patient_key'].nunique()}) "
            "lack a class; nothing can be confirmed (land more patients)"
        )
    backbones = [aggregated["candidate"]]
    if BASELINE_BACKBONE in {e["backbone"] for e in evaluations}:
        backbones.insert(0, BASELINE_BACKBONE)
    deployables = {}
    for backbone in dict.fromkeys(backbones):
        record = build_deployable(settings, evaluations, backbone, lock, dag_run_id)
        deployables[backbone] = score_registered(
            settings, record, frame, backbone, dag_run_id,
            probe=backbone == aggregated["candidate"],
        )  # fmt: skip
    champion, clean, notes = champion_record(settings, lock, frame)
    scored_champion = (
        score_registered(settings, champion, clean, "champion", dag_run_id) if champion else None
    )
    covid = frame.groupby("patient_key")["label"].first().eq("Positive").sum()
    return {
        **aggregated,
        "sequestered": {
            "key": sequestered_key(version),
            "patients": int(frame["patient_key"].nunique()),
            "covid_patients": int(covid),
            "lock": {k: lock[k] for k in ("epoch", "rule_digest", "rule")},
        },
        "deployables": deployables,
        "champion": scored_champion,
        "notes": notes,
    }
