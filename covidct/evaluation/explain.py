"""Grad-CAM for every registry model, and CT overlays of it for people to look at.

Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
Localization", ICCV 2017, doi:10.1109/ICCV.2017.74): for a convolutional feature map ``A`` of
shape (h, w, K) and the class score ``y^c`` *before the softmax*,

- eq. 1: ``alpha_k^c = mean over (i, j) of d y^c / d A^k_ij`` (global-average-pooled gradients);
- eq. 2: ``L^c = ReLU(sum_k alpha_k^c A^k)``, an (h, w) map, here resized bilinearly to the
  input's (H, W) and divided by its maximum, so it lies in [0, 1] (all zeros when no location
  has positive evidence for the class).

Written for Keras 3 on any backend (tf-explain is unmaintained and does not support Keras 3;
the gradient is ``tf.GradientTape``'s, ``jax.grad``'s or ``torch.autograd``'s:
:func:`covidct.evaluation.features_and_gradients`). It needs no second model: while the model
runs eagerly, the chosen layer's output is
watched (its ``call`` is wrapped for the duration of one forward pass and restored
afterwards), so it works unchanged for layers inside nested models (a backbone applied as a
sub-model layer, e.g. the training wrapper of :mod:`covidct.training`), for two-branch models
such as the seed's ResNet152-LSTM (the LSTM branch simply contributes no gradient to the map),
and for models restored by ``keras.models.load_model``. The score ``y^c`` is the pre-softmax
logit: when the layer producing the model's output applies a softmax itself (``Dense`` with
``activation="softmax"``, as every registry head, or an ``Activation("softmax")``), that
activation is switched to linear during the pass; otherwise the output is used as it is.

Which feature map: ``layer_name`` when given (searched in nested models too), else the trunk's
last feature map of a Keras Applications backbone (:data:`TRUNK_FEATURE_LAYERS`: so the
ResNet50V2-FPN uses C5 = ``post_relu`` rather than its 1x1 to 4x4 P7), else the last layer in
topological order, nested models searched depth first, whose output is 4-D and which is not an
input, pooling, resampling, padding, reshaping or dropout layer.

Display (:func:`overlay`) is for people only, never fed back to a model. Integer slices are taken
as Negin stored values (HU = value - 1024, :data:`covidct.schema.HU_OFFSET`) and shown in a
lung window (level -600 HU, width 1500 HU, i.e. -1350..150 HU, black to white); float slices
(e.g. model inputs) are scaled from their own minimum to maximum.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from covidct.data.host import area_resize, resize_bilinear
from covidct.data.loading import IntensityMode, IntensityTransform, read_slice
from covidct.evaluation.activation_maps import DEFAULT_CLASS_INDEX, feature_layer, gradcam_batch
from covidct.evaluation.metrics import DEFAULT_THRESHOLD
from covidct.evaluation.predictions import (  # Cell and confusion_cells: no TensorFlow there
    P_COVID,
    PATIENT_ID,
    SLICE_ID,
    Cell,
    confusion_cells,
    validate_predictions,
)
from covidct.schema import CLASS_NAMES

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DisplayWindow:
    """CT display window in Hounsfield units: ``level_hu`` centre, ``width_hu`` full width.

    Raises ValueError for a non-positive width.
    """

    level_hu: float = -600.0
    width_hu: float = 1500.0

    def __post_init__(self) -> None:
        if not self.width_hu > 0:
            raise ValueError(f"display window width must be > 0 HU, got {self.width_hu}")

    def bounds(self) -> tuple[float, float]:
        """(lowest, highest) HU shown, black and white."""
        return self.level_hu - self.width_hu / 2, self.level_hu + self.width_hu / 2


#: The lung window (-1350..150 HU).
LUNG_WINDOW = DisplayWindow()


# --------------------------------------------------------------------------- display


def display_gray(image: np.ndarray, window: DisplayWindow = LUNG_WINDOW) -> np.ndarray:
    """float32 (H, W) in [0, 1] for display (rules in the module docstring).

    ``image``: (H, W) or (H, W, 1); integer = Negin stored values, float = any scale.
    Raises ValueError for another shape.
    """
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim != 2:
        raise ValueError(f"expected a 2-D slice (H, W) or (H, W, 1), got shape {array.shape}")
    if np.issubdtype(array.dtype, np.integer):
        transform = IntensityTransform(IntensityMode.HU_WINDOW, window.level_hu, window.width_hu)
        return np.asarray(transform.apply(array), dtype=np.float32)
    values = array.astype(np.float32)
    low, high = float(values.min()), float(values.max())
    return (values - low) / (high - low) if high > low else np.zeros_like(values)


def _resize_to(heatmap: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    heat = np.asarray(heatmap, dtype=np.float32)
    if heat.ndim != 2:
        raise ValueError(f"heatmap must be 2-D (H, W), got shape {heat.shape}")
    if heat.shape != shape:
        heat = resize_bilinear(heat, shape)
    return np.clip(heat, 0.0, 1.0)


#: Label of the Grad-CAM figure's colour bar (the heat of :func:`overlay`, normalised 0..1).
GRADCAM_SCALE_LABEL = "Grad-CAM weight (0: no evidence, 1: strongest in the slice)"


def overlay(
    image: np.ndarray,
    heatmap: np.ndarray,
    *,
    window: DisplayWindow = LUNG_WINDOW,
    alpha: float = 0.5,
    colormap: str = "jet",
) -> np.ndarray:
    """Blend a heatmap over a CT slice for display: uint8 RGB (H, W, 3), H, W of ``image``.

    ``image``: (H, W) slice (integer = Negin stored values shown in ``window``; float = min-max
    scaled). ``heatmap``: float (h, w) in [0, 1], resized bilinearly to (H, W). Each pixel is
    ``gray * (1 - alpha * heat) + colour(heat) * alpha * heat``, so regions without evidence
    show the plain CT. Raises ValueError for bad shapes or ``alpha`` outside [0, 1].
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    gray = display_gray(image, window)
    heat = _resize_to(heatmap, gray.shape)[..., np.newaxis]
    colour = colormaps[colormap](heat[..., 0])[..., :3]
    blended = gray[..., np.newaxis] * (1.0 - alpha * heat) + colour * alpha * heat
    return np.round(np.clip(blended, 0.0, 1.0) * 255.0).astype(np.uint8)


