"""Known-disease evidence of a confirmed model: COVID sensitivity by severity band and the
Grad-CAM pointing game, on the sequestered patients whose batches carry truth.

Synthetic batches are written with their truth beside them (``<batch>.truth/``:
``patients.csv`` with each patient's severity band, ``masks.npz`` with each slice's lesion
mask; :func:`covidct.batch.synth.read_truth`). The settings' ``truth_dir``
(``COVIDCT_TRUTH_DIR``) names the folder holding those truth folders, under the batch ids the
batches were landed with. Training never reads it; only this module does, after scoring. A
batch without truth (real data) contributes nothing, and without any truth both figures are
absent.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from covidct.config import Settings

logger = logging.getLogger(__name__)

#: Suffix of a batch's truth folder beside it (``covidct.batch.synth.default_truth_dir``).
TRUTH_SUFFIX = ".truth"
#: At most this many true-positive slices are explained per model (Grad-CAM costs a backward
#: pass each); the slices are taken in slice-id order, so the same run plays the same game.
MAX_POINTING_SLICES = 64


def truth_folder(settings: Settings, batch_id: str) -> Path | None:
    """``<truth_dir>/<batch_id>.truth`` when the settings name a truth folder and it holds one."""
    if settings.truth_dir is None:
        return None
    folder = Path(settings.truth_dir) / f"{batch_id}{TRUTH_SUFFIX}"
    return folder if (folder / "patients.csv").is_file() else None


@lru_cache(maxsize=32)
def _patients(folder: Path) -> pd.DataFrame:
    from covidct.batch.synth_truth import read_truth

    return read_truth(folder)[0]


def slice_parts(slice_id: str) -> tuple[str, str, str]:
    """(batch id, patient folder, path inside the batch) of a curated slice id."""
    batch, rest = str(slice_id).split("/", 1)
    return batch, rest.split("/", 1)[0], rest


def severity_bands(settings: Settings, predictions: pd.DataFrame) -> dict[str, str]:
    """Patient key -> severity band of every COVID patient of ``predictions`` (``patient_id``
    = patient key, ``slice_id`` = ``<batch>/<patient>/<series>/<file>``) whose batch has
    truth."""
    bands: dict[str, str] = {}
    for key, slice_id in predictions.groupby("patient_id")["slice_id"].first().items():
        batch, patient, _ = slice_parts(slice_id)
        folder = truth_folder(settings, batch)
        if folder is None:
            continue
        table = _patients(folder)
        row = table[table["patient_id"] == patient]
        if not row.empty and row.iloc[0]["label"] == "Positive":
            bands[str(key)] = str(row.iloc[0]["severity_band"])
    return bands


def severity_evidence(settings: Settings, predictions: pd.DataFrame) -> dict[str, Any]:
    """COVID sensitivity by severity band (:func:`covidct.evaluation.truth.sensitivity_by_band`)
    of one model's sequestered predictions (with its ``patient_threshold``); ``{}`` without
    truth."""
    from covidct.evaluation import predictions as table, truth

    bands = severity_bands(settings, predictions)
    if not bands:
        return {}
    patients = table.patient_level(predictions)
    covid = patients[patients["y_true"] == "covid"]
    called = dict(zip(covid["patient_id"].astype(str), covid["y_pred"] == "covid", strict=True))
    return truth.sensitivity_by_band(called, bands)


def _members(model: Any) -> list[Any]:
    import keras

    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return nested or [model]


def pointing_evidence(
    settings: Settings,
    model: Any,
    predictions: pd.DataFrame,
    train_params: Mapping[str, Any],
    image_root: Path,
) -> dict[str, Any]:
    """The Grad-CAM pointing game of ``model`` on its true-positive selected slices that hold a
    lesion in the truth (:func:`covidct.evaluation.truth.pointing_hit`); an ensemble's heat map
    is the mean of its members', at the feature map's resolution (h x w cells). Returns
    ``{"gradcam_pointing_game": share or None, "gradcam_pointing_slices": n,
    "gradcam_pointing_chance": share a cell drawn at random would hit, "gradcam_cells": "hxw"}``
    (None and 0 without truth or without such slices)."""
    from covidct.batch.slices import read_slice
    from covidct.batch.synth_truth import read_lesion_mask
    from covidct.evaluation import explain, truth
    from covidct.pipeline.development import training_config

    config = training_config(train_params)
    cases = []
    for slice_id in sorted(truth.true_positive_slices(predictions)["slice_id"]):
        batch, _, inside = slice_parts(slice_id)
        folder = truth_folder(settings, batch)
        if folder is not None and (mask := read_lesion_mask(folder, inside)).any():
            cases.append((slice_id, mask))
        if len(cases) == MAX_POINTING_SLICES:
            break
    if not cases:
        return {"gradcam_pointing_game": None, "gradcam_pointing_slices": 0}
    images = np.stack(
        [
            explain.model_input(
                read_slice(image_root / slice_id),
                transform=config.transform,
                image_size=config.image_size,
            )
            for slice_id, _ in cases
        ]
    )
    heat = np.mean([_native_cam(member, images) for member in _members(model)], axis=0)
    hits = [truth.pointing_hit(heat[i], mask) for i, (_, mask) in enumerate(cases)]
    chance = [truth.pointing_chance(heat.shape[1:], mask) for _, mask in cases]
    logger.info("pointing game: %d of %d true-positive lesion slices", sum(hits), len(hits))
    return {
        "gradcam_pointing_game": float(np.mean(hits)),
        "gradcam_pointing_slices": len(hits),
        "gradcam_pointing_chance": float(np.mean(chance)),
        "gradcam_cells": f"{heat.shape[1]}x{heat.shape[2]}",
    }


def _native_cam(member: Any, images: np.ndarray) -> np.ndarray:
    """Grad-CAM at its feature map's own resolution (B, h, w): a map upsampled to the input
    puts the maximum of an edge cell at the image's corner, so the game is played on cells."""
    from covidct.evaluation import activation_maps

    features, gradients = activation_maps.features_and_gradients(member, images)
    return activation_maps.cam_from_gradients(features, gradients, features.shape[1:3])
