"""What every DAG step shares: the DAG id, the run key of a DAG run (``runs/<run>/``), sending an
alert through the configured notifier, and releasing the networks a step built
(:func:`releases_models`). The lake of the settings (``lake``), copying a lake prefix to the work
dir (``materialize``) and ``write_json`` are :mod:`covidct.lake.access`'s, named here too.
"""

from __future__ import annotations

import functools
import gc
import sys
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar, overload

from covidct.config import AlertChannel, Settings
from covidct.lake.access import materialize as materialize, open_lake, write_json as write_json
from covidct.lake.custody import CURATED_BATCHES as CURATED_BATCHES
from covidct.lake.layout import LakeLayout, RunLayout, run_key_of as run_key_of
from covidct.promotion import alerts as alerts_mod

DAG_ID = "covidct_retraining"

_P = ParamSpec("_P")
_R = TypeVar("_R")


@overload
def releases_models(step: Callable[_P, _R]) -> Callable[_P, _R]: ...


@overload
def releases_models(
    *, keep_compiled: bool = False, keep_loaded: bool = False
) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]: ...


def releases_models(
    step: Callable[_P, _R] | None = None, *, keep_compiled: bool = False, keep_loaded: bool = False
) -> Any:
    """Run ``step``, then free every network it built or loaded (Keras's global state, then a
    full garbage collection), whether it returned or raised. Use as ``@releases_models`` or
    ``@releases_models(keep_compiled=True)``.

    A worker runs each task in a fresh process, but ``airflow dags test`` (``make demo``) and
    an in-process caller run every step in one: there the trained and loaded networks stayed
    reachable through Keras's global state and the cycle between a model and its traced
    function, and the process grew with each step (three identical ResNet152 trainings in one
    process: 92, 111 and 145 s, peak memory 2.8, 3.6 and 3.8 GB; with this release after each,
    106, 84 and 110 s on a noisy machine, memory flat at 2.8 GB). The compiled training model
    that :mod:`covidct.training.warm` keeps for a backbone's next fold is dropped too, unless
    ``keep_compiled`` (the train step); the models the step loaded are kept for the next step's
    loads of the same architecture (:mod:`covidct.training.loaded`) only with ``keep_loaded``
    (evaluate, confirm). Nothing is imported here: a process that never imported Keras has
    nothing to release.
    """

    def decorate(function: Callable[_P, _R]) -> Callable[_P, _R]:
        @functools.wraps(function)
        def released(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            try:
                return function(*args, **kwargs)
            finally:
                warm = sys.modules.get("covidct.training.warm")
                if warm is not None and not keep_compiled:
                    warm.release_warm_model()
                loaded = sys.modules.get("covidct.training.loaded")
                if loaded is not None and keep_loaded:
                    loaded.return_loaded_models()
                elif loaded is not None:
                    loaded.release_loaded_models()
                keras = sys.modules.get("keras")
                if keras is not None:
                    keras.backend.clear_session(free_memory=True)
                gc.collect()

        return released

    return decorate if step is None else decorate(step)


#: ``runs/history``: one champion record per run (:meth:`covidct.lake.layout.RunLayout.history`).
HISTORY_PREFIX = LakeLayout.RUN_HISTORY


#: Folder name of training checkpoints, in the lake (under ``runs/<run>/``) and the work dir.
CHECKPOINTS = RunLayout.CHECKPOINTS


#: The data lake's object store of the settings, by its pipeline name
#: (:func:`covidct.lake.access.open_lake`).
lake = open_lake

#: Work-dir folder that holds copies of ImageNet weights read from a remote cache.
WEIGHTS_DIR = "weights"


def notifier(settings: Settings) -> alerts_mod.Notifier:
    """Return the configured notifier (the embedded JSONL one in the library)."""
    if settings.alerts.channel != AlertChannel.JSONL:
        raise ValueError(
            f"alert channel {settings.alerts.channel.value} is delivered by the Airflow plugin "
            "(plugins/covidct_alerting.py); the library only writes alerts.jsonl"
        )
    return alerts_mod.JsonlNotifier(settings.alerts.jsonl_path)


def send_alert(
    settings: Settings,
    kind: alerts_mod.AlertKind,
    severity: alerts_mod.Severity,
    summary: str,
    details: Mapping[str, Any],
    *,
    dag_run_id: str = "",
    mlflow_run_id: str = "",
    send: Any = None,
) -> dict[str, Any]:
    """Build an alert with links to the Airflow run and the MLflow run and deliver it."""
    airflow_url = (
        f"{settings.alerts.airflow_url}/dags/{DAG_ID}/runs/{dag_run_id}" if dag_run_id else ""
    )
    mlflow_url = f"{settings.alerts.mlflow_url}/#/runs/{mlflow_run_id}" if mlflow_run_id else ""
    alert = alerts_mod.Alert(
        kind, severity, summary, dict(details), DAG_ID, dag_run_id, airflow_url, mlflow_url
    )
    (send or notifier(settings).send)(alert)
    return alert.to_dict()
