"""Public names of ``covidct.pipeline``, one list: read by ``lazy_loader.attach_stub`` at run
time (each imported on first use) and by type checkers."""

from .confirmation import (
    build_deployable as build_deployable,
    champion_record as champion_record,
    confirm_deployables as confirm_deployables,
    members_of as members_of,
    score_registered as score_registered,
    seen_patients as seen_patients,
    sequestered_key as sequestered_key,
)
from .context import (
    CHECKPOINTS as CHECKPOINTS,
    CURATED_BATCHES as CURATED_BATCHES,
    DAG_ID as DAG_ID,
    HISTORY_PREFIX as HISTORY_PREFIX,
    WEIGHTS_DIR as WEIGHTS_DIR,
    lake as lake,
    materialize as materialize,
    notifier as notifier,
    releases_models as releases_models,
    run_key_of as run_key_of,
    send_alert as send_alert,
    write_json as write_json,
)
from .decision import (
    CHANCE_AUC as CHANCE_AUC,
    INTERVAL_METRICS as INTERVAL_METRICS,
    aggregate as aggregate,
    choose_candidate as choose_candidate,
    confirm as confirm,
    gate_and_promote as gate_and_promote,
    leaderboard as leaderboard,
    no_better_than_chance as no_better_than_chance,
    regression_check as regression_check,
    sequestered_intervals as sequestered_intervals,
)
from .development import (
    checkpoint_prefix as checkpoint_prefix,
    evaluate as evaluate,
    finite_or_none as finite_or_none,
    gradcam_png as gradcam_png,
    headline_metrics as headline_metrics,
    log_figures as log_figures,
    pooled_metrics as pooled_metrics,
    pooled_predictions as pooled_predictions,
    predict_split as predict_split,
    predictions_frame as predictions_frame,
    setup_mlflow as setup_mlflow,
    train as train,
    training_config as training_config,
    weights_cache as weights_cache,
)
from .evidence import (
    DRIFT as DRIFT,
    EVIDENCE as EVIDENCE,
    PROBE_SLICES as PROBE_SLICES,
    TEMPERATURE_TAG as TEMPERATURE_TAG,
    confirm_evidence as confirm_evidence,
    fit_development_temperature as fit_development_temperature,
    probe_predictions as probe_predictions,
    read_json as read_json,
    record_batch_drift as record_batch_drift,
    reference_of as reference_of,
    roster_of as roster_of,
    run_prefix as run_prefix,
    serving_evidence as serving_evidence,
    subgroup_rule as subgroup_rule,
)
from .gate_evidence import (
    MIN_FRESH_PATIENTS as MIN_FRESH_PATIENTS,
    MIN_FRESH_PER_CLASS as MIN_FRESH_PER_CLASS,
    champion_figures as champion_figures,
    figure_slopes as figure_slopes,
    gather_evidence as gather_evidence,
)
from .intake import (
    curate as curate,
    dataset_digest as dataset_digest,
    discover as discover,
    make_folds as make_folds,
    quarantine as quarantine,
    selection_counts as selection_counts,
    validate as validate,
)
from .story import (
    describe as describe,
    end_line as end_line,
    figure as figure,
    start_line as start_line,
)
from .truth import (
    MAX_POINTING_SLICES as MAX_POINTING_SLICES,
    TRUTH_SUFFIX as TRUTH_SUFFIX,
    pointing_evidence as pointing_evidence,
    severity_bands as severity_bands,
    severity_evidence as severity_evidence,
    slice_parts as slice_parts,
    truth_folder as truth_folder,
)
