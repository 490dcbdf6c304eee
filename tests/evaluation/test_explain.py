"""Tests of covidct.evaluation.explain: Grad-CAM for hand-built, trained, nested, two-branch and
registry
models (before and after save + reload), the CT overlay, case sampling and the figure."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import tifffile

from covidct.evaluation import activation_maps as maps, explain
from covidct.evaluation.explain import Cell
from covidct.models import BACKBONES, build_model
from covidct.schema import HU_OFFSET

SIDE = 32  # tiny input for the hand-made models
SQUARE = 6  # side of the bright square the trained model detects


# --------------------------------------------------------------------------- helpers


def _reload(model: keras.Model, tmp_path: Path, name: str = "model") -> keras.Model:
    path = tmp_path / f"{name}.keras"
    model.save(path)
    return keras.models.load_model(path)


def _nest(model: keras.Model, depth: int = 1) -> keras.Model:
    """Wrap ``model`` as a sub-model layer ``depth`` times (as training's augmentation does)."""
    for level in range(depth):
        inputs = keras.Input(model.input_shape[1:], name=f"outer_input_{level}")
        shifted = keras.layers.Identity(name=f"pass_through_{level}")(inputs)
        model = keras.Model(inputs, model(shifted), name=f"outer_{level}")
    return model


def _reference_gradients(model: keras.Model, images: np.ndarray, layer: str, class_index: int):
    """The keras-io recipe, independently: a second functional model exposing the feature map and
    the input of the final Dense; the logit computed from that Dense's own weights."""
    dense = model.layers[-1]
    probe = keras.Model(model.inputs, [model.get_layer(layer).output, dense.input])
    kernel, bias = (np.asarray(w) for w in dense.get_weights())
    with tf.GradientTape() as tape:
        features, penultimate = probe(tf.constant(images), training=False)
        tape.watch(features)
        logit = tf.matmul(penultimate, kernel[:, class_index : class_index + 1])[:, 0]
        logit = logit + bias[class_index]
    return features.numpy(), tape.gradient(logit, features).numpy()


def _reference_cam(model: keras.Model, images: np.ndarray, layer: str, class_index: int):
    features, gradients = _reference_gradients(model, images, layer, class_index)
    return _cam(features, gradients, images.shape[1:3])


def _cam(features: np.ndarray, gradients: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    weights = gradients.mean(axis=(1, 2))
    cam = np.maximum((features * weights[:, None, None, :]).sum(axis=-1), 0)
    cam = tf.image.resize(cam[..., None], size, method="bilinear").numpy()[..., 0]
    peak = cam.max(axis=(1, 2), keepdims=True)
    return np.where(peak > 0, cam / np.where(peak > 0, peak, 1), 0.0)


def _assert_close_relative(actual: np.ndarray, expected: np.ndarray) -> None:
    scale = float(np.abs(expected).max())
    assert scale > 0, "all-zero reference: the comparison would prove nothing"
    np.testing.assert_allclose(actual, expected, rtol=1e-3, atol=1e-4 * scale)


def _square_image(rng: np.random.Generator, row: int | None, col: int | None) -> np.ndarray:
    image = rng.normal(0.2, 0.05, (SIDE, SIDE, 1)).astype(np.float32)
    if row is not None and col is not None:
        image[row : row + SQUARE, col : col + SQUARE] = 1.0
    return image


def _square_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    corners = rng.integers(0, SIDE - SQUARE + 1, (n, 2))
    images = [
        _square_image(rng, *(corner if label else (None, None)))
        for label, corner in zip(labels, corners, strict=True)
    ]
    return np.stack(images), labels


@pytest.fixture(scope="module")
def square_model() -> keras.Model:
    """A tiny CNN trained to say "covid" when a bright square is anywhere in the image."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIDE, SIDE, 1), name="slice")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv_1")(inputs)
    x = keras.layers.MaxPooling2D(2, name="pool_1")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="features")(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="predictions")(x)
    model = keras.Model(inputs, outputs, name="square_detector")
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    images, labels = _square_data(512, seed=1)
    model.fit(images, labels, batch_size=32, epochs=6, verbose=0)
    return model


def _held_out_accuracy(model: keras.Model) -> float:
    images, labels = _square_data(200, seed=2)
    return float((model.predict(images, verbose=0).argmax(axis=1) == labels).mean())


# --------------------------------------------------------------------------- the maths


def _hand_model(scale: float) -> keras.Model:
    """feature map = the image (1x1 conv, weight 1); logit_covid = scale * mean, normal = -it."""
    inputs = keras.Input((8, 8, 1))
    features = keras.layers.Conv2D(1, 1, use_bias=False, name="features")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    outputs = keras.layers.Dense(2, activation="softmax", name="predictions")(pooled)
    model = keras.Model(inputs, outputs, name="hand_made")
    model.get_layer("features").set_weights([np.ones((1, 1, 1, 1), np.float32)])
    model.get_layer("predictions").set_weights(
        [np.array([[-scale, scale]], np.float32), np.zeros(2, np.float32)]
    )
    return model


HAND_IMAGE = np.abs(np.random.default_rng(3).normal(0, 1, (8, 8, 1))).astype(np.float32)
HAND_IMAGE[2, 5, 0] = 9.0  # the peak


@pytest.mark.parametrize(
    ("scale", "class_index", "reload", "expected"),
    [
        # class covid: alpha = scale / 64 > 0, so the map is the image divided by its maximum
        (1.0, 1, False, HAND_IMAGE[..., 0] / 9.0),
        # softmax saturates at p = 1.0 exactly; the pre-softmax score still has a gradient
        (1000.0, 1, False, HAND_IMAGE[..., 0] / 9.0),
        (1000.0, 1, True, HAND_IMAGE[..., 0] / 9.0),
        # class normal: alpha < 0 everywhere, ReLU leaves nothing
        (1.0, 0, False, np.zeros((8, 8))),
    ],
)
def test_gradcam_equations_on_a_hand_made_model(scale, class_index, reload, expected, tmp_path):
    model = _hand_model(scale)
    if reload:
        model = _reload(model, tmp_path)
    if scale > 100:
        assert float(model(HAND_IMAGE[None])[0, 1]) == 1.0  # the row is meaningful
    heatmap = maps.gradcam(model, HAND_IMAGE, class_index=class_index)
    assert heatmap.dtype == np.float32 and heatmap.shape == (8, 8)
    np.testing.assert_allclose(heatmap, expected, atol=1e-5)


def test_trained_detector_heatmap_peaks_on_the_square(square_model):
    assert _held_out_accuracy(square_model) >= 0.95
    rng = np.random.default_rng(4)
    corners = [(2, 3), (20, 22), (13, 1), (24, 12)]
    images = np.stack([_square_image(rng, row, col) for row, col in corners])
    heatmaps = maps.gradcam_batch(square_model, images)
    assert heatmaps.shape == (len(corners), SIDE, SIDE)
    assert heatmaps.min() >= 0.0 and heatmaps.max() <= 1.0
    for heatmap, (row, col) in zip(heatmaps, corners, strict=True):
        peak_row, peak_col = np.unravel_index(np.argmax(heatmap), heatmap.shape)
        assert row - 2 <= peak_row < row + SQUARE + 2, (row, col, peak_row, peak_col)
        assert col - 2 <= peak_col < col + SQUARE + 2, (row, col, peak_row, peak_col)
        inside = np.zeros_like(heatmap, dtype=bool)
        inside[row : row + SQUARE, col : col + SQUARE] = True
        assert heatmap[inside].mean() > 3 * heatmap[~inside].mean()


@pytest.mark.parametrize("depth", [1, 2])
def test_nested_models_give_the_same_heatmap_before_and_after_reload(square_model, depth, tmp_path):
    images = np.stack([_square_image(np.random.default_rng(5), 10, 10)] * 2)
    expected = maps.gradcam_batch(square_model, images)
    nested = _nest(square_model, depth)
    assert maps.feature_layer(nested).name == "features"
    np.testing.assert_allclose(maps.gradcam_batch(nested, images), expected, atol=1e-5)
    reloaded = _reload(nested, tmp_path)
    np.testing.assert_allclose(maps.gradcam_batch(reloaded, images), expected, atol=1e-5)
    assert expected.max() == pytest.approx(1.0)


def test_two_branch_cnn_lstm_matches_the_reference_recipe(tmp_path):
    keras.utils.set_random_seed(6)
    inputs = keras.Input((16, 16, 1))
    conv = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="features")(inputs)
    pooled = keras.layers.AveragePooling2D(2, padding="same")(conv)
    rows = keras.layers.Reshape((16, 16))(inputs)
    sequence = keras.layers.LSTM(8)(rows)
    merged = keras.layers.Concatenate()([sequence, keras.layers.Flatten()(pooled)])
    outputs = keras.layers.Dense(2, activation="softmax")(merged)
    model = keras.Model(inputs, outputs, name="cnn_lstm")
    images = np.random.default_rng(7).random((3, 16, 16, 1)).astype(np.float32)
    assert maps.feature_layer(model).name == "features"  # the pooling is skipped
    for candidate in (model, _reload(model, tmp_path)):
        for class_index in (0, 1):
            expected = _reference_cam(model, images, "features", class_index)
            got = maps.gradcam_batch(candidate, images, class_index=class_index)
            np.testing.assert_allclose(got, expected, atol=1e-5)
    assert maps.gradcam_batch(model, images).max() == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: maps.gradcam(m, np.zeros((32, 32, 1)), layer_name="nope"), "no layer"),
        (lambda m: maps.gradcam(m, np.zeros((32, 32, 1)), layer_name="avg_pool"), "not 4-D"),
        (lambda m: maps.gradcam(m, np.zeros((32, 32, 1)), class_index=2), "class_index"),
        (lambda m: maps.gradcam(m, np.zeros((16, 16, 1))), "expects input"),
        (lambda m: maps.gradcam(m, np.zeros((2, 32, 32, 1))), "one image"),
    ],
)
def test_bad_requests_raise_value_error(square_model, call, message):
    with pytest.raises(ValueError, match=message):
        call(square_model)


def test_explicit_layer_name_and_model_left_unchanged(square_model):
    image = _square_image(np.random.default_rng(8), 4, 20)
    before = square_model.predict(image[None], verbose=0)
    heatmap = maps.gradcam(square_model, image, layer_name="conv_1")
    assert heatmap.shape == (SIDE, SIDE)
    # the hooks are gone: same layer call method, softmax output, same predictions
    assert "call" not in vars(square_model.get_layer("conv_1"))
    assert square_model.get_layer("predictions").activation.__name__ == "softmax"
    np.testing.assert_allclose(square_model.predict(image[None], verbose=0), before)


# --------------------------------------------------------------------------- registry backbones

#: (backbone, input side, expected feature layer); heavy ones are marked slow.
REGISTRY_ROWS = [
    ("vgg16", 64, "block5_conv3"),
    ("vgg19", 64, "block5_conv4"),
    ("resnet50v2_fpn", 96, "post_relu"),
    pytest.param("inceptionv3", 75, "mixed10", marks=pytest.mark.slow),
    pytest.param("resnet50", 64, "conv5_block3_out", marks=pytest.mark.slow),
    pytest.param("xception", 71, "block14_sepconv2_act", marks=pytest.mark.slow),
    pytest.param("resnet152", 64, "conv5_block3_out", marks=pytest.mark.slow),
    pytest.param("resnet152_lstm", 64, "conv5_block3_out", marks=pytest.mark.slow),
]


def test_every_registry_backbone_has_a_row():
    names = {row.values[0] if hasattr(row, "values") else row[0] for row in REGISTRY_ROWS}
    assert names == set(BACKBONES)


@pytest.mark.parametrize(("backbone", "side", "layer"), REGISTRY_ROWS)
def test_registry_backbone_gradcam(backbone, side, layer, tmp_path):
    """Random weights: the map is often all zero after the ReLU (no positive evidence), so the
    feature map and its gradients are compared with the reference recipe before the ReLU."""
    keras.utils.set_random_seed(9)
    model = build_model(backbone, (side, side, 1))
    images = np.random.default_rng(10).random((2, side, side, 1)).astype(np.float32)
    assert maps.feature_layer(model).name == layer
    # one class for the LSTM hybrid (each eager pass through its two LSTM(2048) layers is slow)
    for class_index in (1,) if backbone == "resnet152_lstm" else (0, 1):
        features, gradients = maps.features_and_gradients(model, images, class_index=class_index)
        ref_features, ref_gradients = _reference_gradients(model, images, layer, class_index)
        _assert_close_relative(features, ref_features)
        _assert_close_relative(gradients, ref_gradients)
        heatmap = maps.gradcam_batch(model, images, class_index=class_index)
        assert heatmap.shape == (2, side, side) and heatmap.dtype == np.float32
        assert np.isfinite(heatmap).all() and heatmap.min() >= 0 and heatmap.max() <= 1
        expected = _cam(ref_features, ref_gradients, (side, side))
        np.testing.assert_allclose(heatmap, expected, atol=1e-3)
    if backbone == "resnet152_lstm":
        return  # reload and nesting are proven on the seven others (an LSTM build costs ~18 s)
    before = gradients  # class 1
    for other in (_reload(model, tmp_path, backbone), _nest(model)):
        _, after = maps.features_and_gradients(other, images)
        _assert_close_relative(after, before)


# --------------------------------------------------------------------------- display


MEDIASTINAL = explain.DisplayWindow(level_hu=40.0, width_hu=400.0)  # -160..240 HU


@pytest.mark.parametrize(
    ("stored", "window", "expected_gray"),
    [
        (0, explain.LUNG_WINDOW, 55),  # -1024 HU (air): (1350 - 1024) / 1500 * 255 = 55.4
        (HU_OFFSET - 750, explain.LUNG_WINDOW, 102),  # -750 HU: 0.4 * 255
        (HU_OFFSET - 600, explain.LUNG_WINDOW, 128),  # -600 HU: the level, 127.5 rounds up
        (HU_OFFSET + 150, explain.LUNG_WINDOW, 255),  # 150 HU: window top
        (4000, explain.LUNG_WINDOW, 255),  # bone / metal
        (HU_OFFSET - 600, MEDIASTINAL, 0),  # lung tissue is black in a soft-tissue window
        (HU_OFFSET + 40, MEDIASTINAL, 128),
        (HU_OFFSET + 240, MEDIASTINAL, 255),
    ],
)
def test_overlay_windows_stored_values(stored, window, expected_gray):
    image = np.full((4, 4), stored, dtype=np.uint16)
    rgb = explain.overlay(image, np.zeros((2, 2), np.float32), window=window)
    assert rgb.dtype == np.uint8 and rgb.shape == (4, 4, 3)
    assert (rgb == expected_gray).all()


def test_overlay_colours_only_where_the_heat_is():
    image = np.full((8, 8), HU_OFFSET - 600, dtype=np.uint16)
    heat = np.zeros((8, 8), np.float32)
    heat[1, 6] = 1.0
    rgb = explain.overlay(image, heat, alpha=1.0)
    jet_top = np.round(np.array(explain.colormaps["jet"](1.0)[:3]) * 255)
    np.testing.assert_array_equal(rgb[1, 6], jet_top)
    untouched = np.ones((8, 8), bool)
    untouched[1, 6] = False
    assert (rgb[untouched] == 128).all()


def test_overlay_float_images_are_min_max_scaled_and_heatmap_resized():
    image = np.linspace(-3.0, 5.0, 64, dtype=np.float32).reshape(8, 8)
    rgb = explain.overlay(image, np.zeros((3, 3)))
    assert rgb[0, 0, 0] == 0 and rgb[-1, -1, 0] == 255
    with pytest.raises(ValueError, match="alpha"):
        explain.overlay(image, np.zeros((3, 3)), alpha=1.5)
    with pytest.raises(ValueError, match="2-D"):
        explain.overlay(np.zeros((2, 4, 4)), np.zeros((3, 3)))


# --------------------------------------------------------------------------- cases and figure


def _predictions() -> pd.DataFrame:
    rows = []
    for patient, label, scores in [
        ("p1", "covid", [0.9, 0.8, 0.2]),
        ("p2", "covid", [0.7, 0.1]),
        ("p3", "normal", [0.6, 0.3, 0.05]),
        ("p4", "normal", [0.2, 0.95]),
    ]:
        for index, score in enumerate(scores):
            rows.append((patient, label, score, f"{patient}/IM{index:05d}.tif"))
    return pd.DataFrame(rows, columns=["patient_id", "y_true", "p_covid", "slice_id"])


@pytest.mark.parametrize(
    ("n_per_cell", "expected_counts"),
    [
        (1, {"TP": 1, "FN": 1, "FP": 1, "TN": 1}),
        (2, {"TP": 2, "FN": 2, "FP": 2, "TN": 2}),
        (5, {"TP": 3, "FN": 2, "FP": 2, "TN": 3}),
    ],
)
def test_sample_cases_counts_and_cells(n_per_cell, expected_counts):
    cases = explain.sample_cases(_predictions(), n_per_cell)
    assert cases.groupby("cell").size().to_dict() == expected_counts
    assert list(dict.fromkeys(cases["cell"])) == ["TP", "FN", "FP", "TN"]
    truth_covid = cases["y_true"] == "covid"
    called = cases["p_covid"] > 0.5
    expected = np.select(
        [truth_covid & called, truth_covid & ~called, ~truth_covid & called],
        ["TP", "FN", "FP"],
        "TN",
    )
    assert (cases["cell"] == expected).all()


def test_sample_cases_prefers_distinct_patients():
    cases = explain.sample_cases(_predictions(), 2)
    for cell in ("TP", "TN"):  # TP: p1 has two, p2 one -> both patients; TN: p3 two, p4 one
        assert cases.loc[cases["cell"] == cell, "patient_id"].nunique() == 2


@pytest.mark.parametrize(
    ("frame", "n", "message"),
    [
        (_predictions().drop(columns="slice_id"), 1, "slice_id"),
        (_predictions(), 0, "n_per_cell"),
        (_predictions().assign(y_true="maybe"), 1, "y_true"),
    ],
)
def test_sample_cases_rejects_bad_input(frame, n, message):
    with pytest.raises(ValueError, match=message):
        explain.sample_cases(frame, n)


def test_cell_enum_lists_valid_values():
    with pytest.raises(ValueError, match="valid: TP, FN, FP, TN"):
        Cell("XX")


def test_gradcam_figure_from_real_tiffs(square_model, tmp_path):
    """Stored uint16 slices on disk -> model input by the lung window -> a panel per case."""
    rng = np.random.default_rng(11)
    predictions = _predictions()
    for slice_id in predictions["slice_id"]:
        stored = rng.integers(HU_OFFSET - 900, HU_OFFSET - 700, (SIDE, SIDE)).astype(np.uint16)
        stored[8:14, 16:22] = HU_OFFSET + 100  # a dense spot
        (tmp_path / slice_id).parent.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(tmp_path / slice_id, stored)
    cases = explain.sample_cases(predictions, 2)
    figure = explain.gradcam_figure(
        square_model, cases, explain.tiff_loader(tmp_path), explain.model_input
    )
    panels = [axes for axes in figure.axes if axes.images]
    assert len(panels) == len(cases)
    assert [axes.get_title().split()[0] for axes in panels] == list(cases["cell"])
    assert all(axes.images[0].get_array().shape == (SIDE, SIDE, 3) for axes in panels)
    path = explain.save_figure(figure, tmp_path / "out" / "gradcam.png")
    picture = keras.utils.load_img(path)
    assert picture.size[0] > 300 and np.asarray(picture).std() > 10
    assert "; no " not in figure.get_suptitle()  # every outcome kind has a row
    # issue 33: the panels carry a colour bar of the heat's 0..1 scale
    (bar,) = [axes for axes in figure.axes if axes.get_ylabel() == explain.GRADCAM_SCALE_LABEL]
    assert bar.get_ylim() == (0.0, 1.0)
    without_fn = cases[cases["cell"] != "FN"].reset_index(drop=True)
    partial = explain.gradcam_figure(
        square_model, without_fn, explain.tiff_loader(tmp_path), explain.model_input
    )
    assert "rows: TP, FP, TN; no FN image" in partial.get_suptitle()
