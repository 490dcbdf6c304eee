"""DAG steps of model development: the MLflow experiment, one fold's training from the run form's
parameters (with the weights cache and checkpoints in the lake), its predictions and metrics on
the fold's splits, the figures and the Grad-CAM panel logged to MLflow.
"""

from __future__ import annotations

import io
import math
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from covidct.config import Settings
from covidct.lake.custody import CURATED_BATCHES
from covidct.lake.layout import RunLayout
from covidct.lake.storage import read_parquet
from covidct.pipeline.context import (
    CHECKPOINTS,
    WEIGHTS_DIR,
    lake,
    materialize,
    releases_models,
    run_key_of,
)
from covidct.safe_csv import csv_bytes, csv_text
from covidct.schema import (
    HEADLINE_METRICS,
    LABEL_TO_CLASS,
)
from covidct.training.spec import TrainingSpec

# --------------------------------------------------------------------------- MLflow helpers


def setup_mlflow(settings: Settings) -> str:
    """Point MLflow at the configured store; create the experiment and registered model once.

    Returns the experiment id. Run it before parallel tasks (MLflow's experiment creation races).
    """
    import mlflow

    from covidct.promotion import mlflow_ui, registry

    mlflow.set_tracking_uri(settings.mlflow.tracking_uri)
    mlflow.set_registry_uri(settings.mlflow.tracking_uri)
    experiment = mlflow.get_experiment_by_name(settings.mlflow.experiment)
    if experiment is None:  # marked as model training, so the MLflow UI opens on the runs
        experiment_id = mlflow.create_experiment(
            settings.mlflow.experiment,
            artifact_location=settings.mlflow.artifact_root,
            tags=mlflow_ui.model_training_tags(),
        )
    else:
        experiment_id = experiment.experiment_id
        mlflow_ui.mark_model_training(mlflow.MlflowClient(), experiment_id)
    mlflow.set_experiment(experiment_id=experiment_id)
    registry.ensure_registered_model(
        registry.client(settings.mlflow.tracking_uri), settings.mlflow.model_name
    )
    return str(experiment_id)


# --------------------------------------------------------------------------- train / evaluate


def training_config(spec: TrainingSpec | Mapping[str, Any]) -> Any:
    """The ``TrainingConfig`` of a run's training spec (a :class:`TrainingSpec` or its
    :meth:`~TrainingSpec.to_dict` from XCom or a record; ValueError names a bad field).

    ``weights`` (None or ``"imagenet"``) is taken as it is; the cache it reads from is the
    worker's (:func:`weights_cache`), added by :func:`train`.
    """
    from covidct import training

    return training.TrainingConfig.from_spec(TrainingSpec.of(spec))


def weights_cache(settings: Settings) -> Any:
    """The :class:`~covidct.models.WeightsCache` of ``settings`` (copies go to the work dir)."""
    from covidct.models.weights import WeightsCache

    return WeightsCache(
        settings.weights.cache,
        s3_endpoint_url=settings.weights.s3_endpoint_url,
        local_dir=settings.work_dir / WEIGHTS_DIR,
    )


def checkpoint_prefix(dag_run_id: str, backbone: str, fold: int) -> str:
    """Lake folder of one training task's checkpoint: ``runs/<run>/checkpoints/<bb>/fold-<k>``."""
    return RunLayout.of(dag_run_id).checkpoints(backbone, fold)


def _split(frame: pd.DataFrame, split: str) -> pd.DataFrame:
    return frame[frame["split"] == split].reset_index(drop=True)


