"""TODO"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from covidct.data.augment import (
        AugmentConfig as AugmentConfig,
    )
    from covidct.data.augment import (
        DeviceAugmentation as DeviceAugmentation,
    )
    from covidct.data.augment import (
        affine_warp as affine_warp,
    )
    from covidct.data.augment import (
        random_affine as random_affine,
    )
    from covidct.data.folds import (
        DIGEST_HEX_CHARS as DIGEST_HEX_CHARS,
    )
    from covidct.data.folds import (
        FILENAME_COLUMN as FILENAME_COLUMN,
    )
    from covidct.data.folds import (
        FOLD_COLUMN as FOLD_COLUMN,
    )
    from covidct.data.folds import (
        LABEL as LABEL,
    )
    from covidct.data.folds import (
        PATH_COLUMN as PATH_COLUMN,
    )
    from covidct.data.folds import (
        PATIENT_ID_COLUMN as PATIENT_ID_COLUMN,
    )
    from covidct.data.folds import (
        PATIENT_KEY_COLUMN as PATIENT_KEY_COLUMN,
    )
    from covidct.data.folds import (
        POOL_SPLIT as POOL_SPLIT,
    )
    from covidct.data.folds import (
        SPLIT_COLUMN as SPLIT_COLUMN,
    )
    from covidct.data.folds import (
        FoldAssignment as FoldAssignment,
    )
    from covidct.data.folds import (
        assign_folds as assign_folds,
    )
    from covidct.data.folds import (
        log_fold_dataset as log_fold_dataset,
    )
    from covidct.data.folds import (
        manifest_digest as manifest_digest,
    )
    from covidct.data.folds import (
        protocol_table as protocol_table,
    )
    from covidct.data.folds import (
        read_fold_manifests as read_fold_manifests,
    )
    from covidct.data.folds import (
        run_folds_command as run_folds_command,
    )
    from covidct.data.folds import (
        write_fold_manifests as write_fold_manifests,
    )
    from covidct.data.loading import (
        AUTOTUNE as AUTOTUNE,
    )
    from covidct.data.loading import (
        IntensityMode as IntensityMode,
    )
    from covidct.data.loading import (
        IntensityTransform as IntensityTransform,
    )
    from covidct.data.loading import (
        augment_batch as augment_batch,
    )
    from covidct.data.loading import (
        make_dataset as make_dataset,
    )
    from covidct.data.loading import (
        one_hot_labels as one_hot_labels,
    )
    from covidct.data.loading import (
        projective_warp as projective_warp,
    )
    from covidct.data.loading import (
        random_affine_parameters as random_affine_parameters,
    )
    from covidct.data.loading import (
        read_slice as read_slice,
    )
    from covidct.data.selection import (
        SELECTION_COLUMNS as SELECTION_COLUMNS,
    )
    from covidct.data.selection import (
        THRESHOLD_DIVISOR as THRESHOLD_DIVISOR,
    )
    from covidct.data.selection import (
        dark_pixel_count as dark_pixel_count,
    )
    from covidct.data.selection import (
        select_batch as select_batch,
    )
    from covidct.data.selection import (
        select_open_lung as select_open_lung,
    )
    from covidct.data.selection import (
        select_sequence as select_sequence,
    )
    from covidct.data.selection import (
        selection_threshold as selection_threshold,
    )
    from covidct.data.sequester import (
        ASSIGNMENT_KEY as ASSIGNMENT_KEY,
    )
    from covidct.data.sequester import (
        COLUMNS as COLUMNS,
    )
    from covidct.data.sequester import (
        DEFAULT_SALT as DEFAULT_SALT,
    )
    from covidct.data.sequester import (
        DEVELOPMENT as DEVELOPMENT,
    )
    from covidct.data.sequester import (
        LOCK_KEY as LOCK_KEY,
    )
    from covidct.data.sequester import (
        PREFIX as PREFIX,
    )
    from covidct.data.sequester import (
        SEQUESTERED as SEQUESTERED,
    )
    from covidct.data.sequester import (
        SequesterRule as SequesterRule,
    )
    from covidct.data.sequester import (
        SequesterRuleChanged as SequesterRuleChanged,
    )
    from covidct.data.sequester import (
        assign as assign,
    )
    from covidct.data.sequester import (
        key_position as key_position,
    )
    from covidct.data.sequester import (
        patients_of as patients_of,
    )
    from covidct.data.sequester import (
        read_assignment as read_assignment,
    )
    from covidct.data.sequester import (
        read_lock as read_lock,
    )
    from covidct.data.sequester import (
        relock as relock,
    )
    from covidct.data.sequester import (
        roles_of as roles_of,
    )
    from covidct.data.sequester import (
        update as update,
    )

#: public name -> the module that defines it (imported on first use, so importing one module of
#: the package does not import the others' dependencies)
_EXPORTS: dict[str, str] = {
    "ASSIGNMENT_KEY": "covidct.data.sequester",
    "AUTOTUNE": "covidct.data.loading",
    "AugmentConfig": "covidct.data.augment",
    "COLUMNS": "covidct.data.sequester",
    "DEFAULT_SALT": "covidct.data.sequester",
    "DEVELOPMENT": "covidct.data.sequester",
    "DIGEST_HEX_CHARS": "covidct.data.folds",
    "DeviceAugmentation": "covidct.data.augment",
    "FILENAME_COLUMN": "covidct.data.folds",
    "FOLD_COLUMN": "covidct.data.folds",
    "FoldAssignment": "covidct.data.folds",
    "IntensityMode": "covidct.data.loading",
    "IntensityTransform": "covidct.data.loading",
    "LABEL": "covidct.data.folds",
    "LOCK_KEY": "covidct.data.sequester",
    "PATH_COLUMN": "covidct.data.folds",
    "PATIENT_ID_COLUMN": "covidct.data.folds",
    "PATIENT_KEY_COLUMN": "covidct.data.folds",
    "POOL_SPLIT": "covidct.data.folds",
    "PREFIX": "covidct.data.sequester",
    "SELECTION_COLUMNS": "covidct.data.selection",
    "SEQUESTERED": "covidct.data.sequester",
    "SPLIT_COLUMN": "covidct.data.folds",
    "SequesterRule": "covidct.data.sequester",
    "SequesterRuleChanged": "covidct.data.sequester",
    "THRESHOLD_DIVISOR": "covidct.data.selection",
    "affine_warp": "covidct.data.augment",
    "assign": "covidct.data.sequester",
    "assign_folds": "covidct.data.folds",
    "augment_batch": "covidct.data.loading",
    "dark_pixel_count": "covidct.data.selection",
    "key_position": "covidct.data.sequester",
    "log_fold_dataset": "covidct.data.folds",
    "make_dataset": "covidct.data.loading",
    "manifest_digest": "covidct.data.folds",
    "one_hot_labels": "covidct.data.loading",
    "patients_of": "covidct.data.sequester",
    "projective_warp": "covidct.data.loading",
    "protocol_table": "covidct.data.folds",
    "random_affine": "covidct.data.augment",
    "random_affine_parameters": "covidct.data.loading",
    "read_assignment": "covidct.data.sequester",
    "read_fold_manifests": "covidct.data.folds",
    "read_lock": "covidct.data.sequester",
    "read_slice": "covidct.data.loading",
    "relock": "covidct.data.sequester",
    "roles_of": "covidct.data.sequester",
    "run_folds_command": "covidct.data.folds",
    "select_batch": "covidct.data.selection",
    "select_open_lung": "covidct.data.selection",
    "select_sequence": "covidct.data.selection",
    "selection_threshold": "covidct.data.selection",
    "update": "covidct.data.sequester",
    "write_fold_manifests": "covidct.data.folds",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """The re-exported name ``name`` (PEP 562), from the module that defines it."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
