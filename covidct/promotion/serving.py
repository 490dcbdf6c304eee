"""Serving check before any alias moves: the registered artifact predicts as it was evaluated.

:func:`serving_check` starts a fresh Python process (``python -m covidct.promotion.serving
REQUEST``), as a
serving process would: it resolves the registry URI (``models:/<name>/<version>``), loads the
model with ``mlflow.keras.load_model``, predicts P(COVID) on a fixed probe set of real 16-bit CT
slices and reports its timings. The parent compares those predictions with the ones the
evaluation made in its own process (:func:`evaluate_probe`, same model object the gate's figures
came from) and refuses the model with a reason when:

* the process fails or runs past its timeout (the reason carries the last lines of stderr);
* the predictions are not finite or not one per probe slice;
* ``max |p_serving - p_evaluated| > tolerance``; or
* the digest of the files it loaded differs from the registered ``model_digest`` tag.

Tolerance: :data:`P_COVID_TOLERANCE` = 1e-4 on the softmax probability. The same weights run
through the same kernels in another process differ only by float32 rounding in reductions whose
order may change with thread scheduling (oneDNN): float32 epsilon is 1.2e-7, and the
accumulated error of a deep network's forward pass stays around 1e-6 (measured here: 0 on the
test model). 1e-4 is two orders above that noise and two orders below any change that matters
clinically (patient thresholds are chosen on a grid no finer than 1e-2), so a changed weight,
preprocessing or custom layer fails it. It assumes serving and evaluation run on the same device
kind: a GPU with TF32 matmuls against a CPU evaluation differs by about 1e-3.

The probe set (:func:`write_probe_set`): real scanner output from ``../shared/data/tcia`` (The
Cancer Imaging Archive, see its README) converted to Negin-style slices by
:func:`covidct.batch.dicom.ingest_dicom` (COVID-19-NY-SBU, positive; Lung-PET-CT-Dx, negative), a
fixed, evenly spaced choice of ``count`` axial slices; :attr:`ProbeSet.digest` pins its bytes.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from covidct.training.spec import TrainingSpec

#: Largest tolerated max |p_covid(serving) - p_covid(evaluation)| (see the module docstring).
P_COVID_TOLERANCE = 1e-4
#: Seconds the serving process may take (imports, load, two prediction passes).
SERVING_TIMEOUT_S = 900.0
#: TCIA collections converted into the probe set: (folder under tcia/, label).
PROBE_COLLECTIONS: tuple[tuple[str, str], ...] = (
    ("covid19-ny-sbu", "Positive"),
    ("lung-pet-ct-dx", "Negative"),
)


def default_tcia_dir() -> Path:
    """``../shared/data/tcia`` beside the repository checkout holding this package."""
    return Path(__file__).resolve().parents[3] / "shared" / "data" / "tcia"


@dataclass(frozen=True)
class ProbeSet:
    """A fixed list of Negin slices: ``paths`` relative to ``root``, their sha256 each."""

    root: Path
    paths: tuple[str, ...]
    sha256: tuple[str, ...]

    @property
    def digest(self) -> str:
        """16 hex digits over (path, sha256) of every slice, in order."""
        text = "\n".join(f"{p}\t{h}" for p, h in zip(self.paths, self.sha256, strict=True))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def files(self) -> list[Path]:
        """Absolute paths of the slices."""
        return [self.root / path for path in self.paths]


def probe_set(root: Path, paths: Sequence[str]) -> ProbeSet:
    """A :class:`ProbeSet` of ``paths`` (relative to ``root``), hashing each file.

    Raises FileNotFoundError naming the first missing slice, ValueError when ``paths`` is empty.
    """
    if not paths:
        raise ValueError("a probe set needs at least one slice")
    hashes = []
    for path in paths:
        file = Path(root) / path
        if not file.is_file():
            raise FileNotFoundError(f"probe slice {file} is missing")
        hashes.append(hashlib.sha256(file.read_bytes()).hexdigest())
    return ProbeSet(Path(root), tuple(str(p) for p in paths), tuple(hashes))


def write_probe_set(out_dir: Path, *, count: int = 8, tcia_dir: Path | None = None) -> ProbeSet:
    """Convert the TCIA reference DICOM into batches under ``out_dir``; pick ``count`` slices.

    Each collection of :data:`PROBE_COLLECTIONS` becomes ``out_dir/<collection>/`` (skipped
    when already there); ``count`` slices are taken evenly spaced over the sorted paths of all
    written slices (both classes present for ``count`` >= 2). Raises FileNotFoundError when the
    TCIA folder is absent, ValueError when ``count`` < 1 or exceeds the slices written.
    """
    from covidct.batch.dicom import ingest_dicom

    tcia = Path(tcia_dir) if tcia_dir is not None else default_tcia_dir()
    if count < 1:
        raise ValueError(f"probe count must be >= 1, got {count}")
    for collection, label in PROBE_COLLECTIONS:
        if not (tcia / collection).is_dir():
            raise FileNotFoundError(f"TCIA reference folder {tcia / collection} is missing")
        if not (Path(out_dir) / collection).exists():
            ingest_dicom(tcia / collection, Path(out_dir) / collection, label, collection)
    written = sorted(p.relative_to(out_dir).as_posix() for p in Path(out_dir).rglob("*.tif"))
    if count > len(written):
        raise ValueError(f"probe count {count} exceeds the {len(written)} converted slices")
    picks = np.unique(np.linspace(0, len(written) - 1, count).round().astype(int))
    return probe_set(Path(out_dir), [written[i] for i in picks])


def _config(train_params: TrainingSpec | Mapping[str, Any]) -> Any:
    from covidct.training import TrainingConfig

    return TrainingConfig.from_spec(TrainingSpec.of(train_params))


def evaluate_probe(
    model: Any, probe: ProbeSet, train_params: TrainingSpec | Mapping[str, Any]
) -> np.ndarray:
    """P(COVID) of ``model`` on the probe slices in this process: float64 (n,).

    ``train_params``: the registered version's :class:`~covidct.training.TrainingSpec` (or its
    dict; ValueError names a missing or bad field), which fixes the preprocessing (image size)
    exactly as the evaluation used it.
    """
    from covidct import training

    return training.predict_p_covid(
        model, probe.files, image_root=probe.root, config=_config(train_params)
    )


@dataclass(frozen=True)
class ServingCheck:
    """Result of :func:`serving_check`. Times in seconds unless named ``_ms``.

    ``process_start_s``: spawn to the first line of the module (interpreter start);
    ``import_s``: MLflow, TensorFlow and covidct imports; ``load_s``: resolving the registry URI
    and ``mlflow.keras.load_model``; ``first_predict_ms_per_slice``: the first pass (includes
    tracing); ``ms_per_slice``: a second, warm pass; ``total_s``: spawn to exit, what the check
    adds to a promotion. ``reasons``: empty when it passed.
    """

    passed: bool
    model_uri: str
    probe_digest: str
    slices: int
    tolerance: float
    max_abs_diff: float
    reasons: tuple[str, ...]
    served_digest: str | None
    expected_digest: str | None
    process_start_s: float
    import_s: float
    load_s: float
    first_predict_ms_per_slice: float
    ms_per_slice: float
    total_s: float
    #: the temperature the serving process read from the version's ``temperature`` tag (None:
    #: untagged) and max |scaled p served - scaled p evaluated| (NaN without a temperature)
    temperature: float | None = None
    max_abs_diff_scaled: float = math.nan
    #: the serving process's Keras backend, and whether it had imported any TensorFlow module
    backend: str | None = None
    tensorflow_imported: bool | None = None

    @property
    def reason(self) -> str:
        """The refusal reasons joined by "; " (empty when it passed)."""
        return "; ".join(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe view (NaN becomes None)."""
        record = asdict(self)
        record["reasons"] = list(self.reasons)
        return {
            k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in record.items()
        }


