"""One thin function per DAG task; `dags/covidct_retraining.py` calls these.

Modules:

* ``context``: run keys, the lake of the settings, materialising a prefix, sending alerts
* ``intake``: ``discover``, ``validate``, ``quarantine``, ``curate``, ``make_folds``
* ``development``: ``setup_mlflow``, ``train``, ``evaluate``, figures and Grad-CAM
* ``decision``: ``aggregate`` (leaderboard, candidate), ``confirm``, ``gate_and_promote``,
  ``regression_check``
* ``gate_evidence``: the gate's evidence for ``covidct.promotion.rule.judge``, the champion's
  figures re-estimated on patients its promotion did not use
* ``evidence``: a run's drift, temperature, calibration, subgroup and serving-check evidence
* ``truth``: known-disease evidence (severity bands, Grad-CAM pointing game) where batches carry
  truth

Each public name of these modules is importable from the package (imported on first use).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from covidct.lake.custody import (
        CURATED_BATCHES,
    )
    from covidct.pipeline.context import (
        CHECKPOINTS,
        DAG_ID,
        HISTORY_PREFIX,
        WEIGHTS_DIR,
        lake,
        materialize,
        notifier,
        releases_models,
        run_key_of,
        send_alert,
    )
    from covidct.pipeline.decision import (
        CHANCE_AUC,
        INTERVAL_METRICS,
        aggregate,
        choose_candidate,
        confirm,
        gate_and_promote,
        leaderboard,
        no_better_than_chance,
        pooled_predictions,
        regression_check,
        sequestered_intervals,
    )
    from covidct.pipeline.development import (
        checkpoint_prefix,
        evaluate,
        gradcam_png,
        headline_metrics,
        log_figures,
        pooled_metrics,
        predict_split,
        predictions_frame,
        setup_mlflow,
        train,
        training_config,
        weights_cache,
    )
    from covidct.pipeline.evidence import (
        DRIFT,
        EVIDENCE,
        PROBE_SLICES,
        TEMPERATURE_TAG,
        confirm_evidence,
        fit_development_temperature,
        probe_predictions,
        read_json,
        record_batch_drift,
        reference_of,
        roster_of,
        run_prefix,
        serving_evidence,
        subgroup_rule,
    )
    from covidct.pipeline.gate_evidence import (
        MIN_FRESH_PATIENTS,
        MIN_FRESH_PER_CLASS,
        champion_figures,
        figure_slopes,
        gather_evidence,
    )
    from covidct.pipeline.intake import (
        curate,
        dataset_digest,
        discover,
        make_folds,
        quarantine,
        selection_counts,
        validate,
    )
    from covidct.pipeline.truth import (
        MAX_POINTING_SLICES,
        TRUTH_SUFFIX,
        pointing_evidence,
        severity_bands,
        severity_evidence,
        truth_folder,
    )

#: public name -> the module that defines it (imported on first use, so importing one module of
#: the package does not import the others' dependencies)
_EXPORTS: dict[str, str] = {
    "CHANCE_AUC": "covidct.pipeline.decision",
    "CHECKPOINTS": "covidct.pipeline.context",
    "CURATED_BATCHES": "covidct.lake.custody",
    "DAG_ID": "covidct.pipeline.context",
    "DRIFT": "covidct.pipeline.evidence",
    "EVIDENCE": "covidct.pipeline.evidence",
    "HISTORY_PREFIX": "covidct.pipeline.context",
    "INTERVAL_METRICS": "covidct.pipeline.decision",
    "MAX_POINTING_SLICES": "covidct.pipeline.truth",
    "MIN_FRESH_PATIENTS": "covidct.pipeline.gate_evidence",
    "MIN_FRESH_PER_CLASS": "covidct.pipeline.gate_evidence",
    "PROBE_SLICES": "covidct.pipeline.evidence",
    "TEMPERATURE_TAG": "covidct.pipeline.evidence",
    "TRUTH_SUFFIX": "covidct.pipeline.truth",
    "WEIGHTS_DIR": "covidct.pipeline.context",
    "aggregate": "covidct.pipeline.decision",
    "champion_figures": "covidct.pipeline.gate_evidence",
    "checkpoint_prefix": "covidct.pipeline.development",
    "choose_candidate": "covidct.pipeline.decision",
    "confirm": "covidct.pipeline.decision",
    "confirm_evidence": "covidct.pipeline.evidence",
    "curate": "covidct.pipeline.intake",
    "dataset_digest": "covidct.pipeline.intake",
    "discover": "covidct.pipeline.intake",
    "evaluate": "covidct.pipeline.development",
    "figure_slopes": "covidct.pipeline.gate_evidence",
    "fit_development_temperature": "covidct.pipeline.evidence",
    "gate_and_promote": "covidct.pipeline.decision",
    "gather_evidence": "covidct.pipeline.gate_evidence",
    "gradcam_png": "covidct.pipeline.development",
    "headline_metrics": "covidct.pipeline.development",
    "lake": "covidct.pipeline.context",
    "leaderboard": "covidct.pipeline.decision",
    "log_figures": "covidct.pipeline.development",
    "make_folds": "covidct.pipeline.intake",
    "materialize": "covidct.pipeline.context",
    "no_better_than_chance": "covidct.pipeline.decision",
    "notifier": "covidct.pipeline.context",
    "pointing_evidence": "covidct.pipeline.truth",
    "pooled_metrics": "covidct.pipeline.development",
    "pooled_predictions": "covidct.pipeline.decision",
    "predict_split": "covidct.pipeline.development",
    "predictions_frame": "covidct.pipeline.development",
    "probe_predictions": "covidct.pipeline.evidence",
    "quarantine": "covidct.pipeline.intake",
    "read_json": "covidct.pipeline.evidence",
    "record_batch_drift": "covidct.pipeline.evidence",
    "reference_of": "covidct.pipeline.evidence",
    "regression_check": "covidct.pipeline.decision",
    "releases_models": "covidct.pipeline.context",
    "roster_of": "covidct.pipeline.evidence",
    "run_key_of": "covidct.pipeline.context",
    "run_prefix": "covidct.pipeline.evidence",
    "selection_counts": "covidct.pipeline.intake",
    "send_alert": "covidct.pipeline.context",
    "sequestered_intervals": "covidct.pipeline.decision",
    "serving_evidence": "covidct.pipeline.evidence",
    "setup_mlflow": "covidct.pipeline.development",
    "severity_bands": "covidct.pipeline.truth",
    "severity_evidence": "covidct.pipeline.truth",
    "subgroup_rule": "covidct.pipeline.evidence",
    "train": "covidct.pipeline.development",
    "training_config": "covidct.pipeline.development",
    "truth_folder": "covidct.pipeline.truth",
    "validate": "covidct.pipeline.intake",
    "weights_cache": "covidct.pipeline.development",
}

__all__ = [
    "CHANCE_AUC",
    "CHECKPOINTS",
    "CURATED_BATCHES",
    "DAG_ID",
    "DRIFT",
    "EVIDENCE",
    "HISTORY_PREFIX",
    "INTERVAL_METRICS",
    "MAX_POINTING_SLICES",
    "MIN_FRESH_PATIENTS",
    "MIN_FRESH_PER_CLASS",
    "PROBE_SLICES",
    "TEMPERATURE_TAG",
    "TRUTH_SUFFIX",
    "WEIGHTS_DIR",
    "aggregate",
    "champion_figures",
    "checkpoint_prefix",
    "choose_candidate",
    "confirm",
    "confirm_evidence",
    "curate",
    "dataset_digest",
    "discover",
    "evaluate",
    "figure_slopes",
    "fit_development_temperature",
    "gate_and_promote",
    "gather_evidence",
    "gradcam_png",
    "headline_metrics",
    "lake",
    "leaderboard",
    "log_figures",
    "make_folds",
    "materialize",
    "no_better_than_chance",
    "notifier",
    "pointing_evidence",
    "pooled_metrics",
    "pooled_predictions",
    "predict_split",
    "predictions_frame",
    "probe_predictions",
    "quarantine",
    "read_json",
    "record_batch_drift",
    "reference_of",
    "regression_check",
    "releases_models",
    "roster_of",
    "run_key_of",
    "run_prefix",
    "selection_counts",
    "send_alert",
    "sequestered_intervals",
    "serving_evidence",
    "setup_mlflow",
    "severity_bands",
    "severity_evidence",
    "subgroup_rule",
    "train",
    "training_config",
    "truth_folder",
    "validate",
    "weights_cache",
]


def __getattr__(name: str) -> Any:
    """The re-exported name ``name`` (PEP 562), from the module that defines it."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
