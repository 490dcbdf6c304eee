"""DAG steps after training: pool each backbone's test predictions over folds, build the leaderboard
and choose the candidate, confirm it on the sequestered patients, judge it with the promotion
gate and move ``@champion``, and check the champion's metrics for regressions.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from covidct.config import Settings
from covidct.lake.layout import LakeLayout, RunLayout
from covidct.pipeline.context import lake, releases_models, send_alert, write_json
from covidct.pipeline.development import (
    finite_or_none,
    headline_metrics,
    pooled_metrics,
    pooled_predictions,
    setup_mlflow,
)
from covidct.promotion import alerts as alerts_mod
from covidct.safe_csv import csv_bytes
from covidct.schema import (
    ALIAS_BASELINE,
    BASELINE_BACKBONE,
    HEADLINE_METRICS,
)

# --------------------------------------------------------------------------- aggregate / gate


def leaderboard(evaluations: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Backbone x metric table: mean and standard deviation over folds (rows sorted by name).

    Columns ``<metric>_mean`` and ``<metric>_sd`` for each headline metric, plus ``folds``.
    """
    rows = [{"backbone": e["backbone"], "fold": e["fold"], **e["metrics"]} for e in evaluations]
    frame = pd.DataFrame(rows)
    metrics = [m for m in HEADLINE_METRICS if m in frame.columns]
    frame[metrics] = frame[metrics].astype("float64")
    grouped = frame.groupby("backbone")
    table = (
        grouped[metrics]
        .mean()
        .add_suffix("_mean")
        .join(grouped[metrics].std(ddof=1).add_suffix("_sd"))
    )
    table["folds"] = grouped.size()
    return table.sort_index()


def choose_candidate(table: pd.DataFrame, primary_metric: str) -> str:
    """Best backbone by mean primary metric; ties broken by mean image ROC AUC, then by name."""
    keys = [f"{primary_metric}_mean", "image_roc_auc_mean"]
    ranked = table.reset_index().sort_values(
        keys + ["backbone"], ascending=[False, False, True], na_position="last"
    )
    return str(ranked.iloc[0]["backbone"])


def aggregate(
    settings: Settings, evaluations: Sequence[Mapping[str, Any]], dag_run_id: str
) -> dict[str, Any]:
    """Write the leaderboard (mean ± sd over folds) and name the candidate."""
    store = lake(settings)
    evaluations = list(evaluations)
    table = leaderboard(evaluations)
    candidate = choose_candidate(table, settings.gate.primary_metric)
    run = RunLayout.of(dag_run_id)
    store.write_bytes(run.leaderboard, csv_bytes(table, index=True))
    pooled = {}
    for backbone in table.index:
        frame = pooled_predictions(store, evaluations, str(backbone))
        pooled[str(backbone)] = pooled_metrics(frame)
    write_json(store, run.pooled_metrics, pooled)
    return {
        "leaderboard": json.loads(table.reset_index().to_json(orient="records")),
        "pooled": pooled,
        "candidate": candidate,
        "evaluations": evaluations,
    }


@releases_models(keep_loaded=True)
def confirm(settings: Settings, aggregated: Mapping[str, Any], dag_run_id: str) -> dict[str, Any]:
    """Register the deployables and score them and the champion on the sequestered patients.

    See :func:`covidct.pipeline.confirmation.confirm_deployables`; then the evidence of the
    confirmed models (:func:`covidct.pipeline.evidence.confirm_evidence`: temperature,
    calibration, subgroups).
    """
    from covidct.pipeline import confirmation, evidence

    setup_mlflow(settings)
    confirmed = confirmation.confirm_deployables(settings, aggregated, dag_run_id)
    confirmed = evidence.confirm_evidence(settings, confirmed, dag_run_id)
    if settings.truth_dir is not None:  # the synthetic phantom's lesions: does it look there?
        for record in confirmed["deployables"].values():
            record.update(_pointing(settings, record))
    return confirmed