def serving_check(
    model_uri: str,
    probe: ProbeSet,
    expected_p_covid: Sequence[float] | np.ndarray,
    train_params: TrainingSpec | Mapping[str, Any],
    *,
    tracking_uri: str,
    registry_uri: str | None = None,
    expected_digest: str | None = None,
    expected_temperature: float | None = None,
    tolerance: float = P_COVID_TOLERANCE,
    timeout_s: float = SERVING_TIMEOUT_S,
    backend: str | None = None,
) -> ServingCheck:
    """Load ``model_uri`` in a fresh process, predict the probe set, compare; never raises for a
    model that fails (the result says why). ``expected_p_covid``: :func:`evaluate_probe` of the
    evaluated model, (n,) for n probe slices. ``expected_digest``: the version's registered
    ``model_digest`` tag (:func:`covidct.promotion.deployable.model_digest`); None skips that
    check.
    ``expected_temperature``: the temperature stored with the version
    (``covidct.pipeline.evidence``);
    the serving process reads the version's ``temperature`` tag and scales its predictions
    (``covidct.evaluation.calibration.apply_temperature``) as a serving process would; a different
    or
    missing temperature, or scaled predictions beyond the tolerance, refuse. None skips it.
    ``backend``: the Keras backend of the serving process (``KERAS_BACKEND``: ``tensorflow``,
    ``jax``, ``torch``); None inherits this process's environment. A model evaluated under one
    backend and served under another passes within the same tolerance (the ``.keras`` format
    is backend-neutral; tests/promotion/test_serving.py holds it for a registry backbone).

    Raises ValueError when ``expected_p_covid`` does not have one value per probe slice, or
    for a bad ``train_params`` (the version's training spec, sent to the serving process).
    """
    spec = TrainingSpec.of(train_params)
    expected = np.asarray(expected_p_covid, dtype=np.float64)
    if expected.shape != (len(probe.paths),):
        raise ValueError(
            f"expected_p_covid has shape {expected.shape}; the probe set has {len(probe.paths)}"
        )
    with tempfile.TemporaryDirectory(prefix="covidct-serving-") as scratch:
        request = Path(scratch) / "request.json"
        output = Path(scratch) / "result.json"
        request.write_text(
            json.dumps(
                {
                    "model_uri": model_uri,
                    "tracking_uri": tracking_uri,
                    "registry_uri": registry_uri or tracking_uri,
                    "files": [str(f) for f in probe.files],
                    "image_root": str(probe.root),
                    "train_params": spec.to_dict(),
                    "output": str(output),
                }
            )
        )
        spawned = time.time()
        try:
            env = {**os.environ, **({"KERAS_BACKEND": backend} if backend else {})}
            done = subprocess.run(
                [sys.executable, "-m", "covidct.promotion.serving", str(request)],
                capture_output=True, text=True, timeout=timeout_s, check=False, env=env,
            )  # fmt: skip
            failure = None if done.returncode == 0 else _tail(done.stderr, done.returncode)
        except subprocess.TimeoutExpired:
            failure = f"the serving process ran past {timeout_s:g} s"
        total = time.time() - spawned
        served = json.loads(output.read_text()) if output.exists() else {}
    return _judge(model_uri, probe, expected, served, failure, spawned, total,
                  tolerance=tolerance, expected_digest=expected_digest,
                  expected_temperature=expected_temperature)  # fmt: skip


