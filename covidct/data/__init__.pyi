"""Public names of ``covidct.data``, one list: read by ``lazy_loader.attach_stub`` at run
time (each imported on first use) and by type checkers."""

from .augment import (
    AugmentConfig as AugmentConfig,
    DeviceAugmentation as DeviceAugmentation,
    affine_warp as affine_warp,
    random_affine as random_affine,
)
from .fold_manifests import (
    log_fold_dataset as log_fold_dataset,
    manifest_digest as manifest_digest,
    protocol_table as protocol_table,
    read_fold_manifests as read_fold_manifests,
    write_fold_manifests as write_fold_manifests,
)
from .folds import (
    DIGEST_HEX_CHARS as DIGEST_HEX_CHARS,
    FILENAME_COLUMN as FILENAME_COLUMN,
    FOLD_COLUMN as FOLD_COLUMN,
    LABEL as LABEL,
    PATH_COLUMN as PATH_COLUMN,
    PATIENT_ID_COLUMN as PATIENT_ID_COLUMN,
    PATIENT_KEY_COLUMN as PATIENT_KEY_COLUMN,
    POOL_SPLIT as POOL_SPLIT,
    SPLIT_COLUMN as SPLIT_COLUMN,
    FoldAssignment as FoldAssignment,
    assign_folds as assign_folds,
)
from .folds_cli import (
    run_folds_command as run_folds_command,
)
from .host import (
    SliceDataset as SliceDataset,
    area_resize as area_resize,
    area_weights as area_weights,
    bilinear_weights as bilinear_weights,
    numpy_affine_warp as numpy_affine_warp,
    numpy_random_affine as numpy_random_affine,
    resize_bilinear as resize_bilinear,
)
from .loading import (
    IntensityMode as IntensityMode,
    IntensityTransform as IntensityTransform,
    one_hot_labels as one_hot_labels,
    read_slice as read_slice,
)
from .pipelines import (
    PIPELINES as PIPELINES,
    default_pipeline as default_pipeline,
    make_dataset as make_dataset,
)
from .selection import (
    SELECTED_COLUMN as SELECTED_COLUMN,
    SELECTION_COLUMNS as SELECTION_COLUMNS,
    SEQUENCE_COLUMNS as SEQUENCE_COLUMNS,
    THRESHOLD_DIVISOR as THRESHOLD_DIVISOR,
    dark_pixel_count as dark_pixel_count,
    mark_selected as mark_selected,
    select_batch as select_batch,
    select_open_lung as select_open_lung,
    select_sequence as select_sequence,
    selected_only as selected_only,
    selection_threshold as selection_threshold,
    with_selection as with_selection,
)
from .sequester import (
    ASSIGNMENT_KEY as ASSIGNMENT_KEY,
    COLUMNS as COLUMNS,
    DEFAULT_SALT as DEFAULT_SALT,
    DEVELOPMENT as DEVELOPMENT,
    LOCK_KEY as LOCK_KEY,
    PREFIX as PREFIX,
    SEQUESTERED as SEQUESTERED,
    SequesterRule as SequesterRule,
    SequesterRuleChanged as SequesterRuleChanged,
    assign as assign,
    key_position as key_position,
    patients_of as patients_of,
    read_assignment as read_assignment,
    read_lock as read_lock,
    relock as relock,
    roles_of as roles_of,
    update as update,
)
from .tfdata import (
    AUTOTUNE as AUTOTUNE,
    apply_transform as apply_transform,
    augment_batch as augment_batch,
    projective_warp as projective_warp,
    random_affine_parameters as random_affine_parameters,
    tf_dataset as tf_dataset,
)
