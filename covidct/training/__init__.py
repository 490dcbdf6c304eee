"""TODO"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from covidct.training.core import (
        AUGMENT_LAYER as AUGMENT_LAYER,
    )
    from covidct.training.core import (
        CHECKPOINT_GLOB as CHECKPOINT_GLOB,
    )
    from covidct.training.core import (
        CHECKPOINT_SHA256 as CHECKPOINT_SHA256,
    )
    from covidct.training.core import (
        COMPILE_MIN_STEPS as COMPILE_MIN_STEPS,
    )
    from covidct.training.core import (
        LABEL_COLUMN as LABEL_COLUMN,
    )
    from covidct.training.core import (
        OPTIMIZER_STATE as OPTIMIZER_STATE,
    )
    from covidct.training.core import (
        PATH_COLUMN as PATH_COLUMN,
    )
    from covidct.training.core import (
        RESIDUAL_LAST_BN as RESIDUAL_LAST_BN,
    )
    from covidct.training.core import (
        RESUME_MAY_CHANGE as RESUME_MAY_CHANGE,
    )
    from covidct.training.core import (
        SHORT_RUN_AUGMENT as SHORT_RUN_AUGMENT,
    )
    from covidct.training.core import (
        STATE_FILE as STATE_FILE,
    )
    from covidct.training.core import (
        CheckpointMirror as CheckpointMirror,
    )
    from covidct.training.core import (
        CheckpointMismatchError as CheckpointMismatchError,
    )
    from covidct.training.core import (
        CheckpointStateError as CheckpointStateError,
    )
    from covidct.training.core import (
        CheckpointSyncError as CheckpointSyncError,
    )
    from covidct.training.core import (
        EpochCheckpoint as EpochCheckpoint,
    )
    from covidct.training.core import (
        LearningRateRule as LearningRateRule,
    )
    from covidct.training.core import (
        MlflowEpochMetrics as MlflowEpochMetrics,
    )
    from covidct.training.core import (
        Nadam as Nadam,
    )
    from covidct.training.core import (
        Profile as Profile,
    )
    from covidct.training.core import (
        TrainingConfig as TrainingConfig,
    )
    from covidct.training.core import (
        TrainResult as TrainResult,
    )
    from covidct.training.core import (
        available_backbones as available_backbones,
    )
    from covidct.training.core import (
        compile_model as compile_model,
    )
    from covidct.training.core import (
        distribution_strategy as distribution_strategy,
    )
    from covidct.training.core import (
        graph_optimizer_policy as graph_optimizer_policy,
    )
    from covidct.training.core import (
        inference_model as inference_model,
    )
    from covidct.training.core import (
        label_indices as label_indices,
    )
    from covidct.training.core import (
        log_keras_model as log_keras_model,
    )
    from covidct.training.core import (
        new_training_model as new_training_model,
    )
    from covidct.training.core import (
        parse_state as parse_state,
    )
    from covidct.training.core import (
        precision_policy as precision_policy,
    )
    from covidct.training.core import (
        predict_p_covid as predict_p_covid,
    )
    from covidct.training.core import (
        pull_checkpoint as pull_checkpoint,
    )
    from covidct.training.core import (
        push_checkpoint as push_checkpoint,
    )
    from covidct.training.core import (
        read_remote_state as read_remote_state,
    )
    from covidct.training.core import (
        read_state as read_state,
    )
    from covidct.training.core import (
        recalibrate_batchnorm as recalibrate_batchnorm,
    )
    from covidct.training.core import (
        recalibration_batches as recalibration_batches,
    )
    from covidct.training.core import (
        register_custom_objects as register_custom_objects,
    )
    from covidct.training.core import (
        serving_copy as serving_copy,
    )
    from covidct.training.core import (
        serving_requirements as serving_requirements,
    )
    from covidct.training.core import (
        set_batchnorm_momentum as set_batchnorm_momentum,
    )
    from covidct.training.core import (
        train_model as train_model,
    )
    from covidct.training.core import (
        zero_init_residual_branches as zero_init_residual_branches,
    )

#: public name -> the module that defines it (imported on first use, so importing one module of
#: the package does not import the others' dependencies)
_EXPORTS: dict[str, str] = {
    "AUGMENT_LAYER": "covidct.training.core",
    "CHECKPOINT_GLOB": "covidct.training.core",
    "CHECKPOINT_SHA256": "covidct.training.core",
    "COMPILE_MIN_STEPS": "covidct.training.core",
    "CheckpointMirror": "covidct.training.core",
    "CheckpointMismatchError": "covidct.training.core",
    "CheckpointStateError": "covidct.training.core",
    "CheckpointSyncError": "covidct.training.core",
    "EpochCheckpoint": "covidct.training.core",
    "LABEL_COLUMN": "covidct.training.core",
    "LearningRateRule": "covidct.training.core",
    "MlflowEpochMetrics": "covidct.training.core",
    "Nadam": "covidct.training.core",
    "OPTIMIZER_STATE": "covidct.training.core",
    "PATH_COLUMN": "covidct.training.core",
    "Profile": "covidct.training.core",
    "RESIDUAL_LAST_BN": "covidct.training.core",
    "RESUME_MAY_CHANGE": "covidct.training.core",
    "SHORT_RUN_AUGMENT": "covidct.training.core",
    "STATE_FILE": "covidct.training.core",
    "TrainResult": "covidct.training.core",
    "TrainingConfig": "covidct.training.core",
    "available_backbones": "covidct.training.core",
    "compile_model": "covidct.training.core",
    "distribution_strategy": "covidct.training.core",
    "graph_optimizer_policy": "covidct.training.core",
    "inference_model": "covidct.training.core",
    "label_indices": "covidct.training.core",
    "log_keras_model": "covidct.training.core",
    "new_training_model": "covidct.training.core",
    "parse_state": "covidct.training.core",
    "precision_policy": "covidct.training.core",
    "predict_p_covid": "covidct.training.core",
    "pull_checkpoint": "covidct.training.core",
    "push_checkpoint": "covidct.training.core",
    "read_remote_state": "covidct.training.core",
    "read_state": "covidct.training.core",
    "recalibrate_batchnorm": "covidct.training.core",
    "recalibration_batches": "covidct.training.core",
    "register_custom_objects": "covidct.training.core",
    "serving_copy": "covidct.training.core",
    "serving_requirements": "covidct.training.core",
    "set_batchnorm_momentum": "covidct.training.core",
    "train_model": "covidct.training.core",
    "zero_init_residual_branches": "covidct.training.core",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """The re-exported name ``name`` (PEP 562), from the module that defines it."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
