"""How covidct's MLflow experiment presents itself in the MLflow UI: as model training.

MLflow 3 keeps an experiment's kind in the experiment tag ``mlflow.experimentKind`` (the UI's
experiment-type selector writes the same tag); ``custom_model_development`` is "Model training",
``genai_development`` the GenAI views (traces, evaluations). The bundled UI of MLflow 3.17 also
keeps a per-browser "workflow type" (GenAI by default) that the URL parameter
``workflowType=machine_learning`` selects, so links to the UI carry :data:`MODEL_TRAINING_QUERY`.
"""

from __future__ import annotations

from typing import Any

#: the experiment tag that holds an experiment's kind (MLflow 3)
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
#: the kind the MLflow UI shows as "Model training" (runs, metrics, models), not GenAI
MODEL_TRAINING = "custom_model_development"
#: the MLflow UI's query parameter that opens the model-training views (append after the route)
MODEL_TRAINING_QUERY = "workflowType=machine_learning"


def model_training_tags() -> dict[str, str]:
    """Tags to create covidct's experiment with."""
    return {EXPERIMENT_KIND_TAG: MODEL_TRAINING}


def mark_model_training(client: Any, experiment_id: str) -> None:
    """Tag an existing experiment as model training unless a kind was chosen already.

    ``client``: an ``mlflow.MlflowClient``. A kind set by a person in the UI is kept.
    """
    experiment = client.get_experiment(experiment_id)
    if EXPERIMENT_KIND_TAG not in experiment.tags:
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING)


def experiment_url(ui_base_url: str, experiment_id: str) -> str:
    """The MLflow UI's page of an experiment, on its model-training views."""
    return f"{ui_base_url.rstrip('/')}/#/experiments/{experiment_id}?{MODEL_TRAINING_QUERY}"
