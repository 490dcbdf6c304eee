"""The story a DAG run tells while it runs: one line per task start and end (issue 33 item 3).

``plugins/covidct_story.py`` (an Airflow listener) calls :func:`start_line` when a task starts
and :func:`end_line` when it ends, with the task's return value (its XCom); the demo prints the
lines as they come, so a 4-8 minute ``airflow dags test`` is never silent::

    [  41s] > validate synth-hospital-a
    [  49s]   validate synth-hospital-a: passed, 960 slices validated (8.0 s)
    [ 102s]   train resnet50 fold 0: 20 steps, final loss 0.693 (31.4 s)
    [ 117s]   evaluate resnet50 fold 0: image ROC AUC 0.512 (14.9 s)

:func:`figure` is the one figure of each task's result (slices validated, steps trained with the
final loss, ROC AUC, the gate's verdict); a task this module does not know, or a result without
the expected keys, gets none. Nothing here imports Airflow, Keras or MLflow.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any


def _number(value: Any, digits: int = 3) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return f"{value:.{digits}f}"
    return "undefined"


def _version(value: Any) -> str:
    return "none" if value in (None, "") else f"v{value}"


def _plan(result: Any) -> str:
    from covidct.training.spec import TrainingSpec

    backbones = list(result.get("backbones") or [])
    spec = TrainingSpec.from_dict(result["train_params"]).describe()
    if not backbones:
        return f"DRY RUN: nothing is trained ({spec})"
    return f"{len(backbones)} backbones ({', '.join(backbones)}); {spec}"


def _validate(result: Any) -> str:
    verdict = "passed" if result.get("passed") else "FAILED validation"
    return f"{verdict}, {result.get('n_slices', 0)} slices validated"


def _quarantine(result: Any) -> str:
    return "quarantined" if result.get("quarantined") else "passed: nothing quarantined"


def _curate(result: Any) -> str:
    if result.get("dataset_version") is None:
        return "no curated data yet"
    accepted = list(result.get("accepted") or [])
    batches = ", ".join(accepted) if accepted else "no new batch"
    return (
        f"dataset {result['dataset_version']}: {result.get('n_slices', 0)} slices of "
        f"{result.get('n_patients', 0)} patients (accepted: {batches})"
    )


def _train(result: Any) -> str:
    steps = result.get("steps")
    loss = _number(result.get("final_loss"))
    return f"{steps if steps is not None else '?'} steps trained, final loss {loss}"


def _evaluate(result: Any) -> str:
    metrics = result.get("metrics") or {}
    return f"image ROC AUC {_number(metrics.get('image_roc_auc'))} on the fold's test set"


def _confirm(result: Any) -> str:
    candidate = result.get("candidate")
    record = (result.get("deployables") or {}).get(candidate) or {}
    return f"candidate {candidate} registered as {_version(record.get('version'))}"


def _gate(result: Any) -> str:
    verdict = result.get("verdict") or {}
    decided = "promoted" if verdict.get("passed") else "refused"
    return (
        f"{result.get('candidate')} {_version(result.get('version'))} {decided}; @champion "
        f"{_version(result.get('champion_before'))} -> {_version(result.get('champion_after'))}"
    )


def _regressions(result: Any) -> str:
    found = result.get("regressions") or []
    if result.get("compared_with") is None:
        return f"nothing compared: {result.get('reason') or 'no earlier champion figures'}"
    return f"{len(found)} metric regression(s) against {result['compared_with']}"


_FIGURES: dict[str, Callable[[Any], str]] = {
    "plan": _plan,
    "setup": lambda result: f"MLflow experiment {result}",
    "discover": lambda result: f"{len(result)} new batch(es): {', '.join(result) or 'none'}",
    "validate": _validate,
    "quarantine": _quarantine,
    "curate": _curate,
    "make_folds": lambda result: f"{len(result)} folds",
    "backbones_of": lambda result: ", ".join(result),
    "train": _train,
    "evaluate": _evaluate,
    "aggregate": lambda result: f"candidate {result.get('candidate')} (best of the leaderboard)",
    "confirm": _confirm,
    "gate_and_promote": _gate,
    "publish_champion": lambda result: f"@champion is now {_version(result.get('version'))}",
    "regression_check": _regressions,
    "summarize": lambda result: f"report {result.get('report')}",
}


def figure(task_id: str, result: Any) -> str:
    """The one figure of ``task_id``'s return value ``result`` (see module doc); ``""`` for an
    unknown task, a None result or one without the expected keys (never raises)."""
    make = _FIGURES.get(task_id)
    if make is None or result is None:
        return ""
    try:
        return make(result)
    except (KeyError, TypeError, ValueError, AttributeError):
        return ""


def start_line(elapsed_s: float, label: str) -> str:
    """``[  41s] > <label>``: a task started ``elapsed_s`` seconds into the run."""
    return f"[{elapsed_s:5.0f}s] > {label}"


def end_line(elapsed_s: float, label: str, state: str, took_s: float, detail: str = "") -> str:
    """``[  49s]   <label>: <detail> (8.0 s)`` for a success; the state in capitals otherwise
    (``FAILED``, ``SKIPPED``), with ``detail`` (the figure, the error, the skip reason)."""
    said = detail if state == "success" else f"{state.upper()}" + (f": {detail}" if detail else "")
    said = said or "done"
    return f"[{elapsed_s:5.0f}s]   {label}: {said} ({took_s:.1f} s)"


def describe(task_id: str, label: Mapping[str, Any] | None = None) -> str:
    """A task's name for the story: ``task_id`` and, for a mapped task, its rendered map index
    (``train resnet50 fold 0``); ``label`` may hold ``rendered_map_index`` or ``map_index``."""
    label = label or {}
    shown = label.get("rendered_map_index")
    if shown in (None, "") and label.get("map_index", -1) not in (None, -1):
        shown = f"[{label['map_index']}]"
    return f"{task_id} {shown}" if shown not in (None, "") else task_id