def _tail(stderr: str, code: int) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return f"the serving process failed (exit {code}): {' | '.join(lines[-3:])}"


def _judge(
    model_uri: str,
    probe: ProbeSet,
    expected: np.ndarray,
    served: Mapping[str, Any],
    failure: str | None,
    spawned: float,
    total: float,
    *,
    tolerance: float,
    expected_digest: str | None,
    expected_temperature: float | None = None,
) -> ServingCheck:
    reasons = [failure] if failure else []
    predicted = np.asarray(served.get("p_covid", []), dtype=np.float64)
    max_diff = math.nan
    if not failure:
        if predicted.shape != expected.shape:
            reasons.append(f"served {predicted.size} predictions for {expected.size} probe slices")
        elif not np.isfinite(predicted).all():
            reasons.append("the served predictions are not all finite")
        else:
            max_diff = float(np.max(np.abs(predicted - expected)))
            if max_diff > tolerance:
                worst = int(np.argmax(np.abs(predicted - expected)))
                reasons.append(
                    f"served p_covid differs from the evaluation's by up to {max_diff:.3g} "
                    f"(tolerance {tolerance:g}; worst slice {probe.paths[worst]}: "
                    f"{predicted[worst]:.6f} served vs {expected[worst]:.6f} evaluated)"
                )
    served_digest = served.get("model_digest")
    if expected_digest is not None and served_digest not in (None, expected_digest):
        reasons.append(
            f"the loaded artifact's digest {served_digest} is not the registered "
            f"model_digest {expected_digest}"
        )
    temperature = served.get("temperature")
    scaled_diff = math.nan
    if expected_temperature is not None and not failure:
        from covidct.evaluation.calibration import apply_temperature

        if temperature is None or abs(float(temperature) - expected_temperature) > 1e-6:
            reasons.append(
                f"the serving process applied temperature {temperature}, not the registered "
                f"{expected_temperature:g}"
            )
        elif predicted.shape == expected.shape and np.isfinite(predicted).all():
            scaled = np.asarray(served.get("p_covid_scaled", []), dtype=np.float64)
            want = apply_temperature(expected, expected_temperature)
            scaled_diff = (
                float(np.max(np.abs(scaled - want))) if scaled.shape == want.shape else math.inf
            )
            if scaled_diff > tolerance:
                reasons.append(
                    f"served temperature-scaled p_covid differs by up to {scaled_diff:.3g} "
                    f"(tolerance {tolerance:g})"
                )
    slices = max(len(probe.paths), 1)
    return ServingCheck(
        passed=not reasons,
        model_uri=model_uri,
        probe_digest=probe.digest,
        slices=len(probe.paths),
        tolerance=tolerance,
        max_abs_diff=max_diff,
        reasons=tuple(reasons),
        served_digest=served_digest,
        expected_digest=expected_digest,
        process_start_s=float(served.get("started", math.nan)) - spawned,
        import_s=float(served.get("import_s", math.nan)),
        load_s=float(served.get("load_s", math.nan)),
        first_predict_ms_per_slice=1000 * float(served.get("first_predict_s", math.nan)) / slices,
        ms_per_slice=1000 * float(served.get("predict_s", math.nan)) / slices,
        total_s=total,
        temperature=None if temperature is None else float(temperature),
        max_abs_diff_scaled=scaled_diff,
        backend=served.get("backend"),
        tensorflow_imported=served.get("tensorflow_imported"),
    )


