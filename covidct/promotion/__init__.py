"""TODO"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from covidct.promotion.alerts import (
        ALERT_SCHEMA_VERSION as ALERT_SCHEMA_VERSION,
    )
    from covidct.promotion.alerts import (
        Alert as Alert,
    )
    from covidct.promotion.alerts import (
        AlertKind as AlertKind,
    )
    from covidct.promotion.alerts import (
        JsonlNotifier as JsonlNotifier,
    )
    from covidct.promotion.alerts import (
        Notifier as Notifier,
    )
    from covidct.promotion.alerts import (
        Regression as Regression,
    )
    from covidct.promotion.alerts import (
        Severity as Severity,
    )
    from covidct.promotion.alerts import (
        airflow_run_url as airflow_run_url,
    )
    from covidct.promotion.alerts import (
        detect_regressions as detect_regressions,
    )
    from covidct.promotion.alerts import (
        mlflow_run_url as mlflow_run_url,
    )
    from covidct.promotion.alerts import (
        read_alerts as read_alerts,
    )
    from covidct.promotion.gate import (
        SENSITIVITY_METRIC as SENSITIVITY_METRIC,
    )
    from covidct.promotion.gate import (
        Comparison as Comparison,
    )
    from covidct.promotion.gate import (
        GateStatus as GateStatus,
    )
    from covidct.promotion.gate import (
        GateVerdict as GateVerdict,
    )
    from covidct.promotion.gate import (
        PairedBootstrap as PairedBootstrap,
    )
    from covidct.promotion.gate import (
        compare as compare,
    )
    from covidct.promotion.gate import (
        decide as decide,
    )
    from covidct.promotion.registry import (
        INTENT_PREFIX as INTENT_PREFIX,
    )
    from covidct.promotion.registry import (
        LEDGER_PREFIX as LEDGER_PREFIX,
    )
    from covidct.promotion.registry import (
        LOCK_STALE_AFTER_S as LOCK_STALE_AFTER_S,
    )
    from covidct.promotion.registry import (
        LOCK_SUFFIX as LOCK_SUFFIX,
    )
    from covidct.promotion.registry import (
        LOCK_TIMEOUT_S as LOCK_TIMEOUT_S,
    )
    from covidct.promotion.registry import (
        ChampionMovedError as ChampionMovedError,
    )
    from covidct.promotion.registry import (
        ChampionRef as ChampionRef,
    )
    from covidct.promotion.registry import (
        LedgerStore as LedgerStore,
    )
    from covidct.promotion.registry import (
        PromotionLock as PromotionLock,
    )
    from covidct.promotion.registry import (
        PromotionLockTimeout as PromotionLockTimeout,
    )
    from covidct.promotion.registry import (
        append_ledger as append_ledger,
    )
    from covidct.promotion.registry import (
        client as client,
    )
    from covidct.promotion.registry import (
        ensure_registered_model as ensure_registered_model,
    )
    from covidct.promotion.registry import (
        get_champion as get_champion,
    )
    from covidct.promotion.registry import (
        lock_name as lock_name,
    )
    from covidct.promotion.registry import (
        lock_owner as lock_owner,
    )
    from covidct.promotion.registry import (
        pending_intents as pending_intents,
    )
    from covidct.promotion.registry import (
        promote as promote,
    )
    from covidct.promotion.registry import (
        read_ledger as read_ledger,
    )
    from covidct.promotion.registry import (
        recover_pending as recover_pending,
    )
    from covidct.promotion.registry import (
        register_version as register_version,
    )
    from covidct.promotion.registry import (
        resume_promotion as resume_promotion,
    )
    from covidct.promotion.registry import (
        rollback as rollback,
    )
    from covidct.promotion.registry import (
        version_of_run as version_of_run,
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

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """The re-exported name ``name`` (PEP 562), from the module that defines it."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