# --------------------------------------------------------------------------- case sampling


def sample_cases(
    predictions: pd.DataFrame,
    n_per_cell: int,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    seed: int = 0,
) -> pd.DataFrame:
    """Pick up to ``n_per_cell`` slices from each confusion cell, distinct patients first.

    ``predictions``: columns ``patient_id, y_true ('covid'/'normal'), p_covid, slice_id`` (others
    kept). Within a cell rows are shuffled with ``seed``, then a patient's second slice only
    comes after every patient's first. Returns the chosen rows plus ``cell``, ordered TP, FN,
    FP, TN. Raises ValueError without ``slice_id``, for ``n_per_cell`` < 1 or an invalid table.
    """
    if n_per_cell < 1:
        raise ValueError(f"n_per_cell must be >= 1, got {n_per_cell}")
    if SLICE_ID not in predictions.columns:
        raise ValueError(f"predictions: column {SLICE_ID} is needed to find the slices")
    frame = validate_predictions(predictions)
    frame["cell"] = confusion_cells(frame, threshold)
    chosen = [_sample_cell(frame[frame["cell"] == cell], n_per_cell, seed) for cell in Cell]
    return pd.concat(chosen, ignore_index=True)


def _sample_cell(rows: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    shuffled = rows.sample(frac=1.0, random_state=seed)
    rank = shuffled.groupby(PATIENT_ID, sort=False).cumcount()
    return (
        shuffled.assign(_rank=rank)
        .sort_values("_rank", kind="stable")
        .head(n)
        .drop(columns="_rank")
    )


# --------------------------------------------------------------------------- figures


def model_input(
    stored: np.ndarray,
    *,
    transform: IntensityTransform | None = None,
    image_size: int | None = None,
) -> np.ndarray:
    """A stored slice as the model sees it: float32 (H', W', 1).

    Same steps as :mod:`covidct.data`'s decoding: ``transform`` (default: the lung-window
    :class:`IntensityTransform`), then an ``area`` resize to ``image_size`` x ``image_size``.
    """
    values = (transform or IntensityTransform()).apply(np.asarray(stored))[..., np.newaxis]
    if image_size is not None:
        values = area_resize(values, image_size)
    return np.asarray(values, dtype=np.float32)


def tiff_loader(image_root: Path) -> Callable[[str], np.ndarray]:
    """``slice_id -> uint16 (H, W)`` reading ``image_root / slice_id`` with tifffile."""
    root = Path(image_root)
    return lambda slice_id: read_slice(root / str(slice_id))


def _new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _case_title(case: pd.Series) -> str:
    patient = str(case[PATIENT_ID])
    patient = patient if len(patient) <= 28 else "…" + patient[-27:]
    return f"{case['cell']}  p(covid)={case[P_COVID]:.3f}\n{patient}"


def gradcam_figure(
    model: keras.Model,
    cases: pd.DataFrame,
    load_slice: Callable[[str], np.ndarray],
    preprocess: Callable[[np.ndarray], np.ndarray] = model_input,
    *,
    class_index: int = DEFAULT_CLASS_INDEX,
    layer_name: str | None = None,
    window: DisplayWindow = LUNG_WINDOW,
    title: str = "",
) -> Figure:
    """Grid of Grad-CAM overlays: one row per confusion cell present in ``cases``, one panel
    per case (an Agg Figure).

    ``cases``: output of :func:`sample_cases`. ``load_slice(slice_id)``: the stored slice,
    uint16 (H, W) (e.g. :func:`tiff_loader`); ``preprocess(stored)``: the model input float32
    (h, w, C) (e.g. :func:`model_input` with the training config's transform and size).
    Raises ValueError for an empty ``cases`` or one without a ``cell`` column.
    """
    if cases.empty or "cell" not in cases.columns:
        raise ValueError("gradcam_figure needs the non-empty output of sample_cases")
    stored = [np.asarray(load_slice(str(slice_id))) for slice_id in cases[SLICE_ID]]
    inputs = np.stack([preprocess(image) for image in stored])
    heatmaps = gradcam_batch(model, inputs, class_index=class_index, layer_name=layer_name)
    rows = [Cell(cell) for cell in dict.fromkeys(cases["cell"])]
    columns = int(cases.groupby("cell").size().max())
    figure = _new_figure(2.4 * columns, 2.7 * len(rows))
    grid = np.atleast_2d(figure.subplots(len(rows), columns, squeeze=False))
    for axes in grid.flat:
        axes.set_axis_off()
    for row, cell in enumerate(rows):
        positions = np.flatnonzero(cases["cell"].to_numpy() == cell.value)
        for column, position in enumerate(positions):
            axes = grid[row, column]
            axes.imshow(overlay(stored[position], heatmaps[position], window=window))
            axes.set_title(_case_title(cases.iloc[position]), fontsize=7)
    # the heat's scale (overlay's colormap, 0..1): without it a panel's red means nothing
    bar = figure.colorbar(
        ScalarMappable(Normalize(0.0, 1.0), colormaps["jet"]),
        ax=list(grid.flat), shrink=0.8, fraction=0.03, pad=0.01,
    )  # fmt: skip
    bar.set_label(GRADCAM_SCALE_LABEL, fontsize=7)
    bar.ax.tick_params(labelsize=6)
    layer = feature_layer(model, layer_name).name
    low, high = window.bounds()
    figure.suptitle(
        title
        or f"Grad-CAM for class {CLASS_NAMES[class_index]} ({model.name}, layer {layer}); "
        f"CT window {low:.0f}..{high:.0f} HU; rows: "
        + ", ".join(cell.value for cell in rows)
        + "".join(f"; no {cell.value} image" for cell in Cell if cell not in rows),
        fontsize=9,
        wrap=True,
    )
    return figure


def gradcam_for_predictions(
    model: keras.Model,
    predictions: pd.DataFrame,
    *,
    image_root: Path,
    transform: IntensityTransform | None = None,
    image_size: int | None = None,
    n_per_cell: int = 2,
    seed: int = 0,
    layer_name: str | None = None,
) -> Figure:
    """Sample true/false positives/negatives of a predictions table and draw their Grad-CAMs.

    The one call an evaluation step needs: :func:`sample_cases`, then :func:`gradcam_figure`
    with TIFFs read from ``image_root / slice_id`` and :func:`model_input` (``transform``,
    ``image_size`` as in training). Raises ValueError as those functions do.
    """
    cases = sample_cases(predictions, n_per_cell, seed=seed)
    return gradcam_figure(
        model,
        cases,
        tiff_loader(image_root),
        lambda stored: model_input(stored, transform=transform, image_size=image_size),
        layer_name=layer_name,
    )


def save_figure(figure: Figure, path: Path, *, dpi: int = 110) -> Path:
    """Write ``figure`` as a PNG at ``path`` (parents created); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi, format="png")
    return path
