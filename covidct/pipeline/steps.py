"""The retraining workflow's steps, one function per DAG task (DAG files only wire these).

Every step takes the :class:`~covidct.config.Settings`, plain ids and small dicts, and returns a
small JSON-safe dict for XCom (URIs, ids, metric figures; never data). A step's run outputs go
under ``runs/<run_key>/`` (keyed by the DAG run), so a retried step overwrites its own output;
``curate`` and ``make_folds`` write the lake's shared areas (``curated/``, ``folds/``,
``sequestered/``; see docs/architecture.md).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from covidct.config import AlertChannel, Settings
from covidct.lake.custody import CURATED_BATCHES
from covidct.lake.storage import read_parquet, write_parquet
from covidct.promotion import alerts as alerts_mod
from covidct.schema import (
    ALIAS_BASELINE,
    ALIAS_CHALLENGER,
    BASELINE_BACKBONE,
    CURATED,
    FOLDS,
    HEADLINE_METRICS,
    LABEL_TO_CLASS,
    LANDING,
    RUNS,
)

logger = logging.getLogger(__name__)

DAG_ID = "covidct_retraining"
HISTORY_PREFIX = f"{RUNS}/history"
#: Folder name of training checkpoints, in the lake (under ``runs/<run>/``) and the work dir.
CHECKPOINTS = "checkpoints"
#: Work-dir folder that holds copies of ImageNet weights read from a remote cache.
WEIGHTS_DIR = "weights"


def run_key_of(dag_run_id: str) -> str:
    """Return a storage-safe key for a DAG run id (``manual__2026-...`` -> ``manual__2026-...``)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", dag_run_id)


def lake(settings: Settings) -> Any:
    """Open the data lake's object store."""
    from covidct.lake import backends

    return backends.open_store(settings.lake.uri, endpoint_url=settings.lake.s3_endpoint_url)


def materialize(store: Any, prefix: str, settings: Settings) -> Path:
    """Return a local folder holding ``prefix`` (the folder itself on a local lake, else a copy)."""
    local_root = getattr(store, "root", None)
    if local_root is not None:
        return Path(local_root) / prefix
    return Path(store.download_prefix(prefix, settings.work_dir / "cache" / prefix))


def notifier(settings: Settings) -> alerts_mod.Notifier:
    """Return the configured notifier (the embedded JSONL one in the library)."""
    if settings.alerts.channel != AlertChannel.JSONL:
        raise ValueError(
            f"alert channel {settings.alerts.channel.value} is delivered by the Airflow plugin "
            "(plugins/covidct_alerting.py); the library only writes alerts.jsonl"
        )
    return alerts_mod.JsonlNotifier(settings.alerts.jsonl_path)


def send_alert(
    settings: Settings,
    kind: alerts_mod.AlertKind,
    severity: alerts_mod.Severity,
    summary: str,
    details: Mapping[str, Any],
    *,
    dag_run_id: str = "",
    mlflow_run_id: str = "",
    send: Any = None,
) -> dict[str, Any]:
    """Build an alert with links to the Airflow run and the MLflow run and deliver it."""
    airflow_url = (
        f"{settings.alerts.airflow_url}/dags/{DAG_ID}/runs/{dag_run_id}" if dag_run_id else ""
    )
    mlflow_url = f"{settings.alerts.mlflow_url}/#/runs/{mlflow_run_id}" if mlflow_run_id else ""
    alert = alerts_mod.Alert(
        kind, severity, summary, dict(details), DAG_ID, dag_run_id, airflow_url, mlflow_url
    )
    (send or notifier(settings).send)(alert)
    return alert.to_dict()


def _write_json(store: Any, key: str, payload: Any) -> str:
    store.write_bytes(key, json.dumps(payload, indent=2, sort_keys=True, default=str).encode())
    return key


# --------------------------------------------------------------------------- discover / validate


def discover(settings: Settings) -> list[str]:
    """Return the ids of batches in ``landing/`` whose content hash is not yet in the ledger."""
    from covidct.lake import custody

    batches = custody.discover_new_batches(lake(settings))
    logger.info("new batches: %s", batches or "none")
    return batches


