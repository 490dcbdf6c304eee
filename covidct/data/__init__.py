"""From curated slices to model inputs: patients in folds or sequestered, slices selected, decoded
and augmented.

Modules:

* ``loading``: 16-bit TIFF slices to float32 model inputs (intensity transform, cache, tf.data
  batches)
* ``augment``: the seed's Table 5 augmentation in ``keras.ops``, inside the compiled train step
* ``folds``: patient-level folds of the COVID-CTset protocol, incremental, leak-free
* ``fold_manifests``: per-fold manifests, their digest, the protocol table, MLflow dataset records
* ``folds_cli``: ``covidct folds`` on a COVID-CTset roster
* ``selection``: COVID-CTset's open-lung slice selection
* ``sequester``: the stable sequestration rule, its lock and re-lock

Each public name of these modules is importable from the package (imported on first use).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from covidct.data.augment import (
        AugmentConfig,
        DeviceAugmentation,
        affine_warp,
        random_affine,
    )
    from covidct.data.fold_manifests import (
        log_fold_dataset,
        manifest_digest,
        protocol_table,
        read_fold_manifests,
        write_fold_manifests,
    )
    from covidct.data.folds import (
        DIGEST_HEX_CHARS,
        FILENAME_COLUMN,
        FOLD_COLUMN,
        LABEL,
        PATH_COLUMN,
        PATIENT_ID_COLUMN,
        PATIENT_KEY_COLUMN,
        POOL_SPLIT,
        SPLIT_COLUMN,
        FoldAssignment,
        assign_folds,
    )
    from covidct.data.folds_cli import (
        run_folds_command,
    )
    from covidct.data.loading import (
        AUTOTUNE,
        IntensityMode,
        IntensityTransform,
        augment_batch,
        make_dataset,
        one_hot_labels,
        projective_warp,
        random_affine_parameters,
        read_slice,
    )
    from covidct.data.selection import (
        SELECTED_COLUMN,
        SELECTION_COLUMNS,
        SEQUENCE_COLUMNS,
        THRESHOLD_DIVISOR,
        dark_pixel_count,
        mark_selected,
        select_batch,
        select_open_lung,
        select_sequence,
        selected_only,
        selection_threshold,
        with_selection,
    )
    from covidct.data.sequester import (
        ASSIGNMENT_KEY,
        COLUMNS,
        DEFAULT_SALT,
        DEVELOPMENT,
        LOCK_KEY,
        PREFIX,
        SEQUESTERED,
        SequesterRule,
        SequesterRuleChanged,
        assign,
        key_position,
        patients_of,
        read_assignment,
        read_lock,
        relock,
        roles_of,
        update,
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
    "SELECTED_COLUMN": "covidct.data.selection",
    "SELECTION_COLUMNS": "covidct.data.selection",
    "SEQUENCE_COLUMNS": "covidct.data.selection",
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
    "log_fold_dataset": "covidct.data.fold_manifests",
    "make_dataset": "covidct.data.loading",
    "manifest_digest": "covidct.data.fold_manifests",
    "mark_selected": "covidct.data.selection",
    "one_hot_labels": "covidct.data.loading",
    "patients_of": "covidct.data.sequester",
    "projective_warp": "covidct.data.loading",
    "protocol_table": "covidct.data.fold_manifests",
    "random_affine": "covidct.data.augment",
    "random_affine_parameters": "covidct.data.loading",
    "read_assignment": "covidct.data.sequester",
    "read_fold_manifests": "covidct.data.fold_manifests",
    "read_lock": "covidct.data.sequester",
    "read_slice": "covidct.data.loading",
    "relock": "covidct.data.sequester",
    "roles_of": "covidct.data.sequester",
    "run_folds_command": "covidct.data.folds_cli",
    "select_batch": "covidct.data.selection",
    "select_open_lung": "covidct.data.selection",
    "select_sequence": "covidct.data.selection",
    "selected_only": "covidct.data.selection",
    "selection_threshold": "covidct.data.selection",
    "update": "covidct.data.sequester",
    "with_selection": "covidct.data.selection",
    "write_fold_manifests": "covidct.data.fold_manifests",
}

__all__ = [
    "ASSIGNMENT_KEY",
    "AUTOTUNE",
    "AugmentConfig",
    "COLUMNS",
    "DEFAULT_SALT",
    "DEVELOPMENT",
    "DIGEST_HEX_CHARS",
    "DeviceAugmentation",
    "FILENAME_COLUMN",
    "FOLD_COLUMN",
    "FoldAssignment",
    "IntensityMode",
    "IntensityTransform",
    "LABEL",
    "LOCK_KEY",
    "PATH_COLUMN",
    "PATIENT_ID_COLUMN",
    "PATIENT_KEY_COLUMN",
    "POOL_SPLIT",
    "PREFIX",
    "SELECTED_COLUMN",
    "SELECTION_COLUMNS",
    "SEQUENCE_COLUMNS",
    "SEQUESTERED",
    "SPLIT_COLUMN",
    "SequesterRule",
    "SequesterRuleChanged",
    "THRESHOLD_DIVISOR",
    "affine_warp",
    "assign",
    "assign_folds",
    "augment_batch",
    "dark_pixel_count",
    "key_position",
    "log_fold_dataset",
    "make_dataset",
    "manifest_digest",
    "mark_selected",
    "one_hot_labels",
    "patients_of",
    "projective_warp",
    "protocol_table",
    "random_affine",
    "random_affine_parameters",
    "read_assignment",
    "read_fold_manifests",
    "read_lock",
    "read_slice",
    "relock",
    "roles_of",
    "run_folds_command",
    "select_batch",
    "select_open_lung",
    "select_sequence",
    "selected_only",
    "selection_threshold",
    "update",
    "with_selection",
    "write_fold_manifests",
]


def __getattr__(name: str) -> Any:
    """The re-exported name ``name`` (PEP 562), from the module that defines it."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
