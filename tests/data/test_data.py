"""Tests for covidct.data: 16-bit intensity handling, caching, Table 5 augmentation."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pydicom
import pytest
import tensorflow as tf
import tifffile

from covidct.data import (
    AugmentConfig,
    DeviceAugmentation,
    IntensityMode,
    IntensityTransform,
    affine_warp,
    augment_batch,
    make_dataset,
    one_hot_labels,
    projective_warp,
    read_slice,
)
from covidct.data.tfdata import apply_transform

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
TCIA_AXIAL = sorted((SHARED_DATA / "tcia" / "lung-pet-ct-dx").rglob("*.dcm"))[:3]


def write_ramp(path: Path, low: int, high: int, size: int = 64) -> np.ndarray:
    """A uint16 TIFF whose values step from ``low`` to ``high`` (size*size distinct when room)."""
    values = np.linspace(low, high, size * size).round().astype(np.uint16).reshape(size, size)
    tifffile.imwrite(path, values, photometric="minisblack")
    return values


# --------------------------------------------------------------------------- intensity


@pytest.mark.parametrize(
    ("transform", "stored", "expected"),
    [
        (IntensityTransform(IntensityMode.RAW), [0, 24, 1024, 5000], [0.0, 24.0, 1024.0, 5000.0]),
        # lung window -600/1500 HU: -1350..150 HU = stored -326..1174
        (IntensityTransform(), [24, 1024, 1174, 4000], [350 / 1500, 1350 / 1500, 1.0, 1.0]),
        (IntensityTransform(level_hu=40, width_hu=400), [864, 1064, 1264], [0.0, 0.5, 1.0]),
        (IntensityTransform(IntensityMode.SLICE_MAX), [0, 1250, 2500, 5000], [0, 0.25, 0.5, 1]),
    ],
)
def test_intensity_transform_values(
    transform: IntensityTransform, stored: list[int], expected: list[float]
) -> None:
    out = apply_transform(transform, tf.constant(np.array(stored, dtype=np.uint16)))
    assert out.dtype == tf.float32
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6, atol=1e-6)


def test_intensity_transform_keeps_every_uint16_level() -> None:
    stored = np.arange(0, 65536, dtype=np.uint16)
    out = apply_transform(IntensityTransform(IntensityMode.RAW), tf.constant(stored)).numpy()
    assert np.unique(out).size == 65536


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "8bit"}, "intensity mode: expected one of raw, slice-max, hu-window; got '8bit'"),
        ({"width_hu": 0.0}, "width_hu"),
    ],
)
def test_intensity_transform_rejects(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        IntensityTransform(**kwargs)


# --------------------------------------------------------------------------- reading


@pytest.mark.parametrize(
    "array",
    [np.zeros((8, 8), np.uint8), np.zeros((2, 8, 8), np.uint16), np.zeros((8, 8), np.float32)],
)
def test_read_slice_rejects_non_uint16_2d(tmp_path: Path, array: np.ndarray) -> None:
    path = tmp_path / "bad.tif"
    tifffile.imwrite(path, array)
    with pytest.raises(ValueError, match="bad.tif"):
        read_slice(path)


def test_read_slice_big_endian_and_deflate(tmp_path: Path) -> None:
    values = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 7
    tifffile.imwrite(tmp_path / "be.tif", values.astype(">u2"))
    tifffile.imwrite(tmp_path / "z.tif", values, compression="zlib")
    for name in ("be.tif", "z.tif"):
        np.testing.assert_array_equal(read_slice(tmp_path / name), values)


@pytest.mark.parametrize(("labels", "ok"), [([0, 1, 1], True), ([0, 2], False), ([-1], False)])
def test_one_hot_labels(labels: list[int], ok: bool) -> None:
    if ok:
        np.testing.assert_array_equal(one_hot_labels(labels), np.eye(2)[labels])
    else:
        with pytest.raises(ValueError, match="not a class index"):
            one_hot_labels(labels)


# --------------------------------------------------------------------------- datasets


def test_make_dataset_shapes_labels_and_values(tmp_path: Path) -> None:
    arrays = [write_ramp(tmp_path / f"s{i}.tif", 100 * i, 3000 + 100 * i) for i in range(5)]
    paths = [tmp_path / f"s{i}.tif" for i in range(5)]
    transform = IntensityTransform(IntensityMode.RAW)
    dataset = make_dataset(
        paths, [0, 1, 1, 0, 1], image_size=None, batch_size=2, transform=transform
    )
    batches = list(dataset)
    assert [tuple(images.shape) for images, _ in batches] == [(2, 64, 64, 1)] * 2 + [(1, 64, 64, 1)]
    images = np.concatenate([images.numpy() for images, _ in batches])
    targets = np.concatenate([target.numpy() for _, target in batches])
    assert images.dtype == np.float32 and targets.dtype == np.float32
    np.testing.assert_array_equal(images[..., 0], np.stack(arrays).astype(np.float32))
    np.testing.assert_array_equal(targets.argmax(axis=1), [0, 1, 1, 0, 1])


def test_make_dataset_resizes(tmp_path: Path) -> None:
    write_ramp(tmp_path / "a.tif", 0, 4000, size=64)
    dataset = make_dataset([tmp_path / "a.tif"], [1], image_size=32, batch_size=1)
    images, _ = next(iter(dataset))
    assert images.shape == (1, 32, 32, 1)


def test_make_dataset_rejects_length_mismatch(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="2 paths but 1 labels"):
        make_dataset([tmp_path / "a", tmp_path / "b"], [0], image_size=8, batch_size=1)


def test_make_dataset_unreadable_file_names_it(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((8, 8, 3), np.uint8))
    dataset = make_dataset([tmp_path / "rgb.tif"], [0], image_size=None, batch_size=1)
    with pytest.raises(Exception, match="rgb.tif"):
        list(dataset)


@pytest.mark.parametrize(
    ("transform", "low", "high"),
    [
        (IntensityTransform(IntensityMode.RAW), 0, 4095),
        (IntensityTransform(), 24, 1174),  # -1000..150 HU inside the lung window
        (IntensityTransform(IntensityMode.SLICE_MAX), 0, 4095),
    ],
)
def test_more_than_256_levels_reach_the_model(
    tmp_path: Path, transform: IntensityTransform, low: int, high: int
) -> None:
    write_ramp(tmp_path / "ramp.tif", low, high)
    dataset = make_dataset(
        [tmp_path / "ramp.tif"], [1], image_size=None, batch_size=1, transform=transform
    )
    inputs = keras.Input((64, 64, 1))
    probe = keras.Model(inputs, keras.layers.Identity()(inputs))
    seen = probe.predict(dataset.map(lambda images, _: images), verbose=0)
    assert np.unique(seen).size > 256


@pytest.mark.skipif(not TCIA_AXIAL, reason="TCIA reference DICOM not found")
def test_real_ct_slices_keep_more_than_256_levels(tmp_path: Path) -> None:
    """Real scanner output (Lung-PET-CT-Dx, 12-bit): stored values in Negin convention."""
    paths = []
    for index, dicom_file in enumerate(TCIA_AXIAL):
        ds = pydicom.dcmread(dicom_file)
        hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        stored = np.clip(hu + 1024, 0, 65535).astype(np.uint16)
        paths.append(tmp_path / f"real{index}.tif")
        tifffile.imwrite(paths[-1], stored)
    dataset = make_dataset(paths, [0] * len(paths), image_size=None, batch_size=len(paths))
    images, _ = next(iter(dataset))
    assert images.shape[1:] == (512, 512, 1)
    assert np.unique(images.numpy()).size > 256


@pytest.mark.parametrize(("cache", "survives"), [(True, True), (False, False)])
def test_cache_means_no_second_decode(tmp_path: Path, cache: bool, survives: bool) -> None:
    paths = [tmp_path / f"s{i}.tif" for i in range(3)]
    for index, path in enumerate(paths):
        write_ramp(path, index, 1000 + index)
    dataset = make_dataset(paths, [0, 1, 0], image_size=None, batch_size=3, cache=cache)
    first = [images.numpy() for images, _ in dataset]  # a whole epoch completes the cache
    for path in paths:
        path.unlink()  # a second decode would now fail
    if survives:
        np.testing.assert_array_equal([images.numpy() for images, _ in dataset], first)
    else:
        with pytest.raises(Exception, match="s0.tif"):
            list(dataset)


def test_file_cache(tmp_path: Path) -> None:
    write_ramp(tmp_path / "a.tif", 0, 999)
    cache_file = tmp_path / "cache" / "train"
    dataset = make_dataset(
        [tmp_path / "a.tif"], [0], image_size=None, batch_size=1, cache=cache_file
    )
    first = [images.numpy() for images, _ in dataset]  # a whole epoch completes the cache
    (tmp_path / "a.tif").unlink()
    np.testing.assert_array_equal([images.numpy() for images, _ in dataset], first)
    assert list(cache_file.parent.iterdir())


def test_shuffle_repeat_reshuffles_each_epoch(tmp_path: Path) -> None:
    paths = [tmp_path / f"s{i}.tif" for i in range(16)]
    for index, path in enumerate(paths):
        tifffile.imwrite(path, np.full((4, 4), index, np.uint16))
    transform = IntensityTransform(IntensityMode.RAW)
    dataset = make_dataset(
        paths,
        [0] * 16,
        image_size=None,
        batch_size=16,
        shuffle=True,
        repeat=True,
        transform=transform,
        seed=3,
    )
    iterator = iter(dataset)
    orders = [next(iterator)[0].numpy()[:, 0, 0, 0].tolist() for _ in range(2)]
    assert sorted(orders[0]) == sorted(orders[1]) == list(range(16))
    assert orders[0] != orders[1]


# --------------------------------------------------------------------------- augmentation


def projective_reference(image: np.ndarray, matrix: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """TensorFlow's own ImageProjectiveTransformV3 for the same centred affine map."""
    height, width = image.shape[:2]
    centre = np.array([(width - 1) / 2, (height - 1) / 2])
    offset = centre - matrix @ centre + shift
    transform = [matrix[0, 0], matrix[0, 1], offset[0], matrix[1, 0], matrix[1, 1], offset[1], 0, 0]
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.constant(image[np.newaxis]),
        transforms=tf.constant([transform], tf.float32),
        output_shape=tf.constant([height, width]),
        fill_value=tf.constant(float(image.min())),
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    ).numpy()[0]