def validate(settings: Settings, batch_id: str, dag_run_id: str) -> dict[str, Any]:
    """Validate one landed batch; save its report and manifest under ``runs/<run>/validation/``.

    Returns ``{"batch_id", "passed", "reasons", "report_dir", "manifest_key", "n_slices"}``.
    """
    from covidct.batch import validation, validation_report
    from covidct.lake import curation

    store = lake(settings)
    batch_dir = materialize(store, f"{LANDING}/{batch_id}", settings)
    report_dir = settings.work_dir / "reports" / run_key_of(dag_run_id) / batch_id
    verdict = validation.validate_batch(
        batch_dir,
        known_labels=curation.known_labels(store),
        known_hashes=curation.known_hashes(store, batch_id),
        report_dir=report_dir,
        progress=False,
    )
    prefix = f"{RUNS}/{run_key_of(dag_run_id)}/validation/{batch_id}"
    manifest_key = write_parquet(store, f"{prefix}/manifest.parquet", verdict.manifest)
    _write_json(store, f"{prefix}/verdict.json", verdict.to_dict())
    logger.info("batch %s: %s", batch_id, validation_report.format_verdict(verdict))
    return {
        "batch_id": batch_id,
        "passed": bool(verdict.passed),
        "reasons": list(verdict.reasons),
        "report_dir": str(report_dir),
        "manifest_key": manifest_key,
        "n_slices": int(verdict.n_slices),
    }


def quarantine(
    settings: Settings, verdict: Mapping[str, Any], dag_run_id: str, send: Any = None
) -> dict[str, Any]:
    """Move a failed batch to ``quarantine/`` byte-identical with its report, and alert.

    A passed batch is left alone (returns ``{"quarantined": False}``). ``send``: the alert
    delivery function (the Airflow plugin's, for Slack/SMTP); None writes ``alerts.jsonl``.
    """
    from covidct.lake import curation

    if verdict["passed"]:
        return {"batch_id": verdict["batch_id"], "quarantined": False}
    store = lake(settings)
    where = curation.quarantine_batch(
        store, verdict["batch_id"], dict(verdict), Path(verdict["report_dir"])
    )
    send_alert(
        settings,
        alerts_mod.AlertKind.BATCH_QUARANTINED,
        alerts_mod.Severity.WARNING,
        f"batch {verdict['batch_id']} quarantined: {len(verdict['reasons'])} failed check(s)",
        {"batch_id": verdict["batch_id"], "reasons": verdict["reasons"][:20], "where": where},
        dag_run_id=dag_run_id,
        send=send,
    )
    return {"batch_id": verdict["batch_id"], "quarantined": True, "where": where}


# --------------------------------------------------------------------------- curate / folds


def dataset_digest(manifest: pd.DataFrame) -> str:
    """Order-independent content hash over (patient_key, path, sha256, label) of a manifest."""
    rows = manifest[["patient_key", "path", "sha256", "label"]].astype(str)
    lines = sorted("\t".join(row) for row in rows.itertuples(index=False, name=None))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def curate(
    settings: Settings, verdicts: Sequence[Mapping[str, Any]], dag_run_id: str
) -> dict[str, Any]:
    """Accept every passed batch into ``curated/`` and write the dataset version's manifest.

    The manifest covers every batch accepted so far (this run's and earlier ones); its paths are
    relative to ``curated/batches/``. Returns ``{"dataset_version", "manifest_key", "n_slices",
    "n_patients", "accepted"}``; ``dataset_version`` is None when nothing was ever accepted.
    """
    from covidct.lake import curation

    store = lake(settings)
    accepted = []
    for verdict in verdicts:
        if not verdict["passed"]:
            continue
        batch_id = verdict["batch_id"]
        manifest = read_parquet(store, verdict["manifest_key"])
        curation.accept_batch(store, batch_id, manifest=manifest, info={"dag_run_id": dag_run_id})
        accepted.append(batch_id)
    manifest = curation.accepted_manifests(store)
    if manifest.empty:
        return {"dataset_version": None, "accepted": accepted, "n_slices": 0, "n_patients": 0}
    if "excluded" in manifest.columns:
        manifest = manifest[~manifest["excluded"].fillna(False).astype(bool)]
    manifest = manifest[manifest["read_error"].isna()].reset_index(drop=True)
    manifest["path"] = manifest["batch_id"] + "/" + manifest["path"]
    version = dataset_digest(manifest)
    manifest_key = write_parquet(store, f"{CURATED}/{version}/manifest.parquet", manifest)
    return {
        "dataset_version": version,
        "manifest_key": manifest_key,
        "n_slices": int(len(manifest)),
        "n_patients": int(manifest["patient_key"].nunique()),
        "accepted": accepted,
    }


