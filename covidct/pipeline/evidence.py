"""The evidence a run files with every model: drift, calibration, subgroups, the serving check.

The pipeline's steps call one function each (a few lines per call site):

* ``validate`` -> :func:`record_batch_drift`: a batch that passed validation is compared with
  the curated reference (:func:`covidct.batch.drift.batch_drift`); the report goes to
  ``runs/<run>/drift/<batch>.json``; a drifted batch stays accepted and raises ``batch_drift``.
* ``confirm`` -> :func:`probe_predictions` (inside
:func:`covidct.pipeline.confirmation.score_registered`,
  on the model object the sequestered figures come from) and :func:`confirm_evidence`: the
  temperature of each deployable, fitted on its development out-of-fold predictions (never the
  sequestered ones) and stored with the registered version (tag ``temperature``); calibration
  of the sequestered predictions before and after scaling; the subgroup table of the candidate
  and the champion; all under ``runs/<run>/evidence/`` (``evidence.json`` indexes them).
* ``gate_and_promote`` -> :func:`subgroup_rule` (the evidence of the gate's subgroup rule,
  :func:`covidct.promotion.subgroup_gate.gather_subgroups`, which
  :func:`covidct.promotion.rule.judge` decides) and :func:`serving_evidence` (the serving check
  of :mod:`covidct.promotion.serving`, run before any alias moves; a failure vetoes the promotion).

Every figure shown in the run report and the model card is read from these files, written by
the same calls the gate makes.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from covidct.config import Settings
from covidct.evaluation.subgroups import roster_of as roster_of
from covidct.lake.access import read_json as read_json, write_json
from covidct.lake.layout import RunLayout
from covidct.lake.storage import read_parquet, write_parquet
from covidct.safe_csv import csv_bytes

logger = logging.getLogger(__name__)

#: Folder of a run's evidence under ``runs/<run>/``.
EVIDENCE = RunLayout.EVIDENCE
#: Folder of a run's drift reports under ``runs/<run>/``.
DRIFT = RunLayout.DRIFT
#: Slices of the serving check's probe set (evenly spaced over the converted TCIA slices).
PROBE_SLICES = 8
#: Version tag holding the fitted temperature (``covidct.evaluation.calibration``).
TEMPERATURE_TAG = "temperature"


def run_prefix(dag_run_id: str) -> str:
    """``runs/<run_key>`` of a DAG run id (:attr:`covidct.lake.layout.RunLayout.prefix`)."""
    return RunLayout.of(dag_run_id).prefix


def _csv(store: Any, key: str) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(store.read_bytes(key)))


# --------------------------------------------------------------------------- drift (validate)


def reference_of(store: Any, settings: Settings, exclude: str) -> tuple[pd.DataFrame, Path]:
    """The curated reference: every accepted batch's readable slices (paths relative to
    ``curated/batches/``, batch ``exclude`` left out) and the local folder they lie in."""
    from covidct import pipeline
    from covidct.lake import curation, custody

    manifest = curation.accepted_manifests(store)
    root = pipeline.materialize(store, custody.CURATED_BATCHES, settings)
    if manifest.empty:
        return manifest, root
    manifest = manifest[manifest["batch_id"].astype(str) != exclude]
    if "read_error" in manifest.columns:
        manifest = manifest[manifest["read_error"].isna()]
    manifest = manifest.assign(path=manifest["batch_id"].astype(str) + "/" + manifest["path"])
    return manifest.reset_index(drop=True), root


def _reference_acquisition(manifest: pd.DataFrame, root: Path) -> pd.DataFrame:
    from covidct.batch import drift

    frames = []
    for batch_id, rows in manifest.groupby("batch_id", sort=True):
        local = rows.assign(path=rows["path"].str.split("/", n=1).str[1])
        frames.append(drift.acquisition_frame(root / str(batch_id), local))
    return pd.concat(frames, ignore_index=True)


def record_batch_drift(
    settings: Settings,
    batch_id: str,
    batch_dir: Path,
    manifest: pd.DataFrame,
    dag_run_id: str,
    send: Any = None,
) -> dict[str, Any]:
    """Compare a validated batch with the curated reference; record it; alert when it drifted.

    Writes ``runs/<run>/drift/<batch_id>.json`` (:meth:`covidct.batch.drift.DriftReport.to_dict`
    plus
    ``text``) and, when a measure drifted, sends a WARNING ``batch_drift`` alert naming the
    measures (the batch is still accepted). Without a curated reference yet (the first run) the
    record says so. A batch whose slices cannot be compared is recorded with the reason, never
    raised: drift informs, it does not gate. Returns ``{"batch_id", "drifted",
    "drifted_measures", "key", "note"}``.
    """
    from covidct import pipeline
    from covidct.batch import drift
    from covidct.promotion import alerts

    store = pipeline.lake(settings)
    key = RunLayout.of(dag_run_id).drift(batch_id)
    reference, root = reference_of(store, settings, batch_id)
    summary: dict[str, Any] = {"batch_id": batch_id, "drifted": False, "drifted_measures": []}
    if reference.empty:
        note = "no curated reference yet: the first accepted batches become the reference"
        write_json(store, key, {"batch_id": batch_id, "drifted": False, "note": note})
        return summary | {"key": key, "note": note}
    try:
        report = drift.batch_drift(
            batch_id, reference, root, manifest, batch_dir, settings.drift,
            reference_acquisition=_reference_acquisition(reference, root),
            batch_acquisition=drift.acquisition_frame(batch_dir, manifest),
        )  # fmt: skip
    except (ValueError, OSError) as error:  # unreadable metadata: recorded, not a failed task
        note = f"drift not measured: {error}"
        logger.warning("batch %s: %s", batch_id, note)
        write_json(store, key, {"batch_id": batch_id, "drifted": False, "note": note})
        return summary | {"key": key, "note": note}
    write_json(store, key, report.to_dict() | {"text": drift.format_drift(report)})
    logger.info("%s", drift.format_drift(report))
    alert = drift.drift_alert(report)
    if alert is not None:
        pipeline.send_alert(
            settings, alerts.AlertKind.BATCH_DRIFT, alerts.Severity.WARNING, alert.summary,
            alert.details, dag_run_id=dag_run_id, send=send,
        )  # fmt: skip
    return {
        "batch_id": batch_id,
        "drifted": report.drifted,
        "drifted_measures": report.drifted_measures,
        "key": key,
        "note": "",
    }


# --------------------------------------------------------------------------- confirm


def probe_predictions(
    settings: Settings, model: Any, train_params: Mapping[str, Any], name: str, dag_run_id: str
) -> str:
    """P(COVID) of the evaluated ``model`` on the serving probe set, in this process.

    Writes ``runs/<run>/evidence/probe-<name>.json`` (``root``, ``paths``, ``digest``,
    ``p_covid``: what :func:`serving_evidence` compares the served model with); returns its
    key. The probe set (:func:`covidct.promotion.serving.write_probe_set`, :data:`PROBE_SLICES`
    slices)
    is converted once per worker under ``<work_dir>/probe``. Without the TCIA reference folder
    nothing is written and ``""`` returned: the serving check then refuses the model.
    """
    from covidct import pipeline
    from covidct.promotion import serving

    try:
        probe = serving.write_probe_set(settings.work_dir / "probe", count=PROBE_SLICES)
    except FileNotFoundError as error:
        logger.warning("no serving probe set: %s", error)
        return ""
    p_covid = serving.evaluate_probe(model, probe, train_params)
    key = RunLayout.of(dag_run_id).probe(name)
    return write_json(
        pipeline.lake(settings),
        key,
        {"root": str(probe.root), "paths": list(probe.paths), "digest": probe.digest,
         "p_covid": [float(p) for p in p_covid]},
    )  # fmt: skip


def fit_development_temperature(store: Any, evaluations: Any, backbone: str) -> Any:
    """:func:`covidct.evaluation.calibration.fit_temperature` on the backbone's development
    out-of-fold
    test predictions (each development test patient scored by the fold model that did not train
    on it; no sequestered patient), guarded (:func:`~covidct.evaluation.calibration.
    guarded_temperature`: a T at its bound, or one that does not lower the cross-fitted NLL, is
    not applied: T = 1, flagged). Returns the :class:`~covidct.evaluation.calibration.
    TemperatureFit`."""
    from covidct import pipeline
    from covidct.evaluation import calibration

    oof = pipeline.pooled_predictions(store, evaluations, backbone)
    return calibration.guarded_temperature(oof["y_true"], oof["p_covid"], oof["fold"])


def _store_temperature(settings: Settings, client: Any, version: str, fit: Any) -> None:
    name = settings.mlflow.model_name
    record = json.dumps(fit.to_dict(), sort_keys=True)
    client.set_model_version_tag(name, version, TEMPERATURE_TAG, f"{fit.temperature:.6f}")
    client.set_model_version_tag(name, version, "temperature_fit", record)
    run_id = client.get_model_version(name, version).run_id
    if run_id:
        client.set_tag(run_id, TEMPERATURE_TAG, f"{fit.temperature:.6f}")


def _reliability_png(frame: pd.DataFrame, temperature: float | None, title: str) -> bytes:
    from covidct.evaluation import calibration

    curves = {"before scaling": frame}
    if temperature is not None:
        scaled = calibration.scale_predictions(frame, temperature)
        curves[f"after scaling (T={temperature:.3g})"] = scaled
    figure = calibration.plot_reliability_diagram(curves, title=title)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def confirm_evidence(
    settings: Settings, confirmed: dict[str, Any], dag_run_id: str
) -> dict[str, Any]:
    """Temperature, calibration and subgroup evidence of the confirmed models; ``confirmed`` plus
    ``{"evidence": {"key", "roster_key"}}`` and each deployable's ``temperature``.

    For each deployable: a temperature fitted on development out-of-fold predictions, stored on
    its registered version (tags ``temperature``, ``temperature_fit``; tag on its run). For each
    scored model (deployables, champion with its own registered temperature when it has one):
    image-level ECE, Brier score and NLL of its sequestered predictions before and after scaling,
    a reliability diagram of both, and the subgroup table
    (:func:`covidct.evaluation.subgroups.subgroup_table`, the gate's ``n_boot``/``seed``/minimum
    size).
    Raises ValueError as :func:`covidct.evaluation.calibration.fit_temperature` does (one class
    only).
    """
    from covidct import pipeline
    from covidct.evaluation import calibration, subgroups
    from covidct.promotion import registry

    started = time.perf_counter()
    store = pipeline.lake(settings)
    client = registry.client(settings.mlflow.tracking_uri)
    run = RunLayout.of(dag_run_id)
    sequestered = read_parquet(store, confirmed["sequestered"]["key"])
    roster_key = write_parquet(store, run.roster, roster_of(settings, store, sequestered))
    roster = read_parquet(store, roster_key)
    models: dict[str, Any] = {}
    scored = dict(confirmed["deployables"])
    for backbone, record in scored.items():
        fit = fit_development_temperature(store, confirmed["evaluations"], backbone)
        _store_temperature(settings, client, record["version"], fit)
        record["temperature"] = fit.temperature
        models[backbone] = {"temperature_fit": fit.to_dict()}
    champion = confirmed.get("champion")
    if champion:
        tags = client.get_model_version(settings.mlflow.model_name, champion["version"]).tags
        champion["temperature"] = float(tags[TEMPERATURE_TAG]) if TEMPERATURE_TAG in tags else None
        scored["champion"] = champion
        models["champion"] = {"temperature_fit": None}
    gate = settings.gate
    for name, record in scored.items():
        frame = _csv(store, record["predictions_key"])
        temperature = record.get("temperature")
        entry = models[name] | {
            "version": record["version"],
            "backbone": record["backbone"],
            "temperature": temperature,
            "calibration_raw": calibration.calibration_summary(frame),
            "calibration_scaled": (
                calibration.calibration_summary(frame, temperature=temperature)
                if temperature is not None
                else None
            ),
        }
        png = _reliability_png(frame, temperature, f"{name} v{record['version']}: sequestered")
        entry["reliability_key"] = run.reliability(name)
        store.write_bytes(entry["reliability_key"], png)
        table = subgroups.subgroup_table(
            frame, roster, min_patients=gate.subgroup_min_patients,
            age_band_edges=gate.age_band_edges, n_boot=gate.n_boot, seed=gate.seed,
        )  # fmt: skip
        entry["subgroups_key"] = run.subgroups(name)
        store.write_bytes(entry["subgroups_key"], csv_bytes(table))
        models[name] = entry
    key = write_json(
        store, run.evidence_index,
        {"candidate": confirmed["candidate"], "models": models, "roster_key": roster_key},
    )  # fmt: skip
    logger.info("evidence of %d models in %.1f s", len(models), time.perf_counter() - started)
    return {**confirmed, "evidence": {"key": key, "roster_key": roster_key}}


# --------------------------------------------------------------------------- gate


def subgroup_rule(
    settings: Settings,
    store: Any,
    confirmed: Mapping[str, Any],
    candidate: pd.DataFrame,
    paired_bootstrap: Callable[..., Any] | None = None,
) -> Any:
    """The evidence of the gate's subgroup rule
    (:func:`covidct.promotion.subgroup_gate.gather_subgroups`: per subgroup, its studentized
    harm test) of the candidate's sequestered predictions against the champion's, on the
    champion's patients; None without a champion to compare with. The roster is the run's
    (``confirm_evidence``), empty when it was not recorded. ``paired_bootstrap`` is unused."""
    from covidct.promotion import subgroup_gate

    del paired_bootstrap
    rival = confirmed.get("champion")
    if not rival:
        return None
    theirs = _csv(store, rival["predictions_key"])
    ours = candidate[candidate["patient_id"].isin(set(theirs["patient_id"]))]
    roster_key = (confirmed.get("evidence") or {}).get("roster_key")
    roster = read_parquet(store, roster_key) if roster_key and store.exists(roster_key) else None
    return subgroup_gate.gather_subgroups(
        ours, theirs, roster, settings=settings.gate, comparator=f"champion v{rival['version']}"
    )


def serving_evidence(
    settings: Settings, record: Mapping[str, Any], dag_run_id: str
) -> dict[str, Any]:
    """Run :func:`covidct.promotion.serving.serving_check` on a registered deployable; record the
    result.

    ``record``: the deployable's :func:`covidct.pipeline.confirmation.score_registered` record
    (its
    ``probe_key`` holds the evaluated model's probe predictions). Writes
    ``runs/<run>/evidence/serving-v<version>.json`` and tags the version ``serving_check``
    (``passed``/``failed``) and ``serving_ms_per_slice``. The served model must apply the
    version's registered temperature (``record["temperature"]``) as evaluated. Never raises for
    a model that fails:
    ``passed`` False with ``reasons`` (also when there is no probe record or the probe slices
    changed since the evaluation).
    """
    from covidct import pipeline
    from covidct.promotion import registry, serving

    store = pipeline.lake(settings)
    version = str(record["version"])
    recorded = read_json(store, record.get("probe_key") or "")
    reasons: list[str] = []
    result: dict[str, Any] = {"passed": False, "model_uri": record["model_uri"]}
    if recorded is None:
        reasons.append("no probe predictions of the evaluated model were recorded")
    else:
        try:
            probe = serving.probe_set(Path(recorded["root"]), recorded["paths"])
        except (FileNotFoundError, ValueError) as error:
            probe = None
            reasons.append(f"probe set unavailable: {error}")
        if probe is not None and probe.digest != recorded["digest"]:
            reasons.append(f"probe set changed since evaluation ({recorded['digest']})")
        if probe is not None and not reasons:
            check = serving.serving_check(
                record["model_uri"], probe, recorded["p_covid"], record["train_params"],
                tracking_uri=settings.mlflow.tracking_uri,
                expected_digest=record.get("registered_model_digest"),
                expected_temperature=record.get("temperature"),
            )  # fmt: skip
            result = check.to_dict() | {"reason": check.reason}
    if reasons:
        result |= {"reasons": reasons, "reason": "; ".join(reasons)}
    result["version"] = version
    write_json(store, RunLayout.of(dag_run_id).serving(version), result)
    client = registry.client(settings.mlflow.tracking_uri)
    name = settings.mlflow.model_name
    client.set_model_version_tag(
        name, version, "serving_check", "passed" if result["passed"] else "failed"
    )
    if result.get("ms_per_slice") is not None:
        client.set_model_version_tag(
            name, version, "serving_ms_per_slice", f"{result['ms_per_slice']:.2f}"
        )
    return result