def _registered_temperature(model_uri: str) -> float | None:
    """The ``temperature`` tag of a ``models:/<name>/<version>`` or ``models:/<name>@<alias>``
    URI's version, as a serving process reads it; None for other URIs or an untagged version."""
    if not model_uri.startswith("models:/"):
        return None
    from mlflow import MlflowClient

    client = MlflowClient()
    name, _, version = model_uri.removeprefix("models:/").partition("/")
    if "@" in name:
        name, alias = name.split("@", 1)
        found = client.get_model_version_by_alias(name, alias)
    else:
        found = client.get_model_version(name, version)
    value = found.tags.get("temperature")
    return None if value is None else float(value)


def _serve(request_file: str) -> None:
    """The serving process: load from the registry, predict twice, write timings and scores."""
    started = time.time()
    clock = time.perf_counter()
    request = json.loads(Path(request_file).read_text())
    import mlflow

    from covidct import training
    from covidct.evaluation.calibration import apply_temperature
    from covidct.keras_backend import backend_name, tensorflow_imported
    from covidct.promotion.deployable import download, model_digest

    imported = time.perf_counter()
    mlflow.set_tracking_uri(request["tracking_uri"])
    mlflow.set_registry_uri(request["registry_uri"])
    local = download(request["model_uri"])
    training.register_custom_objects()
    model = mlflow.keras.load_model(str(local))
    loaded = time.perf_counter()
    config = _config(request["train_params"])
    root, files = Path(request["image_root"]), request["files"]
    # eager: a probe set of a few slices does not repay tracing the network (about 20 s for a
    # ResNet152 ensemble on 2 cores); its values match the traced ones within the 1e-4 tolerance
    first = training.predict_p_covid(model, files, image_root=root, config=config, eager=True)
    predicted = time.perf_counter()
    training.predict_p_covid(model, files, image_root=root, config=config, eager=True)
    again = time.perf_counter()
    temperature = _registered_temperature(request["model_uri"])  # the version's tag
    scaled = apply_temperature(first, temperature) if temperature is not None else None
    result = {
        "started": started,
        "import_s": imported - clock,
        "load_s": loaded - imported,
        "first_predict_s": predicted - loaded,
        "predict_s": again - predicted,
        "p_covid": [float(p) for p in first],
        "temperature": temperature,
        "p_covid_scaled": None if scaled is None else [float(p) for p in scaled],
        "model_digest": model_digest(local),
        "backend": backend_name(),
        "tensorflow_imported": tensorflow_imported(),
    }
    Path(request["output"]).write_text(json.dumps(result))


if __name__ == "__main__":
    _serve(sys.argv[1])
