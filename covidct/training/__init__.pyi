"""Public names of ``covidct.training``, one list: read by ``lazy_loader.attach_stub`` at run
time (each imported on first use) and by type checkers."""

from .checkpoints import (
    CHECKPOINT_GLOB as CHECKPOINT_GLOB,
    CHECKPOINT_SHA256 as CHECKPOINT_SHA256,
    OPTIMIZER_STATE as OPTIMIZER_STATE,
    RESUME_MAY_CHANGE as RESUME_MAY_CHANGE,
    STATE_FILE as STATE_FILE,
    CheckpointMirror as CheckpointMirror,
    CheckpointMismatchError as CheckpointMismatchError,
    CheckpointStateError as CheckpointStateError,
    CheckpointSyncError as CheckpointSyncError,
    EpochCheckpoint as EpochCheckpoint,
    check_resumable as check_resumable,
    parse_state as parse_state,
    pull_checkpoint as pull_checkpoint,
    push_checkpoint as push_checkpoint,
    read_remote_state as read_remote_state,
    read_state as read_state,
    restore_checkpoint as restore_checkpoint,
    run_identity as run_identity,
)
from .datasets import (
    LABEL_COLUMN as LABEL_COLUMN,
    PATH_COLUMN as PATH_COLUMN,
    eval_dataset as eval_dataset,
    label_indices as label_indices,
    slice_paths as slice_paths,
    train_dataset as train_dataset,
)
from .loaded import (
    holds_loaded_models as holds_loaded_models,
    load_logged_model as load_logged_model,
    offer_loaded_model as offer_loaded_model,
    release_loaded_models as release_loaded_models,
    return_loaded_models as return_loaded_models,
    saved_config as saved_config,
)
from .optimization import (
    AUGMENT_LAYER as AUGMENT_LAYER,
    RESIDUAL_LAST_BN as RESIDUAL_LAST_BN,
    BackendStrategy as BackendStrategy,
    Nadam as Nadam,
    PreciseBatchNorm as PreciseBatchNorm,
    compile_model as compile_model,
    distribution_strategy as distribution_strategy,
    graph_optimizer_policy as graph_optimizer_policy,
    inference_model as inference_model,
    new_training_model as new_training_model,
    precision_policy as precision_policy,
    recalibrate_batchnorm as recalibrate_batchnorm,
    set_batchnorm_momentum as set_batchnorm_momentum,
    zero_init_residual_branches as zero_init_residual_branches,
)
from .profiles import (
    COMPILE_MIN_STEPS as COMPILE_MIN_STEPS,
    SHORT_RUN_AUGMENT as SHORT_RUN_AUGMENT,
    LearningRateRule as LearningRateRule,
    TrainingConfig as TrainingConfig,
    TrainResult as TrainResult,
)
from .spec import (
    FOLDS_RANGE as FOLDS_RANGE,
    FORM_DEFAULTS as FORM_DEFAULTS,
    IMAGE_SIZE_RANGE as IMAGE_SIZE_RANGE,
    PROFILE_FORM_DEFAULTS as PROFILE_FORM_DEFAULTS,
    PROFILE_SCHEDULES as PROFILE_SCHEDULES,
    SPEC_TAG as SPEC_TAG,
    WEIGHTS_NAMES as WEIGHTS_NAMES,
    Profile as Profile,
    RunRequest as RunRequest,
    Schedule as Schedule,
    TrainingSpec as TrainingSpec,
    check_conf as check_conf,
    form_defaults as form_defaults,
)
from .tracking import (
    EpochLogLine as EpochLogLine,
    MlflowEpochMetrics as MlflowEpochMetrics,
    RunSession as RunSession,
    log_backend as log_backend,
    log_keras_model as log_keras_model,
    log_run_setup as log_run_setup,
    mlflow_active as mlflow_active,
    register_custom_objects as register_custom_objects,
    run_datasets as run_datasets,
    serving_copy as serving_copy,
    serving_requirements as serving_requirements,
    start_logged_model as start_logged_model,
)
from .trainer import (
    available_backbones as available_backbones,
    predict_p_covid as predict_p_covid,
    recalibration_batches as recalibration_batches,
    train_model as train_model,
)
from .warm import (
    WarmModel as WarmModel,
    keep_warm_model as keep_warm_model,
    release_warm_model as release_warm_model,
    take_warm_model as take_warm_model,
    warm_key as warm_key,
)
