"""Training one backbone on one fold, resumably.

Modules:

* ``spec``: ``TrainingSpec`` (what a run trains with, carried through XCom and the registry's
  ``train_params`` tag), ``RunRequest`` (the DAG's run form, checked), the profile names and
  schedules; free of Keras, so the DAG file and ``covidct check-conf`` import it
* ``profiles``: ``TrainingConfig`` (built from a spec by ``TrainingConfig.from_spec``), the
  named profiles, ``TrainResult``
* ``datasets``: the training table as class indices and tf.data datasets
* ``optimization``: precision, distribution, the training model, batch-norm handling, fused Nadam,
  compile
* ``checkpoints``: per-epoch checkpoints, resume checks, mirror to the lake
* ``tracking``: MLflow metrics, run setup, the logged model and its serving requirements
* ``trainer``: ``train_model`` (session and fit loop) and ``predict_p_covid``
* ``warm``: the compiled training model kept for a backbone's next fold in one process
* ``loaded``: logged models loaded in one process, kept to receive a next file's weights

Each public name of these modules is importable from the package (imported on first use).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from covidct.training.checkpoints import (
        CHECKPOINT_GLOB,
        CHECKPOINT_SHA256,
        OPTIMIZER_STATE,
        RESUME_MAY_CHANGE,
        STATE_FILE,
        CheckpointMirror,
        CheckpointMismatchError,
        CheckpointStateError,
        CheckpointSyncError,
        EpochCheckpoint,
        parse_state,
        pull_checkpoint,
        push_checkpoint,
        read_remote_state,
        read_state,
    )
    from covidct.training.datasets import (
        LABEL_COLUMN,
        PATH_COLUMN,
        label_indices,
    )
    from covidct.training.loaded import (
        holds_loaded_models,
        load_logged_model,
        offer_loaded_model,
        release_loaded_models,
        return_loaded_models,
        saved_config,
    )
    from covidct.training.optimization import (
        AUGMENT_LAYER,
        RESIDUAL_LAST_BN,
        Nadam,
        PreciseBatchNorm,
        compile_model,
        distribution_strategy,
        graph_optimizer_policy,
        inference_model,
        new_training_model,
        precision_policy,
        recalibrate_batchnorm,
        set_batchnorm_momentum,
        zero_init_residual_branches,
    )
    from covidct.training.profiles import (
        COMPILE_MIN_STEPS,
        SHORT_RUN_AUGMENT,
        LearningRateRule,
        TrainingConfig,
        TrainResult,
    )
    from covidct.training.spec import (
        FOLDS_RANGE,
        FORM_DEFAULTS,
        IMAGE_SIZE_RANGE,
        PROFILE_SCHEDULES,
        SPEC_TAG,
        WEIGHTS_NAMES,
        Profile,
        RunRequest,
        Schedule,
        TrainingSpec,
        check_conf,
    )
    from covidct.training.tracking import (
        MlflowEpochMetrics,
        log_keras_model,
        register_custom_objects,
        serving_copy,
        serving_requirements,
    )
    from covidct.training.trainer import (
        available_backbones,
        predict_p_covid,
        recalibration_batches,
        train_model,
    )
    from covidct.training.warm import (
        WarmModel,
        keep_warm_model,
        release_warm_model,
        take_warm_model,
        warm_key,
    )

#: public name -> the module that defines it (imported on first use, so importing one module of
#: the package does not import the others' dependencies)
_EXPORTS: dict[str, str] = {
    "AUGMENT_LAYER": "covidct.training.optimization",
    "CHECKPOINT_GLOB": "covidct.training.checkpoints",
    "CHECKPOINT_SHA256": "covidct.training.checkpoints",
    "COMPILE_MIN_STEPS": "covidct.training.profiles",
    "CheckpointMirror": "covidct.training.checkpoints",
    "CheckpointMismatchError": "covidct.training.checkpoints",
    "CheckpointStateError": "covidct.training.checkpoints",
    "CheckpointSyncError": "covidct.training.checkpoints",
    "EpochCheckpoint": "covidct.training.checkpoints",
    "FOLDS_RANGE": "covidct.training.spec",
    "FORM_DEFAULTS": "covidct.training.spec",
    "IMAGE_SIZE_RANGE": "covidct.training.spec",
    "LABEL_COLUMN": "covidct.training.datasets",
    "LearningRateRule": "covidct.training.profiles",
    "MlflowEpochMetrics": "covidct.training.tracking",
    "Nadam": "covidct.training.optimization",
    "OPTIMIZER_STATE": "covidct.training.checkpoints",
    "PATH_COLUMN": "covidct.training.datasets",
    "PROFILE_SCHEDULES": "covidct.training.spec",
    "PreciseBatchNorm": "covidct.training.optimization",
    "Profile": "covidct.training.spec",
    "RESIDUAL_LAST_BN": "covidct.training.optimization",
    "RESUME_MAY_CHANGE": "covidct.training.checkpoints",
    "RunRequest": "covidct.training.spec",
    "SHORT_RUN_AUGMENT": "covidct.training.profiles",
    "SPEC_TAG": "covidct.training.spec",
    "STATE_FILE": "covidct.training.checkpoints",
    "Schedule": "covidct.training.spec",
    "TrainResult": "covidct.training.profiles",
    "TrainingConfig": "covidct.training.profiles",
    "TrainingSpec": "covidct.training.spec",
    "WEIGHTS_NAMES": "covidct.training.spec",
    "WarmModel": "covidct.training.warm",
    "available_backbones": "covidct.training.trainer",
    "check_conf": "covidct.training.spec",
    "compile_model": "covidct.training.optimization",
    "distribution_strategy": "covidct.training.optimization",
    "graph_optimizer_policy": "covidct.training.optimization",
    "holds_loaded_models": "covidct.training.loaded",
    "inference_model": "covidct.training.optimization",
    "keep_warm_model": "covidct.training.warm",
    "label_indices": "covidct.training.datasets",
    "load_logged_model": "covidct.training.loaded",
    "log_keras_model": "covidct.training.tracking",
    "new_training_model": "covidct.training.optimization",
    "offer_loaded_model": "covidct.training.loaded",
    "parse_state": "covidct.training.checkpoints",
    "precision_policy": "covidct.training.optimization",
    "predict_p_covid": "covidct.training.trainer",
    "pull_checkpoint": "covidct.training.checkpoints",
    "push_checkpoint": "covidct.training.checkpoints",
    "read_remote_state": "covidct.training.checkpoints",
    "read_state": "covidct.training.checkpoints",
    "recalibrate_batchnorm": "covidct.training.optimization",
    "recalibration_batches": "covidct.training.trainer",
    "register_custom_objects": "covidct.training.tracking",
    "release_loaded_models": "covidct.training.loaded",
    "release_warm_model": "covidct.training.warm",
    "return_loaded_models": "covidct.training.loaded",
    "saved_config": "covidct.training.loaded",
    "serving_copy": "covidct.training.tracking",
    "serving_requirements": "covidct.training.tracking",
    "set_batchnorm_momentum": "covidct.training.optimization",
    "take_warm_model": "covidct.training.warm",
    "train_model": "covidct.training.trainer",
    "warm_key": "covidct.training.warm",
    "zero_init_residual_branches": "covidct.training.optimization",
}

__all__ = [
    "AUGMENT_LAYER",
    "CHECKPOINT_GLOB",
    "CHECKPOINT_SHA256",
    "COMPILE_MIN_STEPS",
    "CheckpointMirror",
    "CheckpointMismatchError",
    "CheckpointStateError",
    "CheckpointSyncError",
    "EpochCheckpoint",
    "FOLDS_RANGE",
    "FORM_DEFAULTS",
    "IMAGE_SIZE_RANGE",
    "LABEL_COLUMN",
    "LearningRateRule",
    "MlflowEpochMetrics",
    "Nadam",
    "OPTIMIZER_STATE",
    "PATH_COLUMN",
    "PROFILE_SCHEDULES",
    "PreciseBatchNorm",
    "Profile",
    "RESIDUAL_LAST_BN",
    "RESUME_MAY_CHANGE",
    "RunRequest",
    "SHORT_RUN_AUGMENT",
    "SPEC_TAG",
    "STATE_FILE",
    "Schedule",
    "TrainResult",
    "TrainingConfig",
    "TrainingSpec",
    "WEIGHTS_NAMES",
    "WarmModel",
    "available_backbones",
    "check_conf",
    "compile_model",
    "distribution_strategy",
    "graph_optimizer_policy",
    "holds_loaded_models",
    "inference_model",
    "keep_warm_model",
    "label_indices",
    "load_logged_model",
    "log_keras_model",
    "new_training_model",
    "offer_loaded_model",
    "parse_state",
    "precision_policy",
    "predict_p_covid",
    "pull_checkpoint",
    "push_checkpoint",
    "read_remote_state",
    "read_state",
    "recalibrate_batchnorm",
    "recalibration_batches",
    "register_custom_objects",
    "release_loaded_models",
    "release_warm_model",
    "return_loaded_models",
    "saved_config",
    "serving_copy",
    "serving_requirements",
    "set_batchnorm_momentum",
    "take_warm_model",
    "train_model",
    "warm_key",
    "zero_init_residual_branches",
]


def __getattr__(name: str) -> Any:
    """The re-exported name ``name`` (PEP 562), from the module that defines it."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
