"""The gate's evidence, gathered for :func:`covidct.promotion.rule.judge` (issue 31).

:func:`gather_evidence` runs every test the rule reads on the sequestered predictions (paired
patient bootstrap of the primary metric, studentized COVID sensitivity, subgroup tests) and
collects the facts it vetoes on (overlap, digests, serving check). :func:`figure_slopes` gives
the bootstrap regressions the selection correction of a promoted candidate's figures needs.
:func:`champion_figures` re-estimates the champion's figures on the sequestered patients its
promotion did not use, when there are enough of them.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from covidct.config import Settings
from covidct.lake.layout import RunLayout
from covidct.schema import BASELINE_BACKBONE

#: the fewest fresh sequestered patients (and of each class, :data:`MIN_FRESH_PER_CLASS`) on which
#: the champion's figures are re-estimated
MIN_FRESH_PATIENTS = 20
MIN_FRESH_PER_CLASS = 5


def gather_evidence(
    settings: Settings,
    store: Any,
    confirmed: Mapping[str, Any],
    predictions: Mapping[str, pd.DataFrame],
    *,
    has_champion: bool,
    serving: Mapping[str, Any],
    figures: Mapping[str, Any],
) -> Any:
    """A :class:`covidct.promotion.rule.GateEvidence` of the candidate of ``confirmed``.

    ``predictions``: each deployable's sequestered predictions; ``serving``: the serving check
    of the candidate; ``figures``: the candidate's headline figures on the sequestered patients.
    """
    from covidct import evaluation
    from covidct.pipeline import evidence
    from covidct.promotion import gate, rule

    candidate, deployables = confirmed["candidate"], confirmed["deployables"]
    mine = deployables[candidate]

    def bootstrap(a: pd.DataFrame, b: pd.DataFrame, metric: str) -> Any:
        return evaluation.paired_bootstrap(
            a, b, metric, n_boot=settings.gate.n_boot, seed=settings.gate.seed
        )

    comparisons, slopes = [], {}
    if candidate != BASELINE_BACKBONE and BASELINE_BACKBONE in deployables:
        base = deployables[BASELINE_BACKBONE]
        comparisons.append(gate.gather(
            "baseline", f"{BASELINE_BACKBONE} v{base['version']}", predictions[candidate],
            predictions[BASELINE_BACKBONE], settings=settings.gate, paired_bootstrap=bootstrap,
            overlap_patients=mine["overlap_patients"] + base["overlap_patients"],
        ))  # fmt: skip
        slopes["baseline"] = figure_slopes(
            settings, predictions[candidate], predictions[BASELINE_BACKBONE]
        )
    rival = confirmed.get("champion")
    if rival is not None:
        theirs = _csv(store, rival["predictions_key"])
        ours = predictions[candidate]
        ours = ours[ours["patient_id"].isin(set(theirs["patient_id"]))]
        comparisons.append(gate.gather(
            "champion", f"v{rival['version']} ({rival['backbone']})", ours, theirs,
            settings=settings.gate, paired_bootstrap=bootstrap,
            overlap_patients=mine["overlap_patients"] + rival["overlap_patients"],
        ))  # fmt: skip
        slopes["champion"] = figure_slopes(settings, ours, theirs)
    subgroups = evidence.subgroup_rule(settings, store, confirmed, predictions[candidate])
    altered = tuple(
        f"{name} v{record['version']}"
        for name, record in [*deployables.items(), ("champion", rival or {})]
        if record and record["evaluated_model_digest"] != record["registered_model_digest"]
    )
    return rule.GateEvidence(
        candidate=candidate, has_champion=has_champion, comparisons=tuple(comparisons),
        subgroups=subgroups,
        subgroup_comparator=f"champion v{rival['version']}" if rival else "champion",
        candidate_version=str(mine["version"]), candidate_overlap=int(mine["overlap_patients"]),
        altered=altered, serving_passed=bool(serving["passed"]),
        serving_reason=str(serving.get("reason") or ""),
        notes=tuple(confirmed.get("notes") or ()),
        patients_used=tuple(sorted(str(p) for p in set(predictions[candidate]["patient_id"]))),
        figures=dict(figures), figure_slopes=slopes,
    )  # fmt: skip


def figure_slopes(settings: Settings, ours: pd.DataFrame, theirs: pd.DataFrame) -> dict[str, float]:
    """Per figure of ``GateSettings.regression_thresholds``: the slope of the candidate's
    bootstrap figure on the bootstrap primary difference (the same resamples: same patients,
    ``n_boot`` and seed), the figure's share of the primary difference's optimism."""
    from covidct import evaluation

    gate = settings.gate
    primary = evaluation.paired_bootstrap(
        ours, theirs, gate.primary_metric, n_boot=gate.n_boot, seed=gate.seed
    ).distribution
    slopes = {}
    for metric in gate.regression_thresholds:
        figure = evaluation.bootstrap_ci(ours, metric, n_boot=gate.n_boot, seed=gate.seed)
        both = np.isfinite(primary) & np.isfinite(figure.distribution)
        x, y = primary[both], figure.distribution[both]
        if len(x) > 2 and float(np.var(x)) > 0:
            slopes[metric] = float(np.cov(x, y)[0, 1] / np.var(x, ddof=1))
    return slopes


def champion_figures(
    settings: Settings, store: Any, champion_frame: pd.DataFrame, champion_version: str | None
) -> tuple[dict[str, Any], str]:
    """The champion's figures on this run's sequestered patients, and what they are.

    Re-estimated on the patients the decision that promoted it did not use (its gate.json's
    ``verdict.patients_used``, found through the ledger's ``promote`` record) when at least
    :data:`MIN_FRESH_PATIENTS` remain with both classes; otherwise on all of them, which is
    optimistic when they include the patients that selected it (the basis says which).
    """
    from covidct.pipeline.development import headline_metrics
    from covidct.promotion import registry

    used: set[str] = set()
    promoting = [
        r for r in registry.read_ledger(store)
        if r.get("action") == "promote" and str(r.get("version")) == str(champion_version)
        and r.get("dag_run_id")
    ]  # fmt: skip
    if promoting:
        key = RunLayout.of(promoting[-1]["dag_run_id"]).gate
        if store.exists(key):
            verdict = json.loads(store.read_bytes(key)).get("verdict") or {}
            used = {str(p) for p in verdict.get("patients_used") or ()}
    everyone = champion_frame["patient_id"].astype(str)
    fresh = champion_frame[~everyone.isin(used)]
    labels = fresh.groupby("patient_id")["y_true"].first().astype(str).str.lower()
    n_fresh, n_covid = len(labels), int(labels.eq("covid").sum())
    overlap = everyone[everyone.isin(used)].nunique()
    if (
        used
        and n_fresh >= MIN_FRESH_PATIENTS
        and min(n_covid, n_fresh - n_covid) >= MIN_FRESH_PER_CLASS
    ):
        return headline_metrics(fresh, None), (
            f"re-estimated on the {n_fresh} sequestered patients its promotion did not use"
        )
    if not used:
        basis = "as measured on this run's sequestered patients (the promoting decision's "
        basis += "patients are unknown)"
    elif overlap:
        basis = (
            f"as measured on this run's sequestered patients, {overlap} of which selected it: "
            "optimistic"
        )
    else:
        basis = "as measured on this run's sequestered patients, none of which selected it"
    return headline_metrics(champion_frame, None), basis


def _csv(store: Any, key: str) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(store.read_bytes(key)))