def rotation(degrees: float, zoom: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    angle = np.radians(degrees)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return (rot @ np.diag(zoom)).astype(np.float32)


@pytest.mark.parametrize(
    ("matrix", "shift"),
    [
        (rotation(90), (0.0, 0.0)),
        (rotation(33.3), (2.5, -1.25)),
        (rotation(0, (1.05, 0.95)), (3.0, 0.0)),
        (rotation(200, (0.97, 1.02)), (-2.0, 1.5)),
    ],
)
def test_affine_warp_matches_tensorflow_projective_transform(
    matrix: np.ndarray, shift: tuple[float, float]
) -> None:
    image = np.random.default_rng(0).uniform(10, 500, (17, 23, 1)).astype(np.float32)
    ours = affine_warp(tf.constant(image[np.newaxis]), matrix[np.newaxis], [shift])[0].numpy()
    np.testing.assert_allclose(
        ours, projective_reference(image, matrix, np.array(shift)), atol=1e-3
    )


@pytest.mark.parametrize(
    ("matrix", "shift"),
    [(rotation(71.0, (0.96, 1.04)), (2.25, -3.5)), (rotation(180.0), (0.0, 0.0))],
)
def test_host_and_device_warps_agree(matrix: np.ndarray, shift: tuple[float, float]) -> None:
    images = np.random.default_rng(4).uniform(24, 1174, (2, 31, 29, 1)).astype(np.float32)
    matrices, shifts = np.stack([matrix, matrix]), np.array([shift, shift], np.float32)
    host = projective_warp(tf.constant(images), matrices, shifts).numpy()
    device = affine_warp(tf.constant(images), matrices, shifts).numpy()
    np.testing.assert_allclose(host, device, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize(("flip", "expected"), [((-1.0, 1.0), np.fliplr), ((1.0, -1.0), np.flipud)])
def test_affine_warp_flips_exactly(flip: tuple[float, float], expected) -> None:
    image = np.arange(30, dtype=np.float32).reshape(5, 6, 1)
    out = affine_warp(tf.constant(image[np.newaxis]), np.diag(flip)[np.newaxis], [[0.0, 0.0]])
    np.testing.assert_array_equal(out[0].numpy(), expected(image))


@pytest.mark.parametrize("xla", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 7, 1234])
def test_augment_stays_in_range_and_fills_with_air(seed: int, xla: bool) -> None:
    rng = np.random.default_rng(seed)
    images = rng.uniform(0.2, 0.9, (4, 32, 32, 1)).astype(np.float32)
    images[1] += 5.0  # another range per image
    out = augment_batch(tf.constant(images), tf.constant([seed, 5]), AugmentConfig(), xla=xla)
    out = out.numpy()
    assert out.shape == images.shape
    for before, after in zip(images, out, strict=True):
        assert before.min() - 1e-5 <= after.min() and after.max() <= before.max() + 1e-5
    corners = out[:, [0, 0, -1, -1], [0, -1, 0, -1], 0]
    assert np.isclose(corners, images.min(axis=(1, 2, 3))[:, None], atol=0.1).any()


def test_augment_is_deterministic_per_seed() -> None:
    images = tf.random.stateless_uniform((3, 24, 24, 1), (1, 2))
    a = augment_batch(images, tf.constant([4, 4]), AugmentConfig()).numpy()
    b = augment_batch(images, tf.constant([4, 4]), AugmentConfig()).numpy()
    c = augment_batch(images, tf.constant([4, 5]), AugmentConfig()).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_augment_off_is_identity() -> None:
    still = AugmentConfig(False, False, 0.0, 0.0, 0.0, 0.0)
    images = tf.random.stateless_uniform((2, 16, 16, 1), (3, 4))
    np.testing.assert_allclose(augment_batch(images, tf.constant([1, 2]), still), images, atol=1e-6)


def test_augment_compiles_under_xla() -> None:
    """The warp itself is identical under XLA; the random draw may differ (XLA's Philox)."""
    images = tf.random.stateless_uniform((2, 20, 20, 1), (5, 6))
    matrices = tf.constant(np.stack([rotation(47.0, (1.03, 0.96)), rotation(300.0)]))
    shifts = tf.constant([[1.5, -0.5], [0.0, 2.0]])
    warp = tf.function(affine_warp, jit_compile=True)
    np.testing.assert_allclose(
        warp(images, matrices, shifts), affine_warp(images, matrices, shifts), atol=1e-5
    )
    compiled = tf.function(
        lambda x, s: augment_batch(x, s, AugmentConfig(), xla=True), jit_compile=True
    )
    out = compiled(images, tf.constant([9, 9])).numpy()
    assert out.shape == images.shape and not np.allclose(out, images)
    assert out.min() >= float(tf.reduce_min(images)) - 1e-6
    assert out.max() <= float(tf.reduce_max(images)) + 1e-6


def test_make_dataset_augments_within_range(tmp_path: Path) -> None:
    write_ramp(tmp_path / "a.tif", 24, 1174)
    plain = make_dataset([tmp_path / "a.tif"], [1], image_size=None, batch_size=1)
    augmented = make_dataset(
        [tmp_path / "a.tif"], [1], image_size=None, batch_size=1, augment=AugmentConfig(), seed=2
    )
    before, after = next(iter(plain))[0].numpy(), next(iter(augmented))[0].numpy()
    assert not np.allclose(before, after)
    assert before.min() - 1e-6 <= after.min() and after.max() <= before.max() + 1e-6


def test_device_augmentation_layer(tmp_path: Path) -> None:
    layer = DeviceAugmentation({"rotation_degrees": 90.0}, seed=1)
    images = tf.random.stateless_uniform((2, 16, 16, 1), (7, 8))
    np.testing.assert_array_equal(layer(images, training=False), images)
    assert not np.allclose(layer(images, training=True), images)
    inputs = keras.Input((16, 16, 1))
    model = keras.Model(inputs, layer(inputs))
    model.save(tmp_path / "m.keras")
    restored = keras.saving.load_model(tmp_path / "m.keras")
    assert restored.layers[1].augment == AugmentConfig(rotation_degrees=90.0)
