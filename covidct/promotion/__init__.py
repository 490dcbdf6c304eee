"""Whether a candidate becomes champion, and who is told.

Modules:

* ``gate``: comparisons and a verdict, never an exception
* ``registry``: MLflow aliases, compare-and-set promotion under a lock, audit ledger, rollback
* ``alerts``: alert schema, notifier interface, JSONL notifier, metric-regression detection
* ``subgroup_gate``: the gate's subgroup rule: no judged subgroup may lose COVID sensitivity beyond
  the margin
* ``serving``: the serving check: the registered version in a fresh process, probe predictions,
  latency
* ``mlflow_ui``: marks covidct's experiment as model training so the MLflow UI opens on the runs

Each public name of these modules is importable from the package (imported on first use).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from covidct.promotion.alerts import (
        ALERT_SCHEMA_VERSION,
        Alert,
        AlertKind,
        JsonlNotifier,
        Notifier,
        Regression,
        Severity,
        airflow_run_url,
        detect_regressions,
        mlflow_run_url,
        read_alerts,
    )
    from covidct.promotion.gate import (
        SENSITIVITY_METRIC,
        Comparison,
        GateStatus,
        GateVerdict,
        PairedBootstrap,
        compare,
        decide,
    )
    from covidct.promotion.mlflow_ui import (
        EXPERIMENT_KIND_TAG,
        MODEL_TRAINING,
        MODEL_TRAINING_QUERY,
        experiment_url,
        mark_model_training,
        model_training_tags,
    )
    from covidct.promotion.registry import (
        INTENT_PREFIX,
        LEDGER_PREFIX,
        LOCK_STALE_AFTER_S,
        LOCK_SUFFIX,
        LOCK_TIMEOUT_S,
        ChampionMovedError,
        ChampionRef,
        LedgerStore,
        PromotionLock,
        PromotionLockTimeout,
        append_ledger,
        client,
        ensure_registered_model,
        get_champion,
        lock_name,
        lock_owner,
        pending_intents,
        promote,
        read_ledger,
        recover_pending,
        register_version,
        resume_promotion,
        rollback,
        version_of_run,
    )
    from covidct.promotion.serving import (
        P_COVID_TOLERANCE,
        PROBE_COLLECTIONS,
        SERVING_TIMEOUT_S,
        ProbeSet,
        ServingCheck,
        default_tcia_dir,
        evaluate_probe,
        probe_set,
        serving_check,
        write_probe_set,
    )
    from covidct.promotion.subgroup_gate import (
        SubgroupComparison,
        SubgroupVerdict,
        judge_subgroups,
        with_subgroups,
    )

#: public name -> the module that defines it (imported on first use, so importing one module of
#: the package does not import the others' dependencies)
_EXPORTS: dict[str, str] = {
    "ALERT_SCHEMA_VERSION": "covidct.promotion.alerts",
    "Alert": "covidct.promotion.alerts",
    "AlertKind": "covidct.promotion.alerts",
    "ChampionMovedError": "covidct.promotion.registry",
    "ChampionRef": "covidct.promotion.registry",
    "Comparison": "covidct.promotion.gate",
    "EXPERIMENT_KIND_TAG": "covidct.promotion.mlflow_ui",
    "GateStatus": "covidct.promotion.gate",
    "GateVerdict": "covidct.promotion.gate",
    "INTENT_PREFIX": "covidct.promotion.registry",
    "JsonlNotifier": "covidct.promotion.alerts",
    "LEDGER_PREFIX": "covidct.promotion.registry",
    "LOCK_STALE_AFTER_S": "covidct.promotion.registry",
    "LOCK_SUFFIX": "covidct.promotion.registry",
    "LOCK_TIMEOUT_S": "covidct.promotion.registry",
    "LedgerStore": "covidct.promotion.registry",
    "MODEL_TRAINING": "covidct.promotion.mlflow_ui",
    "MODEL_TRAINING_QUERY": "covidct.promotion.mlflow_ui",
    "Notifier": "covidct.promotion.alerts",
    "PROBE_COLLECTIONS": "covidct.promotion.serving",
    "P_COVID_TOLERANCE": "covidct.promotion.serving",
    "PairedBootstrap": "covidct.promotion.gate",
    "ProbeSet": "covidct.promotion.serving",
    "PromotionLock": "covidct.promotion.registry",
    "PromotionLockTimeout": "covidct.promotion.registry",
    "Regression": "covidct.promotion.alerts",
    "SENSITIVITY_METRIC": "covidct.promotion.gate",
    "SERVING_TIMEOUT_S": "covidct.promotion.serving",
    "ServingCheck": "covidct.promotion.serving",
    "Severity": "covidct.promotion.alerts",
    "SubgroupComparison": "covidct.promotion.subgroup_gate",
    "SubgroupVerdict": "covidct.promotion.subgroup_gate",
    "airflow_run_url": "covidct.promotion.alerts",
    "append_ledger": "covidct.promotion.registry",
    "client": "covidct.promotion.registry",
    "compare": "covidct.promotion.gate",
    "decide": "covidct.promotion.gate",
    "default_tcia_dir": "covidct.promotion.serving",
    "detect_regressions": "covidct.promotion.alerts",
    "ensure_registered_model": "covidct.promotion.registry",
    "evaluate_probe": "covidct.promotion.serving",
    "experiment_url": "covidct.promotion.mlflow_ui",
    "get_champion": "covidct.promotion.registry",
    "judge_subgroups": "covidct.promotion.subgroup_gate",
    "lock_name": "covidct.promotion.registry",
    "lock_owner": "covidct.promotion.registry",
    "mark_model_training": "covidct.promotion.mlflow_ui",
    "mlflow_run_url": "covidct.promotion.alerts",
    "model_training_tags": "covidct.promotion.mlflow_ui",
    "pending_intents": "covidct.promotion.registry",
    "probe_set": "covidct.promotion.serving",
    "promote": "covidct.promotion.registry",
    "read_alerts": "covidct.promotion.alerts",
    "read_ledger": "covidct.promotion.registry",
    "recover_pending": "covidct.promotion.registry",
    "register_version": "covidct.promotion.registry",
    "resume_promotion": "covidct.promotion.registry",
    "rollback": "covidct.promotion.registry",
    "serving_check": "covidct.promotion.serving",
    "version_of_run": "covidct.promotion.registry",
    "with_subgroups": "covidct.promotion.subgroup_gate",
    "write_probe_set": "covidct.promotion.serving",
}

__all__ = [
    "ALERT_SCHEMA_VERSION",
    "Alert",
    "AlertKind",
    "ChampionMovedError",
    "ChampionRef",
    "Comparison",
    "EXPERIMENT_KIND_TAG",
    "GateStatus",
    "GateVerdict",
    "INTENT_PREFIX",
    "JsonlNotifier",
    "LEDGER_PREFIX",
    "LOCK_STALE_AFTER_S",
    "LOCK_SUFFIX",
    "LOCK_TIMEOUT_S",
    "LedgerStore",
    "MODEL_TRAINING",
    "MODEL_TRAINING_QUERY",
    "Notifier",
    "PROBE_COLLECTIONS",
    "P_COVID_TOLERANCE",
    "PairedBootstrap",
    "ProbeSet",
    "PromotionLock",
    "PromotionLockTimeout",
    "Regression",
    "SENSITIVITY_METRIC",
    "SERVING_TIMEOUT_S",
    "ServingCheck",
    "Severity",
    "SubgroupComparison",
    "SubgroupVerdict",
    "airflow_run_url",
    "append_ledger",
    "client",
    "compare",
    "decide",
    "default_tcia_dir",
    "detect_regressions",
    "ensure_registered_model",
    "evaluate_probe",
    "experiment_url",
    "get_champion",
    "judge_subgroups",
    "lock_name",
    "lock_owner",
    "mark_model_training",
    "mlflow_run_url",
    "model_training_tags",
    "pending_intents",
    "probe_set",
    "promote",
    "read_alerts",
    "read_ledger",
    "recover_pending",
    "register_version",
    "resume_promotion",
    "rollback",
    "serving_check",
    "version_of_run",
    "with_subgroups",
    "write_probe_set",
]


def __getattr__(name: str) -> Any:
    """The re-exported name ``name`` (PEP 562), from the module that defines it."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