def make_folds(
    settings: Settings, curated: Mapping[str, Any], k: int, seed: int, dag_run_id: str = "manual"
) -> list[dict]:
    """Sequester patients, then build patient-level folds of the development patients.

    Sequestration (:mod:`covidct.data.sequester`) comes first and does not depend on ``k`` or
    ``seed``; the sequestered patients' slices go to ``curated/<version>/sequestered.parquet``
    and into no fold. Development patients keep their earlier folds. Returns one ``{"fold",
    "key", "digest", "dataset_version"}`` per fold. Raises
    :class:`~covidct.data.sequester.SequesterRuleChanged` when the configured share differs from
    the lake's lock.
    """
    from covidct.data import fold_manifests, folds, sequester
    from covidct.evaluation import confirmation

    store = lake(settings)
    version = curated["dataset_version"]
    manifest = read_parquet(store, curated["manifest_key"])
    rule = sequester.SequesterRule(share=settings.gate.sequestered_share)
    lock, assignment = sequester.update(store, manifest, rule, dag_run_id=dag_run_id)
    development, sequestered = sequester.roles_of(assignment)
    held = manifest["patient_key"].astype(str).isin(sequestered)
    write_parquet(store, confirmation.sequestered_key(version), manifest[held])
    n_held = int(manifest.loc[held, "patient_key"].nunique())
    manifest = manifest[~held].reset_index(drop=True)
    logger.info(
        "sequestration epoch %s: %d development, %d sequestered patients", lock["epoch"],
        manifest["patient_key"].nunique(), n_held,
    )  # fmt: skip
    previous_key = f"{FOLDS}/assignment-k{k}-seed{seed}.parquet"
    previous = read_parquet(store, previous_key) if store.exists(previous_key) else None
    if previous is not None:  # a re-lock may have sequestered patients that had folds
        previous = previous[previous["patient_key"].astype(str).isin(development)]
    try:
        assignment_k = folds.assign_folds(manifest, k=k, seed=seed, previous=previous)
    except ValueError as error:
        raise ValueError(
            f"dataset {version}: {error} (development patients only: {n_held} of the patients "
            f"are sequestered, share {rule.share:g}; see `covidct sequester show`)"
        ) from error
    write_parquet(store, previous_key, assignment_k.splits)
    specs = []
    for fold in assignment_k.folds:
        frame = assignment_k.fold_manifest(fold)
        key = write_parquet(store, f"{FOLDS}/{version}/fold-{fold}.parquet", frame)
        digest = fold_manifests.manifest_digest(frame)
        specs.append({"fold": fold, "key": key, "digest": digest, "dataset_version": version})
    return specs


# --------------------------------------------------------------------------- MLflow helpers


def setup_mlflow(settings: Settings) -> str:
    """Point MLflow at the configured store; create the experiment and registered model once.

    Returns the experiment id. Run it before parallel tasks (MLflow's experiment creation races).
    """
    import mlflow

    from covidct.promotion import registry

    mlflow.set_tracking_uri(settings.mlflow.tracking_uri)
    mlflow.set_registry_uri(settings.mlflow.tracking_uri)
    experiment = mlflow.get_experiment_by_name(settings.mlflow.experiment)
    if experiment is None:
        experiment_id = mlflow.create_experiment(
            settings.mlflow.experiment, artifact_location=settings.mlflow.artifact_root
        )
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    registry.ensure_registered_model(
        registry.client(settings.mlflow.tracking_uri), settings.mlflow.model_name
    )
    return str(experiment_id)


