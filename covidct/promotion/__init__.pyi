"""Public names of ``covidct.promotion``, one list: read by ``lazy_loader.attach_stub`` at run
time (each imported on first use) and by type checkers."""

from .alerts import (
    ALERT_SCHEMA_VERSION as ALERT_SCHEMA_VERSION,
    Alert as Alert,
    AlertKind as AlertKind,
    JsonlNotifier as JsonlNotifier,
    Notifier as Notifier,
    Regression as Regression,
    Severity as Severity,
    airflow_run_url as airflow_run_url,
    detect_regressions as detect_regressions,
    mlflow_run_url as mlflow_run_url,
    read_alerts as read_alerts,
)
from .gate import (
    SENSITIVITY_METRIC as SENSITIVITY_METRIC,
    Comparison as Comparison,
    GateStatus as GateStatus,
    GateVerdict as GateVerdict,
    PairedBootstrap as PairedBootstrap,
    compare as compare,
    decide as decide,
)
from .mlflow_ui import (
    EXPERIMENT_KIND_TAG as EXPERIMENT_KIND_TAG,
    MODEL_TRAINING as MODEL_TRAINING,
    MODEL_TRAINING_QUERY as MODEL_TRAINING_QUERY,
    experiment_url as experiment_url,
    mark_model_training as mark_model_training,
    model_training_tags as model_training_tags,
)
from .registry import (
    INTENT_PREFIX as INTENT_PREFIX,
    LEDGER_PREFIX as LEDGER_PREFIX,
    LOCK_STALE_AFTER_S as LOCK_STALE_AFTER_S,
    LOCK_SUFFIX as LOCK_SUFFIX,
    LOCK_TIMEOUT_S as LOCK_TIMEOUT_S,
    ChampionMovedError as ChampionMovedError,
    ChampionRef as ChampionRef,
    LedgerStore as LedgerStore,
    PromotionLock as PromotionLock,
    PromotionLockTimeout as PromotionLockTimeout,
    append_ledger as append_ledger,
    client as client,
    ensure_registered_model as ensure_registered_model,
    get_champion as get_champion,
    lock_name as lock_name,
    lock_owner as lock_owner,
    pending_intents as pending_intents,
    promote as promote,
    read_ledger as read_ledger,
    recover_pending as recover_pending,
    register_version as register_version,
    resume_promotion as resume_promotion,
    rollback as rollback,
    version_of_run as version_of_run,
)
from .serving import (
    P_COVID_TOLERANCE as P_COVID_TOLERANCE,
    PROBE_COLLECTIONS as PROBE_COLLECTIONS,
    SERVING_TIMEOUT_S as SERVING_TIMEOUT_S,
    ProbeSet as ProbeSet,
    ServingCheck as ServingCheck,
    default_tcia_dir as default_tcia_dir,
    evaluate_probe as evaluate_probe,
    probe_set as probe_set,
    serving_check as serving_check,
    write_probe_set as write_probe_set,
)
from .subgroup_gate import (
    SubgroupComparison as SubgroupComparison,
    SubgroupVerdict as SubgroupVerdict,
    judge_subgroups as judge_subgroups,
    with_subgroups as with_subgroups,
)