def _pointing(settings: Settings, record: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`covidct.pipeline.truth.pointing_evidence` of a scored deployable record."""
    from covidct import training
    from covidct.lake.custody import CURATED_BATCHES
    from covidct.pipeline import truth
    from covidct.pipeline.context import materialize
    from covidct.promotion.deployable import download

    store = lake(settings)
    model = training.load_logged_model(download(record["model_uri"]))
    frame = _sequestered_predictions(store, record)
    root = materialize(store, CURATED_BATCHES, settings)
    return truth.pointing_evidence(settings, model, frame, record["train_params"], root)


def _sequestered_predictions(store: Any, record: Mapping[str, Any]) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(store.read_bytes(record["predictions_key"])))


@releases_models
def gate_and_promote(
    settings: Settings, confirmed: Mapping[str, Any], dag_run_id: str, send: Any = None
) -> dict[str, Any]:
    """Judge the candidate on the sequestered patients; record the verdict; move ``@champion``.

    ``confirmed``: the output of :func:`confirm`. The evidence
    (:func:`covidct.pipeline.gate_evidence.gather_evidence`: comparisons, subgroup tests,
    overlap, digests, serving check) goes to the one pure rule
    :func:`covidct.promotion.rule.judge`; its verdict, promotion or refusal alike, is recorded by
    :func:`covidct.promotion.record.record_verdict`. Returns ``{"verdict", "candidate",
    "version", "champion_before", "champion_after", "champion_metrics", "sequestered_patients",
    "comparisons", "evaluated_model_digest", "registered_model_digest", "endpoint",
    "detectable_gain", "patients_used", ...}``; writes ``runs/<run>/gate.json`` and a history
    record.
    """
    from covidct import evaluation
    from covidct.pipeline import evidence, gate_evidence, truth
    from covidct.promotion import audit, record, registry, rule
    from covidct.report import model_card

    setup_mlflow(settings)
    store = lake(settings)
    mlflow_client = registry.client(settings.mlflow.tracking_uri)
    model_name = settings.mlflow.model_name
    candidate = confirmed["candidate"]
    deployables = confirmed["deployables"]
    mine = deployables[candidate]
    sequestered = confirmed["sequestered"]
    resumed = registry.resume_promotion(mlflow_client, store, model_name, dag_run_id)
    if resumed is not None:  # a retry after a crash mid-promotion: finish, never re-judge
        return _record_gate(
            store,
            dag_run_id,
            {
                "verdict": {"passed": True, "status": "resumed", "reasons": [resumed["reason"]]},
                "candidate": candidate,
                "version": resumed["version"],
                "champion_before": resumed["previous_champion"],
                "champion_after": resumed["version"],
                "champion_metrics": resumed["figures"],
            },
        )
    moved = audit.alias_disagreements(mlflow_client, store, model_name)
    if moved:  # an alias moved outside the gate (the embedded default has no auth)
        send_alert(
            settings, alerts_mod.AlertKind.REGISTRY_DISAGREES, alerts_mod.Severity.CRITICAL,
            f"{model_name}: an alias moved outside the gate: "
            + "; ".join(state.detail for state in moved),
            {"model": model_name, "aliases": [state.to_dict() for state in moved]},
            dag_run_id=dag_run_id, send=send,
        )  # fmt: skip
    champion = registry.get_champion(mlflow_client, model_name)
    predictions = {b: _sequestered_predictions(store, r) for b, r in deployables.items()}
    figures = {name: headline_metrics(frame, None) for name, frame in predictions.items()}
    for name, item in deployables.items():  # known-disease figures, where truth exists
        if item.get("gradcam_pointing_game") is not None:
            figures[name]["gradcam_pointing_game"] = item["gradcam_pointing_game"]
    rival = confirmed.get("champion")
    champion_metrics_now: dict[str, Any] = {}
    champion_basis = ""
    if rival is not None:
        rival_frame = _sequestered_predictions(store, rival)
        figures["champion"] = headline_metrics(rival_frame, None)
        champion_metrics_now, champion_basis = gate_evidence.champion_figures(
            settings, store, rival_frame, champion.version
        )
    serving = evidence.serving_evidence(settings, mine, dag_run_id)  # before any alias moves
    facts = gate_evidence.gather_evidence(
        settings, store, confirmed, predictions, has_champion=champion.version is not None,
        serving=serving, figures=figures[candidate],
    )  # fmt: skip
    verdict = rule.judge(facts, settings.gate)
    version = mine["version"]
    # the baseline first: when the candidate is ResNet152 itself, its gate verdict tag wins
    if BASELINE_BACKBONE in deployables:
        baseline_version = deployables[BASELINE_BACKBONE]["version"]
        record.tag_version(
            mlflow_client, model_name, baseline_version, "baseline", figures[BASELINE_BACKBONE]
        )
        mlflow_client.set_registered_model_alias(model_name, ALIAS_BASELINE, baseline_version)
        registry.append_ledger(store, {
            "action": audit.BASELINE_ACTION, "model": model_name, "version": baseline_version,
            "alias": ALIAS_BASELINE, "dag_run_id": dag_run_id, "reason": "this run's ResNet152",
        })  # fmt: skip
    reason = "; ".join(verdict.reasons)
    record.record_verdict(
        mlflow_client, store, model_name, passed=verdict.passed, version=version,
        expected_champion=champion.version, reason=reason, dag_run_id=dag_run_id,
        figures=verdict.figures, figures_basis=verdict.figures_basis,
        patients_used=len(verdict.patients_used),
    )  # fmt: skip
    if verdict.passed:
        champion_after: str | None = version
        champion_metrics, champion_basis = dict(verdict.figures), verdict.figures_basis
    else:
        send_alert(
            settings, alerts_mod.AlertKind.NOT_PROMOTED, alerts_mod.Severity.INFO,
            f"candidate {candidate} (v{version}) not promoted: {reason}",
            {"candidate": candidate, "version": version, "verdict": verdict.to_dict()},
            dag_run_id=dag_run_id,
            send=send,
        )  # fmt: skip
        champion_after, champion_metrics = champion.version, champion_metrics_now
    verdict_record = verdict.to_dict()
    frame_of = dict(predictions)
    if rival is not None:
        frame_of["champion"] = rival_frame
    primary = evaluation.bootstrap_ci(
        predictions[candidate], settings.gate.primary_metric, n_boot=settings.gate.n_boot,
        seed=settings.gate.seed,
    )  # fmt: skip
    result = {
        "verdict": verdict_record,
        "candidate": candidate,
        "version": version,
        "champion_before": champion.version,
        "champion_after": champion_after,
        "champion_metrics": champion_metrics,
        "champion_metrics_basis": champion_basis,
        "sequestered_patients": sequestered["patients"],
        "sequestered_covid_patients": sequestered["covid_patients"],
        "sequester_lock": sequestered["lock"],
        "comparisons": verdict_record["comparisons"],
        "endpoint": verdict.endpoint,
        "detectable_gain": verdict_record["detectable_gain"],
        "patients_used": verdict_record["patients_used"],
        "vetoes": verdict_record["vetoes"],
        "figures_basis": verdict.figures_basis,
        "evaluated_model_digest": mine["evaluated_model_digest"],
        "registered_model_digest": mine["registered_model_digest"],
        "candidate_primary": {
            "metric": settings.gate.primary_metric,
            "value": finite_or_none(primary.point),
            "ci_low": finite_or_none(primary.low),
            "ci_high": finite_or_none(primary.high),
        },  # fmt: skip
        "models": {
            name: {
                key: item.get(key)
                for key in (
                    "backbone",
                    "version",
                    "patients",
                    "overlap_patients",
                    "evaluated_model_digest",
                    "registered_model_digest",
                    "patient_threshold",
                )
            }
            | {"metrics": figures[name]}
            | sequestered_intervals(settings, frame_of[name])
            | {
                "severity": truth.severity_evidence(settings, frame_of[name]),
                "gradcam_pointing_slices": item.get("gradcam_pointing_slices", 0),
                "gradcam_pointing_chance": item.get("gradcam_pointing_chance"),
                "gradcam_cells": item.get("gradcam_cells"),
            }
            for name, item in [*deployables.items(), *([("champion", rival)] if rival else [])]
        },  # fmt: skip
        "notes": list(confirmed.get("notes") or []),
        "registry_disagreements": [state.to_dict() for state in moved],
        "subgroups": verdict_record["subgroups"],
        "serving_check": serving,
        "evidence": confirmed.get("evidence"),
    }
    _record_gate(store, dag_run_id, result)
    result["model_cards"] = model_card.publish_cards(settings, result, dag_run_id)
    return result


#: Metrics of every confirmed model given with a 95% patient-bootstrap interval in ``gate.json``.
INTERVAL_METRICS: tuple[str, ...] = ("image_roc_auc", "patient_balanced_accuracy")
#: ROC AUC of a classifier that ranks at random; an interval that includes it: no better than it.
CHANCE_AUC = 0.5


def sequestered_intervals(settings: Settings, predictions: pd.DataFrame) -> dict[str, Any]:
    """95% patient-bootstrap intervals (:func:`covidct.evaluation.bootstrap_ci`) of
    :data:`INTERVAL_METRICS` on one model's sequestered predictions, and whether the model is
    no better than chance (its image ROC AUC interval includes 0.5, or AUC is undefined).

    Returns ``{"intervals": {metric: {"value", "ci_low", "ci_high"}}, "no_better_than_chance":
    bool}``; figures are fractions, None where undefined.
    """
    from covidct import evaluation

    intervals = {}
    for metric in INTERVAL_METRICS:
        result = evaluation.bootstrap_ci(
            predictions, metric, n_boot=settings.gate.n_boot, seed=settings.gate.seed
        )
        intervals[metric] = {
            "value": finite_or_none(result.point),
            "ci_low": finite_or_none(result.low),
            "ci_high": finite_or_none(result.high),
        }
    return {
        "intervals": intervals,
        "no_better_than_chance": no_better_than_chance(intervals["image_roc_auc"]),
    }


def no_better_than_chance(auc: Mapping[str, Any]) -> bool:
    """True when an image ROC AUC interval ``{"ci_low", "ci_high"}`` includes :data:`CHANCE_AUC`
    or is undefined (None): nothing shows the model ranks COVID above normal slices."""
    low, high = auc.get("ci_low"), auc.get("ci_high")
    if low is None or high is None:
        return True
    return bool(low <= CHANCE_AUC <= high)


def _record_gate(store: Any, dag_run_id: str, result: dict[str, Any]) -> dict[str, Any]:
    """Write ``runs/<run>/gate.json`` and this run's champion-history record; return ``result``."""
    from datetime import UTC, datetime

    run = RunLayout.of(dag_run_id)
    write_json(store, run.gate, result)
    record = {
        "dag_run_id": dag_run_id,
        "at": datetime.now(UTC).isoformat(),
        "champion": result["champion_after"],
        "metrics": result["champion_metrics"],
    }
    write_json(store, run.history, record)
    return result


def regression_check(
    settings: Settings, gated: Mapping[str, Any], dag_run_id: str, send: Any = None
) -> dict:
    """Compare this run's champion metrics with the previous run's; alert on any regression.

    Returns ``{"compared_with": run id or None, "regressions": [...]}``, with ``reason`` when
    nothing was compared (no champion yet, or no earlier run recorded champion figures)."""
    store = lake(settings)
    mine = RunLayout.of(dag_run_id).history
    keys = sorted(k for k in store.list(LakeLayout.RUN_HISTORY) if k != mine)
    records = [json.loads(store.read_bytes(k)) for k in keys]
    previous = [r for r in records if r.get("metrics")]
    if not gated["champion_metrics"]:
        return {"compared_with": None, "regressions": [], "reason": "no champion yet"}
    if not previous:
        return {"compared_with": None, "regressions": [], "reason": "no earlier champion figures"}
    last = max(previous, key=lambda r: r.get("at", ""))
    found = alerts_mod.detect_regressions(
        last["metrics"], gated["champion_metrics"], settings.gate.regression_thresholds
    )
    regressions = [r.__dict__ for r in found]
    if regressions:
        names = ", ".join(f"{r.metric} {r.previous:.3f}->{r.current:.3f}" for r in found)
        send_alert(
            settings, alerts_mod.AlertKind.METRIC_REGRESSION, alerts_mod.Severity.WARNING,
            f"champion metrics regressed against run {last['dag_run_id']}: {names}",
            {"previous_run": last["dag_run_id"], "regressions": regressions},
            dag_run_id=dag_run_id,
            send=send,
        )  # fmt: skip
    return {"compared_with": last["dag_run_id"], "regressions": regressions}
