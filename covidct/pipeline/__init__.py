"""TODO"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from covidct.pipeline.steps import (
        CHECKPOINTS as CHECKPOINTS,
    )
    from covidct.pipeline.steps import (
        DAG_ID as DAG_ID,
    )
    from covidct.pipeline.steps import (
        HISTORY_PREFIX as HISTORY_PREFIX,
    )
    from covidct.pipeline.steps import (
        WEIGHTS_DIR as WEIGHTS_DIR,
    )
    from covidct.pipeline.steps import (
        aggregate as aggregate,
    )
    from covidct.pipeline.steps import (
        checkpoint_prefix as checkpoint_prefix,
    )
    from covidct.pipeline.steps import (
        choose_candidate as choose_candidate,
    )
    from covidct.pipeline.steps import (
        config_from_params as config_from_params,
    )
    from covidct.pipeline.steps import (
        confirm as confirm,
    )
    from covidct.pipeline.steps import (
        curate as curate,
    )
    from covidct.pipeline.steps import (
        dataset_digest as dataset_digest,
    )
    from covidct.pipeline.steps import (
        discover as discover,
    )
    from covidct.pipeline.steps import (
        evaluate as evaluate,
    )
    from covidct.pipeline.steps import (
        gate_and_promote as gate_and_promote,
    )
    from covidct.pipeline.steps import (
        gradcam_png as gradcam_png,
    )
    from covidct.pipeline.steps import (
        headline_metrics as headline_metrics,
    )
    from covidct.pipeline.steps import (
        lake as lake,
    )
    from covidct.pipeline.steps import (
        leaderboard as leaderboard,
    )
    from covidct.pipeline.steps import (
        log_figures as log_figures,
    )
    from covidct.pipeline.steps import (
        make_folds as make_folds,
    )
    from covidct.pipeline.steps import (
        materialize as materialize,
    )
    from covidct.pipeline.steps import (
        notifier as notifier,
    )
    from covidct.pipeline.steps import (
        pooled_metrics as pooled_metrics,
    )
    from covidct.pipeline.steps import (
        pooled_predictions as pooled_predictions,
    )
    from covidct.pipeline.steps import (
        predict_split as predict_split,
    )
    from covidct.pipeline.steps import (
        predictions_frame as predictions_frame,
    )
    from covidct.pipeline.steps import (
        quarantine as quarantine,
    )
    from covidct.pipeline.steps import (
        regression_check as regression_check,
    )
    from covidct.pipeline.steps import (
        run_key_of as run_key_of,
    )
    from covidct.pipeline.steps import (
        send_alert as send_alert,
    )
    from covidct.pipeline.steps import (
        setup_mlflow as setup_mlflow,
    )
    from covidct.pipeline.steps import (
        train as train,
    )
    from covidct.pipeline.steps import (
        validate as validate,
    )
    from covidct.pipeline.steps import (
        weights_cache as weights_cache,
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

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """The re-exported name ``name`` (PEP 562), from the module that defines it."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
