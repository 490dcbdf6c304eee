"""Serving check: a tiny Keras model registered in a real local MLflow store (SQLite), loaded
back in a fresh process from ``models:/<name>/<version>`` and run on real TCIA slices.

A matching model passes; weights changed in the artifact store after evaluation are refused
with the reason; so is a version that does not exist.
"""

from __future__ import annotations

from pathlib import Path

import keras
import mlflow
import numpy as np
import pytest

from covidct import training
from covidct.promotion import registry
from covidct.promotion.deployable import DIGEST_TAG, download, model_digest
from covidct.promotion.serving import (
    P_COVID_TOLERANCE,
    default_tcia_dir,
    evaluate_probe,
    probe_set,
    serving_check,
    write_probe_set,
)
from covidct.training import TrainingSpec

NAME = "covidct-serving-test"
PARAMS = TrainingSpec.of_profile("cpu-smoke", image_size=32, batch_size=4)
PROBES = 6

pytestmark = pytest.mark.skipif(
    not default_tcia_dir().is_dir(), reason="TCIA reference DICOM not found"
)


def _tiny_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 1))
    features = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(pooled))


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return write_probe_set(tmp_path_factory.mktemp("probe"), count=PROBES)


@pytest.fixture()
def registered(tmp_path: Path, isolated_mlflow_uris: None, probe):  # type: ignore[no-untyped-def]
    """Register the tiny model; evaluate it in this process as the pipeline does (loaded back
    from its registry URI). Returns (tracking URI, model URI, predictions, digest)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    experiment = mlflow.create_experiment("t", artifact_location=str(tmp_path / "artifacts"))
    with mlflow.start_run(experiment_id=experiment) as run:
        logged = training.log_keras_model(_tiny_model(), "model", np.zeros((1, 32, 32, 1)))
    digest = model_digest(download(logged))
    version = registry.register_version(
        registry.client(uri), NAME, model_uri=logged, run_id=run.info.run_id,
        dag_run_id="run-1", backbone="tiny", tags={DIGEST_TAG: digest},
    )  # fmt: skip
    model_uri = f"models:/{NAME}/{version}"
    evaluated = evaluate_probe(mlflow.keras.load_model(model_uri), probe, PARAMS)
    return uri, model_uri, evaluated, digest


def test_probe_set_is_real_16_bit_ct_of_both_classes(probe) -> None:  # type: ignore[no-untyped-def]
    import tifffile

    assert len(probe.paths) == PROBES
    assert {p.split("/")[0] for p in probe.paths} == {"covid19-ny-sbu", "lung-pet-ct-dx"}
    for file in probe.files:
        pixels = tifffile.imread(file)
        assert pixels.dtype == np.uint16 and pixels.shape == (512, 512)
        assert np.unique(pixels).size > 256  # more than 8 bits of levels
    assert probe_set(probe.root, probe.paths) == probe  # the same bytes give the same set


def test_matching_model_passes(registered, probe) -> None:  # type: ignore[no-untyped-def]
    tracking, model_uri, evaluated, digest = registered
    assert evaluated.shape == (PROBES,) and np.ptp(evaluated) > 0  # not a constant model
    result = serving_check(
        model_uri, probe, evaluated, PARAMS, tracking_uri=tracking, expected_digest=digest
    )
    assert result.passed, result.reason
    assert result.max_abs_diff <= P_COVID_TOLERANCE and result.served_digest == digest
    assert result.load_s > 0 and result.ms_per_slice > 0 and result.total_s > result.load_s
    print("serving check timings:", result.to_dict())


def test_a_registry_backbone_serves_on_the_other_backend(  # type: ignore[no-untyped-def]
    tmp_path: Path, isolated_mlflow_uris: None, probe
) -> None:
    """Issue 35: a registry backbone logged and evaluated under this process's backend serves
    within the tolerance from a process on the other one (TensorFlow <-> JAX); a JAX serving
    process imports no TensorFlow."""
    from covidct.keras_backend import backend_name, set_random_seed
    from covidct.models import get_backbone

    other = "jax" if backend_name() == "tensorflow" else "tensorflow"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    experiment = mlflow.create_experiment("x", artifact_location=str(tmp_path / "artifacts"))
    set_random_seed(0)
    model = get_backbone("vgg16").build((32, 32, 1), 2, None)
    with mlflow.start_run(experiment_id=experiment) as run:
        logged = training.log_keras_model(model, "model", np.zeros((1, 32, 32, 1)))
    digest = model_digest(download(logged))
    version = registry.register_version(
        registry.client(uri), NAME, model_uri=logged, run_id=run.info.run_id,
        dag_run_id="run-x", backbone="vgg16", tags={DIGEST_TAG: digest},
    )  # fmt: skip
    model_uri = f"models:/{NAME}/{version}"
    evaluated = evaluate_probe(mlflow.keras.load_model(model_uri), probe, PARAMS)
    assert np.ptp(evaluated) > 0
    result = serving_check(
        model_uri, probe, evaluated, PARAMS, tracking_uri=uri, expected_digest=digest,
        backend=other,
    )  # fmt: skip
    assert result.passed, result.reason
    assert result.backend == other and result.max_abs_diff <= P_COVID_TOLERANCE
    assert result.tensorflow_imported is (other == "tensorflow")


def test_tampered_artifact_is_refused(registered, probe) -> None:  # type: ignore[no-untyped-def]
    tracking, model_uri, evaluated, digest = registered
    (saved,) = download(model_uri).rglob("*.keras")  # the file in the local artifact store
    model = keras.saving.load_model(saved)
    kernel, bias = model.layers[-1].get_weights()
    model.layers[-1].set_weights([kernel, bias + np.array([-1.0, 1.0], np.float32)])
    model.save(saved)  # weights changed after the evaluation
    result = serving_check(
        model_uri, probe, evaluated, PARAMS, tracking_uri=tracking, expected_digest=digest
    )
    assert not result.passed
    assert result.max_abs_diff > P_COVID_TOLERANCE
    assert "served p_covid differs from the evaluation's" in result.reason
    assert f"not the registered model_digest {digest}" in result.reason


def test_missing_version_is_refused(registered, probe) -> None:  # type: ignore[no-untyped-def]
    tracking, _, evaluated, _ = registered
    result = serving_check(f"models:/{NAME}/99", probe, evaluated, PARAMS, tracking_uri=tracking)
    assert not result.passed and "the serving process failed" in result.reason


def test_wrong_number_of_expected_predictions(probe) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="probe set has 6"):
        serving_check("models:/x/1", probe, [0.5], PARAMS, tracking_uri="sqlite:///x.db")


def test_served_model_applies_the_registered_temperature(registered, probe) -> None:  # type: ignore[no-untyped-def]
    from covidct.evaluation.calibration import apply_temperature

    tracking, model_uri, evaluated, digest = registered
    version = model_uri.rsplit("/", 1)[1]
    registry.client(tracking).set_model_version_tag(NAME, version, "temperature", "2.000000")
    result = serving_check(
        model_uri, probe, evaluated, PARAMS, tracking_uri=tracking, expected_digest=digest,
        expected_temperature=2.0,
    )  # fmt: skip
    assert result.passed, result.reason
    assert result.temperature == 2.0 and result.max_abs_diff_scaled <= P_COVID_TOLERANCE
    assert not np.allclose(apply_temperature(evaluated, 2.0), evaluated)  # scaling matters
    wrong = serving_check(
        model_uri, probe, evaluated, PARAMS, tracking_uri=tracking, expected_temperature=1.5
    )
    assert not wrong.passed and "applied temperature 2.0, not the registered 1.5" in wrong.reason
