"""Whether a candidate becomes champion, and who is told.

Modules:

* ``gate``: comparisons and a verdict, never an exception
* ``registry``: MLflow aliases, compare-and-set promotion under a lock, audit ledger, rollback
* ``alerts``: alert schema, notifier interface, JSONL notifier, metric-regression detection

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

#: public name -> the module that defines it (imported on first use, so importing one module of
#: the package does not import the others' dependencies)
_EXPORTS: dict[str, str] = {
    "ALERT_SCHEMA_VERSION": "covidct.promotion.alerts",
    "Alert": "covidct.promotion.alerts",
    "AlertKind": "covidct.promotion.alerts",
    "ChampionMovedError": "covidct.promotion.registry",
    "ChampionRef": "covidct.promotion.registry",
    "Comparison": "covidct.promotion.gate",
    "GateStatus": "covidct.promotion.gate",
    "GateVerdict": "covidct.promotion.gate",
    "INTENT_PREFIX": "covidct.promotion.registry",
    "JsonlNotifier": "covidct.promotion.alerts",
    "LEDGER_PREFIX": "covidct.promotion.registry",
    "LOCK_STALE_AFTER_S": "covidct.promotion.registry",
    "LOCK_SUFFIX": "covidct.promotion.registry",
    "LOCK_TIMEOUT_S": "covidct.promotion.registry",
    "LedgerStore": "covidct.promotion.registry",
    "Notifier": "covidct.promotion.alerts",
    "PairedBootstrap": "covidct.promotion.gate",
    "PromotionLock": "covidct.promotion.registry",
    "PromotionLockTimeout": "covidct.promotion.registry",
    "Regression": "covidct.promotion.alerts",
    "SENSITIVITY_METRIC": "covidct.promotion.gate",
    "Severity": "covidct.promotion.alerts",
    "airflow_run_url": "covidct.promotion.alerts",
    "append_ledger": "covidct.promotion.registry",
    "client": "covidct.promotion.registry",
    "compare": "covidct.promotion.gate",
    "decide": "covidct.promotion.gate",
    "detect_regressions": "covidct.promotion.alerts",
    "ensure_registered_model": "covidct.promotion.registry",
    "get_champion": "covidct.promotion.registry",
    "lock_name": "covidct.promotion.registry",
    "lock_owner": "covidct.promotion.registry",
    "mlflow_run_url": "covidct.promotion.alerts",
    "pending_intents": "covidct.promotion.registry",
    "promote": "covidct.promotion.registry",
    "read_alerts": "covidct.promotion.alerts",
    "read_ledger": "covidct.promotion.registry",
    "recover_pending": "covidct.promotion.registry",
    "register_version": "covidct.promotion.registry",
    "resume_promotion": "covidct.promotion.registry",
    "rollback": "covidct.promotion.registry",
    "version_of_run": "covidct.promotion.registry",
}

__all__ = [
    "ALERT_SCHEMA_VERSION",
    "Alert",
    "AlertKind",
    "ChampionMovedError",
    "ChampionRef",
    "Comparison",
    "GateStatus",
    "GateVerdict",
    "INTENT_PREFIX",
    "JsonlNotifier",
    "LEDGER_PREFIX",
    "LOCK_STALE_AFTER_S",
    "LOCK_SUFFIX",
    "LOCK_TIMEOUT_S",
    "LedgerStore",
    "Notifier",
    "PairedBootstrap",
    "PromotionLock",
    "PromotionLockTimeout",
    "Regression",
    "SENSITIVITY_METRIC",
    "Severity",
    "airflow_run_url",
    "append_ledger",
    "client",
    "compare",
    "decide",
    "detect_regressions",
    "ensure_registered_model",
    "get_champion",
    "lock_name",
    "lock_owner",
    "mlflow_run_url",
    "pending_intents",
    "promote",
    "read_alerts",
    "read_ledger",
    "recover_pending",
    "register_version",
    "resume_promotion",
    "rollback",
    "version_of_run",
]


def __getattr__(name: str) -> Any:
    """The re-exported name ``name`` (PEP 562), from the module that defines it."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
