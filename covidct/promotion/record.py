"""One registry path for every gate verdict (issue 34 item 2): :func:`record_verdict`.

A promoting verdict moves ``@champion`` (:func:`covidct.promotion.registry.promote`: lock,
compare-and-set, intent, audit); a refusal writes a ``refuse`` audit record and moves no alias
(a refused version carries none: ``@challenger`` was once put on it, which read as "the next in
line" while it meant "refused"; :mod:`covidct.promotion.audit` reports one left behind). Either
way the candidate's version is tagged ``gate_verdict`` (``passed``/``refused``),
``metric.<name>`` for each recorded figure and ``figures_basis`` (what the figures are: as
measured, or corrected for the promotion's selection; ``covidct.promotion.rule``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from covidct.promotion.registry import LedgerStore, append_ledger, promote

#: MLflow tags hold at most 5,000 characters; a longer figures basis is cut
_TAG_LIMIT = 4000


def tag_version(
    mlflow_client: Any,
    model_name: str,
    version: str,
    status: str,
    metrics: Mapping[str, Any],
    basis: str = "",
) -> None:
    """Tag a version with its gate status, its figures (``nan`` for None) and their basis."""
    tags = {"gate_verdict": status}
    tags |= {f"metric.{k}": "nan" if v is None else f"{v:.4f}" for k, v in metrics.items()}
    if basis:
        tags["figures_basis"] = basis[:_TAG_LIMIT]
    for key, value in tags.items():
        mlflow_client.set_model_version_tag(model_name, version, key, value)


def record_verdict(
    mlflow_client: Any,
    store: LedgerStore,
    model_name: str,
    *,
    passed: bool,
    version: str,
    expected_champion: str | None,
    reason: str,
    dag_run_id: str,
    figures: Mapping[str, Any],
    figures_basis: str = "",
    patients_used: int | None = None,
) -> dict[str, Any]:
    """Record a gate verdict on ``version`` (module doc); returns the audit record.

    ``figures``: the candidate's figures as the verdict records them; ``patients_used``: how many
    sequestered patients the decision used (in the audit record). A promotion raises as
    :func:`covidct.promotion.registry.promote` does (e.g. ChampionMovedError).
    """
    tag_version(
        mlflow_client, model_name, version, "passed" if passed else "refused", figures,
        figures_basis,
    )  # fmt: skip
    extra = {"figures_basis": figures_basis, "patients_used": patients_used}
    if passed:
        event = promote(
            mlflow_client, store, model_name, version=version,
            expected_champion=expected_champion, reason=reason, dag_run_id=dag_run_id,
            figures=figures,
        )  # fmt: skip
        return {**event, **extra}
    event = {
        "action": "refuse", "model": model_name, "version": version,
        "previous_champion": expected_champion, "reason": reason, "dag_run_id": dag_run_id,
        "figures": dict(figures), **extra,
    }  # fmt: skip
    append_ledger(store, event)
    return event