@releases_models(keep_compiled=True)
def train(
    settings: Settings,
    backbone: str,
    fold_spec: Mapping[str, Any],
    train_params: TrainingSpec | Mapping[str, Any],
    dag_run_id: str,
) -> dict[str, Any]:
    """Train one backbone on one fold; log it to MLflow. Resumes from its last checkpoint.

    ``train_params``: the run's :class:`TrainingSpec` or its dict (the plan's XCom; a missing
    or unknown field is a ValueError); ``weights`` ``"imagenet"`` reads the configured weights
    cache, ``COVIDCT_WEIGHTS_CACHE``. Every epoch's checkpoint is mirrored to the lake
    under :func:`checkpoint_prefix`, so a retry on any worker resumes from the last epoch; the
    last epoch stays there as the run's artifact, the worker's local copy is removed after
    success. Returns ``{"backbone", "fold", "run_id", "model_uri", "val_accuracy", "steps",
    "final_loss", "fold_key",
    "fold_digest", "dataset_version", "train_params", "checkpoint_uri"}`` (``train_params``:
    ``TrainingSpec.to_dict()``); ``val_accuracy`` is
    the last epoch's, None for a profile that does not validate during training (cpu-smoke).
    """
    import mlflow

    from covidct import training
    from covidct.data import fold_manifests

    spec = TrainingSpec.of(train_params)  # before any work: a bad spec fails here
    setup_mlflow(settings)
    store = lake(settings)
    fold = int(fold_spec["fold"])
    frame = read_parquet(store, fold_spec["key"])
    image_root = materialize(store, CURATED_BATCHES, settings)
    config = replace(training_config(spec), weights_cache=weights_cache(settings))
    local_dir = settings.work_dir / CHECKPOINTS / run_key_of(dag_run_id) / backbone / f"fold-{fold}"
    mirror = training.CheckpointMirror(
        store, checkpoint_prefix(dag_run_id, backbone, fold), local_dir
    )
    mirror.sync()
    tags = {
        "dag_run_id": dag_run_id,
        "backbone": backbone,
        "fold": str(fold),
        "dataset_version": fold_spec["dataset_version"],
        "fold_manifest_digest": fold_spec["digest"],
    }
    with mlflow.start_run(run_name=f"{backbone}-fold{fold}", tags=tags) as run:
        fold_manifests.log_fold_dataset(_split(frame, "train"), name=f"fold-{fold}-train")
        fold_manifests.log_fold_dataset(
            _split(frame, "val"), name=f"fold-{fold}-val", context="validation"
        )
        fold_manifests.log_fold_dataset(
            _split(frame, "test"), name=f"fold-{fold}-test", context="test"
        )
        try:
            result = training.train_model(
                backbone,
                _split(frame, "train"),
                _split(frame, "val"),
                image_root=image_root,
                config=config,
                checkpoint_dir=local_dir,
                callbacks=[mirror],
                log_datasets=False,  # the fold manifests are logged above, with their digests
                reuse_compiled=True,  # dags test: the next fold reuses the compiled network
            )
        except training.CheckpointMismatchError as error:
            raise training.CheckpointMismatchError(
                f"{error}; its mirrored copy is {mirror.store.uri(mirror.prefix)}"
            ) from error
        run_id = run.info.run_id
    shutil.rmtree(local_dir, ignore_errors=True)  # the lake holds the last epoch
    return {
        "backbone": backbone,
        "fold": fold,
        "run_id": run_id,
        "model_uri": result.model_uri,
        "val_accuracy": finite_or_none((result.history.get("val_accuracy") or [math.nan])[-1]),
        "steps": int(result.total_steps),
        "final_loss": finite_or_none((result.history.get("loss") or [math.nan])[-1]),
        "fold_key": fold_spec["key"],
        "fold_digest": fold_spec["digest"],
        "dataset_version": fold_spec["dataset_version"],
        "train_params": spec.to_dict(),
        "checkpoint_uri": mirror.store.uri(mirror.prefix),
    }


def predictions_frame(
    frame: pd.DataFrame, p_covid: Sequence[float] | Any, fold: int | None = None
) -> pd.DataFrame:
    """Build the predictions table (``patient_id, y_true, p_covid, fold, slice_id, selected,
    series``).

    ``frame``: fold-manifest rows (``patient_key``, ``label``, ``path``, ``series`` and
    ``selected``, the open-lung mark the dataset manifest got at curation; fold manifests and
    the sequestered table hold only selected rows). A frame without ``selected`` (a manifest
    curated before selection became data) is marked here by the same rule
    (:func:`covidct.data.selection.mark_selected`).
    """
    from covidct.data import selection

    out = pd.DataFrame(
        {
            "patient_id": frame["patient_key"].astype(str),
            "y_true": frame["label"].map(LABEL_TO_CLASS),
            "p_covid": pd.Series(p_covid, dtype="float64"),
            "slice_id": frame["path"].astype(str),
        }
    )
    if fold is not None:
        out["fold"] = fold
    marked = (
        frame[selection.SELECTED_COLUMN]
        if selection.SELECTED_COLUMN in frame.columns
        else selection.mark_selected(frame)
    )
    out["selected"] = marked.to_numpy(dtype=bool)
    out["series"] = frame["series"].to_numpy()  # an axis of covidct.evaluation.subgroups
    return out


def predict_split(
    settings: Settings,
    model: Any,
    frame: pd.DataFrame,
    train_params: TrainingSpec | Mapping[str, Any],
) -> pd.DataFrame:
    """Predict p(COVID) for every slice of ``frame`` (a fold-manifest split), preprocessed as
    the model's training spec ``train_params`` says (a :class:`TrainingSpec` or its dict)."""
    from covidct import training

    store = lake(settings)
    image_root = materialize(store, CURATED_BATCHES, settings)
    config = training_config(train_params)
    scores = training.predict_p_covid(
        model, list(frame["path"]), image_root=image_root, config=config
    )
    return predictions_frame(frame, scores)