# --------------------------------------------------------------------------- train / evaluate


def config_from_params(train_params: Mapping[str, Any]) -> Any:
    """Return the ``TrainingConfig`` of a profile name plus the DAG form's overrides.

    ``weights`` (None or ``"imagenet"``) is taken as it is; the cache it reads from is the
    worker's (:func:`weights_cache`), added by :func:`train`.
    """
    from covidct import training

    overrides: dict[str, Any] = {
        key: int(train_params[key])
        for key in ("epochs", "steps_per_epoch", "image_size", "batch_size")
        if train_params.get(key) is not None
    }
    if train_params.get("weights") is not None:
        overrides["weights"] = str(train_params["weights"])
    return training.TrainingConfig.from_profile(train_params.get("profile", "paper"), **overrides)


def weights_cache(settings: Settings) -> Any:
    """The :class:`~covidct.models.WeightsCache` of ``settings`` (copies go to the work dir)."""
    from covidct.models import WeightsCache

    return WeightsCache(
        settings.weights.cache,
        s3_endpoint_url=settings.weights.s3_endpoint_url,
        local_dir=settings.work_dir / WEIGHTS_DIR,
    )


def checkpoint_prefix(dag_run_id: str, backbone: str, fold: int) -> str:
    """Lake folder of one training task's checkpoint: ``runs/<run>/checkpoints/<bb>/fold-<k>``."""
    return f"{RUNS}/{run_key_of(dag_run_id)}/{CHECKPOINTS}/{backbone}/fold-{fold}"


def _split(frame: pd.DataFrame, split: str) -> pd.DataFrame:
    return frame[frame["split"] == split].reset_index(drop=True)


def train(
    settings: Settings,
    backbone: str,
    fold_spec: Mapping[str, Any],
    train_params: Mapping[str, Any],
    dag_run_id: str,
) -> dict[str, Any]:
    """Train one backbone on one fold; log it to MLflow. Resumes from its last checkpoint.

    ``train_params``: ``profile`` plus optional overrides ``epochs``, ``steps_per_epoch``,
    ``image_size``, ``batch_size`` and ``weights`` (``"imagenet"``: read from the configured
    weights cache, ``COVIDCT_WEIGHTS_CACHE``). Every epoch's checkpoint is mirrored to the lake
    under :func:`checkpoint_prefix`, so a retry on any worker resumes from the last epoch; the
    last epoch stays there as the run's artifact, the worker's local copy is removed after
    success. Returns ``{"backbone", "fold", "run_id", "model_uri", "val_accuracy", "fold_key",
    "fold_digest", "dataset_version", "train_params", "checkpoint_uri"}``; ``val_accuracy`` is
    the last epoch's, None for a profile that does not validate during training (cpu-smoke).
    """
    import mlflow

    from covidct import training
    from covidct.data import fold_manifests

    setup_mlflow(settings)
    store = lake(settings)
    fold = int(fold_spec["fold"])
    frame = read_parquet(store, fold_spec["key"])
    image_root = materialize(store, CURATED_BATCHES, settings)
    config = replace(config_from_params(train_params), weights_cache=weights_cache(settings))
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
        "val_accuracy": _finite_or_none((result.history.get("val_accuracy") or [math.nan])[-1]),
        "fold_key": fold_spec["key"],
        "fold_digest": fold_spec["digest"],
        "dataset_version": fold_spec["dataset_version"],
        "train_params": dict(train_params),
        "checkpoint_uri": mirror.store.uri(mirror.prefix),
    }


