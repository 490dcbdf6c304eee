"""Names and constants shared across covidct: classes, labels, series, manifest columns.

Everything that crosses a module or process boundary (a column name, a class name, an MLflow
alias, a storage prefix) is defined once here.
"""

from __future__ import annotations

from enum import StrEnum


class Label(StrEnum):
    """Patient label as written in ``Patient_details.csv`` (column ``COVID-19 Infection``)."""

    POSITIVE = "Positive"
    NEGATIVE = "Negative"


class ClassName(StrEnum):
    """Model class names. The positive class is COVID, by this explicit mapping."""

    NORMAL = "normal"
    COVID = "covid"


#: Model output order: index 0 is normal, index 1 is COVID (the seed's Dense(2) softmax).
CLASS_NAMES: tuple[str, ...] = (ClassName.NORMAL.value, ClassName.COVID.value)
POSITIVE_CLASS: str = ClassName.COVID.value
LABEL_TO_CLASS: dict[str, str] = {
    Label.POSITIVE.value: ClassName.COVID.value,
    Label.NEGATIVE.value: ClassName.NORMAL.value,
}

#: Breath-hold series folders of a Negin-style patient.
SERIES: tuple[str, ...] = ("SR_2", "SR_3", "SR_4")

#: Negin convention: TIFF pixels are DICOM stored values with intercept -1024 (HU = value - 1024).
HU_OFFSET: int = 1024
SLICE_SHAPE: tuple[int, int] = (512, 512)

#: CT selection window of the COVID-CTset work: pixels below 300 in rows 240-340, cols 120-370.
DARK_THRESHOLD: int = 300
DARK_ROWS: tuple[int, int] = (240, 340)
DARK_COLS: tuple[int, int] = (120, 370)

#: Files allowed at the root of a batch besides patient folders.
PATIENT_DETAILS = "Patient_details.csv"
BATCH_INFO = "batch.json"
LABEL_COLUMN = "COVID-19 Infection"
PATIENT_COLUMN = "Patient ID"
PATIENT_DETAILS_COLUMNS: tuple[str, ...] = (
    "Patient ID",
    "SEX",
    "AGE",
    "Date",
    "COVID-19 Infection",
    "SR_2 Folder thickness(mm)",
    "SR_3 Folder thickness(mm)",
    "SR_4 Folder thickness(mm)",
)
DEFAULT_SOURCE = "negin"


def patient_key(source: str, patient_id: str) -> str:
    """Return the grouping key ``<source>/<patient_id>``, never a folder name alone.

    See docs/architecture.md, "The Negin-style batch contract".
    """
    return f"{source}/{patient_id}"


#: Headline metrics: the keys (``<unit>_<metric>``, ``covidct.evaluation.metric_key``) each
#: evaluation carries in XCom and MLflow, and the leaderboard's metrics, in column order.
HEADLINE_METRICS: tuple[str, ...] = (
    "image_accuracy",
    "image_covid_sensitivity",
    "image_covid_specificity",
    "image_covid_precision",
    "image_normal_precision",
    "image_balanced_accuracy",
    "image_roc_auc",
    "image_pr_auc",
    "patient_balanced_accuracy",
    "patient_accuracy",
)

# Storage areas (prefixes under the data-lake root); the keys under them:
# ``covidct.lake.layout``.
LANDING = "landing"
QUARANTINE = "quarantine"
CURATED = "curated"
FOLDS = "folds"
RUNS = "runs"
LEDGER = "ledger"
SEQUESTERED = "sequestered"
#: Where ``covidct land`` stages a batch before it becomes visible under ``landing/``.
STAGING = "staging"

# MLflow registry aliases.
ALIAS_CHAMPION = "champion"
ALIAS_CHALLENGER = "challenger"
ALIAS_BASELINE = "baseline-resnet152"
BASELINE_BACKBONE = "resnet152"

#: Names of the backbones of ``covidct.models.BACKBONES`` (the seed's seven and ResNet50V2-FPN),
#: the baseline first, in the order the DAG's run form lists them. Defined here, free of Keras,
#: so the DAG file can offer them without importing TensorFlow;
#: ``tests/dags/test_dag_integrity.py`` holds the DAG's form equal to the registry.
BACKBONE_NAMES: tuple[str, ...] = (
    BASELINE_BACKBONE,
    "resnet50",
    "vgg16",
    "vgg19",
    "inceptionv3",
    "xception",
    "resnet152_lstm",
    "resnet50v2_fpn",
)
#: Values of ``covidct.training.Profile``, for the DAG's run form (Keras-free; held equal to the
#: enum by ``tests/dags/test_dag_integrity.py``). ``paper`` is the seed's Table 5.
PROFILE_NAMES: tuple[str, ...] = ("paper", "gpu-fast", "cpu-smoke")


class Split(StrEnum):
    """Role of a patient (all its slices) in one fold: the ``split`` column of a fold manifest."""

    TRAIN = "train"
    VAL = "val"
    TEST = "test"