@releases_models(keep_loaded=True)  # dags test: the next fold's evaluation reuses the network
def evaluate(settings: Settings, trained: Mapping[str, Any], dag_run_id: str) -> dict[str, Any]:
    """Evaluate one trained model on its fold's unbalanced test set; log metrics and plots.

    The patient-level threshold is chosen on the fold's validation split. Returns ``trained``
    plus ``{"predictions_key", "metrics"}`` (headline metrics, fractions).
    """
    import mlflow

    from covidct import evaluation, training

    setup_mlflow(settings)
    store = lake(settings)
    frame = read_parquet(store, trained["fold_key"])
    model = training.load_logged_model(trained["model_uri"])
    fold = int(trained["fold"])
    spec = TrainingSpec.from_dict(trained["train_params"])
    val = predict_split(settings, model, _split(frame, "val"), spec)
    test = predict_split(settings, model, _split(frame, "test"), spec)
    test["fold"] = fold
    threshold = evaluation.choose_patient_threshold(val)
    test["patient_threshold"] = threshold
    key = RunLayout.of(dag_run_id).predictions(trained["backbone"], fold)
    store.write_bytes(key, csv_bytes(test))
    metrics = headline_metrics(test, threshold)
    gradcam_key = RunLayout.of(dag_run_id).gradcam(trained["backbone"], fold)
    with mlflow.start_run(run_id=trained["run_id"]):
        finite = {f"test_{k}": v for k, v in metrics.items() if v is not None}
        # the final model on the validation patients (the threshold was chosen there)
        finite |= {
            f"val_{k}": v for k, v in headline_metrics(val, threshold).items() if v is not None
        }
        mlflow.log_metrics(finite)
        mlflow.log_param("patient_threshold", threshold)
        mlflow.log_text(csv_text(test), "predictions/test.csv")
        log_figures(test)
        store.write_bytes(gradcam_key, gradcam_png(settings, model, test, spec))
        mlflow.log_artifact(str(_local_copy(store, gradcam_key, settings)), "plots")
    return {**trained, "predictions_key": key, "gradcam_key": gradcam_key, "metrics": metrics}


def _local_copy(store: Any, key: str, settings: Settings) -> Path:
    path = settings.work_dir / "cache" / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(store.read_bytes(key))
    return path


def gradcam_png(
    settings: Settings,
    model: Any,
    test: pd.DataFrame,
    train_params: TrainingSpec | Mapping[str, Any],
) -> bytes:
    """Grad-CAM overlays (PNG bytes) for a sample of true/false positives/negatives of ``test``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from covidct.evaluation import explain

    config = training_config(train_params)
    image_root = materialize(lake(settings), CURATED_BATCHES, settings)
    figure = explain.gradcam_for_predictions(
        model, test, image_root=image_root, transform=config.transform,
        image_size=config.image_size, n_per_cell=2,
    )  # fmt: skip
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()


def headline_metrics(
    predictions: pd.DataFrame, patient_threshold: float | None
) -> dict[str, float]:
    """Return the :data:`HEADLINE_METRICS` of one prediction table (fractions, NaN if undefined).

    ``patient_threshold`` None uses the table's ``patient_threshold`` column (one per fold).
    """
    from covidct import evaluation

    every = evaluation.headline_metrics(predictions, patient_threshold=patient_threshold)
    return {name: finite_or_none(every[name]) for name in HEADLINE_METRICS if name in every}


def finite_or_none(value: Any) -> Any:
    """JSON has no NaN: an undefined metric (one class only, say) travels as None."""
    number = float(value)
    return number if math.isfinite(number) else None


def pooled_metrics(predictions: pd.DataFrame) -> dict[str, float]:
    """Headline metrics of predictions pooled over folds (each fold's own patient threshold)."""
    return headline_metrics(predictions, None)


def log_figures(predictions: pd.DataFrame) -> None:
    """Log the confusion matrix, ROC and PR curves of ``predictions`` to the active MLflow run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mlflow

    from covidct import evaluation

    for name, plot in (
        ("confusion_matrix.png", evaluation.plot_confusion_matrix),
        ("roc.png", evaluation.plot_roc_curves),
        ("pr.png", evaluation.plot_pr_curve),
    ):
        figure = plot(predictions)
        mlflow.log_figure(figure, f"plots/{name}")
        plt.close(figure)


def pooled_predictions(
    store: Any, evaluations: Sequence[Mapping[str, Any]], backbone: str
) -> pd.DataFrame:
    """Concatenate a backbone's test predictions over folds.

    A normal patient can sit in the test set of several folds, so the unit of pooling and of the
    bootstrap is the (fold, patient) pair: ``patient_id`` becomes ``fold-<k>/<patient_key>``.
    """
    frames = []
    for item in sorted(evaluations, key=lambda e: int(e["fold"])):
        if item["backbone"] != backbone:
            continue
        frame = pd.read_csv(io.BytesIO(store.read_bytes(item["predictions_key"])))
        frame["patient_id"] = f"fold-{int(item['fold'])}/" + frame["patient_id"].astype(str)
        frames.append(frame)
    if not frames:
        raise ValueError(f"no evaluated fold for backbone {backbone}")
    return pd.concat(frames, ignore_index=True)