def predictions_frame(
    frame: pd.DataFrame, p_covid: Sequence[float] | Any, fold: int | None = None
) -> pd.DataFrame:
    """Build the predictions table (``patient_id, y_true, p_covid, fold, slice_id, selected``).

    ``frame``: fold-manifest rows (``patient_key``, ``label``, ``path``, ``series``,
    ``dark_pixels``). ``selected`` marks open-lung slices by the COVID-CTset selection algorithm,
    run per (patient, series) sequence.
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
    selected = pd.Series(False, index=frame.index)
    for _, sequence in frame.groupby(["patient_key", "series"], sort=False):
        mask = selection.select_open_lung(sequence["dark_pixels"].astype(int).tolist())
        selected.loc[sequence.index] = mask
    out["selected"] = selected.to_numpy(dtype=bool)
    return out


def predict_split(
    settings: Settings, model: Any, frame: pd.DataFrame, train_params: Mapping[str, Any]
) -> pd.DataFrame:
    """Predict p(COVID) for every slice of ``frame`` (a fold-manifest split)."""
    from covidct import training

    store = lake(settings)
    image_root = materialize(store, CURATED_BATCHES, settings)
    config = config_from_params(train_params)
    scores = training.predict_p_covid(
        model, list(frame["path"]), image_root=image_root, config=config
    )
    return predictions_frame(frame, scores)


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
    training.register_custom_objects()
    model = mlflow.keras.load_model(trained["model_uri"])
    fold = int(trained["fold"])
    val = predict_split(settings, model, _split(frame, "val"), trained["train_params"])
    test = predict_split(settings, model, _split(frame, "test"), trained["train_params"])
    test["fold"] = fold
    threshold = evaluation.choose_patient_threshold(val)
    test["patient_threshold"] = threshold
    prefix = f"{RUNS}/{run_key_of(dag_run_id)}/predictions"
    key = f"{prefix}/{trained['backbone']}-fold{fold}.csv"
    store.write_bytes(key, test.to_csv(index=False).encode())
    metrics = headline_metrics(test, threshold)
    gradcam_key = f"{RUNS}/{run_key_of(dag_run_id)}/gradcam/{trained['backbone']}-fold{fold}.png"
    with mlflow.start_run(run_id=trained["run_id"]):
        finite = {f"test_{k}": v for k, v in metrics.items() if v is not None}
        # the final model on the validation patients (the threshold was chosen there)
        finite |= {
            f"val_{k}": v for k, v in headline_metrics(val, threshold).items() if v is not None
        }
        mlflow.log_metrics(finite)
        mlflow.log_param("patient_threshold", threshold)
        mlflow.log_text(test.to_csv(index=False), "predictions/test.csv")
        log_figures(test)
        store.write_bytes(gradcam_key, gradcam_png(settings, model, test, trained["train_params"]))
        mlflow.log_artifact(str(_local_copy(store, gradcam_key, settings)), "plots")
    return {**trained, "predictions_key": key, "gradcam_key": gradcam_key, "metrics": metrics}


def _local_copy(store: Any, key: str, settings: Settings) -> Path:
    path = settings.work_dir / "cache" / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(store.read_bytes(key))
    return path


def gradcam_png(
    settings: Settings, model: Any, test: pd.DataFrame, train_params: Mapping[str, Any]
) -> bytes:
    """Grad-CAM overlays (PNG bytes) for a sample of true/false positives/negatives of ``test``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from covidct.evaluation import explain

    config = config_from_params(train_params)
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
    return {name: _finite_or_none(every[name]) for name in HEADLINE_METRICS if name in every}


def _finite_or_none(value: Any) -> Any:
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


# --------------------------------------------------------------------------- aggregate / gate


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


