"""TODO"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from covidct.pipeline.steps import (
        CHECKPOINTS,
        DAG_ID,
        HISTORY_PREFIX,
        WEIGHTS_DIR,
        aggregate,
        checkpoint_prefix,
        choose_candidate,
        config_from_params,
        confirm,
        curate,
        dataset_digest,
        discover,
        evaluate,
        gate_and_promote,
        gradcam_png,
        headline_metrics,
        lake,
        leaderboard,
        log_figures,
        make_folds,
        materialize,
        notifier,
        pooled_metrics,
        pooled_predictions,
        predict_split,
        predictions_frame,
        quarantine,
        regression_check,
        run_key_of,
        send_alert,
        setup_mlflow,
        train,
        validate,
        weights_cache,
    )

#: public name -> the module that defines it (imported on first use, so importing one module of
#: the package does not import the others' dependencies)
_EXPORTS: dict[str, str] = {
    "CHECKPOINTS": "covidct.pipeline.steps",
    "DAG_ID": "covidct.pipeline.steps",
    "HISTORY_PREFIX": "covidct.pipeline.steps",
    "WEIGHTS_DIR": "covidct.pipeline.steps",
    "aggregate": "covidct.pipeline.steps",
    "checkpoint_prefix": "covidct.pipeline.steps",
    "choose_candidate": "covidct.pipeline.steps",
    "config_from_params": "covidct.pipeline.steps",
    "confirm": "covidct.pipeline.steps",
    "curate": "covidct.pipeline.steps",
    "dataset_digest": "covidct.pipeline.steps",
    "discover": "covidct.pipeline.steps",
    "evaluate": "covidct.pipeline.steps",
    "gate_and_promote": "covidct.pipeline.steps",
    "gradcam_png": "covidct.pipeline.steps",
    "headline_metrics": "covidct.pipeline.steps",
    "lake": "covidct.pipeline.steps",
    "leaderboard": "covidct.pipeline.steps",
    "log_figures": "covidct.pipeline.steps",
    "make_folds": "covidct.pipeline.steps",
    "materialize": "covidct.pipeline.steps",
    "notifier": "covidct.pipeline.steps",
    "pooled_metrics": "covidct.pipeline.steps",
    "pooled_predictions": "covidct.pipeline.steps",
    "predict_split": "covidct.pipeline.steps",
    "predictions_frame": "covidct.pipeline.steps",
    "quarantine": "covidct.pipeline.steps",
    "regression_check": "covidct.pipeline.steps",
    "run_key_of": "covidct.pipeline.steps",
    "send_alert": "covidct.pipeline.steps",
    "setup_mlflow": "covidct.pipeline.steps",
    "train": "covidct.pipeline.steps",
    "validate": "covidct.pipeline.steps",
    "weights_cache": "covidct.pipeline.steps",
}

__all__ = [
    "CHECKPOINTS",
    "DAG_ID",
    "HISTORY_PREFIX",
    "WEIGHTS_DIR",
    "aggregate",
    "checkpoint_prefix",
    "choose_candidate",
    "config_from_params",
    "confirm",
    "curate",
    "dataset_digest",
    "discover",
    "evaluate",
    "gate_and_promote",
    "gradcam_png",
    "headline_metrics",
    "lake",
    "leaderboard",
    "log_figures",
    "make_folds",
    "materialize",
    "notifier",
    "pooled_metrics",
    "pooled_predictions",
    "predict_split",
    "predictions_frame",
    "quarantine",
    "regression_check",
    "run_key_of",
    "send_alert",
    "setup_mlflow",
    "train",
    "validate",
    "weights_cache",
]


def __getattr__(name: str) -> Any:
    """The re-exported name ``name`` (PEP 562), from the module that defines it."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
