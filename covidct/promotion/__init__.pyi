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
    one_line as one_line,
    read_alerts as read_alerts,
)
from .audit import (
    BASELINE_ACTION as BASELINE_ACTION,
    CHAMPION_ACTIONS as CHAMPION_ACTIONS,
    AliasState as AliasState,
    alias_disagreements as alias_disagreements,
    alias_status as alias_status,
    disagreement_alert as disagreement_alert,
    ledger_aliases as ledger_aliases,
    registry_aliases as registry_aliases,
)
from .deployable import (
    DIGEST_TAG as DIGEST_TAG,
    REGISTRY_BOOKKEEPING as REGISTRY_BOOKKEEPING,
    download as download,
    ensemble_model as ensemble_model,
    model_digest as model_digest,
)
from .gate import (
    SENSITIVITY_METRIC as SENSITIVITY_METRIC,
    Comparison as Comparison,
    ComparisonEvidence as ComparisonEvidence,
    GateStatus as GateStatus,
    GateVerdict as GateVerdict,
    Outcome as Outcome,
    PairedBootstrap as PairedBootstrap,
    as_primary_test as as_primary_test,
    compare as compare,
    decide as decide,
    gather as gather,
    judge_comparison as judge_comparison,
)
from .mlflow_ui import (
    EXPERIMENT_KIND_TAG as EXPERIMENT_KIND_TAG,
    MODEL_TRAINING as MODEL_TRAINING,
    MODEL_TRAINING_QUERY as MODEL_TRAINING_QUERY,
    experiment_url as experiment_url,
    mark_model_training as mark_model_training,
    model_training_tags as model_training_tags,
)
from .record import (
    record_verdict as record_verdict,
    tag_version as tag_version,
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
from .rule import (
    AS_MEASURED as AS_MEASURED,
    SELECTION_CORRECTED as SELECTION_CORRECTED,
    GateEvidence as GateEvidence,
    judge as judge,
    recorded_figures as recorded_figures,
    secondary_comparator as secondary_comparator,
    vetoes as vetoes,
)
from .sensitivity import (
    NONINFERIORITY_POWER as NONINFERIORITY_POWER,
    noninferiority_margin as noninferiority_margin,
    sensitivity_counts as sensitivity_counts,
    sensitivity_test as sensitivity_test,
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
from .stats import (
    ALPHA as ALPHA,
    POWER as POWER,
    NoninferiorityTest as NoninferiorityTest,
    PrimaryTest as PrimaryTest,
    detectable_gain as detectable_gain,
    holm as holm,
    primary_test as primary_test,
    selection_corrected as selection_corrected,
    studentized_noninferiority as studentized_noninferiority,
    weighted_patient_auc as weighted_patient_auc,
    z as z,
)
from .subgroup_gate import (
    SubgroupComparison as SubgroupComparison,
    SubgroupTest as SubgroupTest,
    SubgroupVerdict as SubgroupVerdict,
    decide_subgroups as decide_subgroups,
    gather_subgroups as gather_subgroups,
    judge_subgroups as judge_subgroups,
    with_subgroups as with_subgroups,
)