def leaderboard(evaluations: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Backbone x metric table: mean and standard deviation over folds (rows sorted by name).

    Columns ``<metric>_mean`` and ``<metric>_sd`` for each headline metric, plus ``folds``.
    """
    rows = [{"backbone": e["backbone"], "fold": e["fold"], **e["metrics"]} for e in evaluations]
    frame = pd.DataFrame(rows)
    metrics = [m for m in HEADLINE_METRICS if m in frame.columns]
    frame[metrics] = frame[metrics].astype("float64")
    grouped = frame.groupby("backbone")
    table = (
        grouped[metrics]
        .mean()
        .add_suffix("_mean")
        .join(grouped[metrics].std(ddof=1).add_suffix("_sd"))
    )
    table["folds"] = grouped.size()
    return table.sort_index()


def choose_candidate(table: pd.DataFrame, primary_metric: str) -> str:
    """Best backbone by mean primary metric; ties broken by mean image ROC AUC, then by name."""
    keys = [f"{primary_metric}_mean", "image_roc_auc_mean"]
    ranked = table.reset_index().sort_values(
        keys + ["backbone"], ascending=[False, False, True], na_position="last"
    )
    return str(ranked.iloc[0]["backbone"])


def aggregate(
    settings: Settings, evaluations: Sequence[Mapping[str, Any]], dag_run_id: str
) -> dict[str, Any]:
    """Write the leaderboard (mean ± sd over folds) and name the candidate."""
    store = lake(settings)
    evaluations = list(evaluations)
    table = leaderboard(evaluations)
    candidate = choose_candidate(table, settings.gate.primary_metric)
    prefix = f"{RUNS}/{run_key_of(dag_run_id)}"
    store.write_bytes(f"{prefix}/leaderboard.csv", table.to_csv().encode())
    pooled = {}
    for backbone in table.index:
        frame = pooled_predictions(store, evaluations, str(backbone))
        pooled[str(backbone)] = pooled_metrics(frame)
    _write_json(store, f"{prefix}/pooled_metrics.json", pooled)
    return {
        "leaderboard": json.loads(table.reset_index().to_json(orient="records")),
        "pooled": pooled,
        "candidate": candidate,
        "evaluations": evaluations,
    }


def confirm(settings: Settings, aggregated: Mapping[str, Any], dag_run_id: str) -> dict[str, Any]:
    """Register the deployables and score them and the champion on the sequestered patients.

    See :func:`covidct.evaluation.confirmation.confirm`.
    """
    from covidct.evaluation import confirmation

    setup_mlflow(settings)
    return confirmation.confirm(settings, aggregated, dag_run_id)


def _sequestered_predictions(store: Any, record: Mapping[str, Any]) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(store.read_bytes(record["predictions_key"])))


def _tag_version(
    settings: Settings, mlflow_client: Any, version: str, status: str, metrics: Mapping[str, Any]
) -> None:
    tags = {"gate_verdict": status}
    tags |= {f"metric.{k}": "nan" if v is None else f"{v:.4f}" for k, v in metrics.items()}
    for key, value in tags.items():
        mlflow_client.set_model_version_tag(settings.mlflow.model_name, version, key, value)


def gate_and_promote(
    settings: Settings, confirmed: Mapping[str, Any], dag_run_id: str, send: Any = None
) -> dict[str, Any]:
    """Judge the candidate on the sequestered patients (``covidct.promotion.gate``); move
    ``@champion``.

    ``confirmed``: the output of :func:`confirm`. Every compared model's overlap with the
    sequestered patients it is scored on is counted (the gate refuses unless it is 0). Returns
    ``{"verdict", "candidate", "version", "champion_before", "champion_after",
    "champion_metrics", "sequestered_patients", "comparisons", "evaluated_model_digest",
    "registered_model_digest", ...}``; writes ``runs/<run>/gate.json`` and a history record.
    """
    from covidct import evaluation
    from covidct.promotion import gate, registry

    setup_mlflow(settings)
    store = lake(settings)
    mlflow_client = registry.client(settings.mlflow.tracking_uri)
    candidate = confirmed["candidate"]
    deployables = confirmed["deployables"]
    mine = deployables[candidate]
    sequestered = confirmed["sequestered"]
    resumed = registry.resume_promotion(
        mlflow_client, store, settings.mlflow.model_name, dag_run_id
    )
    if resumed is not None:  # a retry after a crash mid-promotion: finish, never re-judge
        return _record_gate(
            store,
            dag_run_id,
            {
                "verdict": {"passed": True, "status": "resumed", "reasons": [resumed["reason"]]},
                "candidate": candidate,
                "version": resumed["version"],
                "champion_before": resumed["previous_champion"],
                "champion_after": resumed["version"],
                "champion_metrics": resumed["figures"],
            },
        )
    champion = registry.get_champion(mlflow_client, settings.mlflow.model_name)
    predictions = {b: _sequestered_predictions(store, r) for b, r in deployables.items()}

    def bootstrap(a: pd.DataFrame, b: pd.DataFrame, metric: str) -> tuple[float, float, float]:
        result = evaluation.paired_bootstrap(
            a, b, metric, n_boot=settings.gate.n_boot, seed=settings.gate.seed
        )
        return result.as_tuple()

    comparisons = {}
    if candidate != BASELINE_BACKBONE and BASELINE_BACKBONE in deployables:
        base = deployables[BASELINE_BACKBONE]
        comparisons["baseline"] = gate.compare(
            "baseline", f"{BASELINE_BACKBONE} v{base['version']}", predictions[candidate],
            predictions[BASELINE_BACKBONE], settings=settings.gate, paired_bootstrap=bootstrap,
            overlap_patients=mine["overlap_patients"] + base["overlap_patients"],
        )  # fmt: skip
    champion_metrics_now: dict[str, float] = {}
    rival = confirmed.get("champion")
    if rival is not None:
        rival_frame = _sequestered_predictions(store, rival)
        ours = predictions[candidate]
        ours = ours[ours["patient_id"].isin(set(rival_frame["patient_id"]))]
        champion_metrics_now = headline_metrics(rival_frame, None)
        comparisons["champion"] = gate.compare(
            "champion", f"v{rival['version']} ({rival['backbone']})", ours, rival_frame,
            settings=settings.gate, paired_bootstrap=bootstrap,
            overlap_patients=mine["overlap_patients"] + rival["overlap_patients"],
        )  # fmt: skip
    figures = {name: headline_metrics(frame, None) for name, frame in predictions.items()}
    if rival is not None:
        figures["champion"] = champion_metrics_now
    candidate_metrics = figures[candidate]
    verdict = gate.decide(
        candidate, comparisons, has_champion=champion.version is not None,
        settings=settings.gate, figures=candidate_metrics,
    )  # fmt: skip
    if confirmed.get("notes"):
        verdict = replace(verdict, reasons=(*confirmed["notes"], *verdict.reasons))
    altered = [
        f"{name} v{record['version']}"
        for name, record in [*deployables.items(), ("champion", rival or {})]
        if record and record["evaluated_model_digest"] != record["registered_model_digest"]
    ]
    vetoes = []
    if altered:  # what was scored is not what the registry holds: never promote on it
        vetoes.append(f"model scored is not the model registered (digests differ): {altered}")
    if mine["overlap_patients"]:  # even with nothing to compare with (first run)
        vetoes.append(
            f"{candidate} v{mine['version']} saw {mine['overlap_patients']} of the sequestered "
            "patients "
            "it was scored on in development: its figures are not clean"
        )
    if vetoes:
        verdict = replace(
            verdict,
            passed=False,
            status=gate.GateStatus.REFUSE,
            reasons=(*verdict.reasons, *vetoes),
        )
    version = mine["version"]
    # the baseline first: when the candidate is ResNet152 itself, its gate verdict tag wins
    if BASELINE_BACKBONE in deployables:
        baseline_version = deployables[BASELINE_BACKBONE]["version"]
        _tag_version(
            settings, mlflow_client, baseline_version, "baseline",
            figures[BASELINE_BACKBONE],
        )  # fmt: skip
        mlflow_client.set_registered_model_alias(
            settings.mlflow.model_name, ALIAS_BASELINE, baseline_version
        )
    status = "passed" if verdict.passed else "refused"
    _tag_version(settings, mlflow_client, version, status, candidate_metrics)
    reason = "; ".join(verdict.reasons)
    if verdict.passed:
        registry.promote(
            mlflow_client, store, settings.mlflow.model_name, version=version,
            expected_champion=champion.version, reason=reason, dag_run_id=dag_run_id,
            figures=candidate_metrics,
        )  # fmt: skip
        champion_after: str | None = version
        champion_metrics = candidate_metrics
    else:
        mlflow_client.set_registered_model_alias(
            settings.mlflow.model_name, ALIAS_CHALLENGER, version
        )
        registry.append_ledger(
            store,
            {
                "action": "refuse", "model": settings.mlflow.model_name, "version": version,
                "previous_champion": champion.version, "reason": reason,
                "dag_run_id": dag_run_id, "figures": candidate_metrics,
            },
        )  # fmt: skip
        send_alert(
            settings, alerts_mod.AlertKind.NOT_PROMOTED, alerts_mod.Severity.INFO,
            f"candidate {candidate} (v{version}) not promoted: {reason}",
            {"candidate": candidate, "version": version, "verdict": verdict.to_dict()},
            dag_run_id=dag_run_id,
            send=send,
        )  # fmt: skip
        champion_after, champion_metrics = champion.version, champion_metrics_now
    verdict_record = verdict.to_dict()
    primary = evaluation.bootstrap_ci(
        predictions[candidate], settings.gate.primary_metric, n_boot=settings.gate.n_boot,
        seed=settings.gate.seed,
    )  # fmt: skip
    result = {
        "verdict": verdict_record,
        "candidate": candidate,
        "version": version,
        "champion_before": champion.version,
        "champion_after": champion_after,
        "champion_metrics": champion_metrics,
        "sequestered_patients": sequestered["patients"],
        "sequestered_covid_patients": sequestered["covid_patients"],
        "sequester_lock": sequestered["lock"],
        "comparisons": verdict_record["comparisons"],
        "evaluated_model_digest": mine["evaluated_model_digest"],
        "registered_model_digest": mine["registered_model_digest"],
        "candidate_primary": {
            "metric": settings.gate.primary_metric,
            "value": _finite_or_none(primary.point),
            "ci_low": _finite_or_none(primary.low),
            "ci_high": _finite_or_none(primary.high),
        },  # fmt: skip
        "models": {
            name: {
                key: record.get(key)
                for key in (
                    "backbone",
                    "version",
                    "patients",
                    "overlap_patients",
                    "evaluated_model_digest",
                    "registered_model_digest",
                    "patient_threshold",
                )
            }
            | {"metrics": figures[name]}
            for name, record in [*deployables.items(), *([("champion", rival)] if rival else [])]
        },  # fmt: skip
        "notes": list(confirmed.get("notes") or []),
    }
    return _record_gate(store, dag_run_id, result)


def _record_gate(store: Any, dag_run_id: str, result: dict[str, Any]) -> dict[str, Any]:
    """Write ``runs/<run>/gate.json`` and this run's champion-history record; return ``result``."""
    from datetime import UTC, datetime

    run_key = run_key_of(dag_run_id)
    _write_json(store, f"{RUNS}/{run_key}/gate.json", result)
    record = {
        "dag_run_id": dag_run_id,
        "at": datetime.now(UTC).isoformat(),
        "champion": result["champion_after"],
        "metrics": result["champion_metrics"],
    }
    _write_json(store, f"{HISTORY_PREFIX}/{run_key}.json", record)
    return result


def regression_check(
    settings: Settings, gated: Mapping[str, Any], dag_run_id: str, send: Any = None
) -> dict:
    """Compare this run's champion metrics with the previous run's; alert on any regression."""
    store = lake(settings)
    run_key = run_key_of(dag_run_id)
    keys = sorted(k for k in store.list(HISTORY_PREFIX) if not k.endswith(f"/{run_key}.json"))
    records = [json.loads(store.read_bytes(k)) for k in keys]
    previous = [r for r in records if r.get("metrics")]
    if not previous or not gated["champion_metrics"]:
        return {"compared_with": None, "regressions": []}
    last = max(previous, key=lambda r: r.get("at", ""))
    found = alerts_mod.detect_regressions(
        last["metrics"], gated["champion_metrics"], settings.gate.regression_thresholds
    )
    regressions = [r.__dict__ for r in found]
    if regressions:
        names = ", ".join(f"{r.metric} {r.previous:.3f}->{r.current:.3f}" for r in found)
        send_alert(
            settings, alerts_mod.AlertKind.METRIC_REGRESSION, alerts_mod.Severity.WARNING,
            f"champion metrics regressed against run {last['dag_run_id']}: {names}",
            {"previous_run": last["dag_run_id"], "regressions": regressions},
            dag_run_id=dag_run_id,
            send=send,
        )  # fmt: skip
    return {"compared_with": last["dag_run_id"], "regressions": regressions}
